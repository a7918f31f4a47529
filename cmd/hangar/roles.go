package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	mount "k8s.io/mount-utils"

	"github.com/hangar-csi/hangar/pkg/csi"
	"github.com/hangar-csi/hangar/pkg/nfs"
	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/server"
	"github.com/hangar-csi/hangar/pkg/volume/localfs"
)

const shutdownGrace = 10 * time.Second

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "local"
	}
	return h
}

// serveUntilDone serves srv on l until ctx ends, then stops gracefully.
func serveUntilDone(ctx context.Context, srv *grpc.Server, l net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		logr.FromContextOrDiscard(ctx).Info("shutting down")
		stopGracefully(srv)
		return nil
	}
}

func stopGracefully(srv *grpc.Server) {
	done := make(chan struct{})
	go func() { srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(shutdownGrace):
		srv.Stop()
	}
}

func serverCmd(fs *flag.FlagSet) func(context.Context, logr.Logger, []string) error {
	data := fs.String("data", "", "data directory holding the volumes (required)")
	nfsListen := fs.String("nfs-listen", ":2049", "NFS (and MOUNT) listen address")
	apiListen := fs.String("api-listen", ":7070", "management API listen address (host:port or unix:///path)")
	name := fs.String("name", server.DefaultName(hostname()), "server name: the prefix of its volume IDs; never change it once volumes exist")
	advertise := fs.String("advertise", "", "host:port that nodes mount (default: the NFS listen address, or this machine's first non-loopback address)")
	return func(ctx context.Context, log logr.Logger, args []string) error {
		if *data == "" {
			return usagef("--data is required")
		}
		if len(args) > 0 {
			return usagef("unexpected arguments %q", args)
		}
		srv, err := server.New(server.Options{DataDir: *data, Name: *name, NFSListen: *nfsListen, APIListen: *apiListen, Advertise: *advertise, Log: log})
		if err != nil {
			return err
		}
		return serveServer(ctx, log, srv)
	}
}

// serveServer runs srv until ctx ends.
func serveServer(ctx context.Context, log logr.Logger, srv *server.Server) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		log.Info("shutting down")
		srv.Close()
		return <-errc
	}
}

func controllerCmd(fs *flag.FlagSet) func(context.Context, logr.Logger, []string) error {
	endpoint := fs.String("csi-endpoint", "unix:///csi/csi.sock", "CSI endpoint to serve")
	servers := fs.String("servers", "", "storage servers as name=host:port[,name=host:port...] (their --name and --api-listen)")
	return func(ctx context.Context, log logr.Logger, args []string) error {
		refs, err := csi.ParseServers(*servers)
		if err != nil {
			return usagef("--servers: %v", err)
		}
		ctrl, err := csi.NewController(refs, log)
		if err != nil {
			return err
		}
		defer ctrl.Close()
		l, err := csi.Listen(*endpoint)
		if err != nil {
			return err
		}
		g := csi.NewGRPCServer(log)
		csipb.RegisterIdentityServer(g, &csi.Identity{})
		csipb.RegisterControllerServer(g, ctrl)
		log.Info("controller serving", "endpoint", *endpoint, "servers", *servers)
		return serveUntilDone(ctx, g, l)
	}
}

// newMounter returns the node's mounter. "record" is test-only: it records
// mounts in memory (this lets tests run on hosts without an NFS client;
// the NFS probe before each mount still goes over the network).
func newMounter(kind string) (mount.Interface, error) {
	switch kind {
	case "mount":
		return mount.New(""), nil
	case "record":
		return mount.NewFakeMounter(nil), nil
	}
	return nil, usagef("--mounter must be mount or record, not %q", kind)
}

func nodeCmd(fs *flag.FlagSet) func(context.Context, logr.Logger, []string) error {
	endpoint := fs.String("csi-endpoint", "unix:///csi/csi.sock", "CSI endpoint to serve")
	nodeID := fs.String("node-id", hostname(), "node ID reported to the CO (the Kubernetes node name)")
	mounterKind := fs.String("mounter", "mount", "test-only: record mounts instead of mounting")
	probeTimeout := fs.Duration("probe-timeout", 5*time.Second, "how long the NFS server may take to answer the pre-mount probe")
	return func(ctx context.Context, log logr.Logger, args []string) error {
		m, err := newMounter(*mounterKind)
		if err != nil {
			return err
		}
		l, err := csi.Listen(*endpoint)
		if err != nil {
			return err
		}
		g := csi.NewGRPCServer(log)
		csipb.RegisterIdentityServer(g, &csi.Identity{})
		csipb.RegisterNodeServer(g, &csi.Node{NodeID: *nodeID, Mounter: m, Probe: server.ProbeNFS, ProbeTimeout: *probeTimeout})
		log.Info("node plugin serving", "endpoint", *endpoint, "nodeID", *nodeID, "mounter", *mounterKind)
		return serveUntilDone(ctx, g, l)
	}
}

func runCmd(fs *flag.FlagSet) func(context.Context, logr.Logger, []string) error {
	data := fs.String("data", "./hangar-data", "data directory holding the volumes")
	endpoint := fs.String("csi-endpoint", "", "CSI endpoint to serve (default unix://DATA/csi.sock)")
	nfsListen := fs.String("nfs-listen", "127.0.0.1:2049", "NFS (and MOUNT) listen address")
	advertise := fs.String("advertise", "", "host:port that clients mount (default: the NFS listen address)")
	name := fs.String("name", "local", "server name: the prefix of volume IDs")
	nodeID := fs.String("node-id", hostname(), "node ID reported to the CO")
	mounterKind := fs.String("mounter", "mount", "test-only: record mounts instead of mounting")
	return func(ctx context.Context, log logr.Logger, args []string) error {
		m, err := newMounter(*mounterKind)
		if err != nil {
			return err
		}
		abs, err := filepath.Abs(*data)
		if err != nil {
			return err
		}
		if *endpoint == "" {
			*endpoint = "unix://" + filepath.Join(abs, "csi.sock")
		}
		apiSock := "unix://" + filepath.Join(abs, "api.sock")
		srv, err := server.New(server.Options{DataDir: abs, Name: *name, NFSListen: *nfsListen, APIListen: apiSock, Advertise: *advertise, Log: log.WithName("server")})
		if err != nil {
			return err
		}
		srvErr := make(chan error, 1)
		go func() { srvErr <- srv.Serve() }()
		defer func() {
			srv.Close()
			log.V(1).Info("storage server stopped")
		}()

		ctrl, err := csi.NewController([]csi.ServerRef{{Name: *name, Addr: apiSock}}, log.WithName("controller"))
		if err != nil {
			return err
		}
		defer func() {
			ctrl.Close()
			log.V(1).Info("controller stopped")
		}()
		l, err := csi.Listen(*endpoint)
		if err != nil {
			return err
		}
		g := csi.NewGRPCServer(log.WithName("csi"))
		csipb.RegisterIdentityServer(g, &csi.Identity{})
		csipb.RegisterControllerServer(g, ctrl)
		csipb.RegisterNodeServer(g, &csi.Node{NodeID: *nodeID, Mounter: m, Probe: server.ProbeNFS})

		_, port, _ := net.SplitHostPort(srv.NFSAddr())
		fmt.Printf(`hangar %s running (Ctrl-C stops it)
  data:          %s
  CSI endpoint:  %s
  NFS server:    %s

Create a volume:
  hangar volume create myvol --size 1Gi --csi-endpoint %s
Mount it by hand (VOLUME-ID is the part after "%s:" in the volume ID):
  mount -t nfs -o %s %s:/VOLUME-ID /mnt
`, versionString(), abs, *endpoint, srv.NFSAddr(), *endpoint, *name,
			strings.Join(csi.MountOptions(port), ","), hostOf(srv.NFSAddr()))

		errc := make(chan error, 1)
		go func() { errc <- serveUntilDone(ctx, g, l) }()
		select {
		case err := <-srvErr:
			stopGracefully(g)
			return fmt.Errorf("storage server: %w", err)
		case err := <-errc:
			log.V(1).Info("CSI endpoint stopped")
			return err
		}
	}
}

func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if strings.Contains(h, ":") {
		return "[" + h + "]"
	}
	return h
}

func nfsCmd(fs *flag.FlagSet) func(context.Context, logr.Logger, []string) error {
	root := fs.String("root", "", "directory to export as \"/\" (required)")
	listen := fs.String("listen", "127.0.0.1:2049", "NFS (and MOUNT) listen address")
	keyFile := fs.String("key-file", "", "file handle key, kept across restarts so clients' handles stay valid (default: .ROOTNAME.hangar-handle.key next to the root)")
	return func(ctx context.Context, log logr.Logger, args []string) error {
		if *root == "" {
			return usagef("--root is required")
		}
		abs, err := filepath.Abs(*root)
		if err != nil {
			return err
		}
		if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
			return fmt.Errorf("--root %s is not a directory", abs)
		}
		if *keyFile == "" {
			*keyFile = filepath.Join(filepath.Dir(abs), "."+filepath.Base(abs)+".hangar-handle.key")
		}
		lfs, err := localfs.New(localfs.Options{KeyFile: *keyFile, Log: log.WithName("localfs")})
		if err != nil {
			return err
		}
		defer lfs.Close()
		// The export's identity is derived from its path so handles survive
		// restarts.
		sum := sha256.Sum256([]byte(abs))
		if err := lfs.AddExport("/", abs, hex.EncodeToString(sum[:8])); err != nil {
			return err
		}
		l, err := net.Listen("tcp", *listen)
		if err != nil {
			return err
		}
		srv := nfs.NewServer(lfs, rpc.Options{Log: log.WithName("nfs")})
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(l) }()
		_, port, _ := net.SplitHostPort(l.Addr().String())
		log.Info("serving NFS", "root", abs, "listen", l.Addr().String())
		fmt.Printf("mount with:\n  mount -t nfs -o %s %s:/ /mnt\n", strings.Join(csi.MountOptions(port), ","), hostOf(l.Addr().String()))
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
			log.Info("shutting down")
			srv.Close()
			<-errc
			return nil
		}
	}
}
