package csicommon

import (
	"context"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The storage servers' management API is the CSI Controller service plus
// one method CSI lacks: finding a volume by name, which the controller needs
// to keep CreateVolume idempotent across servers. It is a hand-written gRPC
// service reusing existing messages (a string in, a csi.Volume out), so no
// code generation is needed.

const lookupMethod = "/hangar.server.v1.Volumes/GetVolumeByName"

// VolumeByNameFunc returns the volume called name, or a NotFound status.
type VolumeByNameFunc func(ctx context.Context, name string) (*csi.Volume, error)

// RegisterVolumeByName registers the lookup method on s.
func RegisterVolumeByName(s *grpc.Server, fn VolumeByNameFunc) {
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: "hangar.server.v1.Volumes",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "GetVolumeByName",
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
				return icpt(ctx, in, &grpc.UnaryServerInfo{FullMethod: lookupMethod}, call)
			},
		}},
	}, struct{}{})
}

// GetVolumeByName calls the lookup method on a storage server.
func GetVolumeByName(ctx context.Context, cc grpc.ClientConnInterface, name string) (*csi.Volume, error) {
	out := new(csi.Volume)
	if err := cc.Invoke(ctx, lookupMethod, wrapperspb.String(name), out); err != nil {
		return nil, err
	}
	return out, nil
}
