package driver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
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
	"github.com/hangar-csi/hangar/pkg/volume"
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
	// MaxVolumesPerNode is reported in NodeGetInfo (0: no limit); the
	// controller enforces the same number (see checkNodeLimit).
	MaxVolumesPerNode int64
}

// What the kubelet adds to a publish's volume context for a CSIDriver with
// podInfoOnMount: the pod the mount is for.
const (
	podNameKey      = "csi.storage.k8s.io/pod.name"
	podNamespaceKey = "csi.storage.k8s.io/pod.namespace"
	podUIDKey       = "csi.storage.k8s.io/pod.uid"
)

// Volumes are staged and published in two steps (STAGE_UNSTAGE_VOLUME):
// NodeStageVolume makes the one NFS mount of a volume on this node, at the
// staging path, and NodePublishVolume bind-mounts it into each pod (a
// read-only bind where the publish asks for it). Many pods on a node then
// share one mount, one TCP connection and one client cache.

func (n *Node) NodeStageVolume(ctx context.Context, req *csi.NodeStageVolumeRequest) (*csi.NodeStageVolumeResponse, error) {
	vid, staging, vc := req.GetVolumeId(), req.GetStagingTargetPath(), req.GetVolumeCapability()
	switch {
	case vid == "":
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	case staging == "":
		return nil, status.Error(codes.InvalidArgument, "staging target path is required")
	case vc == nil:
		return nil, status.Error(codes.InvalidArgument, "volume capability is required")
	}
	if why := csicommon.CheckCapability(vc); why != "" {
		return nil, status.Error(codes.InvalidArgument, why)
	}
	addr, export, vers, err := nfsTarget(vid, req.GetVolumeContext())
	if err != nil {
		return nil, err
	}
	source, port, err := MountSource(addr, export)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	opts := MountOptions(vers, port)
	opts = append(opts, vc.GetMount().GetMountFlags()...)
	if csicommon.ReadOnlyMode(vc) {
		opts = append(opts, "ro")
	}
	log := logging.FromContext(ctx)

	mkdir, mounted, err := n.checkTarget(staging)
	if err != nil {
		return nil, err
	}
	if mounted {
		mp, err := n.mountAt(staging)
		if err != nil {
			return nil, err
		}
		if mp.Device != source {
			return nil, status.Errorf(codes.AlreadyExists, "staging path %s already holds %s, not volume %s (%s)", staging, mp.Device, vid, source)
		}
		if wantRO := slices.Contains(opts, "ro"); wantRO != slices.Contains(mp.Opts, "ro") {
			return nil, status.Errorf(codes.AlreadyExists, "volume %s is already staged at %s with read-only=%v; unstage it before staging it with read-only=%v", vid, staging, !wantRO, wantRO)
		}
		log.V(1).Info("volume already staged", "staging", staging)
		return &csi.NodeStageVolumeResponse{}, nil
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
		if err := os.MkdirAll(staging, 0o750); err != nil {
			return nil, status.Errorf(codes.Internal, "creating staging path %s: %v", staging, err)
		}
	}
	if err := n.Mounter.Mount(source, staging, "nfs", opts); err != nil {
		if mkdir {
			os.Remove(staging)
		}
		return nil, status.Errorf(codes.Internal, "mounting %s at %s (options %s): %v", source, staging, strings.Join(opts, ","), err)
	}
	log.Info("volume staged", "staging", staging, "source", source, "options", strings.Join(opts, ","))
	return &csi.NodeStageVolumeResponse{}, nil
}

// NodeUnstageVolume unmounts the staging mount. The CO has unpublished
// every pod's bind mount first; the staging directory is the CO's.
func (n *Node) NodeUnstageVolume(ctx context.Context, req *csi.NodeUnstageVolumeRequest) (*csi.NodeUnstageVolumeResponse, error) {
	vid, staging := req.GetVolumeId(), req.GetStagingTargetPath()
	switch {
	case vid == "":
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	case staging == "":
		return nil, status.Error(codes.InvalidArgument, "staging target path is required")
	}
	notMnt, err := n.Mounter.IsLikelyNotMountPoint(staging)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return &csi.NodeUnstageVolumeResponse{}, nil
	case err != nil && mount.IsCorruptedMnt(err):
		notMnt = false // a dead server's mount: unmount it anyway
	case err != nil:
		return nil, status.Errorf(codes.Internal, "checking staging path %s: %v", staging, err)
	}
	if !notMnt {
		if err := n.Mounter.Unmount(staging); err != nil {
			return nil, status.Errorf(codes.Internal, "unmounting %s: %v", staging, err)
		}
	}
	logging.FromContext(ctx).Info("volume unstaged", "staging", staging)
	return &csi.NodeUnstageVolumeResponse{}, nil
}

func (n *Node) NodePublishVolume(ctx context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	vid, target, staging, vc := req.GetVolumeId(), req.GetTargetPath(), req.GetStagingTargetPath(), req.GetVolumeCapability()
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
	if staging == "" {
		return nil, status.Errorf(codes.FailedPrecondition, "staging target path is required: volume %s must be staged on this node (NodeStageVolume) before it is published", vid)
	}
	// The version only matters to the staging mount, but a bad one is
	// refused here too: the volume context is the same.
	addr, export, _, err := nfsTarget(vid, req.GetVolumeContext())
	if err != nil {
		return nil, err
	}
	source, _, err := MountSource(addr, export)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	mps, err := n.Mounter.List()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "listing mounts: %v", err)
	}
	staged, ok := findMount(mps, staging)
	switch {
	case !ok:
		return nil, status.Errorf(codes.FailedPrecondition, "volume %s is not staged at %s; call NodeStageVolume first", vid, staging)
	case staged.Device != source:
		return nil, status.Errorf(codes.FailedPrecondition, "staging path %s holds %s, not volume %s (%s)", staging, staged.Device, vid, source)
	}
	opts := []string{"bind"}
	if req.GetReadonly() || csicommon.ReadOnlyMode(vc) {
		opts = append(opts, "ro")
	}
	log := logging.FromContext(ctx)

	mkdir, mounted, err := n.checkTarget(target)
	if err != nil {
		return nil, err
	}
	if mounted {
		// Already mounted: fine if it is this volume (a retry).
		mp, ok := findMount(mps, target)
		if !ok {
			return nil, status.Errorf(codes.Internal, "target %s is a mount point missing from the mount table", target)
		}
		if mp.Device != source {
			return nil, status.Errorf(codes.AlreadyExists, "target %s already holds %s, not volume %s (%s)", target, mp.Device, vid, source)
		}
		if wantRO := slices.Contains(opts, "ro"); wantRO != slices.Contains(mp.Opts, "ro") {
			return nil, status.Errorf(codes.AlreadyExists, "volume %s is already published at %s with read-only=%v; unpublish it before publishing it with read-only=%v", vid, target, !wantRO, wantRO)
		}
		log.V(1).Info("volume already published", "target", target)
		return &csi.NodePublishVolumeResponse{}, nil
	}
	if vc.GetAccessMode().GetMode() == csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER {
		// Single writer: refuse a second publication of the volume.
		for _, mp := range mps {
			if mp.Device == source && mp.Path != staged.Path {
				return nil, status.Errorf(codes.FailedPrecondition, "volume %s has access mode SINGLE_NODE_SINGLE_WRITER and is already published at %s; unpublish it there first", vid, mp.Path)
			}
		}
	}
	if mkdir {
		if err := os.MkdirAll(target, 0o750); err != nil {
			return nil, status.Errorf(codes.Internal, "creating target %s: %v", target, err)
		}
	}
	if err := n.Mounter.Mount(staging, target, "", opts); err != nil {
		if mkdir {
			os.Remove(target)
		}
		return nil, status.Errorf(codes.Internal, "bind-mounting %s at %s (options %s): %v", staging, target, strings.Join(opts, ","), err)
	}
	kv := []any{"target", target, "staging", staging, "source", source, "options", strings.Join(opts, ",")}
	if vctx := req.GetVolumeContext(); vctx[podNameKey] != "" {
		kv = append(kv, "pod", vctx[podNamespaceKey]+"/"+vctx[podNameKey], "podUID", vctx[podUIDKey])
	}
	log.Info("volume published", kv...)
	return &csi.NodePublishVolumeResponse{}, nil
}

// checkTarget looks at a staging or target path: mkdir says it does not
// exist yet (it is created only once every check passed, so a refused call
// leaves nothing behind), mounted that something is mounted there.
func (n *Node) checkTarget(path string) (mkdir, mounted bool, err error) {
	notMnt, err := n.Mounter.IsLikelyNotMountPoint(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return true, false, nil
	case err != nil && mount.IsCorruptedMnt(err):
		return false, false, status.Errorf(codes.FailedPrecondition, "%s is a stale mount (%v); unmount it first", path, err)
	case err != nil:
		return false, false, status.Errorf(codes.Internal, "checking %s: %v", path, err)
	}
	return false, !notMnt, nil
}

// mountAt returns the mount table entry of path.
func (n *Node) mountAt(path string) (mount.MountPoint, error) {
	mps, err := n.Mounter.List()
	if err != nil {
		return mount.MountPoint{}, status.Errorf(codes.Internal, "listing mounts: %v", err)
	}
	mp, ok := findMount(mps, path)
	if !ok {
		return mount.MountPoint{}, status.Errorf(codes.Internal, "%s is a mount point missing from the mount table", path)
	}
	return mp, nil
}

// findMount finds the entry mounted last at path (which shadows earlier
// ones), by name: comparing inodes would confuse a bind mount with its
// source.
func findMount(mps []mount.MountPoint, path string) (mount.MountPoint, bool) {
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		resolved = path
	}
	for i := len(mps) - 1; i >= 0; i-- {
		if p := filepath.Clean(mps[i].Path); p == filepath.Clean(path) || p == resolved {
			return mps[i], true
		}
	}
	return mount.MountPoint{}, false
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
	return &csi.NodeGetInfoResponse{NodeId: n.NodeID, MaxVolumesPerNode: n.MaxVolumesPerNode, AccessibleTopology: csicommon.Topology()}, nil
}

func (n *Node) NodeGetCapabilities(ctx context.Context, req *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	resp := &csi.NodeGetCapabilitiesResponse{}
	for _, t := range []csi.NodeServiceCapability_RPC_Type{
		csi.NodeServiceCapability_RPC_GET_VOLUME_STATS,
		csi.NodeServiceCapability_RPC_GET_VOLUME_HEALTH,
		csi.NodeServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER,
		// Issue 12.
		csi.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME,
		csi.NodeServiceCapability_RPC_EXPAND_VOLUME,
		csi.NodeServiceCapability_RPC_GET_STORAGE_HEALTH,
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
		path = req.GetStagingTargetPath()
	}
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

// NodeExpandVolume has nothing to grow: a volume's capacity is a limit the
// storage server enforces (ControllerExpandVolume raises it and reports no
// node expansion required), and NFS clients see it in their next statfs. It
// checks that the volume is mounted at the path and reports the capacity
// the mount shows, for a CO that calls it anyway.
func (n *Node) NodeExpandVolume(ctx context.Context, req *csi.NodeExpandVolumeRequest) (*csi.NodeExpandVolumeResponse, error) {
	vid, path := req.GetVolumeId(), req.GetVolumePath()
	switch {
	case vid == "":
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	case path == "":
		return nil, status.Error(codes.InvalidArgument, "volume path is required")
	}
	if vc := req.GetVolumeCapability(); vc != nil {
		if why := csicommon.CheckCapability(vc); why != "" {
			return nil, status.Error(codes.InvalidArgument, why)
		}
	}
	if r := req.GetCapacityRange(); r != nil {
		switch req, lim := r.GetRequiredBytes(), r.GetLimitBytes(); {
		case req < 0 || lim < 0:
			return nil, status.Errorf(codes.InvalidArgument, "capacity range must not be negative (required %d, limit %d)", req, lim)
		case lim > 0 && req > lim:
			return nil, status.Errorf(codes.OutOfRange, "required capacity %d exceeds limit %d", req, lim)
		}
	}
	_, id, err := csicommon.ParseVolumeID(vid)
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "volume %q not found: %v", vid, err)
	}
	notMnt, err := n.Mounter.IsLikelyNotMountPoint(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, status.Errorf(codes.NotFound, "volume path %s does not exist", path)
	case err != nil && mount.IsCorruptedMnt(err):
		return nil, status.Errorf(codes.Unavailable, "mount of %s at %s is not responding (NFS server down or volume deleted?): %v", vid, path, err)
	case err != nil:
		return nil, status.Errorf(codes.Internal, "checking %s: %v", path, err)
	case notMnt:
		return nil, status.Errorf(codes.NotFound, "volume %s is not staged or published at %s", vid, path)
	}
	mp, err := n.mountAt(path)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(mp.Device, ":"+csicommon.ExportPath(id)) {
		return nil, status.Errorf(codes.NotFound, "%s holds %s, not volume %s", path, mp.Device, vid)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return nil, status.Errorf(codes.Internal, "statfs %s: %v", path, err)
	}
	return &csi.NodeExpandVolumeResponse{CapacityBytes: int64(st.Blocks) * st.Bsize}, nil
}

// NodeGetStorageHealth probes every storage server this node has a Hangar
// volume mounted from (MOUNT and GETATTR of one of its exports, bounded by
// the probe timeout) and reports those that do not answer as unreachable.
func (n *Node) NodeGetStorageHealth(ctx context.Context, req *csi.NodeGetStorageHealthRequest) (*csi.NodeGetStorageHealthResponse, error) {
	resp := &csi.NodeGetStorageHealthResponse{}
	if n.Probe == nil {
		return resp, nil
	}
	mps, err := n.Mounter.List()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "listing mounts: %v", err)
	}
	exports := map[string]string{} // NFS address -> one export mounted from it
	for _, mp := range mps {
		if addr, export, ok := hangarMount(mp); ok {
			exports[addr] = export
		}
	}
	timeout := n.ProbeTimeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	type result struct {
		addr, export string
		err          error
	}
	results := make(chan result, len(exports))
	for addr, export := range exports {
		go func() {
			pctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			results <- result{addr, export, n.Probe(pctx, addr, export)}
		}()
	}
	var down []result
	for range exports {
		if r := <-results; r.err != nil {
			down = append(down, r)
		}
	}
	slices.SortFunc(down, func(a, b result) int { return strings.Compare(a.addr, b.addr) })
	for _, r := range down {
		resp.BackendHealth = append(resp.BackendHealth, &csi.NodeGetStorageHealthResponse_StorageBackendHealth{
			Status:  csi.StorageHealthErrorType_STORAGE_UNREACHABLE,
			Reason:  csicommon.ReasonServerUnreachable,
			Message: fmt.Sprintf("storage server at %s does not answer for %s (%v): volumes mounted from it on this node hang until it is back; check its pod or service", r.addr, r.export, r.err),
		})
	}
	return resp, nil
}

// hangarMount recognizes an NFS mount of a Hangar volume export
// ("host:/<16 hex digits>", of type nfs for v3 and nfs4 for v4.x) and
// returns the server's address (port from the mount options; the kernel
// omits the default 2049).
func hangarMount(mp mount.MountPoint) (addr, export string, ok bool) {
	if mp.Type != "nfs" && mp.Type != "nfs4" {
		return "", "", false
	}
	i := strings.LastIndex(mp.Device, ":/")
	if i < 0 {
		return "", "", false
	}
	host, export := strings.Trim(mp.Device[:i], "[]"), mp.Device[i+1:]
	if !volume.ValidID(strings.TrimPrefix(export, "/")) {
		return "", "", false
	}
	port := "2049"
	for _, o := range mp.Opts {
		if v, ok := strings.CutPrefix(o, "port="); ok {
			port = v
		}
	}
	return net.JoinHostPort(host, port), export, true
}
