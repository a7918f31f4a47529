package driver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hangar-csi/hangar/pkg/csicommon"
	"github.com/hangar-csi/hangar/pkg/endpoint"
	"github.com/hangar-csi/hangar/pkg/server/api"
	"github.com/hangar-csi/hangar/pkg/vfs"
	"github.com/hangar-csi/hangar/pkg/volume"
)

type fakeExports struct {
	mu    sync.Mutex
	paths map[string]string
}

func (f *fakeExports) AddExport(path, dir, id string, _ vfs.Policy) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paths[path] = dir
	return nil
}

func (f *fakeExports) RemoveExport(path string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.paths[path]; !ok {
		return fmt.Errorf("no export %s", path)
	}
	delete(f.paths, path)
	return nil
}

type testServer struct {
	api     *api.StorageAPI
	exports *fakeExports
	addr    string
	free    atomic.Int64
}

// startServer runs a storage API (real store, fake exports) on loopback.
func startServer(t *testing.T, name string, free int64) *testServer {
	t.Helper()
	st, err := volume.Open(t.TempDir(), logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ts := &testServer{exports: &fakeExports{paths: map[string]string{}}}
	ts.free.Store(free)
	ts.api = &api.StorageAPI{Store: st, Exports: ts.exports, Quota: freeQuota{ts, st}, Name: name, NFSAddr: "127.0.0.1:2049", Log: logr.Discard()}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := endpoint.NewGRPCServer(logr.Discard())
	ts.api.Register(g)
	go g.Serve(l)
	t.Cleanup(g.Stop)
	ts.addr = l.Addr().String()
	return ts
}

// freeQuota offers ts.free bytes, less what the store has promised.
type freeQuota struct {
	ts *testServer
	st *volume.Store
}

func (q freeQuota) SetCapacity(string, int64) error { return nil }
func (q freeQuota) ApplyPolicy(string) error        { return nil }
func (q freeQuota) Available(promised int64) (int64, error) {
	return max(q.ts.free.Load()-promised, 0), nil
}
func (q freeQuota) Usage(string) (csicommon.VolumeUsage, error) {
	return csicommon.VolumeUsage{}, errors.New("fake exports report no usage")
}

func mountCap(mode csi.VolumeCapability_AccessMode_Mode) *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: mode},
	}
}

func newTestController(t *testing.T, refs ...ServerRef) *Controller {
	t.Helper()
	c, err := NewController(refs, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// mib scales test sizes: volumes are at least csicommon.MinCapacity.
const mib = 1 << 20

func createReq(name string, size int64) *csi.CreateVolumeRequest {
	return &csi.CreateVolumeRequest{
		Name:               name,
		CapacityRange:      &csi.CapacityRange{RequiredBytes: size},
		VolumeCapabilities: []*csi.VolumeCapability{mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER)},
	}
}

func TestControllerPlacementAndRouting(t *testing.T) {
	ctx := context.Background()
	a := startServer(t, "a", 1000*mib)
	b := startServer(t, "b", 600*mib)
	c := newTestController(t, ServerRef{"a", a.addr}, ServerRef{"b", b.addr})

	// Most free first: a (1000), then b (600 > 1000-500), then nothing fits.
	v1, err := c.CreateVolume(ctx, createReq("v1", 500*mib))
	if err != nil || !strings.HasPrefix(v1.Volume.VolumeId, "a:") {
		t.Fatalf("v1: %v %v", v1, err)
	}
	v2, err := c.CreateVolume(ctx, createReq("v2", 550*mib))
	if err != nil || !strings.HasPrefix(v2.Volume.VolumeId, "b:") {
		t.Fatalf("v2: %v %v", v2, err)
	}
	if ctxv := v2.Volume.VolumeContext; ctxv[csicommon.ContextServer] != "b" || ctxv[csicommon.ContextExport] == "" || ctxv[csicommon.ContextAddress] == "" {
		t.Errorf("volume context %v", ctxv)
	}
	_, id2, _ := csicommon.ParseVolumeID(v2.Volume.VolumeId)
	if _, ok := b.exports.paths[csicommon.ExportPath(id2)]; !ok {
		t.Errorf("volume not exported on b: %v", b.exports.paths)
	}
	if _, err := c.CreateVolume(ctx, createReq("v3", 600*mib)); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("v3: %v, want ResourceExhausted", err)
	}

	// Idempotency across servers: v2 lives on b although a has more room now.
	a.free.Store(10000 * mib)
	again, err := c.CreateVolume(ctx, createReq("v2", 550*mib))
	if err != nil || again.Volume.VolumeId != v2.Volume.VolumeId {
		t.Fatalf("retry: %v %v", again, err)
	}
	if _, err := c.CreateVolume(ctx, createReq("v2", 900*mib)); status.Code(err) != codes.AlreadyExists {
		t.Errorf("incompatible retry: %v", err)
	}

	// Routing by ID.
	got, err := c.ControllerGetVolume(ctx, &csi.ControllerGetVolumeRequest{VolumeId: v2.Volume.VolumeId})
	if err != nil || got.Volume.VolumeId != v2.Volume.VolumeId || got.Volume.CapacityBytes != 550*mib {
		t.Fatalf("get: %v %v", got, err)
	}
	ex, err := c.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: v2.Volume.VolumeId, CapacityRange: &csi.CapacityRange{RequiredBytes: 560 * mib}})
	if err != nil || ex.CapacityBytes != 560*mib || ex.NodeExpansionRequired {
		t.Fatalf("expand: %v %v", ex, err)
	}
	for _, vid := range []string{"a:" + id2, "zz:0123456789abcdef", "garbage"} {
		if _, err := c.ControllerGetVolume(ctx, &csi.ControllerGetVolumeRequest{VolumeId: vid}); status.Code(err) != codes.NotFound {
			t.Errorf("get %s: %v, want NotFound", vid, err)
		}
	}
	if _, err := c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: "zz:0123456789abcdef"}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("delete on unknown server: %v", err)
	}
	for range 2 {
		if _, err := c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: v2.Volume.VolumeId}); err != nil {
			t.Fatalf("delete: %v", err)
		}
	}
	if _, ok := b.exports.paths[csicommon.ExportPath(id2)]; ok {
		t.Error("export not removed")
	}
	if _, err := c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: "garbage"}); err != nil {
		t.Errorf("delete garbage: %v", err)
	}

	capr, err := c.GetCapacity(ctx, &csi.GetCapacityRequest{})
	if err != nil || capr.AvailableCapacity != ((10000-500)+600)*mib || capr.MaximumVolumeSize.GetValue() != 9500*mib {
		t.Errorf("capacity: %v %v", capr, err)
	}
}

func TestControllerConcurrentSameName(t *testing.T) {
	a := startServer(t, "a", 1<<40)
	b := startServer(t, "b", 1<<40)
	c := newTestController(t, ServerRef{"a", a.addr}, ServerRef{"b", b.addr})
	var wg sync.WaitGroup
	ids := make([]string, 10)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.CreateVolume(context.Background(), createReq("same", 1))
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = r.Volume.VolumeId
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("ids differ: %v", ids)
		}
	}
	if n := len(a.api.Store.List()) + len(b.api.Store.List()); n != 1 {
		t.Fatalf("%d volumes", n)
	}
}

func TestControllerUnavailableServer(t *testing.T) {
	a := startServer(t, "a", 1000)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	c := newTestController(t, ServerRef{"a", a.addr}, ServerRef{"down", dead})
	c.CallTimeout = 5e9
	_, err := c.CreateVolume(context.Background(), createReq("x", 1))
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), `down`) {
		t.Fatalf("create with a server down: %v", err)
	}
	_, err = c.ControllerGetVolume(context.Background(), &csi.ControllerGetVolumeRequest{VolumeId: "down:0123456789abcdef"})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), dead) {
		t.Fatalf("get on server down: %v", err)
	}
	// Capacity counts what it can reach.
	if r, err := c.GetCapacity(context.Background(), &csi.GetCapacityRequest{}); err != nil || r.AvailableCapacity != 1000 {
		t.Fatalf("capacity: %v %v", r, err)
	}
}

func TestControllerPaging(t *testing.T) {
	ctx := context.Background()
	srvs := []*testServer{startServer(t, "a", 1<<40), startServer(t, "b", 1<<40), startServer(t, "c", 1<<40)}
	c := newTestController(t, ServerRef{"b", srvs[1].addr}, ServerRef{"a", srvs[0].addr}, ServerRef{"c", srvs[2].addr})
	// 3 volumes on a, none on b, 4 on c: paging must cross the empty server.
	var want []string
	for i, n := range []int{3, 0, 4} {
		for j := range n {
			r, err := srvs[i].api.CreateVolume(ctx, createReq(fmt.Sprintf("v%d-%d", i, j), 1))
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, csicommon.VolumeID(srvs[i].api.Name, r.Volume.VolumeId))
		}
	}
	slices.Sort(want)
	for _, page := range []int32{0, 1, 2, 3, 4, 7, 8} {
		var got []string
		tok := ""
		for calls := 0; ; calls++ {
			if calls > 10 {
				t.Fatalf("page %d: no end", page)
			}
			r, err := c.ListVolumes(ctx, &csi.ListVolumesRequest{MaxEntries: page, StartingToken: tok})
			if err != nil {
				t.Fatalf("page %d: %v", page, err)
			}
			if page > 0 && len(r.Entries) > int(page) {
				t.Fatalf("page %d: got %d entries", page, len(r.Entries))
			}
			for _, e := range r.Entries {
				got = append(got, e.Volume.VolumeId)
			}
			if tok = r.NextToken; tok == "" {
				break
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("page size %d:\n got %v\nwant %v", page, got, want)
		}
	}

	// Deleting the token's volume between pages does not break paging.
	r, err := c.ListVolumes(ctx, &csi.ListVolumesRequest{MaxEntries: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: r.NextToken}); err != nil {
		t.Fatal(err)
	}
	r2, err := c.ListVolumes(ctx, &csi.ListVolumesRequest{StartingToken: r.NextToken})
	if err != nil || len(r2.Entries) != len(want)-2 || r2.Entries[0].Volume.VolumeId != want[2] {
		t.Fatalf("after deleting token volume: %v %v", r2, err)
	}

	for _, bad := range []string{"invalid-token", "a:xyz"} {
		if _, err := c.ListVolumes(ctx, &csi.ListVolumesRequest{StartingToken: bad}); status.Code(err) != codes.Aborted {
			t.Errorf("token %q: %v", bad, err)
		}
	}
	if _, err := c.ListVolumes(ctx, &csi.ListVolumesRequest{MaxEntries: -1}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("negative max: %v", err)
	}
}

func TestControllerPublishErrors(t *testing.T) {
	ctx := context.Background()
	s := startServer(t, "a", 1<<30)
	acc, err := api.OpenAccess(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	s.api.Access = acc
	c := newTestController(t, ServerRef{"a", s.addr})
	v, err := c.CreateVolume(ctx, createReq("v", 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	vid := v.Volume.VolumeId
	rwo := mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
	for _, tc := range []struct {
		req  *csi.ControllerPublishVolumeRequest
		code codes.Code
	}{
		{&csi.ControllerPublishVolumeRequest{NodeId: "n@127.0.0.1", VolumeCapability: rwo}, codes.InvalidArgument},
		{&csi.ControllerPublishVolumeRequest{VolumeId: vid, VolumeCapability: rwo}, codes.InvalidArgument},
		{&csi.ControllerPublishVolumeRequest{VolumeId: vid, NodeId: "n@127.0.0.1"}, codes.InvalidArgument},
		{&csi.ControllerPublishVolumeRequest{VolumeId: vid, NodeId: "no-address", VolumeCapability: rwo}, codes.NotFound},
		{&csi.ControllerPublishVolumeRequest{VolumeId: csicommon.VolumeID("a", "0123456789abcdef"), NodeId: "n@127.0.0.1", VolumeCapability: rwo}, codes.NotFound},
		{&csi.ControllerPublishVolumeRequest{VolumeId: csicommon.VolumeID("zz", "0123456789abcdef"), NodeId: "n@127.0.0.1", VolumeCapability: rwo}, codes.NotFound},
		{&csi.ControllerPublishVolumeRequest{VolumeId: vid, NodeId: "n@127.0.0.1", VolumeCapability: rwo}, codes.OK},
		{&csi.ControllerPublishVolumeRequest{VolumeId: vid, NodeId: "n@127.0.0.1", VolumeCapability: rwo, Readonly: true}, codes.AlreadyExists},
		{&csi.ControllerPublishVolumeRequest{VolumeId: vid, NodeId: "m@127.0.0.2", VolumeCapability: rwo}, codes.FailedPrecondition},
	} {
		_, err := c.ControllerPublishVolume(ctx, tc.req)
		if status.Code(err) != tc.code {
			t.Errorf("ControllerPublishVolume(%v): %v, want %s", tc.req, err, tc.code)
		}
	}
	if got := acc.Nodes(strings.TrimPrefix(vid, "a:")); len(got) != 1 || got[0].NodeID != "n@127.0.0.1" {
		t.Errorf("access list = %v", got)
	}
}
