package driver

import (
	"context"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/hangar-csi/hangar/pkg/csicommon"
	"github.com/hangar-csi/hangar/pkg/endpoint"
	"github.com/hangar-csi/hangar/pkg/server/api"
)

// serveController serves c on a unix socket and returns a client of it.
func serveController(t *testing.T, c *Controller) csi.ControllerClient {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "csi.sock")
	l, err := endpoint.Listen("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	g := endpoint.NewGRPCServer(logr.Discard())
	csi.RegisterControllerServer(g, c)
	go g.Serve(l)
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return csi.NewControllerClient(conn)
}

// TestControllerListVolumeHealth pages through two servers' unhealthy
// volumes (the test servers export nothing, so every volume is), skipping
// a server that is down, and refuses tokens it did not issue.
func TestControllerListVolumeHealth(t *testing.T) {
	ctx := context.Background()
	a := startServer(t, "a", 1<<40)
	b := startServer(t, "b", 1<<40)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	ctrl := newTestController(t, ServerRef{"a", a.addr}, ServerRef{"b", b.addr}, ServerRef{"c-down", dead})
	ctrl.CallTimeout = 5e9
	c := serveController(t, ctrl)
	var want []string
	for i, srv := range []string{"a", "a", "a", "b", "b"} {
		ts := map[string]*testServer{"a": a, "b": b}[srv]
		r, err := ts.api.CreateVolume(ctx, createReq(string(rune('p'+i)), 100))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, csicommon.VolumeID(srv, r.Volume.VolumeId))
	}
	slices.Sort(want)
	for _, page := range []int32{0, 1, 2, 3, 5, 6} {
		var got []string
		tok := ""
		for range 10 {
			r, err := c.ControllerListVolumeHealth(ctx, &csi.ControllerListVolumeHealthRequest{MaxEntries: page, StartingToken: tok})
			if err != nil {
				t.Fatalf("page size %d: %v", page, err)
			}
			if page > 0 && len(r.Entries) > int(page) {
				t.Fatalf("page size %d: %d entries", page, len(r.Entries))
			}
			for _, h := range r.Entries {
				if len(h.HealthStatuses) == 0 || h.HealthStatuses[0].Reason != csicommon.ReasonExportMissing {
					t.Errorf("entry %v", h)
				}
				got = append(got, h.VolumeId)
			}
			if tok = r.NextToken; tok == "" {
				break
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("page size %d: listed %v, want %v", page, got, want)
		}
	}
	for _, tok := range []string{"garbage", "a:not-an-id"} {
		if _, err := c.ControllerListVolumeHealth(ctx, &csi.ControllerListVolumeHealthRequest{StartingToken: tok}); status.Code(err) != codes.Aborted {
			t.Errorf("token %q: %v, want Aborted", tok, err)
		}
	}
	if _, err := c.ControllerListVolumeHealth(ctx, &csi.ControllerListVolumeHealthRequest{MaxEntries: -1}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("negative max_entries: %v", err)
	}
}

// TestControllerModifyAndPublishedNodes: ModifyVolume reaches the volume's
// server and errors come back with the right codes; GetVolume and
// ListVolumes report the nodes a volume is published to.
func TestControllerModifyAndPublishedNodes(t *testing.T) {
	ctx := context.Background()
	a := startServer(t, "a", 1<<40)
	acc, err := api.OpenAccess(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	a.api.Access = acc
	c := serveController(t, newTestController(t, ServerRef{"a", a.addr}))
	v, err := c.CreateVolume(ctx, createReq("m", 100))
	if err != nil {
		t.Fatal(err)
	}
	id := v.Volume.VolumeId
	if _, err := c.ControllerModifyVolume(ctx, &csi.ControllerModifyVolumeRequest{VolumeId: id, MutableParameters: map[string]string{csicommon.ParamRootSquash: "true"}}); err != nil {
		t.Fatal(err)
	}
	rec, _ := a.api.Store.Get(strings.TrimPrefix(id, "a:"))
	if rec.MutableParameters[csicommon.ParamRootSquash] != "true" {
		t.Errorf("record after modify: %v", rec.MutableParameters)
	}
	for name, tc := range map[string]struct {
		req  *csi.ControllerModifyVolumeRequest
		want codes.Code
	}{
		"no id":          {&csi.ControllerModifyVolumeRequest{}, codes.InvalidArgument},
		"malformed id":   {&csi.ControllerModifyVolumeRequest{VolumeId: "non-existing-volume-id"}, codes.NotFound},
		"unknown server": {&csi.ControllerModifyVolumeRequest{VolumeId: "zz:0123456789abcdef"}, codes.NotFound},
		"missing volume": {&csi.ControllerModifyVolumeRequest{VolumeId: "a:0123456789abcdef"}, codes.NotFound},
		"unknown key":    {&csi.ControllerModifyVolumeRequest{VolumeId: id, MutableParameters: map[string]string{"XXX_FakeKey": "x"}}, codes.InvalidArgument},
	} {
		if _, err := c.ControllerModifyVolume(ctx, tc.req); status.Code(err) != tc.want {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}

	node := csicommon.FormatNodeID("n1", nil) + "@10.0.0.1"
	if _, err := c.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: id, NodeId: node, VolumeCapability: mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER)}); err != nil {
		t.Fatal(err)
	}
	g, err := c.ControllerGetVolume(ctx, &csi.ControllerGetVolumeRequest{VolumeId: id})
	if err != nil || !slices.Equal(g.GetStatus().GetPublishedNodeIds(), []string{node}) {
		t.Fatalf("GetVolume status %v %v", g.GetStatus(), err)
	}
	lv, err := c.ListVolumes(ctx, &csi.ListVolumesRequest{})
	if err != nil || len(lv.Entries) != 1 || !slices.Equal(lv.Entries[0].GetStatus().GetPublishedNodeIds(), []string{node}) {
		t.Fatalf("ListVolumes %v %v", lv, err)
	}
	if _, err := c.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: id, NodeId: node}); err != nil {
		t.Fatal(err)
	}
	if g, _ := c.ControllerGetVolume(ctx, &csi.ControllerGetVolumeRequest{VolumeId: id}); len(g.GetStatus().GetPublishedNodeIds()) != 0 {
		t.Fatalf("published nodes after unpublish: %v", g.GetStatus())
	}
}

// TestControllerNodeLimit: with a per-node limit, publications to one node
// are counted across servers; one past the limit is refused, a retry of a
// counted one is not, and an unpublish frees a place.
func TestControllerNodeLimit(t *testing.T) {
	ctx := context.Background()
	var ids []string
	var refs []ServerRef
	for _, name := range []string{"a", "b"} {
		ts := startServer(t, name, 1<<40)
		acc, err := api.OpenAccess(t.TempDir(), false)
		if err != nil {
			t.Fatal(err)
		}
		ts.api.Access = acc
		refs = append(refs, ServerRef{name, ts.addr})
	}
	ctrl := newTestController(t, refs...)
	ctrl.MaxVolumesPerNode = 2
	c := serveController(t, ctrl)
	for i := range 3 {
		r, err := c.CreateVolume(ctx, createReq(string(rune('k'+i)), 100))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.Volume.VolumeId)
	}
	if ids[0][:2] == ids[1][:2] && ids[1][:2] == ids[2][:2] {
		t.Fatalf("all volumes on one server (%v): the count across servers is not tested", ids)
	}
	pub := func(id, node string) error {
		_, err := c.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: id, NodeId: node, VolumeCapability: mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER)})
		return err
	}
	const n1, n2 = "n1@10.0.0.1", "n2@10.0.0.2"
	for _, id := range ids[:2] {
		if err := pub(id, n1); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub(ids[2], n1); status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "max-volumes-per-node") {
		t.Fatalf("third volume on a node limited to 2: %v, want ResourceExhausted", err)
	}
	if err := pub(ids[1], n1); err != nil {
		t.Errorf("retried publication of a counted volume: %v", err)
	}
	if err := pub(ids[2], n2); err != nil {
		t.Errorf("another node: %v", err)
	}
	if _, err := c.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: ids[0], NodeId: n1}); err != nil {
		t.Fatal(err)
	}
	if err := pub(ids[2], n1); err != nil {
		t.Errorf("publication after a place was freed: %v", err)
	}
}
