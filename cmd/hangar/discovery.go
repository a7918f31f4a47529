package main

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"

	"github.com/hangar-csi/hangar/pkg/csicommon"
	"github.com/hangar-csi/hangar/pkg/driver"
)

// switchableController serves the CSI Controller and Volumes services from
// whichever *driver.Controller is current, so the set of storage servers can
// change without restarting the gRPC endpoint. It forwards every method of the
// generated service description, whatever driver.Controller implements.
type switchableController struct {
	cur atomic.Pointer[driver.Controller]
}

func (s *switchableController) register(g *grpc.Server) {
	forward := func(d grpc.ServiceDesc, srv func() any) {
		desc := d
		desc.Methods = make([]grpc.MethodDesc, len(d.Methods))
		for i, m := range d.Methods {
			h := m.Handler
			desc.Methods[i] = grpc.MethodDesc{MethodName: m.MethodName, Handler: func(_ any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
				return h(srv(), ctx, dec, icpt)
			}}
		}
		g.RegisterService(&desc, srv())
	}
	forward(csi.Controller_ServiceDesc, func() any { return s.cur.Load() })
	forward(csi.GroupController_ServiceDesc, func() any { return s.cur.Load().Group() })
	csicommon.RegisterVolumes(g, s)
}

func (s *switchableController) GetVolumeByName(ctx context.Context, name string) (*csi.Volume, error) {
	return s.cur.Load().GetVolumeByName(ctx, name)
}

func (s *switchableController) GetVolumeUsage(ctx context.Context, id string) (*csi.NodeGetVolumeStatsResponse, error) {
	return s.cur.Load().GetVolumeUsage(ctx, id)
}

// discovery finds storage servers by resolving a DNS name (in Kubernetes,
// a headless Service over the storage server pods) and asking each address
// for its server name (GetPluginInfo's manifest). Servers are only ever
// added or moved to a new address, never dropped: a server that is briefly
// not ready still holds its volumes.
type discovery struct {
	host, port string
	resolve    func(ctx context.Context, host string) ([]string, error)
	identify   func(ctx context.Context, addr string) (string, error)
	log        logr.Logger

	mu    sync.Mutex
	known map[string]string // server name -> API address
}

func newDiscovery(hostport string, log logr.Logger, dialOpts []grpc.DialOption) (*discovery, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil || host == "" || port == "" {
		return nil, fmt.Errorf("%q is not host:port", hostport)
	}
	return &discovery{
		host: host, port: port,
		resolve:  net.DefaultResolver.LookupHost,
		identify: func(ctx context.Context, addr string) (string, error) { return identifyServer(ctx, addr, dialOpts) },
		log:      log,
		known:    map[string]string{},
	}, nil
}

// identifyServer asks the storage server at addr for its name.
func identifyServer(ctx context.Context, addr string, dialOpts []grpc.DialOption) (string, error) {
	cc, err := grpc.NewClient("passthrough:///"+addr, dialOpts...)
	if err != nil {
		return "", err
	}
	defer cc.Close()
	info, err := csi.NewIdentityClient(cc).GetPluginInfo(ctx, &csi.GetPluginInfoRequest{})
	if err != nil {
		return "", err
	}
	name := info.GetManifest()[csicommon.ManifestServer]
	if err := csicommon.ValidServerName(name); err != nil {
		return "", fmt.Errorf("%s is not a Hangar storage server: %w", addr, err)
	}
	return name, nil
}

// refresh resolves and identifies the servers; changed reports whether the
// known set differs from before.
func (d *discovery) refresh(ctx context.Context) (refs []driver.ServerRef, changed bool, err error) {
	ips, err := d.resolve(ctx, d.host)
	if err != nil {
		return d.refs(), false, fmt.Errorf("resolving %s: %w", d.host, err)
	}
	sort.Strings(ips)
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, ip := range ips {
		addr := net.JoinHostPort(ip, d.port)
		ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
		name, err := d.identify(ictx, addr)
		cancel()
		if err != nil {
			d.log.Info("storage server not identified", "address", addr, "error", err.Error())
			continue
		}
		if old, ok := d.known[name]; !ok || old != addr {
			d.log.Info("storage server discovered", "server", name, "address", addr, "previous", old)
			d.known[name] = addr
			changed = true
		}
	}
	return d.refsLocked(), changed, nil
}

func (d *discovery) refs() []driver.ServerRef {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.refsLocked()
}

func (d *discovery) refsLocked() []driver.ServerRef {
	refs := make([]driver.ServerRef, 0, len(d.known))
	for n, a := range d.known {
		refs = append(refs, driver.ServerRef{Name: n, Addr: a})
	}
	slices.SortFunc(refs, func(a, b driver.ServerRef) int { return strings.Compare(a.Name, b.Name) })
	return refs
}

// run refreshes every interval until ctx ends, switching sw to a new
// controller when the set changes. The old controller's connections close
// after a grace period, once calls in flight on it are done.
func (d *discovery) run(ctx context.Context, sw *switchableController, interval time.Duration, newCtrl func([]driver.ServerRef) (*driver.Controller, error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.apply(ctx, sw, newCtrl)
	}
}

// apply does one refresh and switch.
func (d *discovery) apply(ctx context.Context, sw *switchableController, newCtrl func([]driver.ServerRef) (*driver.Controller, error)) {
	refs, changed, err := d.refresh(ctx)
	if err != nil {
		d.log.Info("storage server discovery failed; keeping the known servers", "error", err.Error())
	}
	if !changed {
		return
	}
	c, err := newCtrl(refs)
	if err != nil {
		d.log.Error(err, "building controller for discovered servers")
		return
	}
	old := sw.cur.Swap(c)
	if old != nil {
		time.AfterFunc(2*old.CallTimeout, func() { old.Close() })
	}
}
