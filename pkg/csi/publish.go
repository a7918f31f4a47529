package csi

import (
	"context"
	"errors"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hangar-csi/hangar/pkg/logging"
	"github.com/hangar-csi/hangar/pkg/volume"
)

// ControllerPublishVolume and ControllerUnpublishVolume maintain each
// volume's export allow-list (see Access): with attachRequired, Kubernetes
// publishes a volume to a node before the node mounts it, so a node without
// a publication is refused at MOUNT.

func validatePublish(req *csi.ControllerPublishVolumeRequest) error {
	switch {
	case req.GetVolumeId() == "":
		return status.Error(codes.InvalidArgument, "volume ID is required")
	case req.GetNodeId() == "":
		return status.Error(codes.InvalidArgument, "node ID is required")
	case req.GetVolumeCapability() == nil:
		return status.Error(codes.InvalidArgument, "volume capability is required")
	}
	if why := checkCapability(req.GetVolumeCapability()); why != "" {
		return status.Error(codes.InvalidArgument, why)
	}
	return nil
}

func singleNodeMode(c *csi.VolumeCapability) bool {
	switch c.GetAccessMode().GetMode() {
	case csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER,
		csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY,
		csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER,
		csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER:
		return true
	}
	return false
}

func (a *StorageAPI) ControllerPublishVolume(ctx context.Context, req *csi.ControllerPublishVolumeRequest) (*csi.ControllerPublishVolumeResponse, error) {
	if err := validatePublish(req); err != nil {
		return nil, err
	}
	if a.Access == nil {
		return nil, status.Errorf(codes.Unimplemented, "server %s keeps no access lists", a.Name)
	}
	if _, err := a.get(req.GetVolumeId()); err != nil {
		return nil, err
	}
	_, addrs, err := ParseNodeID(req.GetNodeId())
	if err != nil {
		return nil, status.Error(codes.NotFound, err.Error())
	}
	at := Attachment{
		NodeID:   req.GetNodeId(),
		ReadOnly: req.GetReadonly() || readOnlyMode(req.GetVolumeCapability()),
		Single:   singleNodeMode(req.GetVolumeCapability()),
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

func (c *Controller) ControllerPublishVolume(ctx context.Context, req *csi.ControllerPublishVolumeRequest) (*csi.ControllerPublishVolumeResponse, error) {
	if err := validatePublish(req); err != nil {
		return nil, err
	}
	b, local, reason := c.route(req.GetVolumeId())
	if b == nil {
		return nil, status.Errorf(codes.NotFound, "volume %q not found: %s", req.GetVolumeId(), reason)
	}
	if _, _, err := ParseNodeID(req.GetNodeId()); err != nil {
		return nil, status.Error(codes.NotFound, err.Error())
	}
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	sreq := &csi.ControllerPublishVolumeRequest{
		VolumeId:         local,
		NodeId:           req.GetNodeId(),
		VolumeCapability: req.GetVolumeCapability(),
		Readonly:         req.GetReadonly(),
	}
	resp, err := b.ctrl.ControllerPublishVolume(ctx, sreq)
	if err != nil {
		return nil, b.err("ControllerPublishVolume", err)
	}
	return resp, nil
}

func (c *Controller) ControllerUnpublishVolume(ctx context.Context, req *csi.ControllerUnpublishVolumeRequest) (*csi.ControllerUnpublishVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	}
	b, local, reason := c.route(req.GetVolumeId())
	if b == nil {
		// Not a volume any configured server could hold: nothing to revoke.
		logging.FromContext(ctx).Info("unpublish of unknown volume", "volumeID", req.GetVolumeId(), "reason", reason)
		return &csi.ControllerUnpublishVolumeResponse{}, nil
	}
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	if _, err := b.ctrl.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: local, NodeId: req.GetNodeId()}); err != nil {
		return nil, b.err("ControllerUnpublishVolume", err)
	}
	return &csi.ControllerUnpublishVolumeResponse{}, nil
}
