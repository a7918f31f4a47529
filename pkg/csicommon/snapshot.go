package csicommon

import (
	"context"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Snapshot and group snapshot names must be unique across servers as
// volume names are, so storage servers also answer lookups of those by
// name (hand-written like GetVolumeByName).

const (
	snapLookupService = "hangar.server.v1.Snapshots"
	snapLookupMethod  = "/" + snapLookupService + "/GetSnapshotByName"
	groupLookupMethod = "/" + snapLookupService + "/GetGroupSnapshotByName"
)

// SnapshotLookup answers the by-name lookups; each returns a NotFound
// status for unknown names.
type SnapshotLookup struct {
	Snapshot func(ctx context.Context, name string) (*csi.Snapshot, error)
	Group    func(ctx context.Context, name string) (*csi.VolumeGroupSnapshot, error)
}

// RegisterSnapshotLookup registers the lookup methods on s.
func RegisterSnapshotLookup(s *grpc.Server, l SnapshotLookup) {
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: snapLookupService,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{
			stringMethod("GetSnapshotByName", snapLookupMethod, func(ctx context.Context, n string) (any, error) { return l.Snapshot(ctx, n) }),
			stringMethod("GetGroupSnapshotByName", groupLookupMethod, func(ctx context.Context, n string) (any, error) { return l.Group(ctx, n) }),
		},
	}, struct{}{})
}

// GetSnapshotByName calls the snapshot lookup on a storage server.
func GetSnapshotByName(ctx context.Context, cc grpc.ClientConnInterface, name string) (*csi.Snapshot, error) {
	out := new(csi.Snapshot)
	if err := cc.Invoke(ctx, snapLookupMethod, wrapperspb.String(name), out); err != nil {
		return nil, err
	}
	return out, nil
}

// GetGroupSnapshotByName calls the group snapshot lookup on a storage server.
func GetGroupSnapshotByName(ctx context.Context, cc grpc.ClientConnInterface, name string) (*csi.VolumeGroupSnapshot, error) {
	out := new(csi.VolumeGroupSnapshot)
	if err := cc.Invoke(ctx, groupLookupMethod, wrapperspb.String(name), out); err != nil {
		return nil, err
	}
	return out, nil
}

// GroupCapabilities is the GroupControllerGetCapabilities response.
func GroupCapabilities() *csi.GroupControllerGetCapabilitiesResponse {
	return &csi.GroupControllerGetCapabilitiesResponse{Capabilities: []*csi.GroupControllerServiceCapability{{
		Type: &csi.GroupControllerServiceCapability_Rpc{Rpc: &csi.GroupControllerServiceCapability_RPC{
			Type: csi.GroupControllerServiceCapability_RPC_CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT,
		}},
	}}}
}
