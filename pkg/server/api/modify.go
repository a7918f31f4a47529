package api

import (
	"context"
	"errors"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hangar-csi/hangar/pkg/csicommon"
	"github.com/hangar-csi/hangar/pkg/logging"
	"github.com/hangar-csi/hangar/pkg/volume"
)

// ControllerModifyVolume changes the mutable policy parameters of a live
// volume (csicommon.MutableParameters). The new policy is recorded first,
// then applied to the live export: clients see it at their next operation,
// without remounting. A record that could not be applied is applied at the
// next start of the server.
func (a *StorageAPI) ControllerModifyVolume(ctx context.Context, req *csi.ControllerModifyVolumeRequest) (*csi.ControllerModifyVolumeResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	v, err := a.get(req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	// Nothing is changed unless every key and value is valid (CSI: no
	// partial modification on INVALID_ARGUMENT).
	if err := csicommon.ValidateMutableParameters(req.GetMutableParameters()); err != nil {
		return nil, err
	}
	nv, err := a.Store.Modify(v.ID, req.GetMutableParameters())
	if errors.Is(err, volume.ErrNotFound) {
		return nil, status.Errorf(codes.NotFound, "volume %s does not exist on server %s", v.ID, a.Name)
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "server %s: modifying volume %s: %v", a.Name, v.ID, err)
	}
	if a.Quota != nil {
		if err := a.Quota.ApplyPolicy(v.ID); err != nil {
			return nil, status.Errorf(codes.Internal, "server %s: volume %s: new parameters recorded but not applied to its export (a restart of the server applies them): %v", a.Name, v.ID, err)
		}
	}
	logging.FromContext(ctx).Info("volume modified", "localID", v.ID, "mutableParameters", nv.MutableParameters)
	return &csi.ControllerModifyVolumeResponse{}, nil
}
