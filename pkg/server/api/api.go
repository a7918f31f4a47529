// Package api is a storage server's management API: the CSI Controller
// service over the server's own volume store (StorageAPI), the export
// allow-lists ControllerPublishVolume keeps (Access), and what DeleteVolume
// does with the data (onDelete). pkg/server wires it to the NFS server.
package api

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/hangar-csi/hangar/pkg/csicommon"
	"github.com/hangar-csi/hangar/pkg/logging"
	"github.com/hangar-csi/hangar/pkg/vfs"
	"github.com/hangar-csi/hangar/pkg/volume"
)

// Exporter publishes volume directories over NFS (localfs.FS does).
type Exporter interface {
	// AddExport exports dir at path under policy p, which must be in
	// force before the export is reachable.
	AddExport(path, dir, volumeID string, p vfs.Policy) error
	RemoveExport(path string) error
}

// StorageAPI is a storage server's management API: the CSI Controller
// service over its local volume store, with local volume IDs (no server
// prefix). The controller adds the prefix.
type StorageAPI struct {
	csi.UnimplementedControllerServer
	Store   *volume.Store
	Exports Exporter
	Name    string // server name, for the volume context
	NFSAddr string // host:port clients mount
	Log     logr.Logger
	// Access holds the export allow-lists ControllerPublishVolume
	// maintains; nil: publishing is refused as unimplemented.
	Access *Access
	// Quota, if set, applies expansions to live exports, reports volume
	// health and decides what GetCapacity offers.
	Quota Quota
	// Freezer holds changes to volumes while snapshots and clones copy
	// them; nil: nothing is held (tests of the API alone).
	Freezer Freezer
	// ListPageBytes bounds the encoded size of one ListVolumes page
	// (0: csicommon.DefaultListPageBytes), so that a listing without max_entries
	// stays far below gRPC's 4 MiB message limit at any number of volumes.
	ListPageBytes int
	// SyncCopyLimit is the largest volume whose full-copy snapshot is
	// made within CreateSnapshot (0: DefaultSyncCopyLimit; negative:
	// always in the background).
	SyncCopyLimit int64

	// snapMu serializes snapshot creation and deletion, and guards
	// snap.busy; volumes being copied cannot be deleted.
	snapMu sync.Mutex
	snap   snapshots

	// mu orders expansions and modifications, so the live export's limits
	// follow the store's last record. (Capacity checks are atomic in the
	// store; creates do not take it.)
	mu sync.Mutex
	// names serializes CreateVolumes of one name (a create and its
	// retries), so a retry never exports the volume under the create's feet
	// (the create would take the failure for its own and roll back).
	names keyedMutex
}

// policy is the access policy of volume id's export (nil without access
// lists: everyone).
func (a *StorageAPI) policy(id string) vfs.Policy {
	if a.Access == nil {
		return nil
	}
	return a.Access.Policy(id)
}

// ExportAll exports every volume in the store; call it once at startup.
func (a *StorageAPI) ExportAll() error {
	// A few at a time: exporting may scan a volume's files, which waits
	// on the disk more than on a CPU.
	vs := a.Store.List()
	var next atomic.Int64
	errs := make([]error, exportWorkers)
	var wg sync.WaitGroup
	for w := range exportWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < len(vs) && errs[w] == nil; i = int(next.Add(1)) - 1 {
				v := vs[i]
				if err := a.Exports.AddExport(csicommon.ExportPath(v.ID), a.Store.VolumeDir(v.ID), v.ID, a.policy(v.ID)); err != nil {
					errs[w] = fmt.Errorf("exporting volume %s: %w", v.ID, err)
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

const exportWorkers = 4

// Register registers the API (the Controller and Volumes services) on s;
// the caller adds the Identity service.
func (a *StorageAPI) Register(s *grpc.Server) {
	csi.RegisterControllerServer(s, a)
	csi.RegisterGroupControllerServer(s, groupAPI{a: a})
	csicommon.RegisterVolumes(s, a)
	csicommon.RegisterSnapshotLookup(s, csicommon.SnapshotLookup{Snapshot: a.snapshotByName, Group: a.groupByName})
	csicommon.RegisterTransfer(s, transfer{a})
}

func (a *StorageAPI) csiVolume(v volume.Volume) *csi.Volume {
	cv := &csi.Volume{
		VolumeId:      v.ID,
		CapacityBytes: v.CapacityBytes,
		VolumeContext: map[string]string{
			csicommon.ContextName:    v.Name,
			csicommon.ContextServer:  a.Name,
			csicommon.ContextAddress: a.NFSAddr,
			csicommon.ContextExport:  csicommon.ExportPath(v.ID),
		},
		ContentSource:      contentSource(v.ContentSource),
		AccessibleTopology: csicommon.AccessibleTopology(),
	}
	return cv
}

// GetVolumeByName returns the volume called name (Volumes service).
func (a *StorageAPI) GetVolumeByName(ctx context.Context, name string) (*csi.Volume, error) {
	v, err := a.Store.GetByName(name)
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "no volume named %q on server %s", name, a.Name)
	}
	return a.csiVolume(v), nil
}

// GetVolumeUsage reports volume id's live usage (Volumes service).
func (a *StorageAPI) GetVolumeUsage(ctx context.Context, id string) (*csi.NodeGetVolumeStatsResponse, error) {
	v, err := a.get(id)
	if err != nil {
		return nil, err
	}
	if a.Quota == nil {
		return nil, status.Errorf(codes.Unimplemented, "server %s does not track usage", a.Name)
	}
	u, err := a.Quota.Usage(v.ID)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "server %s does not export volume %s: %v", a.Name, v.ID, err)
	}
	return csicommon.UsageResponse(u), nil
}

// available is what may still be promised when promised bytes already
// are: the store's or quota's figure less what running snapshot copies
// will still write.
func (a *StorageAPI) available(promised int64) (int64, error) {
	var avail int64
	var err error
	if a.Quota != nil {
		avail, err = a.Quota.Available(promised)
	} else {
		avail, err = a.Store.Available(promised)
	}
	if err != nil {
		return 0, err
	}
	return max(avail-a.pendingCopyBytes(), 0), nil
}

// admit refuses a promise (of a new volume, or an expansion: what) that
// the server's capacity does not cover; the store calls it atomically with
// making the promise.
func (a *StorageAPI) admit(what string) volume.Admit {
	return func(need, promised int64) error {
		avail, err := a.available(promised)
		if err != nil {
			return status.Errorf(codes.Internal, "server %s: %v", a.Name, err)
		}
		if need > avail {
			return status.Errorf(codes.ResourceExhausted, "server %s has %d bytes available, %s needs %d", a.Name, avail, what, need)
		}
		return nil
	}
}

func (a *StorageAPI) CreateVolume(ctx context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	capacity, err := csicommon.ValidateCreate(req)
	if err != nil {
		return nil, err
	}
	var stage string
	var need int64
	source := requestSource(req.GetVolumeContentSource())
	if _, err := a.Store.GetByName(req.GetName()); err != nil && source != nil {
		// New volume with contents: copy them first (creates of other
		// names go on meanwhile). A retry arriving during a long copy must
		// not start a second one.
		if !a.startCreating(req.GetName()) {
			return nil, status.Errorf(codes.Aborted, "volume %q is being created from its content source; retry later", req.GetName())
		}
		defer a.doneCreating(req.GetName())
		// fit grows capacity to what the contents need, within the limit.
		fit := func(need int64) error {
			if need > capacity {
				if lim := req.GetCapacityRange().GetLimitBytes(); lim > 0 && lim < need {
					return status.Errorf(codes.OutOfRange, "the source's contents take %d bytes, more than the capacity limit %d", need, lim)
				}
				capacity = need
			}
			return nil
		}
		stage, source, need, err = a.populate(ctx, req.GetVolumeContentSource(), func(need int64) error {
			if err := fit(need); err != nil {
				return err
			}
			// Checked again when the volume is made; this spares a copy
			// that cannot fit.
			if avail, err := a.available(a.Store.Promised()); err == nil && capacity > avail {
				return status.Errorf(codes.ResourceExhausted, "server %s has %d bytes available, volume needs %d", a.Name, avail, capacity)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		// Whatever happens below, a staged tree not moved into place goes.
		defer os.RemoveAll(stage)
		// A clone's source may have grown since the check.
		if err := fit(need); err != nil {
			return nil, err
		}
	}
	return a.create(ctx, req, capacity, source, stage)
}

// create makes the volume req asks for, of capacity bytes, from the staged
// tree stage if set, if the capacity is available.
func (a *StorageAPI) create(ctx context.Context, req *csi.CreateVolumeRequest, capacity int64, source *volume.ContentSource, stage string) (*csi.CreateVolumeResponse, error) {
	defer a.names.lock(req.GetName())()
	// A retried create finds the volume and is not checked for capacity
	// again (its space is already promised).
	v, created, err := a.Store.Create(volume.Request{
		Name:          req.GetName(),
		CapacityBytes: capacity,
		RequiredBytes: req.GetCapacityRange().GetRequiredBytes(),
		LimitBytes:    req.GetCapacityRange().GetLimitBytes(),
		Parameters:    req.GetParameters(),
		ContentSource: source,
		From:          stage,
		// The provisioner passes a VolumeAttributesClass's parameters here.
		MutableParameters: req.GetMutableParameters(),
	}, a.admit("the volume"))
	if errors.Is(err, volume.ErrExists) {
		return nil, status.Error(codes.AlreadyExists, err.Error())
	}
	if _, ok := status.FromError(err); ok && err != nil {
		return nil, err
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "server %s: creating volume: %v", a.Name, err)
	}
	// Exporting is idempotent from our side: a retried create re-adds it.
	if err := a.Exports.AddExport(csicommon.ExportPath(v.ID), a.Store.VolumeDir(v.ID), v.ID, a.policy(v.ID)); err != nil && created {
		if derr := a.Store.Delete(v.ID); derr != nil {
			logging.FromContext(ctx).Error(derr, "rolling back volume after failed export", "volumeID", v.ID)
		}
		return nil, status.Errorf(codes.Internal, "server %s: exporting volume: %v", a.Name, err)
	}
	if created {
		logging.FromContext(ctx).Info("volume created", "localID", v.ID, "capacity", v.CapacityBytes)
	}
	return &csi.CreateVolumeResponse{Volume: a.csiVolume(v)}, nil
}

func (a *StorageAPI) DeleteVolume(ctx context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	}
	if !volume.ValidID(id) {
		return &csi.DeleteVolumeResponse{}, nil // cannot exist
	}
	a.snapMu.Lock()
	defer a.snapMu.Unlock()
	if a.snap.busy["v"+id] > 0 {
		return nil, status.Errorf(codes.Aborted, "volume %s is being copied for a snapshot or clone; retry when that is done", id)
	}
	// Unexport first so no client writes into a directory being removed.
	if err := a.Exports.RemoveExport(csicommon.ExportPath(id)); err != nil {
		logging.FromContext(ctx).V(1).Info("export already gone", "error", err.Error())
	}
	err := a.keepOnDelete(ctx, id)
	if err == nil {
		err = a.Store.Delete(id)
	}
	if err != nil {
		// The volume still exists: serve it again.
		if _, gerr := a.Store.Get(id); gerr == nil {
			if xerr := a.Exports.AddExport(csicommon.ExportPath(id), a.Store.VolumeDir(id), id, a.policy(id)); xerr != nil {
				logging.FromContext(ctx).Error(xerr, "re-exporting volume after failed delete")
			}
		}
		return nil, status.Errorf(codes.Internal, "server %s: deleting volume %s: %v", a.Name, id, err)
	}
	if a.Access != nil {
		if err := a.Access.Forget(id); err != nil {
			logging.FromContext(ctx).Error(err, "dropping access list of deleted volume", "localID", id)
		}
	}
	return &csi.DeleteVolumeResponse{}, nil
}

func (a *StorageAPI) get(id string) (volume.Volume, error) {
	if id == "" {
		return volume.Volume{}, status.Error(codes.InvalidArgument, "volume ID is required")
	}
	v, err := a.Store.Get(id)
	if err != nil {
		return volume.Volume{}, status.Errorf(codes.NotFound, "volume %s does not exist on server %s", id, a.Name)
	}
	return v, nil
}

func (a *StorageAPI) ControllerGetVolume(ctx context.Context, req *csi.ControllerGetVolumeRequest) (*csi.ControllerGetVolumeResponse, error) {
	v, err := a.get(req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	return &csi.ControllerGetVolumeResponse{
		Volume: a.csiVolume(v),
		Status: &csi.ControllerGetVolumeResponse_VolumeStatus{PublishedNodeIds: a.publishedNodes(v.ID)},
	}, nil
}

// publishedNodes lists the nodes volume id is controller-published to.
func (a *StorageAPI) publishedNodes(id string) []string {
	if a.Access == nil {
		return nil
	}
	var ids []string
	for _, at := range a.Access.Nodes(id) {
		ids = append(ids, at.NodeID)
	}
	return ids
}

func (a *StorageAPI) ValidateVolumeCapabilities(ctx context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	if _, err := a.get(req.GetVolumeId()); err != nil {
		return nil, err
	}
	return csicommon.ValidateVolumeCapabilities(req)
}

func (a *StorageAPI) ControllerExpandVolume(ctx context.Context, req *csi.ControllerExpandVolumeRequest) (*csi.ControllerExpandVolumeResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	v, err := a.get(req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	if req.GetCapacityRange() == nil {
		return nil, status.Error(codes.InvalidArgument, "capacity range is required")
	}
	want, err := csicommon.Capacity(req.GetCapacityRange())
	if err != nil {
		return nil, err
	}
	if lim := req.GetCapacityRange().GetLimitBytes(); lim > 0 && v.CapacityBytes > lim {
		return nil, status.Errorf(codes.OutOfRange, "volume %s has %d bytes, more than the limit %d; volumes cannot shrink", v.ID, v.CapacityBytes, lim)
	}
	if want < v.CapacityBytes {
		// "At least want" is already true.
		return &csi.ControllerExpandVolumeResponse{CapacityBytes: v.CapacityBytes}, nil
	}
	nv, err := a.Store.Expand(v.ID, want, a.admit("the expansion"))
	if _, ok := status.FromError(err); ok && err != nil {
		return nil, err
	}
	if errors.Is(err, volume.ErrNotFound) {
		return nil, status.Errorf(codes.NotFound, "volume %s does not exist on server %s", v.ID, a.Name)
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "server %s: expanding volume %s: %v", a.Name, v.ID, err)
	}
	if a.Quota != nil {
		// Online: the live export's limit grows now; clients see it in
		// their next FSSTAT, and writes that failed can be retried.
		if err := a.Quota.SetCapacity(v.ID, nv.CapacityBytes); err != nil {
			return nil, status.Errorf(codes.Internal, "server %s: volume %s expanded to %d bytes but its export was not updated: %v", a.Name, v.ID, nv.CapacityBytes, err)
		}
	}
	return &csi.ControllerExpandVolumeResponse{CapacityBytes: nv.CapacityBytes}, nil
}

// ListVolumes pages through volumes in ID order; starting_token is the last
// ID of the previous page.
func (a *StorageAPI) ListVolumes(ctx context.Context, req *csi.ListVolumesRequest) (*csi.ListVolumesResponse, error) {
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
	// Without max_entries the CSI spec puts no limit on the page, so
	// paging by size is allowed; a page of everything would not be.
	// An entry is more than 128 bytes, so no more than limit/128 are
	// copied out of the store for one page.
	n := int(req.GetMaxEntries())
	if n == 0 || n > limit/128 {
		n = max(limit/128, 1)
	}
	vs, more := a.Store.Page(after, n)
	resp := &csi.ListVolumesResponse{Entries: make([]*csi.ListVolumesResponse_Entry, 0, len(vs))}
	size := 0
	for i, v := range vs {
		e := &csi.ListVolumesResponse_Entry{
			Volume: a.csiVolume(v),
			Status: &csi.ListVolumesResponse_VolumeStatus{PublishedNodeIds: a.publishedNodes(v.ID)},
		}
		resp.Entries = append(resp.Entries, e)
		if size += proto.Size(e); size >= limit && i < len(vs)-1 {
			more = true
			break
		}
	}
	if more {
		resp.NextToken = resp.Entries[len(resp.Entries)-1].Volume.VolumeId
	}
	return resp, nil
}

func (a *StorageAPI) GetCapacity(ctx context.Context, req *csi.GetCapacityRequest) (*csi.GetCapacityResponse, error) {
	for _, c := range req.GetVolumeCapabilities() {
		if csicommon.CheckCapability(c) != "" {
			return &csi.GetCapacityResponse{}, nil
		}
	}
	if !csicommon.InTopology(req.GetAccessibleTopology()) {
		return &csi.GetCapacityResponse{}, nil
	}
	avail, err := a.available(a.Store.Promised())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "server %s: %v", a.Name, err)
	}
	return &csi.GetCapacityResponse{
		AvailableCapacity: avail,
		MaximumVolumeSize: wrapperspb.Int64(avail),
	}, nil
}

func (a *StorageAPI) ControllerGetCapabilities(ctx context.Context, req *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	return csicommon.ControllerCapabilities(), nil
}
