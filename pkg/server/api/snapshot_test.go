package api

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hangar-csi/hangar/pkg/csicommon"
	"github.com/hangar-csi/hangar/pkg/volume"
)

// gateFreezer blocks every Freeze until the test opens the gate: a copy
// waiting for the volume's writes to drain, held still.
type gateFreezer struct{ gate chan struct{} }

func (g *gateFreezer) Freeze(ids ...string) (func(), error) {
	<-g.gate
	return func() {}, nil
}

// fixedQuota reports every volume as using 10 MiB, 1 GiB free.
type fixedQuota struct{}

func (fixedQuota) SetCapacity(string, int64) error { return nil }
func (fixedQuota) Usage(string) (csicommon.VolumeUsage, error) {
	return csicommon.VolumeUsage{Bytes: 10 << 20}, nil
}
func (fixedQuota) Available(int64) (int64, error) { return 1 << 30, nil }
func (fixedQuota) ApplyPolicy(string) error       { return nil }

func waitReady(t *testing.T, a *StorageAPI, id string) *csi.Snapshot {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		r, err := a.GetSnapshot(context.Background(), &csi.GetSnapshotRequest{SnapshotId: id})
		if err != nil {
			t.Fatal(err)
		}
		if r.Snapshot.ReadyToUse {
			return r.Snapshot
		}
	}
	t.Fatalf("snapshot %s never became ready", id)
	return nil
}

// TestBackgroundCopySnapshot: on a file system without reflink a large
// volume's snapshot is copied in the background: not ready until the copy
// is done, its bytes charged to capacity meanwhile, its source not
// deletable, and deleting the snapshot stops the copy.
func TestBackgroundCopySnapshot(t *testing.T) {
	ctx := context.Background()
	a := newTestAPI(t, "s")
	if a.Store.Reflink() {
		t.Skip("the test directory's file system clones extents; the background copy is for those that do not")
	}
	gate := &gateFreezer{gate: make(chan struct{})}
	a.Freezer, a.Quota, a.SyncCopyLimit = gate, fixedQuota{}, -1
	v, err := a.CreateVolume(ctx, createReq("v", 64<<20))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a.Store.VolumeDir(v.Volume.VolumeId), "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	capBefore, _ := a.GetCapacity(ctx, &csi.GetCapacityRequest{})
	r, err := a.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s1", SourceVolumeId: v.Volume.VolumeId})
	if err != nil {
		t.Fatal(err)
	}
	if r.Snapshot.ReadyToUse {
		t.Fatal("background snapshot ready before its copy ran")
	}
	// Retried create: same snapshot, still not ready.
	if r2, err := a.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s1", SourceVolumeId: v.Volume.VolumeId}); err != nil || r2.Snapshot.SnapshotId != r.Snapshot.SnapshotId || r2.Snapshot.ReadyToUse {
		t.Fatalf("retry: %v %v", r2, err)
	}
	capDuring, _ := a.GetCapacity(ctx, &csi.GetCapacityRequest{})
	if capBefore.AvailableCapacity-capDuring.AvailableCapacity != 10<<20 {
		t.Errorf("capacity %d during the copy, %d before: want the copy's 10 MiB charged", capDuring.AvailableCapacity, capBefore.AvailableCapacity)
	}
	if _, err := a.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: v.Volume.VolumeId}); status.Code(err) != codes.Aborted {
		t.Errorf("deleting the volume being copied: %v, want Aborted", err)
	}
	restore := createReq("r", 64<<20)
	restore.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: r.Snapshot.SnapshotId}}}
	if _, err := a.CreateVolume(ctx, restore); status.Code(err) != codes.Unavailable {
		t.Errorf("restoring a snapshot not ready: %v, want Unavailable", err)
	}
	close(gate.gate)
	sn := waitReady(t, a, r.Snapshot.SnapshotId)
	if b, err := os.ReadFile(filepath.Join(a.Store.SnapshotDir(sn.SnapshotId), "f")); err != nil || string(b) != "data" {
		t.Fatalf("snapshot holds %q, %v", b, err)
	}
	if capAfter, _ := a.GetCapacity(ctx, &csi.GetCapacityRequest{}); capAfter.AvailableCapacity != capBefore.AvailableCapacity {
		t.Errorf("capacity after the copy %d, want %d (the fixed quota's figure)", capAfter.AvailableCapacity, capBefore.AvailableCapacity)
	}
	if _, err := a.CreateVolume(ctx, restore); err != nil {
		t.Fatalf("restore: %v", err)
	}

	// Deleting a snapshot while it is copied stops the copy for good.
	gate.gate = make(chan struct{})
	r, err = a.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s2", SourceVolumeId: v.Volume.VolumeId})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: r.Snapshot.SnapshotId}); err != nil {
		t.Fatalf("deleting a snapshot being copied: %v", err)
	}
	close(gate.gate)
	for deadline := time.Now().Add(30 * time.Second); a.snap.job(r.Snapshot.SnapshotId) != nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("copy never stopped")
		}
	}
	if _, err := a.GetSnapshot(ctx, &csi.GetSnapshotRequest{SnapshotId: r.Snapshot.SnapshotId}); status.Code(err) != codes.NotFound {
		t.Errorf("deleted snapshot came back: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(a.Store.Dir(), "staging")); len(ents) != 0 {
		t.Errorf("staging not cleaned: %v", ents)
	}
}

func TestSnapshotRequestErrors(t *testing.T) {
	ctx := context.Background()
	a := newTestAPI(t, "s")
	v, err := a.CreateVolume(ctx, createReq("v", 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		req  *csi.CreateSnapshotRequest
		code codes.Code
	}{
		{&csi.CreateSnapshotRequest{SourceVolumeId: v.Volume.VolumeId}, codes.InvalidArgument},
		{&csi.CreateSnapshotRequest{Name: "n"}, codes.InvalidArgument},
		{&csi.CreateSnapshotRequest{Name: "n", SourceVolumeId: "../../etc"}, codes.NotFound},
		{&csi.CreateSnapshotRequest{Name: "n", SourceVolumeId: "0123456789abcdef"}, codes.NotFound},
	} {
		if _, err := a.CreateSnapshot(ctx, c.req); status.Code(err) != c.code {
			t.Errorf("%v: %v, want %v", c.req, err, c.code)
		}
	}
	for _, id := range []string{"../../etc", "0123456789abcdef", "/"} {
		if _, err := a.GetSnapshot(ctx, &csi.GetSnapshotRequest{SnapshotId: id}); status.Code(err) != codes.NotFound {
			t.Errorf("GetSnapshot(%q): %v", id, err)
		}
		if _, err := a.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: id}); err != nil {
			t.Errorf("DeleteSnapshot(%q): %v", id, err)
		}
		req := createReq("x", 1<<20)
		req.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: id}}}
		if _, err := a.CreateVolume(ctx, req); status.Code(err) != codes.NotFound {
			t.Errorf("restore from %q: %v", id, err)
		}
	}
	if _, err := a.ListSnapshots(ctx, &csi.ListSnapshotsRequest{StartingToken: "zz"}); status.Code(err) != codes.Aborted {
		t.Errorf("bad token: %v", err)
	}
	if _, err := a.ListSnapshots(ctx, &csi.ListSnapshotsRequest{MaxEntries: -1}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("negative max: %v", err)
	}
	// Paging: three snapshots, pages of two.
	var want []string
	for _, n := range []string{"a", "b", "c"} {
		r, err := a.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: n, SourceVolumeId: v.Volume.VolumeId})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, r.Snapshot.SnapshotId)
	}
	var got []string
	tok := ""
	for {
		r, err := a.ListSnapshots(ctx, &csi.ListSnapshotsRequest{MaxEntries: 2, StartingToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range r.Entries {
			got = append(got, e.Snapshot.SnapshotId)
		}
		if tok = r.NextToken; tok == "" {
			break
		}
	}
	if len(got) != 3 {
		t.Errorf("paged list %v, want %v", got, want)
	}
}

// TestCloneRetryAndCapacity: a retry arriving while a clone is still
// copying is Aborted (no second copy); a clone that cannot fit is refused
// before anything is copied.
func TestCloneRetryAndCapacity(t *testing.T) {
	ctx := context.Background()
	a := newTestAPI(t, "s")
	gate := &gateFreezer{gate: make(chan struct{})}
	a.Freezer, a.Quota = gate, fixedQuota{}
	v, err := a.CreateVolume(ctx, createReq("v", 64<<20))
	if err != nil {
		t.Fatal(err)
	}
	clone := createReq("c", 64<<20)
	clone.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: v.Volume.VolumeId}}}
	done := make(chan error, 1)
	go func() { _, err := a.CreateVolume(ctx, clone); done <- err }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		a.snapMu.Lock()
		started := a.snap.creating["c"]
		a.snapMu.Unlock()
		if started {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("clone never started")
		}
	}
	if _, err := a.CreateVolume(ctx, clone); status.Code(err) != codes.Aborted {
		t.Errorf("retry during the copy: %v, want Aborted", err)
	}
	if _, err := a.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: v.Volume.VolumeId}); status.Code(err) != codes.Aborted {
		t.Errorf("deleting the volume being cloned: %v, want Aborted", err)
	}
	close(gate.gate)
	if err := <-done; err != nil {
		t.Fatalf("clone: %v", err)
	}
	if r, err := a.CreateVolume(ctx, clone); err != nil || r.Volume.GetContentSource().GetVolume().GetVolumeId() != v.Volume.VolumeId {
		t.Errorf("retry after the copy: %v %v", r, err)
	}
	// 1 GiB available (fixedQuota), 2 GiB asked: refused, nothing staged.
	big := createReq("big", 2<<30)
	big.VolumeContentSource = clone.VolumeContentSource
	if _, err := a.CreateVolume(ctx, big); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("clone beyond capacity: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(a.Store.Dir(), "staging")); len(ents) != 0 {
		t.Errorf("staging not empty: %v", ents)
	}
}

// TestCloseDuringBackgroundCopy: stopping the server stops a background
// copy; the snapshot, never ready, is gone after the restart.
func TestCloseDuringBackgroundCopy(t *testing.T) {
	ctx := context.Background()
	a := newTestAPI(t, "s")
	if a.Store.Reflink() {
		t.Skip("the test directory's file system clones extents")
	}
	gate := &gateFreezer{gate: make(chan struct{})}
	a.Freezer, a.Quota, a.SyncCopyLimit = gate, fixedQuota{}, -1
	v, err := a.CreateVolume(ctx, createReq("v", 64<<20))
	if err != nil {
		t.Fatal(err)
	}
	r, err := a.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s", SourceVolumeId: v.Volume.VolumeId})
	if err != nil || r.Snapshot.ReadyToUse {
		t.Fatalf("%v %v", r, err)
	}
	closed := make(chan struct{})
	go func() { a.Close(); close(closed) }()
	close(gate.gate) // the copy gets its hold, sees it is canceled
	<-closed
	dir := a.Store.Dir()
	a.Store.Close()
	st, err := volume.Open(dir, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.GetSnapshot(r.Snapshot.SnapshotId); err == nil {
		t.Error("interrupted snapshot survived the restart")
	}
	if _, err := st.Get(v.Volume.VolumeId); err != nil {
		t.Errorf("volume lost: %v", err)
	}
}
