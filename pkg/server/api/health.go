package api

import (
	"context"
	"errors"
	"fmt"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hangar-csi/hangar/pkg/csicommon"
	"github.com/hangar-csi/hangar/pkg/volume"
)

// Quota is a storage server's live view of its volumes' capacity; pkg/server
// implements it over the NFS server's file system.
type Quota interface {
	// SetCapacity applies volume id's new capacity to its live export.
	SetCapacity(id string, capacity int64) error
	// Usage reports volume id's usage, or an error when it is not exported.
	Usage(id string) (csicommon.VolumeUsage, error)
	// Available is what new volumes and expansions may still be promised
	// when promised bytes already are (volume.Store.Promised). It must
	// cost O(1) in the number of volumes: every create asks it.
	Available(promised int64) (int64, error)
	// ApplyPolicy applies volume id's recorded policy (limits, root
	// squash) to its live export.
	ApplyPolicy(id string) error
}

// ControllerGetVolumeHealth reports whether the volume is exported, how
// full it is, and whether the server's disk under it takes writes.
func (a *StorageAPI) ControllerGetVolumeHealth(ctx context.Context, req *csi.ControllerGetVolumeHealthRequest) (*csi.ControllerGetVolumeHealthResponse, error) {
	v, err := a.get(req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	h := a.health(v)
	h.HealthStatuses = append(h.HealthStatuses, a.diskHealth(v.ID, probeWrite(a.Store.VolumeDir(v.ID)))...)
	return &csi.ControllerGetVolumeHealthResponse{VolumeHealth: h}, nil
}

// ControllerListVolumeHealth pages, in ID order, through the volumes with
// an adverse condition (CSI: healthy volumes are omitted); starting_token
// is the last ID of the previous page. The disk is probed once per call,
// not per volume: every volume directory is on the data directory's file
// system.
func (a *StorageAPI) ControllerListVolumeHealth(ctx context.Context, req *csi.ControllerListVolumeHealthRequest) (*csi.ControllerListVolumeHealthResponse, error) {
	max := int(req.GetMaxEntries())
	if max < 0 {
		return nil, status.Error(codes.InvalidArgument, "max_entries must not be negative")
	}
	after := req.GetStartingToken()
	if after != "" && !volume.ValidID(after) {
		return nil, status.Errorf(codes.Aborted, "starting_token %q is not one this server issued; restart listing without a token", after)
	}
	resp := &csi.ControllerListVolumeHealthResponse{}
	var disk error
	probed := false
	for _, v := range a.Store.List() {
		if v.ID <= after {
			continue
		}
		if !probed {
			disk, probed = probeWrite(a.Store.VolumeDir(v.ID)), true
		}
		h := a.health(v)
		h.HealthStatuses = append(h.HealthStatuses, a.diskHealth(v.ID, disk)...)
		if len(h.HealthStatuses) == 0 {
			continue
		}
		if max > 0 && len(resp.Entries) == max {
			resp.NextToken = resp.Entries[max-1].VolumeId
			break
		}
		resp.Entries = append(resp.Entries, h)
	}
	return resp, nil
}

// health reports whether volume v is exported and how full it is.
func (a *StorageAPI) health(v volume.Volume) *csi.VolumeHealth {
	h := &csi.VolumeHealth{VolumeId: v.ID}
	if a.Quota != nil {
		u, err := a.Quota.Usage(v.ID)
		if err != nil {
			h.HealthStatuses = append(h.HealthStatuses, &csi.VolumeHealth_VolumeHealthEntry{
				Status:  csi.VolumeHealthErrorType_INACCESSIBLE,
				Reason:  csicommon.ReasonExportMissing,
				Message: fmt.Sprintf("storage server %s does not export volume %s (%v); restart the storage server and check its log", a.Name, v.ID, err),
			})
		} else {
			h.HealthStatuses = csicommon.UsageHealth(u)
		}
	}
	return h
}

// diskProbeBytes is what diskHealth allocates: the largest WRITE clients
// send (rsize/wsize 1 MiB).
const diskProbeBytes = 1 << 20

// diskHealth reports a full or read-only file system under volume id. It
// asks the file system rather than reading statfs: how much of the free
// space the server may use (root's reserve, ext4's own reserved clusters)
// differs between file systems, while allocating an unnamed file in the
// volume's directory fails exactly when clients' WRITEs would.
//
// err is probeWrite's answer for a directory on that file system.
func (a *StorageAPI) diskHealth(id string, err error) []*csi.VolumeHealth_VolumeHealthEntry {
	switch {
	case errors.Is(err, unix.EROFS):
		return []*csi.VolumeHealth_VolumeHealthEntry{{
			Status: csi.VolumeHealthErrorType_DEGRADED,
			Reason: csicommon.ReasonBackingDiskReadOnly,
			Message: fmt.Sprintf("the file system holding volume %s on storage server %s (%s) is read-only, so every write fails; reads work. Check the server's kernel log for disk errors, then remount it read-write",
				id, a.Name, a.Store.Dir()),
		}}
	case errors.Is(err, unix.ENOSPC):
		return []*csi.VolumeHealth_VolumeHealthEntry{{
			Status: csi.VolumeHealthErrorType_DEGRADED,
			Reason: csicommon.ReasonBackingDiskFull,
			Message: fmt.Sprintf("the disk holding volume %s on storage server %s (%s) is full, so writes fail with \"No space left on device\" whatever the volume's own size; free space on that disk or move volumes off it",
				id, a.Name, a.Store.Dir()),
		}}
	}
	// Other errors (no volume directory, no O_TMPFILE support) say nothing
	// about the disk; a missing export is reported on its own.
	return nil
}

// probeWrite allocates diskProbeBytes in an unnamed file in dir, never
// visible to clients and freed on close.
func probeWrite(dir string) error {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	err = unix.Fallocate(fd, 0, 0, diskProbeBytes)
	if errors.Is(err, unix.EOPNOTSUPP) {
		_, err = unix.Pwrite(fd, make([]byte, diskProbeBytes), 0)
	}
	return err
}
