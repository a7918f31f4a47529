package api

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hangar-csi/hangar/pkg/csicommon"
	"github.com/hangar-csi/hangar/pkg/logging"
	"github.com/hangar-csi/hangar/pkg/volume"
	"github.com/hangar-csi/hangar/pkg/volume/treecopy"
)

// Freezer holds every change to volumes while their trees are copied, so
// a snapshot or clone is a state the volumes really had (pkg/server: the
// NFS server's per-export hold, localfs.FS.Freeze).
type Freezer interface {
	Freeze(ids ...string) (thaw func(), err error)
}

// copyJob is a snapshot being copied in the background.
type copyJob struct {
	need     int64        // bytes the copy will take
	progress atomic.Int64 // bytes copied so far
	cancel   atomic.Bool  // the snapshot was deleted: stop copying
}

// DefaultSyncCopyLimit is the largest volume a full-copy snapshot copies
// within the CreateSnapshot call (ready at once); larger ones copy in the
// background.
const DefaultSyncCopyLimit = 64 << 20

func (a *StorageAPI) syncCopyLimit() int64 {
	if a.SyncCopyLimit == 0 {
		return DefaultSyncCopyLimit
	}
	return a.SyncCopyLimit
}

// snapshots is the StorageAPI's snapshot state.
type snapshots struct {
	// busy counts copies reading a volume ("v"+id) or snapshot ("s"+id):
	// those cannot be deleted until the copies finish. Guarded by
	// StorageAPI.snapMu.
	busy map[string]int
	// jobs are background copies, whose remaining bytes GetCapacity
	// counts as taken. Guarded by jobsMu, which nests inside snapMu and
	// StorageAPI.mu.
	jobsMu sync.Mutex
	jobs   map[string]*copyJob
	wg     sync.WaitGroup // running background copies
	// creating names volumes being filled from a content source.
	// Guarded by snapMu.
	creating map[string]bool
}

func (a *StorageAPI) startCreating(name string) bool {
	a.snapMu.Lock()
	defer a.snapMu.Unlock()
	if a.snap.creating[name] {
		return false
	}
	if a.snap.creating == nil {
		a.snap.creating = map[string]bool{}
	}
	a.snap.creating[name] = true
	return true
}

func (a *StorageAPI) doneCreating(name string) {
	a.snapMu.Lock()
	defer a.snapMu.Unlock()
	delete(a.snap.creating, name)
}

func (s *snapshots) job(id string) *copyJob {
	s.jobsMu.Lock()
	defer s.jobsMu.Unlock()
	return s.jobs[id]
}

func (a *StorageAPI) markBusy(key string, d int) {
	a.snapMu.Lock()
	defer a.snapMu.Unlock()
	if a.snap.busy == nil {
		a.snap.busy = map[string]int{}
	}
	a.snap.busy[key] += d
	if a.snap.busy[key] <= 0 {
		delete(a.snap.busy, key)
	}
}

// pendingCopyBytes is what running background copies still have to write.
func (a *StorageAPI) pendingCopyBytes() int64 {
	a.snap.jobsMu.Lock()
	defer a.snap.jobsMu.Unlock()
	var n int64
	for _, j := range a.snap.jobs {
		n += max(j.need-j.progress.Load(), 0)
	}
	return n
}

func (a *StorageAPI) csiSnapshot(sn volume.Snapshot) *csi.Snapshot {
	return &csi.Snapshot{
		SnapshotId:      sn.ID,
		SourceVolumeId:  sn.SourceVolumeID,
		SizeBytes:       sn.SizeBytes,
		CreationTime:    timestamppb.New(sn.CreatedAt),
		ReadyToUse:      sn.Ready,
		GroupSnapshotId: sn.GroupID,
		// No accessible_topology: the spec's meaning of leaving it out,
		// "equally usable from all topologies", is exactly so (restores go
		// to any storage server, and every volume has the one topology).
	}
}

// usedBytes is what volume id uses now (0 if unknown).
func (a *StorageAPI) usedBytes(id string) int64 {
	if a.Quota == nil {
		return 0
	}
	u, err := a.Quota.Usage(id)
	if err != nil {
		return 0
	}
	return int64(u.Bytes)
}

// freeze holds changes to volumes ids; without a Freezer (tests of the API
// alone) nothing is held.
func (a *StorageAPI) freeze(ids ...string) (func(), error) {
	if a.Freezer == nil {
		return func() {}, nil
	}
	return a.Freezer.Freeze(ids...)
}

// syncTree makes a copied tree durable: one syncfs for the whole data
// file system instead of an fsync per file.
func syncTree(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Syncfs(fd)
}

// frozenCopy copies volumes ids (each to its staging dir in dsts) while
// holding changes to all of them: one point in time. It returns each
// volume's usage at that point and how long changes were held.
func (a *StorageAPI) frozenCopy(ids, dsts []string, job *copyJob) (sizes []int64, stats []treecopy.Stats, pause time.Duration, err error) {
	var o treecopy.Options
	if job != nil {
		o.Progress, o.Cancel = &job.progress, &job.cancel
	}
	thaw, err := a.freeze(ids...)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("holding changes: %w", err)
	}
	start := time.Now()
	for i, id := range ids {
		st, cerr := treecopy.Copy(a.Store.VolumeDir(id), dsts[i], o)
		if cerr != nil {
			err = fmt.Errorf("copying volume %s: %w", id, cerr)
			break
		}
		sizes = append(sizes, a.usedBytes(id))
		stats = append(stats, st)
	}
	pause = time.Since(start)
	thaw()
	if err == nil && len(dsts) > 0 {
		err = syncTree(dsts[0])
	}
	if err != nil {
		for _, d := range dsts {
			os.RemoveAll(d)
		}
		return nil, nil, pause, err
	}
	return sizes, stats, pause, nil
}

func (a *StorageAPI) CreateSnapshot(ctx context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "snapshot name is required")
	}
	if req.GetSourceVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "source_volume_id is required")
	}
	if err := csicommon.CheckTopologyRequirement("accessibility_requirements", req.GetAccessibilityRequirements()); err != nil {
		return nil, err
	}
	log := logging.FromContext(ctx)
	a.snapMu.Lock()
	defer a.snapMu.Unlock()
	if old, err := a.Store.GetSnapshotByName(req.GetName()); err == nil {
		if old.SourceVolumeID != req.GetSourceVolumeId() || old.GroupID != "" {
			return nil, status.Errorf(codes.AlreadyExists, "snapshot %q already exists as %s of volume %s", req.GetName(), old.ID, old.SourceVolumeID)
		}
		return &csi.CreateSnapshotResponse{Snapshot: a.csiSnapshot(old)}, nil
	}
	src, err := a.get(req.GetSourceVolumeId())
	if err != nil {
		return nil, err
	}
	sn := volume.Snapshot{
		ID:             a.Store.NewSnapshotID(),
		Name:           req.GetName(),
		SourceVolumeID: src.ID,
		CreatedAt:      time.Now().UTC().Truncate(time.Microsecond),
	}
	mode := "reflink"
	if !a.Store.Reflink() {
		if a.usedBytes(src.ID) > a.syncCopyLimit() {
			return a.startCopySnapshot(ctx, sn)
		}
		mode = "copy"
	}
	stage := a.Store.StagingDir()
	sizes, stats, pause, err := a.frozenCopy([]string{src.ID}, []string{stage}, nil)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "server %s: snapshot of volume %s: %v", a.Name, src.ID, err)
	}
	sn.SizeBytes, sn.Ready = sizes[0], true
	if err := a.Store.PutSnapshot(sn, stage); err != nil {
		os.RemoveAll(stage)
		return nil, status.Errorf(codes.Internal, "server %s: recording snapshot: %v", a.Name, err)
	}
	log.Info("snapshot taken", "snapshotID", sn.ID, "volumeID", src.ID, "mode", mode, "pause", pause, "files", stats[0].Files, "cloned", stats[0].Cloned, "copied", stats[0].Copied, "bytes", sn.SizeBytes)
	return &csi.CreateSnapshotResponse{Snapshot: a.csiSnapshot(sn)}, nil
}

// startCopySnapshot records sn as not ready and copies its source in the
// background. Changes to the source are held during the whole copy: on a
// file system without reflink that is the price of a true point in time
// (see docs/snapshots.md for the figures). Called with snapMu held.
func (a *StorageAPI) startCopySnapshot(ctx context.Context, sn volume.Snapshot) (*csi.CreateSnapshotResponse, error) {
	need := a.usedBytes(sn.SourceVolumeID)
	job := &copyJob{need: need}
	// The check and the job that counts the copy's bytes as taken are one
	// step with the capacity checks of creates and expansions.
	err := a.Store.Promise(func(promised int64) error {
		avail, err := a.available(promised)
		if err != nil {
			return status.Errorf(codes.Internal, "server %s: %v", a.Name, err)
		}
		if need > avail {
			return status.Errorf(codes.ResourceExhausted, "server %s has %d bytes available, a full copy of volume %s needs %d (this file system cannot share extents)", a.Name, avail, sn.SourceVolumeID, need)
		}
		a.snap.jobsMu.Lock()
		if a.snap.jobs == nil {
			a.snap.jobs = map[string]*copyJob{}
		}
		a.snap.jobs[sn.ID] = job
		a.snap.jobsMu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	sn.SizeBytes = need
	if err := a.Store.PutSnapshot(sn, ""); err != nil {
		a.snap.jobsMu.Lock()
		delete(a.snap.jobs, sn.ID)
		a.snap.jobsMu.Unlock()
		return nil, status.Errorf(codes.Internal, "server %s: recording snapshot: %v", a.Name, err)
	}
	if a.snap.busy == nil {
		a.snap.busy = map[string]int{}
	}
	a.snap.busy["v"+sn.SourceVolumeID]++
	log := logging.FromContext(ctx).WithValues("snapshotID", sn.ID, "volumeID", sn.SourceVolumeID)
	a.snap.wg.Add(1)
	go func() {
		defer a.snap.wg.Done()
		defer func() {
			a.snap.jobsMu.Lock()
			delete(a.snap.jobs, sn.ID)
			a.snap.jobsMu.Unlock()
			a.markBusy("v"+sn.SourceVolumeID, -1)
		}()
		stage := a.Store.StagingDir()
		sizes, stats, pause, err := a.frozenCopy([]string{sn.SourceVolumeID}, []string{stage}, job)
		// Under snapMu, so a DeleteSnapshot is either before (canceled)
		// or after (deletes the ready snapshot), never resurrected.
		a.snapMu.Lock()
		canceled := job.cancel.Load()
		if err == nil && !canceled {
			// The copy's bytes are on disk now: stop reserving them before
			// anyone can see the snapshot ready, or GetCapacity would count
			// them twice for a moment.
			a.snap.jobsMu.Lock()
			delete(a.snap.jobs, sn.ID)
			a.snap.jobsMu.Unlock()
			sn.SizeBytes, sn.Ready = sizes[0], true
			err = a.Store.PutSnapshot(sn, stage)
		}
		a.snapMu.Unlock()
		if canceled {
			os.RemoveAll(stage)
			log.Info("snapshot copy stopped: the snapshot was deleted or the server is stopping")
			return
		}
		if err != nil {
			os.RemoveAll(stage)
			log.Error(err, "snapshot copy failed; deleting the snapshot")
			if derr := a.Store.DeleteSnapshot(sn.ID); derr != nil {
				log.Error(derr, "deleting failed snapshot")
			}
			return
		}
		log.Info("snapshot taken", "mode", "copy", "pause", pause, "files", stats[0].Files, "bytes", sn.SizeBytes)
	}()
	return &csi.CreateSnapshotResponse{Snapshot: a.csiSnapshot(sn)}, nil
}

// Close stops background snapshot copies and waits for them; their
// snapshots, not ready, are deleted at the next start.
func (a *StorageAPI) Close() {
	a.snap.jobsMu.Lock()
	for _, j := range a.snap.jobs {
		j.cancel.Store(true)
	}
	a.snap.jobsMu.Unlock()
	a.snap.wg.Wait()
}

func (a *StorageAPI) DeleteSnapshot(ctx context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	id := req.GetSnapshotId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "snapshot_id is required")
	}
	if !volume.ValidID(id) {
		return &csi.DeleteSnapshotResponse{}, nil // cannot exist
	}
	a.snapMu.Lock()
	defer a.snapMu.Unlock()
	sn, err := a.Store.GetSnapshot(id)
	if err != nil {
		return &csi.DeleteSnapshotResponse{}, nil
	}
	if sn.GroupID != "" {
		return nil, status.Errorf(codes.InvalidArgument, "snapshot %s is part of group snapshot %s; delete the group snapshot instead", id, sn.GroupID)
	}
	if a.snap.busy["s"+id] > 0 {
		return nil, status.Errorf(codes.Aborted, "snapshot %s is being restored; retry when that is done", id)
	}
	if j := a.snap.job(id); j != nil {
		// Still being copied: stop the copy; the snapshot goes now.
		j.cancel.Store(true)
	}
	if err := a.Store.DeleteSnapshot(id); err != nil {
		return nil, status.Errorf(codes.Internal, "server %s: deleting snapshot %s: %v", a.Name, id, err)
	}
	logging.FromContext(ctx).Info("snapshot deleted", "snapshotID", id)
	return &csi.DeleteSnapshotResponse{}, nil
}

func (a *StorageAPI) GetSnapshot(ctx context.Context, req *csi.GetSnapshotRequest) (*csi.GetSnapshotResponse, error) {
	if req.GetSnapshotId() == "" {
		return nil, status.Error(codes.InvalidArgument, "snapshot_id is required")
	}
	sn, err := a.Store.GetSnapshot(req.GetSnapshotId())
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "snapshot %s does not exist on server %s", req.GetSnapshotId(), a.Name)
	}
	return &csi.GetSnapshotResponse{Snapshot: a.csiSnapshot(sn)}, nil
}

// ListSnapshots pages through snapshots in ID order, optionally only one
// snapshot or one source volume's; starting_token is the last ID of the
// previous page.
func (a *StorageAPI) ListSnapshots(ctx context.Context, req *csi.ListSnapshotsRequest) (*csi.ListSnapshotsResponse, error) {
	if req.GetMaxEntries() < 0 {
		return nil, status.Error(codes.InvalidArgument, "max_entries must not be negative")
	}
	after := req.GetStartingToken()
	if after != "" && !volume.ValidID(after) {
		return nil, status.Errorf(codes.Aborted, "starting_token %q is not one this server issued; restart listing without a token", after)
	}
	limit := a.ListPageBytes
	if limit <= 0 {
		limit = csicommon.DefaultListPageBytes
	}
	resp := &csi.ListSnapshotsResponse{}
	size := 0
	for _, sn := range a.Store.ListSnapshots() {
		if sn.ID <= after ||
			req.GetSnapshotId() != "" && sn.ID != req.GetSnapshotId() ||
			req.GetSourceVolumeId() != "" && sn.SourceVolumeID != req.GetSourceVolumeId() {
			continue
		}
		if max := int(req.GetMaxEntries()); max > 0 && len(resp.Entries) == max || size >= limit {
			resp.NextToken = resp.Entries[len(resp.Entries)-1].Snapshot.SnapshotId
			break
		}
		e := &csi.ListSnapshotsResponse_Entry{Snapshot: a.csiSnapshot(sn)}
		resp.Entries = append(resp.Entries, e)
		size += proto.Size(e)
	}
	return resp, nil
}

func (a *StorageAPI) snapshotByName(ctx context.Context, name string) (*csi.Snapshot, error) {
	sn, err := a.Store.GetSnapshotByName(name)
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "no snapshot named %q on server %s", name, a.Name)
	}
	return a.csiSnapshot(sn), nil
}

// populate fills a new volume from req's content source: it copies the
// snapshot or (holding its changes) the volume into staging and returns
// the staged tree, the content source to record and the least capacity the
// contents need. A source that does not exist is NotFound. check is called
// with that least capacity before copying; its error stops the copy.
func (a *StorageAPI) populate(ctx context.Context, cs *csi.VolumeContentSource, check func(need int64) error) (stage string, src *volume.ContentSource, need int64, err error) {
	log := logging.FromContext(ctx)
	stage = a.Store.StagingDir()
	if s := cs.GetSnapshot(); s != nil {
		sn, gerr := a.Store.GetSnapshot(s.GetSnapshotId())
		if gerr != nil {
			return "", nil, 0, status.Errorf(codes.NotFound, "source snapshot %s does not exist on server %s", s.GetSnapshotId(), a.Name)
		}
		if !sn.Ready {
			return "", nil, 0, status.Errorf(codes.Unavailable, "source snapshot %s is still being copied; retry when it is ready", sn.ID)
		}
		if err := check(sn.SizeBytes); err != nil {
			return "", nil, 0, err
		}
		a.markBusy("s"+sn.ID, 1)
		defer a.markBusy("s"+sn.ID, -1)
		// Snapshots never change: no hold needed.
		st, cerr := treecopy.Copy(a.Store.SnapshotDir(sn.ID), stage, treecopy.Options{})
		if cerr == nil {
			cerr = syncTree(stage)
		}
		if cerr != nil {
			os.RemoveAll(stage)
			return "", nil, 0, status.Errorf(codes.Internal, "server %s: restoring snapshot %s: %v", a.Name, sn.ID, cerr)
		}
		log.Info("snapshot restored to staging", "snapshotID", sn.ID, "files", st.Files, "cloned", st.Cloned, "copied", st.Copied)
		return stage, &volume.ContentSource{SnapshotID: sn.ID}, sn.SizeBytes, nil
	}
	v, gerr := a.Store.Get(cs.GetVolume().GetVolumeId())
	if gerr != nil {
		return "", nil, 0, status.Errorf(codes.NotFound, "source volume %s does not exist on server %s", cs.GetVolume().GetVolumeId(), a.Name)
	}
	if err := check(a.usedBytes(v.ID)); err != nil {
		return "", nil, 0, err
	}
	a.markBusy("v"+v.ID, 1)
	defer a.markBusy("v"+v.ID, -1)
	sizes, st, pause, cerr := a.frozenCopy([]string{v.ID}, []string{stage}, nil)
	if cerr != nil {
		return "", nil, 0, status.Errorf(codes.Internal, "server %s: cloning volume %s: %v", a.Name, v.ID, cerr)
	}
	log.Info("volume cloned to staging", "volumeID", v.ID, "pause", pause, "files", st[0].Files, "cloned", st[0].Cloned, "copied", st[0].Copied)
	return stage, &volume.ContentSource{VolumeID: v.ID}, sizes[0], nil
}

// contentSource is the CSI form of a recorded content source.
func contentSource(cs *volume.ContentSource) *csi.VolumeContentSource {
	switch {
	case cs == nil:
		return nil
	case cs.SnapshotID != "":
		return &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: cs.SnapshotID}}}
	default:
		return &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: cs.VolumeID}}}
	}
}

// requestSource is the content source req asks for, in recorded form.
func requestSource(cs *csi.VolumeContentSource) *volume.ContentSource {
	switch {
	case cs == nil:
		return nil
	case cs.GetSnapshot() != nil:
		return &volume.ContentSource{SnapshotID: cs.GetSnapshot().GetSnapshotId()}
	default:
		return &volume.ContentSource{VolumeID: cs.GetVolume().GetVolumeId()}
	}
}
