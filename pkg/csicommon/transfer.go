package csicommon

import (
	"context"
	"fmt"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Volumes restored or cloned onto another storage server than their
// source's travel through the controller, over the same authenticated
// management API connections as every other call: the source server's
// Export streams the tree as frames (pkg/volume/treecopy's stream format,
// each frame one BytesValue), the target server's Import receives the
// CreateVolumeRequest first and then the frames, and creates the volume.
// Hand-written like GetVolumeByName, so no code generation is needed.

const (
	transferService = "hangar.server.v1.Transfer"
	exportMethod    = "/" + transferService + "/Export"
	importMethod    = "/" + transferService + "/Import"
)

// Transfer is what a storage server implements for streaming.
type Transfer interface {
	// Export sends the tree of source ("snapshot/<local-id>" or
	// "volume/<local-id>") frame by frame.
	Export(ctx context.Context, source string, send func(frame []byte) error) error
	// Import creates the volume req asks for from the frames recv returns
	// (io.EOF after the last).
	Import(ctx context.Context, req *csi.CreateVolumeRequest, recv func() ([]byte, error)) (*csi.CreateVolumeResponse, error)
}

var (
	exportDesc = grpc.StreamDesc{StreamName: "Export", ServerStreams: true}
	importDesc = grpc.StreamDesc{StreamName: "Import", ClientStreams: true}
)

// RegisterTransfer registers t's streaming methods on s.
func RegisterTransfer(s *grpc.Server, t Transfer) {
	exp, imp := exportDesc, importDesc
	exp.Handler = func(_ any, stream grpc.ServerStream) error {
		in := new(wrapperspb.StringValue)
		if err := stream.RecvMsg(in); err != nil {
			return err
		}
		return t.Export(stream.Context(), in.GetValue(), func(f []byte) error {
			return stream.SendMsg(wrapperspb.Bytes(f))
		})
	}
	imp.Handler = func(_ any, stream grpc.ServerStream) error {
		first := new(wrapperspb.BytesValue)
		if err := stream.RecvMsg(first); err != nil {
			return err
		}
		req := new(csi.CreateVolumeRequest)
		if err := proto.Unmarshal(first.GetValue(), req); err != nil {
			return fmt.Errorf("import: first message is not a CreateVolumeRequest: %w", err)
		}
		in := new(wrapperspb.BytesValue)
		resp, err := t.Import(stream.Context(), req, func() ([]byte, error) {
			if err := stream.RecvMsg(in); err != nil {
				return nil, err
			}
			return in.GetValue(), nil
		})
		if err != nil {
			return err
		}
		return stream.SendMsg(resp)
	}
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: transferService,
		HandlerType: (*any)(nil),
		Streams:     []grpc.StreamDesc{exp, imp},
	}, struct{}{})
}

// ExportStream starts an Export of source on a storage server; recv
// returns its frames, then io.EOF.
func ExportStream(ctx context.Context, cc grpc.ClientConnInterface, source string) (recv func() ([]byte, error), err error) {
	desc := exportDesc
	st, err := cc.NewStream(ctx, &desc, exportMethod)
	if err != nil {
		return nil, err
	}
	if err := st.SendMsg(wrapperspb.String(source)); err != nil {
		return nil, err
	}
	if err := st.CloseSend(); err != nil {
		return nil, err
	}
	in := new(wrapperspb.BytesValue)
	return func() ([]byte, error) {
		if err := st.RecvMsg(in); err != nil {
			return nil, err
		}
		return in.GetValue(), nil
	}, nil
}

// ImportStream starts an Import of req on a storage server: send passes
// frames, finish ends the stream and returns the server's answer (also
// after a send failed: that is where the server's error is).
func ImportStream(ctx context.Context, cc grpc.ClientConnInterface, req *csi.CreateVolumeRequest) (send func([]byte) error, finish func() (*csi.CreateVolumeResponse, error), err error) {
	desc := importDesc
	st, err := cc.NewStream(ctx, &desc, importMethod)
	if err != nil {
		return nil, nil, err
	}
	b, err := proto.Marshal(req)
	if err != nil {
		return nil, nil, err
	}
	if err := st.SendMsg(wrapperspb.Bytes(b)); err != nil {
		return nil, nil, err
	}
	send = func(f []byte) error { return st.SendMsg(wrapperspb.Bytes(f)) }
	finish = func() (*csi.CreateVolumeResponse, error) {
		st.CloseSend()
		resp := new(csi.CreateVolumeResponse)
		if err := st.RecvMsg(resp); err != nil {
			return nil, err
		}
		return resp, nil
	}
	return send, finish, nil
}
