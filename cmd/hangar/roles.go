package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	mount "k8s.io/mount-utils"

	"github.com/hangar-csi/hangar/pkg/csicommon"
	"github.com/hangar-csi/hangar/pkg/driver"
	"github.com/hangar-csi/hangar/pkg/endpoint"
	"github.com/hangar-csi/hangar/pkg/kubeletplugin"
	"github.com/hangar-csi/hangar/pkg/nfs"
	"github.com/hangar-csi/hangar/pkg/nfs/nfs4"
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
	access := fs.Bool("access-control", false, "let only nodes a volume is published to (ControllerPublishVolume) reach it, read-only if published so")
	tlsFlags := addTLSFlags(fs, "management API")
	overcommit := fs.Float64("overcommit-ratio", 1, "how many times the data disk's space volumes may be promised in total (>= 1; 1: never promise more than the disk holds)")
	mf := addMetricsFlags(fs)
	nfsOpts := addNFSFlags(fs)
	return func(ctx context.Context, log logr.Logger, args []string) error {
		if *data == "" {
			return usagef("--data is required")
		}
		nfsO, v4O, err := nfsOpts()
		if err != nil {
			return err
		}
		if len(args) > 0 {
			return usagef("unexpected arguments %q", args)
		}
		var tlsConf *tls.Config
		if tlsFlags.set() {
			var err error
			if tlsConf, err = server.ServerTLS(*tlsFlags.ca, *tlsFlags.cert, *tlsFlags.key); err != nil {
				return usagef("--tls-*: %v", err)
			}
		} else if network, addr, _ := endpoint.Parse(*apiListen); network == "tcp" && !loopback(addr) {
			log.Info("WARNING: management API without TLS on a non-loopback address: anyone who reaches it can create, delete and publish volumes; set --tls-ca, --tls-cert and --tls-key")
		}
		reg, err := mf.start(ctx, log)
		if err != nil {
			return err
		}
		srv, err := server.New(server.Options{DataDir: *data, Name: *name, NFSListen: *nfsListen, APIListen: *apiListen, Advertise: *advertise, Log: log, AccessControl: *access, TLS: tlsConf,
			Overcommit: *overcommit, Metrics: registerer(reg), NFS: nfsO, NFS4: v4O})
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
	csiEndpoint := fs.String("csi-endpoint", "unix:///csi/csi.sock", "CSI endpoint to serve")
	servers := fs.String("servers", "", "storage servers as name=host:port[,name=host:port...] (their --name and --api-listen)")
	serversDNS := fs.String("servers-dns", "", "discover storage servers instead: host:port, every address host resolves to is a server's API (a headless Service in Kubernetes)")
	interval := fs.Duration("discovery-interval", 30*time.Second, "how often --servers-dns is resolved again")
	tlsFlags := addTLSFlags(fs, "storage servers' management API")
	serverName := fs.String("tls-server-name", server.DefaultTLSServerName, "name the storage servers' certificates must carry")
	maxVols := fs.Int64("max-volumes-per-node", 0, "how many Hangar volumes one node may have published (0: no limit); give the node plugin and the controller the same number")
	mf := addMetricsFlags(fs)
	hf := addHealthFlags(fs)
	return func(ctx context.Context, log logr.Logger, args []string) error {
		if (*servers == "") == (*serversDNS == "") {
			return usagef("give exactly one of --servers and --servers-dns")
		}
		if *maxVols < 0 {
			return usagef("--max-volumes-per-node must not be negative")
		}
		var dialOpts []grpc.DialOption
		if tlsFlags.set() {
			conf, err := server.ClientTLS(*tlsFlags.ca, *tlsFlags.cert, *tlsFlags.key, *serverName)
			if err != nil {
				return usagef("--tls-*: %v", err)
			}
			dialOpts = append(dialOpts, grpc.WithTransportCredentials(credentials.NewTLS(conf)))
		}
		newCtrl := func(refs []driver.ServerRef) (*driver.Controller, error) {
			c, err := driver.NewController(refs, log, dialOpts...)
			if err == nil {
				c.MaxVolumesPerNode = *maxVols
			}
			return c, err
		}
		sw := &switchableController{}
		var disc *discovery
		if *servers != "" {
			refs, err := driver.ParseServers(*servers)
			if err != nil {
				return usagef("--servers: %v", err)
			}
			ctrl, err := newCtrl(refs)
			if err != nil {
				return err
			}
			sw.cur.Store(ctrl)
		} else {
			var err error
			if disc, err = newDiscovery(*serversDNS, log.WithName("discovery"), append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, dialOpts...)); err != nil {
				return usagef("--servers-dns: %v", err)
			}
			ctrl, err := newCtrl(nil)
			if err != nil {
				return err
			}
			sw.cur.Store(ctrl)
			disc.apply(ctx, sw, newCtrl)
			go disc.run(ctx, sw, *interval, newCtrl)
		}
		defer func() { sw.cur.Load().Close() }()
		l, err := endpoint.Listen(*csiEndpoint)
		if err != nil {
			return err
		}
		reg, err := mf.start(ctx, log)
		if err != nil {
			return err
		}
		if err := hf.start(ctx, log, *csiEndpoint); err != nil {
			return err
		}
		g := endpoint.NewGRPCServer(log, grpcMetrics(reg, "controller")...)
		csi.RegisterIdentityServer(g, &driver.Identity{})
		sw.register(g)
		log.Info("controller serving", "endpoint", *csiEndpoint, "servers", *servers, "serversDNS", *serversDNS, "tls", tlsFlags.set())
		return serveUntilDone(ctx, g, l)
	}
}

// nodeSetup returns the node's mounter and the node ID it reports: its
// name with the addresses its NFS client mounts from (NAME@IP,...).
func nodeSetup(mounterKind, name, addrs string) (mount.Interface, string, error) {
	m, err := newMounter(mounterKind)
	if err != nil {
		return nil, "", err
	}
	ips, err := csicommon.ParseNodeAddresses(addrs)
	if err != nil {
		return nil, "", usagef("--node-address: %v", err)
	}
	return m, csicommon.FormatNodeID(name, ips), nil
}

// newMounter returns the node's mounter: mount(2) itself (the default, so
// the image needs no mount.nfs), or mount(8). "record" is test-only: it
// records mounts in memory (this lets tests run on hosts without an NFS
// client; the NFS probe before each mount still goes over the network).
func newMounter(kind string) (mount.Interface, error) {
	switch kind {
	case "kernel":
		return driver.NewKernelMounter(), nil
	case "mount":
		return mount.New(""), nil
	case "record":
		return mount.NewFakeMounter(nil), nil
	}
	return nil, usagef("--mounter must be kernel or mount, not %q", kind)
}

func nodeCmd(fs *flag.FlagSet) func(context.Context, logr.Logger, []string) error {
	csiEndpoint := fs.String("csi-endpoint", "unix:///csi/csi.sock", "CSI endpoint to serve")
	nodeID := fs.String("node-id", hostname(), "node name (the Kubernetes node name)")
	nodeAddr := fs.String("node-address", "", "IP address(es), comma-separated, this node's NFS client mounts from; reported in the node ID (NAME@IP) so ControllerPublishVolume can allow them")
	mounterKind := fs.String("mounter", "kernel", "how to mount NFS: kernel (mount(2), no helper needed) or mount (mount(8) with mount.nfs)")
	probeTimeout := fs.Duration("probe-timeout", 5*time.Second, "how long the NFS server may take to answer the pre-mount probe")
	maxVols := fs.Int64("max-volumes-per-node", 0, "how many Hangar volumes one node may have published (0: no limit); give the node plugin and the controller the same number")
	regDir := fs.String("registration-dir", "", "register with the kubelet through its plugin registration directory (e.g. /var/lib/kubelet/plugins_registry, as mounted in this container); empty: leave it to the node-driver-registrar sidecar")
	regPath := fs.String("kubelet-registration-path", "", "path of the CSI socket as the kubelet sees it (default: the --csi-endpoint path)")
	mf := addMetricsFlags(fs)
	hf := addHealthFlags(fs)
	return func(ctx context.Context, log logr.Logger, args []string) error {
		if *maxVols < 0 {
			return usagef("--max-volumes-per-node must not be negative")
		}
		m, id, err := nodeSetup(*mounterKind, *nodeID, *nodeAddr)
		if err != nil {
			return err
		}
		*nodeID = id
		var registrar *kubeletplugin.Registrar
		if *regDir != "" {
			if *regPath == "" {
				if network, addr, err := endpoint.Parse(*csiEndpoint); err == nil && network == "unix" {
					*regPath = addr
				}
			}
			if !filepath.IsAbs(*regPath) {
				return usagef("--kubelet-registration-path must be the absolute path of the CSI socket on the host (the kubelet dials only unix sockets), not %q", *regPath)
			}
			registrar = &kubeletplugin.Registrar{DriverName: csicommon.DriverName, Endpoint: *regPath, Log: log.WithName("registration")}
		}
		l, err := endpoint.Listen(*csiEndpoint)
		if err != nil {
			return err
		}
		reg, err := mf.start(ctx, log)
		if err != nil {
			return err
		}
		if err := hf.start(ctx, log, *csiEndpoint); err != nil {
			return err
		}
		g := endpoint.NewGRPCServer(log, grpcMetrics(reg, "node")...)
		csi.RegisterIdentityServer(g, &driver.Identity{})
		csi.RegisterNodeServer(g, &driver.Node{NodeID: *nodeID, Mounter: m, Probe: server.ProbeNFS, ProbeTimeout: *probeTimeout, MaxVolumesPerNode: *maxVols})
		log.Info("node plugin serving", "endpoint", *csiEndpoint, "nodeID", *nodeID, "mounter", *mounterKind)
		if registrar == nil {
			return serveUntilDone(ctx, g, l)
		}
		// The kubelet dials the CSI socket once registered, so register
		// only once it is being served; a refused registration ends the
		// process (as the node-driver-registrar does) so it restarts and
		// registers afresh.
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		regErr := make(chan error, 1)
		go func() {
			err := registrar.Serve(ctx, kubeletplugin.SocketPath(*regDir, csicommon.DriverName))
			regErr <- err
			if err != nil {
				cancel()
			}
		}()
		err = serveUntilDone(ctx, g, l)
		cancel()
		if rerr := <-regErr; rerr != nil {
			return rerr
		}
		return err
	}
}

func runCmd(fs *flag.FlagSet) func(context.Context, logr.Logger, []string) error {
	data := fs.String("data", "./hangar-data", "data directory holding the volumes")
	csiEndpoint := fs.String("csi-endpoint", "", "CSI endpoint to serve (default unix://DATA/csi.sock)")
	nfsListen := fs.String("nfs-listen", "127.0.0.1:2049", "NFS (and MOUNT) listen address")
	advertise := fs.String("advertise", "", "host:port that clients mount (default: the NFS listen address)")
	name := fs.String("name", "local", "server name: the prefix of volume IDs")
	nodeID := fs.String("node-id", hostname(), "node name reported to the CO")
	nodeAddr := fs.String("node-address", "127.0.0.1", "IP address(es) this machine's NFS client mounts from (see \"hangar help node\")")
	access := fs.Bool("access-control", false, "let only nodes a volume is published to reach it (off: hand mounts work)")
	mounterKind := fs.String("mounter", "kernel", "how to mount NFS: kernel (mount(2), no helper needed) or mount (mount(8) with mount.nfs)")
	maxVols := fs.Int64("max-volumes-per-node", 0, "how many Hangar volumes this node may have published (0: no limit)")
	nfsOpts := addNFSFlags(fs)
	return func(ctx context.Context, log logr.Logger, args []string) error {
		if *maxVols < 0 {
			return usagef("--max-volumes-per-node must not be negative")
		}
		nfsO, v4O, err := nfsOpts()
		if err != nil {
			return err
		}
		m, id, err := nodeSetup(*mounterKind, *nodeID, *nodeAddr)
		if err != nil {
			return err
		}
		*nodeID = id
		abs, err := filepath.Abs(*data)
		if err != nil {
			return err
		}
		if *csiEndpoint == "" {
			*csiEndpoint = "unix://" + filepath.Join(abs, "csi.sock")
		}
		apiSock := "unix://" + filepath.Join(abs, "api.sock")
		srv, err := server.New(server.Options{DataDir: abs, Name: *name, NFSListen: *nfsListen, APIListen: apiSock, Advertise: *advertise, Log: log.WithName("server"), AccessControl: *access, NFS: nfsO, NFS4: v4O})
		if err != nil {
			return err
		}
		srvErr := make(chan error, 1)
		go func() { srvErr <- srv.Serve() }()
		defer func() {
			srv.Close()
			log.V(1).Info("storage server stopped")
		}()

		ctrl, err := driver.NewController([]driver.ServerRef{{Name: *name, Addr: apiSock}}, log.WithName("controller"))
		if err != nil {
			return err
		}
		ctrl.MaxVolumesPerNode = *maxVols
		defer func() {
			ctrl.Close()
			log.V(1).Info("controller stopped")
		}()
		l, err := endpoint.Listen(*csiEndpoint)
		if err != nil {
			return err
		}
		g := endpoint.NewGRPCServer(log.WithName("csi"))
		csi.RegisterIdentityServer(g, &driver.Identity{})
		csi.RegisterControllerServer(g, ctrl)
		csi.RegisterGroupControllerServer(g, ctrl.Group())
		csicommon.RegisterVolumes(g, ctrl)
		csi.RegisterNodeServer(g, &driver.Node{NodeID: *nodeID, Mounter: m, Probe: server.ProbeNFS, MaxVolumesPerNode: *maxVols})

		_, port, _ := net.SplitHostPort(srv.NFSAddr())
		fmt.Printf(`hangar %s running (Ctrl-C stops it)
  data:          %s
  CSI endpoint:  %s
  NFS server:    %s

Create a volume:
  hangar volume create myvol --size 1Gi --csi-endpoint %s
Mount it by hand (VOLUME-ID is the part after "%s:" in the volume ID):
  mount -t nfs -o %s %s:/VOLUME-ID /mnt
`, versionString(), abs, *csiEndpoint, srv.NFSAddr(), *csiEndpoint, *name,
			strings.Join(driver.MountOptions(port), ","), hostOf(srv.NFSAddr()))

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
	stateDir := fs.String("state-dir", "", "directory of the NFSv4 client records, kept across restarts so clients reclaim their opens and locks (default: .ROOTNAME.hangar-nfs4 next to the root)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file (for benchmarks)")
	nfsOpts := addNFSFlags(fs)
	return func(ctx context.Context, log logr.Logger, args []string) error {
		nfsO, v4O, err := nfsOpts()
		if err != nil {
			return err
		}
		if *root == "" {
			return usagef("--root is required")
		}
		if *cpuProfile != "" {
			f, err := os.Create(*cpuProfile)
			if err != nil {
				return fmt.Errorf("--cpuprofile: %w", err)
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				return fmt.Errorf("--cpuprofile: %w", err)
			}
			defer pprof.StopCPUProfile()
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
		if *stateDir == "" {
			*stateDir = filepath.Join(filepath.Dir(abs), "."+filepath.Base(abs)+".hangar-nfs4")
		}
		v4O.StateDir = *stateDir
		lfs, err := localfs.New(localfs.Options{KeyFile: *keyFile, Log: log.WithName("localfs")})
		if err != nil {
			return err
		}
		defer lfs.Close()
		// The export's identity is derived from its path so handles survive
		// restarts.
		sum := sha256.Sum256([]byte(abs))
		if err := lfs.AddExport("/", abs, hex.EncodeToString(sum[:8]), nil); err != nil {
			return err
		}
		l, err := net.Listen("tcp", *listen)
		if err != nil {
			return err
		}
		nfsO.Log = log.WithName("nfs")
		srv := nfs.NewServer(lfs, nfsO, v4O)
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(l) }()
		_, port, _ := net.SplitHostPort(l.Addr().String())
		log.Info("serving NFS", "root", abs, "listen", l.Addr().String())
		fmt.Printf("mount with:\n  mount -t nfs -o %s %s:/ /mnt\nor over NFSv4.1:\n  mount -t nfs -o vers=4.1,proto=tcp,port=%s %s:/ /mnt\n",
			strings.Join(driver.MountOptions(port), ","), hostOf(l.Addr().String()), port, hostOf(l.Addr().String()))
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

// addNFSFlags adds the NFS server's connection limits and the NFSv4 lease
// time; the function returns them as options.
func addNFSFlags(fs *flag.FlagSet) func() (rpc.Options, nfs4.Options, error) {
	maxConns := fs.Int("nfs-max-conns", 0, "most NFS connections at once (0: 4096, or half the open-file limit if lower); a new one beyond it closes the least recently active idle one")
	perAddr := fs.Int("nfs-max-conns-per-addr", 64, "most NFS connections from one client IP address (a Linux client uses one per server)")
	idle := fs.Duration("nfs-idle-timeout", 5*time.Minute, "close an NFS connection idle this long")
	record := fs.Duration("nfs-record-timeout", 30*time.Second, "close an NFS connection whose call takes longer than this to arrive once begun")
	write := fs.Duration("nfs-write-timeout", 30*time.Second, "close an NFS connection that takes no reply bytes for this long")
	backlog := fs.Int("nfs-max-reply-backlog", 1<<20, "bytes of replies an NFS client may leave unread before its calls wait (file data not counted)")
	lease := fs.Duration("lease-time", 90*time.Second, "NFSv4 lease: a client silent this long loses its opens and locks once they are in someone's way; after a restart, the longest grace period ("+minLease.String()+" to "+maxLease.String()+")")
	return func() (rpc.Options, nfs4.Options, error) {
		if *lease < minLease || *lease > maxLease {
			return rpc.Options{}, nfs4.Options{}, usagef("--lease-time %s: must be between %s and %s", *lease, minLease, maxLease)
		}
		for name, v := range map[string]int64{"nfs-max-conns": int64(*maxConns), "nfs-max-conns-per-addr": int64(*perAddr),
			"nfs-idle-timeout": int64(*idle), "nfs-record-timeout": int64(*record), "nfs-write-timeout": int64(*write), "nfs-max-reply-backlog": int64(*backlog)} {
			if v < 0 || v == 0 && name != "nfs-max-conns" {
				return rpc.Options{}, nfs4.Options{}, usagef("--%s must be positive", name)
			}
		}
		return rpc.Options{MaxConns: *maxConns, MaxConnsPerAddr: *perAddr, IdleTimeout: *idle, RecordTimeout: *record,
			WriteTimeout: *write, MaxReplyBacklog: *backlog}, nfs4.Options{LeaseTime: *lease}, nil
	}
}

// Bounds of --lease-time: below 10s a client busy for a moment (a long
// fsync, a GC pause) loses its locks; above an hour a dead client's locks
// and a restart's grace period hold everyone up too long.
const (
	minLease = 10 * time.Second
	maxLease = time.Hour
)

// tlsFlags are the --tls-ca, --tls-cert and --tls-key flags.
type tlsFlags struct{ ca, cert, key *string }

func addTLSFlags(fs *flag.FlagSet, what string) tlsFlags {
	return tlsFlags{
		ca:   fs.String("tls-ca", "", "CA certificate (PEM) for mutual TLS on the "+what+"; with --tls-cert and --tls-key"),
		cert: fs.String("tls-cert", "", "this process's certificate (PEM) for mutual TLS"),
		key:  fs.String("tls-key", "", "the key (PEM) of --tls-cert"),
	}
}

func (t tlsFlags) set() bool { return *t.ca != "" || *t.cert != "" || *t.key != "" }

// loopback reports whether a listen address binds only to loopback.
func loopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
