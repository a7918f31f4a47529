package csicommon

import (
	"context"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The storage servers' management API is the CSI Controller service plus
// a small Volumes service for what CSI lacks: finding a volume by name
// (the controller needs it to keep CreateVolume idempotent across servers)
// and a volume's live usage (for people: "hangar volume list"). The
// controller serves the same service, routing by volume ID as it does the
// Controller service. It is hand-written gRPC reusing existing messages (a
// string in; a csi.Volume, or the usage a NodeGetVolumeStatsResponse
// carries, out), so no code generation is needed.

const (
	volumesService = "hangar.server.v1.Volumes"
	byNameMethod   = "/" + volumesService + "/GetVolumeByName"
	usageMethod    = "/" + volumesService + "/GetVolumeUsage"
)

// VolumesServer answers the Volumes service.
type VolumesServer interface {
	// GetVolumeByName returns the volume called name, or a NotFound status.
	GetVolumeByName(ctx context.Context, name string) (*csi.Volume, error)
	// GetVolumeUsage returns volume id's used and total bytes and inodes.
	GetVolumeUsage(ctx context.Context, id string) (*csi.NodeGetVolumeStatsResponse, error)
}

// stringMethod is a unary gRPC method whose request is one string (a
// wrapperspb.StringValue), served by fn through the server's interceptors.
func stringMethod(name, full string, fn func(context.Context, string) (any, error)) grpc.MethodDesc {
	return grpc.MethodDesc{
		MethodName: name,
		Handler: func(_ any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			call := func(ctx context.Context, req any) (any, error) {
				return fn(ctx, req.(*wrapperspb.StringValue).GetValue())
			}
			if icpt == nil {
				return call(ctx, in)
			}
			return icpt(ctx, in, &grpc.UnaryServerInfo{FullMethod: full}, call)
		},
	}
}

// RegisterVolumes registers the Volumes service on s.
func RegisterVolumes(s *grpc.Server, srv VolumesServer) {
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: volumesService,
		HandlerType: (*VolumesServer)(nil),
		Methods: []grpc.MethodDesc{
			stringMethod("GetVolumeByName", byNameMethod, func(ctx context.Context, s string) (any, error) { return srv.GetVolumeByName(ctx, s) }),
			stringMethod("GetVolumeUsage", usageMethod, func(ctx context.Context, s string) (any, error) { return srv.GetVolumeUsage(ctx, s) }),
		},
	}, srv)
}

// GetVolumeByName calls GetVolumeByName on a storage server or controller.
func GetVolumeByName(ctx context.Context, cc grpc.ClientConnInterface, name string) (*csi.Volume, error) {
	out := new(csi.Volume)
	if err := cc.Invoke(ctx, byNameMethod, wrapperspb.String(name), out); err != nil {
		return nil, err
	}
	return out, nil
}

// GetVolumeUsage calls GetVolumeUsage on a storage server or controller.
func GetVolumeUsage(ctx context.Context, cc grpc.ClientConnInterface, id string) (*csi.NodeGetVolumeStatsResponse, error) {
	out := new(csi.NodeGetVolumeStatsResponse)
	if err := cc.Invoke(ctx, usageMethod, wrapperspb.String(id), out); err != nil {
		return nil, err
	}
	return out, nil
}

// UsageResponse turns u into the usage message of GetVolumeUsage (and
// NodeGetVolumeStats): used and total bytes and inodes, total 0 when
// unlimited.
func UsageResponse(u VolumeUsage) *csi.NodeGetVolumeStatsResponse {
	entry := func(unit csi.VolumeUsage_Unit, used, total uint64) *csi.VolumeUsage {
		e := &csi.VolumeUsage{Unit: unit, Used: int64(used), Total: int64(total)}
		if total > 0 {
			e.Available = int64(total - min(used, total))
		}
		return e
	}
	return &csi.NodeGetVolumeStatsResponse{Usage: []*csi.VolumeUsage{
		entry(csi.VolumeUsage_BYTES, u.Bytes, u.MaxBytes),
		entry(csi.VolumeUsage_INODES, u.Inodes, u.MaxInodes),
	}}
}
