// Package server is Hangar's storage server role: a volume store on a local
// data directory, exported by the embedded NFSv3 server, and managed through
// a gRPC API (the CSI Controller service over local volume IDs, see
// api.StorageAPI).
package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/hangar-csi/hangar/pkg/csicommon"
	"github.com/hangar-csi/hangar/pkg/driver"
	"github.com/hangar-csi/hangar/pkg/endpoint"
	"github.com/hangar-csi/hangar/pkg/nfs"
	"github.com/hangar-csi/hangar/pkg/nfs/nfs4"
	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/server/api"
	"github.com/hangar-csi/hangar/pkg/volume"
	"github.com/hangar-csi/hangar/pkg/volume/localfs"
)

// Options configure a storage server.
type Options struct {
	DataDir   string
	Name      string // server name, the prefix of its volumes' CSI IDs
	NFSListen string // host:port for NFS and MOUNT
	APIListen string // CSI endpoint (tcp host:port or unix://) for the management API
	// Advertise is the host:port clients mount; default: the NFS listener's
	// address, with an unspecified host replaced by this machine's first
	// non-loopback address.
	Advertise string
	NFS       rpc.Options
	// NFS4 configures NFSv4.1; its StateDir defaults to DATA/nfs4-clients.
	NFS4 nfs4.Options
	Log  logr.Logger
	// AccessControl restricts each volume's export to the nodes it is
	// published to (ControllerPublishVolume); off, every client may mount.
	// Publications are recorded either way (in DATA/access).
	AccessControl bool
	// TLS, if set, serves the management API over TLS with it (see
	// ServerTLS for mutual TLS).
	TLS *tls.Config
	// Overcommit is how many times the disk's space volumes may be
	// promised in total (>= 1; 0 means 1: never promise more than the
	// disk holds).
	Overcommit float64
	// Metrics, if set, gets the server's metrics: NFS operations per
	// volume, volume usage, connections, API calls.
	Metrics prometheus.Registerer
}

// Server is a running storage server.
type Server struct {
	log   logr.Logger
	store *volume.Store
	fs    *localfs.FS
	nfs   *rpc.Server
	grpc  *grpc.Server
	nfsL  net.Listener
	apiL  net.Listener
	api   *api.StorageAPI
	vols  *volumes
	adv   string

	closeOnce sync.Once
	closeErr  error
}

// New opens the data directory, exports its volumes and listens; Serve
// starts answering.
func New(o Options) (s *Server, err error) {
	if err := csicommon.ValidServerName(o.Name); err != nil {
		return nil, err
	}
	s = &Server{log: o.Log}
	// Error paths return a nil *Server: close the one being built.
	building := s
	defer func() {
		if err != nil {
			building.Close()
		}
	}()
	if s.store, err = volume.Open(o.DataDir, o.Log.WithName("store")); err != nil {
		return nil, err
	}
	if s.fs, err = localfs.New(localfs.Options{KeyFile: filepath.Join(o.DataDir, "handle.key"), Log: o.Log.WithName("localfs")}); err != nil {
		return nil, fmt.Errorf("starting local file system: %w", err)
	}
	if s.nfsL, err = net.Listen("tcp", o.NFSListen); err != nil {
		return nil, fmt.Errorf("NFS listener: %w", err)
	}
	if s.apiL, err = endpoint.Listen(o.APIListen); err != nil {
		return nil, fmt.Errorf("API listener: %w", err)
	}
	s.adv = o.Advertise
	if s.adv == "" {
		s.adv = advertiseAddr(s.nfsL.Addr().(*net.TCPAddr))
	}
	access, err := api.OpenAccess(filepath.Join(o.DataDir, "access"), o.AccessControl)
	if err != nil {
		return nil, err
	}
	vols, err := newVolumes(s.fs, s.store, o.Overcommit, o.Log.WithName("volumes"))
	if err != nil {
		return nil, err
	}
	s.api = &api.StorageAPI{Store: s.store, Exports: vols, Access: access, Quota: vols, Freezer: vols, Name: o.Name, NFSAddr: s.adv, Log: o.Log}
	if vols.trustSaved, err = vols.takeClean(); err != nil {
		return nil, err
	}
	err = s.api.ExportAll()
	vols.trustSaved = false
	if err != nil {
		return nil, err
	}
	if err := access.Prune(func(id string) bool { _, err := s.store.Get(id); return err == nil }); err != nil {
		return nil, err
	}
	nfsOpts := o.NFS
	if nfsOpts.Log.GetSink() == nil {
		nfsOpts.Log = o.Log.WithName("nfs")
	}
	served, gopts := s.instrument(o.Metrics, vols)
	v4 := o.NFS4
	if v4.StateDir == "" {
		v4.StateDir = filepath.Join(o.DataDir, "nfs4-clients")
	}
	s.nfs = nfs.NewServer(served, nfsOpts, v4)
	if o.TLS != nil {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(o.TLS)))
	}
	s.grpc = endpoint.NewGRPCServer(o.Log.WithName("api"), gopts...)
	s.api.Register(s.grpc)
	csi.RegisterIdentityServer(s.grpc, &driver.Identity{Manifest: map[string]string{csicommon.ManifestServer: o.Name}})
	// Only a server that exported every volume saves every volume's usage
	// when it closes, so only it may record a clean shutdown.
	s.vols = vols
	return s, nil
}

// NFSAddr is the address clients mount (advertised).
func (s *Server) NFSAddr() string { return s.adv }

// NFSListenAddr is the NFS listener's actual address.
func (s *Server) NFSListenAddr() string { return s.nfsL.Addr().String() }

// APIAddr is the management API listener's address.
func (s *Server) APIAddr() string { return s.apiL.Addr().String() }

// Store is the server's volume store.
func (s *Server) Store() *volume.Store { return s.store }

// Serve answers NFS and API requests until Close; it returns the first
// serving error, or nil after Close.
func (s *Server) Serve() error {
	errc := make(chan error, 2)
	go func() { errc <- s.nfs.Serve(s.nfsL) }()
	go func() { errc <- s.grpc.Serve(s.apiL) }()
	s.log.Info("storage server serving", "nfs", s.nfsL.Addr().String(), "advertise", s.adv, "api", s.apiL.Addr().String(), "volumes", s.store.Count())
	err := <-errc
	s.Close()
	err2 := <-errc
	if closedErr(err) {
		err = nil
	}
	if err == nil && !closedErr(err2) {
		err = err2
	}
	return err
}

// closedErr reports the errors Serve's loops return when Close ran, even
// before they started.
func closedErr(err error) bool {
	return err == nil || errors.Is(err, grpc.ErrServerStopped) || errors.Is(err, net.ErrClosed) || errors.Is(err, rpc.ErrServerClosed)
}

// Close stops serving (letting running API calls finish) and releases the
// data directory.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.grpc != nil {
			s.grpc.GracefulStop()
		} else if s.apiL != nil {
			s.apiL.Close()
		}
		if s.api != nil {
			s.api.Close() // background snapshot copies
		}
		if s.nfs != nil {
			errs = append(errs, s.nfs.Close())
		} else if s.nfsL != nil {
			s.nfsL.Close()
		}
		if s.fs != nil {
			errs = append(errs, s.fs.Close())
			if s.vols != nil && errors.Join(errs...) == nil {
				if err := s.vols.markClean(); err != nil {
					errs = append(errs, fmt.Errorf("recording a clean shutdown: %w", err))
				}
			}
		}
		if s.store != nil {
			errs = append(errs, s.store.Close())
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// advertiseAddr picks the address clients should mount for listener a.
func advertiseAddr(a *net.TCPAddr) string {
	if !a.IP.IsUnspecified() {
		return a.String()
	}
	host := "127.0.0.1"
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, ia := range addrs {
			if ipn, ok := ia.(*net.IPNet); ok && ipn.IP.To4() != nil && ipn.IP.IsGlobalUnicast() {
				host = ipn.IP.String()
				break
			}
		}
	}
	return net.JoinHostPort(host, fmt.Sprint(a.Port))
}

// DefaultName derives a server name from a host name.
func DefaultName(hostname string) string {
	n := strings.ToLower(hostname)
	if csicommon.ValidServerName(n) == nil {
		return n
	}
	return "local"
}
