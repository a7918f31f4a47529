package csi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	mount "k8s.io/mount-utils"
)

// Volume health. CSI 1.13 replaced the alpha VolumeCondition (and the
// VOLUME_CONDITION capabilities) with the ControllerGetVolumeHealth and
// NodeGetVolumeHealth RPCs; Hangar reports through those.

// FullPercent is the usage (bytes or inodes) from which a volume is
// reported DEGRADED.
const FullPercent = 95

// Health reasons (CamelCase, for machines).
const (
	ReasonServerUnreachable = "StorageServerUnreachable"
	ReasonExportMissing     = "ExportMissing"
	ReasonNearlyFull        = "NearlyFull"
	ReasonNearlyOutOfInodes = "NearlyOutOfInodes"
	ReasonMountUnresponsive = "MountUnresponsive"
)

// VolumeUsage is a volume's live usage and limits (0 = unlimited).
type VolumeUsage struct {
	Bytes, Inodes       uint64
	MaxBytes, MaxInodes uint64
}

// Quota is a storage server's live view of its volumes' capacity; pkg/server
// implements it over the NFS server's file system.
type Quota interface {
	// SetCapacity applies volume id's new capacity to its live export.
	SetCapacity(id string, capacity int64) error
	// Usage reports volume id's usage, or an error when it is not exported.
	Usage(id string) (VolumeUsage, error)
	// Available is what new volumes and expansions may still be promised.
	Available() (int64, error)
}

// usageHealth lists the health problems usage u shows.
func usageHealth(u VolumeUsage) []*csi.VolumeHealth_VolumeHealthEntry {
	var out []*csi.VolumeHealth_VolumeHealthEntry
	if u.MaxBytes > 0 && u.Bytes*100 >= u.MaxBytes*FullPercent {
		out = append(out, &csi.VolumeHealth_VolumeHealthEntry{
			Status: csi.VolumeHealthErrorType_DEGRADED,
			Reason: ReasonNearlyFull,
			Message: fmt.Sprintf("volume is %d%% full (%s of %s used); expand the PersistentVolumeClaim or delete data, writes fail with \"Disk quota exceeded\" at 100%%",
				u.Bytes*100/u.MaxBytes, FormatBytes(int64(u.Bytes)), FormatBytes(int64(u.MaxBytes))),
		})
	}
	if u.MaxInodes > 0 && u.Inodes*100 >= u.MaxInodes*FullPercent {
		out = append(out, &csi.VolumeHealth_VolumeHealthEntry{
			Status: csi.VolumeHealthErrorType_DEGRADED,
			Reason: ReasonNearlyOutOfInodes,
			Message: fmt.Sprintf("volume uses %d of its %d inodes; delete files or raise the StorageClass parameter %q",
				u.Inodes, u.MaxInodes, ParamMaxInodes),
		})
	}
	return out
}

// ControllerGetVolumeHealth reports whether the volume is exported and how
// full it is.
func (a *StorageAPI) ControllerGetVolumeHealth(ctx context.Context, req *csi.ControllerGetVolumeHealthRequest) (*csi.ControllerGetVolumeHealthResponse, error) {
	v, err := a.get(req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	h := &csi.VolumeHealth{VolumeId: v.ID}
	if a.Quota != nil {
		u, err := a.Quota.Usage(v.ID)
		if err != nil {
			h.HealthStatuses = append(h.HealthStatuses, &csi.VolumeHealth_VolumeHealthEntry{
				Status:  csi.VolumeHealthErrorType_INACCESSIBLE,
				Reason:  ReasonExportMissing,
				Message: fmt.Sprintf("storage server %s does not export volume %s (%v); restart the storage server and check its log", a.Name, v.ID, err),
			})
		} else {
			h.HealthStatuses = usageHealth(u)
		}
	}
	return &csi.ControllerGetVolumeHealthResponse{VolumeHealth: h}, nil
}

// ControllerGetVolumeHealth asks the volume's storage server; a server that
// does not answer makes the volume INACCESSIBLE rather than an error.
func (c *Controller) ControllerGetVolumeHealth(ctx context.Context, req *csi.ControllerGetVolumeHealthRequest) (*csi.ControllerGetVolumeHealthResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	}
	b, local, reason := c.route(req.GetVolumeId())
	if b == nil {
		return nil, status.Errorf(codes.NotFound, "volume %q not found: %s", req.GetVolumeId(), reason)
	}
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	resp, err := b.ctrl.ControllerGetVolumeHealth(ctx, &csi.ControllerGetVolumeHealthRequest{VolumeId: local})
	switch status.Code(err) {
	case codes.OK:
		resp.GetVolumeHealth().VolumeId = req.GetVolumeId()
		return resp, nil
	case codes.Unavailable, codes.DeadlineExceeded:
		return &csi.ControllerGetVolumeHealthResponse{VolumeHealth: &csi.VolumeHealth{
			VolumeId: req.GetVolumeId(),
			HealthStatuses: []*csi.VolumeHealth_VolumeHealthEntry{{
				Status:  csi.VolumeHealthErrorType_INACCESSIBLE,
				Reason:  ReasonServerUnreachable,
				Message: fmt.Sprintf("storage server %s (%s) does not answer: %s; check that its pod or service is running", b.name, b.addr, status.Convert(err).Message()),
			}},
		}}, nil
	}
	return nil, b.err("ControllerGetVolumeHealth", err)
}

// NodeGetVolumeHealth checks the volume's mount at the publish path, if
// given: an unresponsive mount is INACCESSIBLE, a nearly full volume (as
// the server reports it through statfs) DEGRADED. Without a path there is
// nothing this node knows.
func (n *Node) NodeGetVolumeHealth(ctx context.Context, req *csi.NodeGetVolumeHealthRequest) (*csi.NodeGetVolumeHealthResponse, error) {
	vid := req.GetVolumeId()
	if vid == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	}
	h := &csi.VolumeHealth{VolumeId: vid}
	resp := &csi.NodeGetVolumeHealthResponse{VolumeHealth: h}
	path := req.GetVolumePublishPath()
	if path == "" {
		return resp, nil
	}
	notMnt, err := n.Mounter.IsLikelyNotMountPoint(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, status.Errorf(codes.NotFound, "volume path %s does not exist", path)
	case err != nil && mount.IsCorruptedMnt(err):
		h.HealthStatuses = append(h.HealthStatuses, unresponsive(vid, path, err))
		return resp, nil
	case err != nil:
		return nil, status.Errorf(codes.Internal, "checking %s: %v", path, err)
	case notMnt:
		return nil, status.Errorf(codes.NotFound, "volume %s is not mounted at %s", vid, path)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		h.HealthStatuses = append(h.HealthStatuses, unresponsive(vid, path, err))
		return resp, nil
	}
	bs := uint64(st.Bsize)
	h.HealthStatuses = usageHealth(VolumeUsage{
		Bytes: (st.Blocks - st.Bfree) * bs, MaxBytes: st.Blocks * bs,
		Inodes: st.Files - st.Ffree, MaxInodes: st.Files,
	})
	return resp, nil
}

func unresponsive(vid, path string, err error) *csi.VolumeHealth_VolumeHealthEntry {
	return &csi.VolumeHealth_VolumeHealthEntry{
		Status:  csi.VolumeHealthErrorType_INACCESSIBLE,
		Reason:  ReasonMountUnresponsive,
		Message: fmt.Sprintf("mount of volume %s at %s does not respond (%v): the storage server is down or the volume was deleted; restart the pod once the server is back", vid, path, err),
	}
}
