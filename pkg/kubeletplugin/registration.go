// Package kubeletplugin lets the node plugin register itself with the
// kubelet and report its own health, doing what the node-driver-registrar
// and livenessprobe sidecars do, so a node needs one image instead of three.
//
// Registration is the kubelet's plugin-watcher protocol: the plugin serves
// the pluginregistration.Registration gRPC service on a unix socket in the
// kubelet's plugins_registry directory; the kubelet notices the socket,
// asks GetInfo for the driver's name and CSI endpoint, connects to that
// endpoint (NodeGetInfo), and reports the outcome with
// NotifyRegistrationStatus.
package kubeletplugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// SupportedVersions are the CSI plugin API versions the kubelet may use
// with the driver (the kubelet's CSI plugin handler accepts 1.x).
var SupportedVersions = []string{"1.0.0"}

// ErrRegistrationFailed is returned by Serve when the kubelet reports that
// it could not register the driver. The node-driver-registrar exits then so
// that its container restarts and registers afresh; callers should do the
// same.
var ErrRegistrationFailed = errors.New("kubelet refused the plugin registration")

// Registrar serves the registration API for one CSI driver.
type Registrar struct {
	// DriverName is the CSI driver name the kubelet registers.
	DriverName string
	// Endpoint is the path of the driver's CSI socket as the kubelet sees
	// it (a host path, which differs from the path inside a container).
	Endpoint string
	Log      logr.Logger
	// CheckInterval is how often Serve checks that its socket still exists
	// and re-creates it if someone removed it (default 10s).
	CheckInterval time.Duration
}

// SocketPath is where the registration socket of driver goes in the
// kubelet's plugins_registry directory dir; the name is the one the
// node-driver-registrar uses, so switching between the two replaces the
// socket rather than registering twice.
func SocketPath(dir, driver string) string {
	return filepath.Join(dir, driver+"-reg.sock")
}

// Serve serves the registration API on socket until ctx ends (nil) or the
// kubelet reports a failed registration (ErrRegistrationFailed). If the
// socket file disappears (an admin or a kubelet cleanup removed it), Serve
// listens again so the kubelet sees a new plugin and registers it again.
func (r *Registrar) Serve(ctx context.Context, socket string) error {
	if r.DriverName == "" || r.Endpoint == "" {
		return fmt.Errorf("registrar needs a driver name and the CSI endpoint the kubelet dials")
	}
	interval := r.CheckInterval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	failed := make(chan error, 1)
	for {
		l, err := listenUnix(socket)
		if err != nil {
			return err
		}
		id, err := os.Lstat(socket)
		if err != nil {
			l.Close()
			return fmt.Errorf("registration socket: %w", err)
		}
		g := grpc.NewServer()
		registerapi.RegisterRegistrationServer(g, &service{r: r, failed: failed})
		go g.Serve(l) //nolint:errcheck // Stop below ends it; its error says nothing more
		r.Log.Info("serving kubelet plugin registration", "socket", socket, "driver", r.DriverName, "endpoint", r.Endpoint)

		err = r.watch(ctx, socket, id, interval, failed)
		stop(g)
		if err != nil || ctx.Err() != nil {
			// Leave no socket behind for the kubelet to dial in vain.
			if cur, e := os.Lstat(socket); e == nil && os.SameFile(cur, id) {
				os.Remove(socket)
			}
			return err
		}
		r.Log.Info("registration socket was removed; listening again", "socket", socket)
	}
}

// watch returns nil when ctx ends or the socket file is gone or replaced,
// and the kubelet's error if it reports one.
func (r *Registrar) watch(ctx context.Context, socket string, id os.FileInfo, interval time.Duration, failed <-chan error) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-failed:
			return err
		case <-t.C:
			if cur, err := os.Lstat(socket); err != nil || !os.SameFile(cur, id) {
				return nil
			}
		}
	}
}

type service struct {
	registerapi.UnimplementedRegistrationServer
	r      *Registrar
	failed chan<- error
}

func (s *service) GetInfo(ctx context.Context, req *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	s.r.Log.V(1).Info("kubelet asked for plugin info")
	return &registerapi.PluginInfo{
		Type:              registerapi.CSIPlugin,
		Name:              s.r.DriverName,
		Endpoint:          s.r.Endpoint,
		SupportedVersions: SupportedVersions,
	}, nil
}

func (s *service) NotifyRegistrationStatus(ctx context.Context, st *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	if st == nil {
		return nil, status.Error(codes.InvalidArgument, "empty registration status")
	}
	if st.PluginRegistered {
		s.r.Log.Info("registered with the kubelet", "driver", s.r.DriverName)
		return &registerapi.RegistrationStatusResponse{}, nil
	}
	err := fmt.Errorf("%w: %s", ErrRegistrationFailed, st.Error)
	s.r.Log.Error(err, "kubelet could not register the plugin")
	select {
	case s.failed <- err:
	default: // already failing
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}

// listenUnix listens on socket, replacing a stale socket file but nothing
// else: a regular file there is someone else's and stays.
func listenUnix(socket string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(socket), 0o750); err != nil {
		return nil, fmt.Errorf("registration directory: %w", err)
	}
	if fi, err := os.Lstat(socket); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", socket)
		}
		if err := os.Remove(socket); err != nil {
			return nil, fmt.Errorf("removing stale socket %s: %w", socket, err)
		}
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", socket, err)
	}
	// Close must not unlink by name: the file there may be a newer
	// registrar's socket by then. Serve removes its own socket.
	l.SetUnlinkOnClose(false)
	return l, nil
}

// stop lets calls in flight finish (the kubelet should get its answer to
// NotifyRegistrationStatus) but waits for them only briefly.
func stop(g *grpc.Server) {
	done := make(chan struct{})
	go func() { g.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		g.Stop()
	}
}
