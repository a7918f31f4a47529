package main

import (
	"context"
	"net"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/hangar-csi/hangar/pkg/csicommon"
	"github.com/hangar-csi/hangar/pkg/driver"
)

// fakeServer is a storage server's API as discovery sees it: its name in
// GetPluginInfo, and a capacity to tell servers apart.
type fakeServer struct {
	csi.UnimplementedControllerServer
	avail int64
}

func (f *fakeServer) GetCapacity(context.Context, *csi.GetCapacityRequest) (*csi.GetCapacityResponse, error) {
	return &csi.GetCapacityResponse{AvailableCapacity: f.avail}, nil
}

func serveFake(t *testing.T, addr, name string, avail int64) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	csi.RegisterIdentityServer(g, &driver.Identity{Manifest: map[string]string{csicommon.ManifestServer: name}})
	csi.RegisterControllerServer(g, &fakeServer{avail: avail})
	go g.Serve(l)
	t.Cleanup(g.Stop)
}

// TestDiscoverySwitchesController resolves a name to two servers' API
// addresses (127.0.0.1 and 127.0.0.2, same port, as hostNetwork pods behind
// a headless Service), identifies them by name, and checks the CSI endpoint
// switches to a controller spanning both, keeping a server that later
// stops resolving.
func TestDiscoverySwitchesController(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	serveFake(t, "127.0.0.1:"+port, "node-a", 100)
	serveFake(t, "127.0.0.2:"+port, "node-b", 20)

	ips := []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"} // .3: nobody there
	dial := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	d, err := newDiscovery("hangar-server.example:"+port, logr.Discard(), dial)
	if err != nil {
		t.Fatal(err)
	}
	d.resolve = func(_ context.Context, host string) ([]string, error) {
		if host != "hangar-server.example" {
			t.Errorf("resolved %q", host)
		}
		return ips, nil
	}
	newCtrl := func(refs []driver.ServerRef) (*driver.Controller, error) {
		return driver.NewController(refs, logr.Discard(), dial...)
	}
	sw := &switchableController{}
	empty, _ := newCtrl(nil)
	sw.cur.Store(empty)

	// The CSI endpoint, served through the switch.
	el, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	sw.register(g)
	go g.Serve(el)
	defer g.Stop()
	cc, err := grpc.NewClient("passthrough:///"+el.Addr().String(), dial...)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := csi.NewControllerClient(cc)
	capacity := func() int64 {
		t.Helper()
		r, err := client.GetCapacity(context.Background(), &csi.GetCapacityRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return r.AvailableCapacity
	}
	if c := capacity(); c != 0 {
		t.Fatalf("capacity before discovery = %d", c)
	}
	// The GroupController is served through the switch too.
	if caps, err := csi.NewGroupControllerClient(cc).GroupControllerGetCapabilities(context.Background(), &csi.GroupControllerGetCapabilitiesRequest{}); err != nil || len(caps.Capabilities) != 1 {
		t.Fatalf("group controller through the switch: %v %v", caps, err)
	}
	d.apply(context.Background(), sw, newCtrl)
	if c := capacity(); c != 120 {
		t.Fatalf("capacity after discovery = %d, want 100+20", c)
	}
	if refs := d.refs(); len(refs) != 2 || refs[0].Name != "node-a" || refs[1].Addr != "127.0.0.2:"+port {
		t.Fatalf("refs = %v", refs)
	}
	// node-b stops resolving (not ready): it is kept, nothing switches.
	ips = ips[:1]
	before := sw.cur.Load()
	d.apply(context.Background(), sw, newCtrl)
	if sw.cur.Load() != before || capacity() != 120 {
		t.Fatal("a server that stopped resolving was dropped")
	}
}
