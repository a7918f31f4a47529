package kubeletplugin

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Health answers GET /healthz by calling CSI Probe on the driver's own
// socket, as the livenessprobe sidecar does: a process whose gRPC server is
// wedged, or whose socket is gone, fails the kubelet's liveness probe and is
// restarted.
type Health struct {
	conn    *grpc.ClientConn
	timeout time.Duration
	log     logr.Logger
}

// NewHealth returns the health handler for the CSI endpoint at target (a
// gRPC dial target such as unix:///csi/csi.sock). Each probe may take
// timeout.
func NewHealth(target string, timeout time.Duration, log logr.Logger) (*Health, error) {
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("health check client for %s: %w", target, err)
	}
	return &Health{conn: conn, timeout: timeout, log: log}, nil
}

// Close closes the connection to the CSI endpoint.
func (h *Health) Close() error { return h.conn.Close() }

func (h *Health) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	resp, err := csi.NewIdentityClient(h.conn).Probe(ctx, &csi.ProbeRequest{})
	switch {
	case err != nil:
		h.log.Info("health check failed", "err", err)
		http.Error(w, fmt.Sprintf("CSI Probe: %v", err), http.StatusInternalServerError)
	case resp.GetReady() != nil && !resp.GetReady().GetValue():
		// An absent ready field means ready (CSI spec).
		http.Error(w, "CSI Probe: driver not ready", http.StatusInternalServerError)
	default:
		fmt.Fprintln(w, "ok")
	}
}

// ServeHealth serves h at /healthz on l until ctx ends.
func ServeHealth(ctx context.Context, l net.Listener, h *Health) error {
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(l); err != nil && err != http.ErrServerClosed {
		return fmt.Errorf("health endpoint: %w", err)
	}
	return nil
}
