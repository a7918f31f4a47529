package driver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	mount "k8s.io/mount-utils"

	"github.com/hangar-csi/hangar/pkg/csicommon"
	"github.com/hangar-csi/hangar/pkg/logging"
)

// ProbeFunc checks that the NFS server at addr answers for export (MOUNT
// and GETATTR of its root).
type ProbeFunc func(ctx context.Context, addr, export string) error

// Node is the CSI Node service.
type Node struct {
	csi.UnimplementedNodeServer
	NodeID  string
	Mounter mount.Interface
	// Probe, if set, runs before every mount so an unreachable export fails
	// fast with a clear reason instead of a hung mount.
	Probe        ProbeFunc
	ProbeTimeout time.Duration
}

func (n *Node) NodePublishVolume(ctx context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	vid, target, vc := req.GetVolumeId(), req.GetTargetPath(), req.GetVolumeCapability()
	switch {
	case vid == "":
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	case target == "":
		return nil, status.Error(codes.InvalidArgument, "target path is required")
	case vc == nil:
		return nil, status.Error(codes.InvalidArgument, "volume capability is required")
	}
	if why := csicommon.CheckCapability(vc); why != "" {
		return nil, status.Error(codes.InvalidArgument, why)
	}
	addr, export, err := nfsTarget(vid, req.GetVolumeContext())
	if err != nil {
		return nil, err
	}
	source, port, err := MountSource(addr, export)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	opts := MountOptions(port)
	opts = append(opts, vc.GetMount().GetMountFlags()...)
	if req.GetReadonly() || csicommon.ReadOnlyMode(vc) {
		opts = append(opts, "ro")
	}
	log := logging.FromContext(ctx)

	notMnt, err := n.Mounter.IsLikelyNotMountPoint(target)
	mkdir := false
	switch {
	case errors.Is(err, os.ErrNotExist):
		// Created only once every check passed, so a refused publish
		// leaves nothing behind.
		mkdir, notMnt = true, true
	case err != nil && mount.IsCorruptedMnt(err):
		return nil, status.Errorf(codes.FailedPrecondition, "target %s is a stale mount (%v); unpublish it first", target, err)
	case err != nil:
		return nil, status.Errorf(codes.Internal, "checking target %s: %v", target, err)
	}
	if !notMnt {
		// Already mounted: fine if it is this volume (a retry).
		mps, err := n.Mounter.List()
		if err != nil {
			return nil, status.Errorf(codes.Internal, "listing mounts: %v", err)
		}
		for _, mp := range mps {
			if mp.Path == target || sameFile(mp.Path, target) {
				if mp.Device != source {
					return nil, status.Errorf(codes.AlreadyExists, "target %s already holds %s, not volume %s (%s)", target, mp.Device, vid, source)
				}
				if wantRO := slices.Contains(opts, "ro"); wantRO != slices.Contains(mp.Opts, "ro") {
					return nil, status.Errorf(codes.AlreadyExists, "volume %s is already published at %s with read-only=%v; unpublish it before publishing it with read-only=%v", vid, target, !wantRO, wantRO)
				}
				log.V(1).Info("volume already published", "target", target)
				return &csi.NodePublishVolumeResponse{}, nil
			}
		}
		return &csi.NodePublishVolumeResponse{}, nil
	}

	if vc.GetAccessMode().GetMode() == csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER {
		// Single writer: refuse a second publication of the same export.
		mps, err := n.Mounter.List()
		if err != nil {
			return nil, status.Errorf(codes.Internal, "listing mounts: %v", err)
		}
		for _, mp := range mps {
			if mp.Device == source {
				return nil, status.Errorf(codes.FailedPrecondition, "volume %s has access mode SINGLE_NODE_SINGLE_WRITER and is already published at %s; unpublish it there first", vid, mp.Path)
			}
		}
	}
	if n.Probe != nil {
		timeout := n.ProbeTimeout
		if timeout == 0 {
			timeout = 5 * time.Second
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		err := n.Probe(pctx, addr, export)
		cancel()
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "NFS server %s does not answer for export %s of volume %s: %v", addr, export, vid, err)
		}
	}
	if mkdir {
		if err := os.MkdirAll(target, 0o750); err != nil {
			return nil, status.Errorf(codes.Internal, "creating target %s: %v", target, err)
		}
	}
	if err := n.Mounter.Mount(source, target, "nfs", opts); err != nil {
		if mkdir {
			os.Remove(target)
		}
		return nil, status.Errorf(codes.Internal, "mounting %s at %s (options %s): %v", source, target, strings.Join(opts, ","), err)
	}
	log.Info("volume published", "target", target, "source", source, "options", strings.Join(opts, ","))
	return &csi.NodePublishVolumeResponse{}, nil
}

func (n *Node) NodeUnpublishVolume(ctx context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	vid, target := req.GetVolumeId(), req.GetTargetPath()
	switch {
	case vid == "":
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	case target == "":
		return nil, status.Error(codes.InvalidArgument, "target path is required")
	}
	notMnt, err := n.Mounter.IsLikelyNotMountPoint(target)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return &csi.NodeUnpublishVolumeResponse{}, nil
	case err != nil && mount.IsCorruptedMnt(err):
		notMnt = false // a dead server's mount: unmount it anyway
	case err != nil:
		return nil, status.Errorf(codes.Internal, "checking target %s: %v", target, err)
	}
	if !notMnt {
		if err := n.Mounter.Unmount(target); err != nil {
			return nil, status.Errorf(codes.Internal, "unmounting %s: %v", target, err)
		}
	}
	if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, status.Errorf(codes.Internal, "removing target %s: %v", target, err)
	}
	logging.FromContext(ctx).Info("volume unpublished", "target", target)
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

func (n *Node) NodeGetVolumeStats(ctx context.Context, req *csi.NodeGetVolumeStatsRequest) (*csi.NodeGetVolumeStatsResponse, error) {
	vid, path := req.GetVolumeId(), req.GetVolumePath()
	switch {
	case vid == "":
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	case path == "":
		return nil, status.Error(codes.InvalidArgument, "volume path is required")
	}
	notMnt, err := n.Mounter.IsLikelyNotMountPoint(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, status.Errorf(codes.NotFound, "volume path %s does not exist", path)
	}
	if err != nil && !mount.IsCorruptedMnt(err) {
		return nil, status.Errorf(codes.Internal, "checking %s: %v", path, err)
	}
	if err == nil && notMnt {
		return nil, status.Errorf(codes.NotFound, "volume %s is not mounted at %s", vid, path)
	}
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "mount of %s at %s is not responding (NFS server down or volume deleted?): %v", vid, path, err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return nil, status.Errorf(codes.Internal, "statfs %s: %v", path, err)
	}
	bs := st.Bsize
	return &csi.NodeGetVolumeStatsResponse{
		Usage: []*csi.VolumeUsage{
			{
				Unit:      csi.VolumeUsage_BYTES,
				Total:     int64(st.Blocks) * bs,
				Available: int64(st.Bavail) * bs,
				Used:      int64(st.Blocks-st.Bfree) * bs,
			},
			{
				Unit:      csi.VolumeUsage_INODES,
				Total:     int64(st.Files),
				Available: int64(st.Ffree),
				Used:      int64(st.Files - st.Ffree),
			},
		},
	}, nil
}

func (n *Node) NodeGetInfo(ctx context.Context, req *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: n.NodeID}, nil // MaxVolumesPerNode 0: unlimited
}

func (n *Node) NodeGetCapabilities(ctx context.Context, req *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	resp := &csi.NodeGetCapabilitiesResponse{}
	for _, t := range []csi.NodeServiceCapability_RPC_Type{
		csi.NodeServiceCapability_RPC_GET_VOLUME_STATS,
		csi.NodeServiceCapability_RPC_GET_VOLUME_HEALTH,
		csi.NodeServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER,
	} {
		resp.Capabilities = append(resp.Capabilities, &csi.NodeServiceCapability{
			Type: &csi.NodeServiceCapability_Rpc{Rpc: &csi.NodeServiceCapability_RPC{Type: t}},
		})
	}
	return resp, nil
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
	h.HealthStatuses = csicommon.UsageHealth(csicommon.VolumeUsage{
		Bytes: (st.Blocks - st.Bfree) * bs, MaxBytes: st.Blocks * bs,
		Inodes: st.Files - st.Ffree, MaxInodes: st.Files,
	})
	return resp, nil
}

func unresponsive(vid, path string, err error) *csi.VolumeHealth_VolumeHealthEntry {
	return &csi.VolumeHealth_VolumeHealthEntry{
		Status:  csi.VolumeHealthErrorType_INACCESSIBLE,
		Reason:  csicommon.ReasonMountUnresponsive,
		Message: fmt.Sprintf("mount of volume %s at %s does not respond (%v): the storage server is down or the volume was deleted; restart the pod once the server is back", vid, path, err),
	}
}
