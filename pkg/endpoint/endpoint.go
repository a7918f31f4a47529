package endpoint

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/hangar-csi/hangar/pkg/csicommon"
	"github.com/hangar-csi/hangar/pkg/logging"
)

// Parse splits a CSI endpoint ("unix:///path", "unix:path",
// "tcp://host:port" or plain "host:port") into a network and address.
func Parse(ep string) (network, addr string, err error) {
	switch {
	case strings.HasPrefix(ep, "unix://"):
		network, addr = "unix", strings.TrimPrefix(ep, "unix://")
	case strings.HasPrefix(ep, "unix:"):
		network, addr = "unix", strings.TrimPrefix(ep, "unix:")
	case strings.HasPrefix(ep, "tcp://"):
		network, addr = "tcp", strings.TrimPrefix(ep, "tcp://")
	case strings.Contains(ep, "://"):
		return "", "", fmt.Errorf("endpoint %q: unsupported scheme (use unix:// or tcp://)", ep)
	default:
		network, addr = "tcp", ep
	}
	if addr == "" {
		return "", "", fmt.Errorf("endpoint %q has no address", ep)
	}
	return network, addr, nil
}

// Listen listens on a CSI endpoint, replacing a stale unix socket.
func Listen(ep string) (net.Listener, error) {
	network, addr, err := Parse(ep)
	if err != nil {
		return nil, err
	}
	if network == "unix" {
		if err := os.Remove(addr); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("removing stale socket %s: %w", addr, err)
		}
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", ep, err)
	}
	return l, nil
}

// DialTarget turns a CSI endpoint into a gRPC dial target.
func DialTarget(ep string) (string, error) {
	network, addr, err := Parse(ep)
	if err != nil {
		return "", err
	}
	if network == "unix" {
		if filepath.IsAbs(addr) {
			return "unix://" + addr, nil
		}
		return "unix:" + addr, nil
	}
	return "passthrough:///" + addr, nil
}

// NewGRPCServer returns a gRPC server that logs every call through the
// request-ID interceptor and refuses requests over the CSI size limits
// before any service sees them; opts add to that (e.g. grpc.Creds).
func NewGRPCServer(log logr.Logger, opts ...grpc.ServerOption) *grpc.Server {
	return grpc.NewServer(append([]grpc.ServerOption{grpc.ChainUnaryInterceptor(logging.UnaryInterceptor(log), checkSizeLimits)}, opts...)...)
}

func checkSizeLimits(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	if m, ok := req.(proto.Message); ok {
		if err := csicommon.CheckSizeLimits(m); err != nil {
			return nil, err
		}
	}
	return next(ctx, req)
}
