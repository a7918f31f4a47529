package driver

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/hangar-csi/hangar/pkg/csicommon"
)

// TestSnapshotRouting: snapshots live on their source's server and carry
// its prefix; names are unique across servers; restores and clones land
// on the source's server whatever the free space elsewhere; listing pages
// and filters across servers; group snapshots stay on one server.
func TestSnapshotRouting(t *testing.T) {
	ctx := context.Background()
	a := startServer(t, "a", 1<<30)
	b := startServer(t, "b", 1<<20)
	c := newTestController(t, ServerRef{"a", a.addr}, ServerRef{"b", b.addr})
	va, err := c.CreateVolume(ctx, createReq("va", 1000))
	if err != nil || !strings.HasPrefix(va.Volume.VolumeId, "a:") {
		t.Fatalf("va: %v %v", va, err)
	}
	a.free.Store(1 << 10)
	b.free.Store(1 << 30)
	vb, err := c.CreateVolume(ctx, createReq("vb", 1000))
	if err != nil || !strings.HasPrefix(vb.Volume.VolumeId, "b:") {
		t.Fatalf("vb: %v %v", vb, err)
	}
	a.free.Store(64 << 20) // b has more room, a enough

	sa, err := c.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s", SourceVolumeId: va.Volume.VolumeId})
	if err != nil || !strings.HasPrefix(sa.Snapshot.SnapshotId, "a:") || sa.Snapshot.SourceVolumeId != va.Volume.VolumeId {
		t.Fatalf("snapshot: %v %v", sa, err)
	}
	if _, err := c.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s", SourceVolumeId: vb.Volume.VolumeId}); status.Code(err) != codes.AlreadyExists {
		t.Errorf("same snapshot name, volume on another server: %v", err)
	}
	if again, err := c.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s", SourceVolumeId: va.Volume.VolumeId}); err != nil || again.Snapshot.SnapshotId != sa.Snapshot.SnapshotId {
		t.Errorf("retry: %v %v", again, err)
	}
	sb, err := c.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "t", SourceVolumeId: vb.Volume.VolumeId})
	if err != nil || !strings.HasPrefix(sb.Snapshot.SnapshotId, "b:") {
		t.Fatalf("snapshot on b: %v %v", sb, err)
	}

	restore := createReq("restored", 1000)
	restore.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: sa.Snapshot.SnapshotId}}}
	r, err := c.CreateVolume(ctx, restore)
	if err != nil || !strings.HasPrefix(r.Volume.VolumeId, "a:") || r.Volume.GetContentSource().GetSnapshot().GetSnapshotId() != sa.Snapshot.SnapshotId {
		t.Fatalf("restore: %v %v", r, err)
	}
	clone := createReq("clone", 1000)
	clone.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: va.Volume.VolumeId}}}
	cl, err := c.CreateVolume(ctx, clone)
	if err != nil || !strings.HasPrefix(cl.Volume.VolumeId, "a:") || cl.Volume.GetContentSource().GetVolume().GetVolumeId() != va.Volume.VolumeId {
		t.Fatalf("clone: %v %v", cl, err)
	}
	// The name exists on a; a retry naming b's volume as source conflicts.
	clone.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: vb.Volume.VolumeId}}}
	if _, err := c.CreateVolume(ctx, clone); status.Code(err) != codes.AlreadyExists {
		t.Errorf("clone name reused with a source on another server: %v", err)
	}
	for _, id := range []string{"zz:0123456789abcdef", "a:0123456789abcdef", "garbage"} {
		req := createReq("x", 1000)
		req.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: id}}}
		if _, err := c.CreateVolume(ctx, req); status.Code(err) != codes.NotFound {
			t.Errorf("restore from %q: %v", id, err)
		}
	}

	list := func(req *csi.ListSnapshotsRequest) []string {
		t.Helper()
		var ids []string
		for {
			r, err := c.ListSnapshots(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range r.Entries {
				ids = append(ids, e.Snapshot.SnapshotId)
			}
			if r.NextToken == "" {
				return ids
			}
			req.StartingToken = r.NextToken
		}
	}
	if got := list(&csi.ListSnapshotsRequest{MaxEntries: 1}); len(got) != 2 || got[0] != sa.Snapshot.SnapshotId || got[1] != sb.Snapshot.SnapshotId {
		t.Errorf("paged list %v", got)
	}
	if got := list(&csi.ListSnapshotsRequest{SourceVolumeId: vb.Volume.VolumeId}); len(got) != 1 || got[0] != sb.Snapshot.SnapshotId {
		t.Errorf("by source: %v", got)
	}
	if got := list(&csi.ListSnapshotsRequest{SnapshotId: sa.Snapshot.SnapshotId}); len(got) != 1 || got[0] != sa.Snapshot.SnapshotId {
		t.Errorf("by id: %v", got)
	}
	for _, req := range []*csi.ListSnapshotsRequest{
		{SnapshotId: "zz:0123456789abcdef"},
		{SnapshotId: "nonsense"},
		{SnapshotId: sa.Snapshot.SnapshotId, SourceVolumeId: vb.Volume.VolumeId},
	} {
		if got := list(req); len(got) != 0 {
			t.Errorf("%v: %v, want none", req, got)
		}
	}
	if g, err := c.GetSnapshot(ctx, &csi.GetSnapshotRequest{SnapshotId: sb.Snapshot.SnapshotId}); err != nil || g.Snapshot.SourceVolumeId != vb.Volume.VolumeId {
		t.Errorf("get: %v %v", g, err)
	}
	if _, err := c.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: "zz:0123456789abcdef"}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("delete on an unknown server: %v", err)
	}

	gc := c.Group()
	if _, err := gc.CreateVolumeGroupSnapshot(ctx, &csi.CreateVolumeGroupSnapshotRequest{Name: "g", SourceVolumeIds: []string{va.Volume.VolumeId, vb.Volume.VolumeId}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("group across servers: %v", err)
	}
	g, err := gc.CreateVolumeGroupSnapshot(ctx, &csi.CreateVolumeGroupSnapshotRequest{Name: "g", SourceVolumeIds: []string{va.Volume.VolumeId, r.Volume.VolumeId}})
	if err != nil || !strings.HasPrefix(g.GroupSnapshot.GroupSnapshotId, "a:") || len(g.GroupSnapshot.Snapshots) != 2 {
		t.Fatalf("group: %v %v", g, err)
	}
	var members []string
	for _, s := range g.GroupSnapshot.Snapshots {
		members = append(members, s.SnapshotId)
		if s.GroupSnapshotId != g.GroupSnapshot.GroupSnapshotId || !strings.HasPrefix(s.SourceVolumeId, "a:") {
			t.Errorf("member %v", s)
		}
	}
	if _, err := gc.CreateVolumeGroupSnapshot(ctx, &csi.CreateVolumeGroupSnapshotRequest{Name: "g", SourceVolumeIds: []string{vb.Volume.VolumeId}}); status.Code(err) != codes.AlreadyExists {
		t.Errorf("group name reused on another server: %v", err)
	}
	if got, err := gc.GetVolumeGroupSnapshot(ctx, &csi.GetVolumeGroupSnapshotRequest{GroupSnapshotId: g.GroupSnapshot.GroupSnapshotId, SnapshotIds: members}); err != nil || len(got.GroupSnapshot.Snapshots) != 2 {
		t.Errorf("get group: %v %v", got, err)
	}
	if _, err := gc.DeleteVolumeGroupSnapshot(ctx, &csi.DeleteVolumeGroupSnapshotRequest{GroupSnapshotId: g.GroupSnapshot.GroupSnapshotId, SnapshotIds: []string{sb.Snapshot.SnapshotId}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("delete group naming another server's snapshot: %v", err)
	}
	if _, err := gc.DeleteVolumeGroupSnapshot(ctx, &csi.DeleteVolumeGroupSnapshotRequest{GroupSnapshotId: g.GroupSnapshot.GroupSnapshotId, SnapshotIds: members}); err != nil {
		t.Errorf("delete group: %v", err)
	}
	if got := list(&csi.ListSnapshotsRequest{}); len(got) != 2 {
		t.Errorf("after deleting the group: %v", got)
	}
}

// TestRestoreStreamsToAnotherServer: when the source's server has no room,
// the contents stream to the server with the most, over the management
// API, and arrive whole; a retry finds that volume.
func TestRestoreStreamsToAnotherServer(t *testing.T) {
	ctx := context.Background()
	a := startServer(t, "a", 1<<30)
	b := startServer(t, "b", 1<<20)
	c := newTestController(t, ServerRef{"a", a.addr}, ServerRef{"b", b.addr})
	va, err := c.CreateVolume(ctx, createReq("va", 1<<20))
	if err != nil || !strings.HasPrefix(va.Volume.VolumeId, "a:") {
		t.Fatalf("va: %v %v", va, err)
	}
	_, local, _ := csicommon.ParseVolumeID(va.Volume.VolumeId)
	dir := a.api.Store.VolumeDir(local)
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o750); err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("hangar"), 300000) // 1.8 MB: several frames
	if err := os.WriteFile(filepath.Join(dir, "sub", "data"), payload, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub/data", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	sn, err := c.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s", SourceVolumeId: va.Volume.VolumeId})
	if err != nil {
		t.Fatal(err)
	}
	// a is full now; b has room.
	a.free.Store(a.api.Store.Promised())
	b.free.Store(1 << 30)
	for _, tc := range []struct {
		name string
		src  *csi.VolumeContentSource
	}{
		{"restored", &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: sn.Snapshot.SnapshotId}}}},
		{"cloned", &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: va.Volume.VolumeId}}}},
	} {
		req := createReq(tc.name, 4<<20)
		req.VolumeContentSource = tc.src
		r, err := c.CreateVolume(ctx, req)
		if err != nil || !strings.HasPrefix(r.Volume.VolumeId, "b:") {
			t.Fatalf("%s: %v %v", tc.name, r, err)
		}
		if !proto.Equal(r.Volume.ContentSource, tc.src) {
			t.Errorf("%s: content source %v, want %v", tc.name, r.Volume.ContentSource, tc.src)
		}
		_, rlocal, _ := csicommon.ParseVolumeID(r.Volume.VolumeId)
		rdir := b.api.Store.VolumeDir(rlocal)
		if got, err := os.ReadFile(filepath.Join(rdir, "sub", "data")); err != nil || !bytes.Equal(got, payload) {
			t.Errorf("%s: data arrived as %d bytes, %v", tc.name, len(got), err)
		}
		if target, err := os.Readlink(filepath.Join(rdir, "link")); err != nil || target != "sub/data" {
			t.Errorf("%s: symlink %q %v", tc.name, target, err)
		}
		if fi, err := os.Stat(filepath.Join(rdir, "sub")); err != nil || fi.Mode().Perm() != 0o750 {
			t.Errorf("%s: sub mode %v %v", tc.name, fi.Mode(), err)
		}
		// A retry (b holds it now) returns the same volume.
		again, err := c.CreateVolume(ctx, req)
		if err != nil || again.Volume.VolumeId != r.Volume.VolumeId {
			t.Errorf("%s retry: %v %v", tc.name, again, err)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(b.api.Store.Dir(), "staging")); len(ents) != 0 {
		t.Errorf("b's staging not empty: %v", ents)
	}
	if ents, _ := os.ReadDir(filepath.Join(a.api.Store.Dir(), "staging")); len(ents) != 0 {
		t.Errorf("a's staging not empty: %v", ents)
	}
	// Nowhere has room: the source server's answer.
	b.free.Store(0)
	req := createReq("nowhere", 4<<20)
	req.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: sn.Snapshot.SnapshotId}}}
	if _, err := c.CreateVolume(ctx, req); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("no room anywhere: %v", err)
	}
}
