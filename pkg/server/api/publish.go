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

// ControllerPublishVolume and ControllerUnpublishVolume maintain each
// volume's export allow-list (see Access): with attachRequired, Kubernetes
// publishes a volume to a node before the node mounts it, so to a node
// without a publication the volume's export does not exist (MOUNT, EXPORT
// and every NFS call), and a read-only publication allows no change.

func (a *StorageAPI) ControllerPublishVolume(ctx context.Context, req *csi.ControllerPublishVolumeRequest) (*csi.ControllerPublishVolumeResponse, error) {
	if err := csicommon.ValidatePublish(req); err != nil {
		return nil, err
	}
	if a.Access == nil {
		return nil, status.Errorf(codes.Unimplemented, "server %s keeps no access lists", a.Name)
	}
	if _, err := a.get(req.GetVolumeId()); err != nil {
		return nil, err
	}
	_, addrs, err := csicommon.ParseNodeID(req.GetNodeId())
	if err != nil {
		return nil, status.Error(codes.NotFound, err.Error())
	}
	at := Attachment{
		NodeID:   req.GetNodeId(),
		ReadOnly: req.GetReadonly() || csicommon.ReadOnlyMode(req.GetVolumeCapability()),
		Single:   csicommon.SingleNodeMode(req.GetVolumeCapability()),
	}
	for _, ip := range addrs {
		at.Addrs = append(at.Addrs, ip.String())
	}
	switch err := a.Access.Publish(req.GetVolumeId(), at); {
	case errors.Is(err, ErrPublishConflict):
		return nil, status.Errorf(codes.AlreadyExists, "volume %s: %v", req.GetVolumeId(), err)
	case errors.Is(err, ErrPublishedElsewhere):
		return nil, status.Errorf(codes.FailedPrecondition, "volume %s: %v", req.GetVolumeId(), err)
	case err != nil:
		return nil, status.Errorf(codes.Internal, "server %s: %v", a.Name, err)
	}
	logging.FromContext(ctx).Info("volume published", "localID", req.GetVolumeId(), "node", req.GetNodeId(), "readOnly", at.ReadOnly)
	return &csi.ControllerPublishVolumeResponse{}, nil
}

func (a *StorageAPI) ControllerUnpublishVolume(ctx context.Context, req *csi.ControllerUnpublishVolumeRequest) (*csi.ControllerUnpublishVolumeResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	}
	if a.Access == nil {
		return nil, status.Errorf(codes.Unimplemented, "server %s keeps no access lists", a.Name)
	}
	// A volume that does not exist is unpublished everywhere (CSI: return
	// OK when the volume can be regarded as unpublished); its list, if any,
	// is dropped all the same.
	if !volume.ValidID(id) {
		return &csi.ControllerUnpublishVolumeResponse{}, nil
	}
	if err := a.Access.Unpublish(id, req.GetNodeId()); err != nil {
		return nil, status.Errorf(codes.Internal, "server %s: %v", a.Name, err)
	}
	logging.FromContext(ctx).Info("volume unpublished", "localID", id, "node", req.GetNodeId())
	return &csi.ControllerUnpublishVolumeResponse{}, nil
}
