package api

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hangar-csi/hangar/pkg/csicommon"
	"github.com/hangar-csi/hangar/pkg/logging"
	"github.com/hangar-csi/hangar/pkg/volume"
)

// groupAPI is the CSI GroupController service of a storage server: group
// snapshots of its own volumes, one point in time for all of them (every
// volume's changes are held while all are copied). A separate type, as
// StorageAPI embeds the Controller's Unimplemented methods.
type groupAPI struct {
	csi.UnimplementedGroupControllerServer
	a *StorageAPI
}

func (a *StorageAPI) csiGroup(g volume.Group) (*csi.VolumeGroupSnapshot, error) {
	out := &csi.VolumeGroupSnapshot{GroupSnapshotId: g.ID, CreationTime: timestamppb.New(g.CreatedAt), ReadyToUse: true}
	for _, id := range g.SnapshotIDs {
		sn, err := a.Store.GetSnapshot(id)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "server %s: group snapshot %s: member %s: %v", a.Name, g.ID, id, err)
		}
		out.Snapshots = append(out.Snapshots, a.csiSnapshot(sn))
	}
	return out, nil
}

func (a *StorageAPI) groupByName(ctx context.Context, name string) (*csi.VolumeGroupSnapshot, error) {
	g, err := a.Store.GetGroupByName(name)
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "no group snapshot named %q on server %s", name, a.Name)
	}
	return a.csiGroup(g)
}

func (g groupAPI) GroupControllerGetCapabilities(ctx context.Context, req *csi.GroupControllerGetCapabilitiesRequest) (*csi.GroupControllerGetCapabilitiesResponse, error) {
	return csicommon.GroupCapabilities(), nil
}

func (g groupAPI) CreateVolumeGroupSnapshot(ctx context.Context, req *csi.CreateVolumeGroupSnapshotRequest) (*csi.CreateVolumeGroupSnapshotResponse, error) {
	a := g.a
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "group snapshot name is required")
	}
	ids := req.GetSourceVolumeIds()
	if len(ids) == 0 {
		return nil, status.Error(codes.InvalidArgument, "source_volume_ids is required")
	}
	sorted := slices.Sorted(slices.Values(ids))
	if len(slices.Compact(slices.Clone(sorted))) != len(sorted) {
		return nil, status.Error(codes.InvalidArgument, "source_volume_ids names a volume twice")
	}
	a.snapMu.Lock()
	defer a.snapMu.Unlock()
	if old, err := a.Store.GetGroupByName(req.GetName()); err == nil {
		var srcs []string
		for _, m := range old.SnapshotIDs {
			if sn, err := a.Store.GetSnapshot(m); err == nil {
				srcs = append(srcs, sn.SourceVolumeID)
			}
		}
		slices.Sort(srcs)
		if !slices.Equal(srcs, sorted) {
			return nil, status.Errorf(codes.AlreadyExists, "group snapshot %q already exists as %s of other volumes", req.GetName(), old.ID)
		}
		gs, err := a.csiGroup(old)
		if err != nil {
			return nil, err
		}
		return &csi.CreateVolumeGroupSnapshotResponse{GroupSnapshot: gs}, nil
	}
	for _, id := range sorted {
		if _, err := a.get(id); err != nil {
			return nil, err
		}
	}
	grp := volume.Group{ID: a.Store.NewSnapshotID(), Name: req.GetName(), CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	stages := make([]string, len(sorted))
	for i := range stages {
		stages[i] = a.Store.StagingDir()
	}
	// Every volume held at once, in ID order: one point in time.
	sizes, stats, pause, err := a.frozenCopy(sorted, stages, nil)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "server %s: group snapshot: %v", a.Name, err)
	}
	fail := func(err error) (*csi.CreateVolumeGroupSnapshotResponse, error) {
		for _, s := range stages {
			os.RemoveAll(s)
		}
		for _, m := range grp.SnapshotIDs {
			a.Store.DeleteSnapshot(m)
		}
		return nil, status.Errorf(codes.Internal, "server %s: recording group snapshot: %v", a.Name, err)
	}
	for i, id := range sorted {
		sn := volume.Snapshot{
			ID:             a.Store.NewSnapshotID(),
			Name:           fmt.Sprintf("group %s volume %s", grp.ID, id),
			SourceVolumeID: id,
			SizeBytes:      sizes[i],
			CreatedAt:      grp.CreatedAt,
			Ready:          true,
			GroupID:        grp.ID,
		}
		if err := a.Store.PutSnapshot(sn, stages[i]); err != nil {
			return fail(err)
		}
		grp.SnapshotIDs = append(grp.SnapshotIDs, sn.ID)
	}
	if err := a.Store.PutGroup(grp); err != nil {
		return fail(err)
	}
	var files, cloned int64
	for _, st := range stats {
		files += st.Files
		cloned += st.Cloned
	}
	logging.FromContext(ctx).Info("group snapshot taken", "groupSnapshotID", grp.ID, "volumes", len(sorted), "pause", pause, "files", files, "cloned", cloned)
	gs, err := a.csiGroup(grp)
	if err != nil {
		return nil, err
	}
	return &csi.CreateVolumeGroupSnapshotResponse{GroupSnapshot: gs}, nil
}

// checkMembers compares the snapshot IDs a request names (if any) with the
// group's.
func checkMembers(grp volume.Group, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if !slices.Equal(slices.Sorted(slices.Values(ids)), slices.Sorted(slices.Values(grp.SnapshotIDs))) {
		return status.Errorf(codes.InvalidArgument, "snapshot_ids %v are not the snapshots of group snapshot %s (%v)", ids, grp.ID, grp.SnapshotIDs)
	}
	return nil
}

func (g groupAPI) GetVolumeGroupSnapshot(ctx context.Context, req *csi.GetVolumeGroupSnapshotRequest) (*csi.GetVolumeGroupSnapshotResponse, error) {
	a := g.a
	if req.GetGroupSnapshotId() == "" {
		return nil, status.Error(codes.InvalidArgument, "group_snapshot_id is required")
	}
	grp, err := a.Store.GetGroup(req.GetGroupSnapshotId())
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "group snapshot %s does not exist on server %s", req.GetGroupSnapshotId(), a.Name)
	}
	if err := checkMembers(grp, req.GetSnapshotIds()); err != nil {
		return nil, err
	}
	gs, err := a.csiGroup(grp)
	if err != nil {
		return nil, err
	}
	return &csi.GetVolumeGroupSnapshotResponse{GroupSnapshot: gs}, nil
}

func (g groupAPI) DeleteVolumeGroupSnapshot(ctx context.Context, req *csi.DeleteVolumeGroupSnapshotRequest) (*csi.DeleteVolumeGroupSnapshotResponse, error) {
	a := g.a
	id := req.GetGroupSnapshotId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "group_snapshot_id is required")
	}
	if !volume.ValidID(id) {
		return &csi.DeleteVolumeGroupSnapshotResponse{}, nil
	}
	a.snapMu.Lock()
	defer a.snapMu.Unlock()
	grp, err := a.Store.GetGroup(id)
	if err != nil {
		return &csi.DeleteVolumeGroupSnapshotResponse{}, nil
	}
	if err := checkMembers(grp, req.GetSnapshotIds()); err != nil {
		return nil, err
	}
	for _, m := range grp.SnapshotIDs {
		if a.snap.busy["s"+m] > 0 {
			return nil, status.Errorf(codes.Aborted, "snapshot %s of group %s is being restored; retry when that is done", m, id)
		}
	}
	if err := a.Store.DeleteGroup(id); err != nil {
		return nil, status.Errorf(codes.Internal, "server %s: deleting group snapshot %s: %v", a.Name, id, err)
	}
	logging.FromContext(ctx).Info("group snapshot deleted", "groupSnapshotID", id)
	return &csi.DeleteVolumeGroupSnapshotResponse{}, nil
}
