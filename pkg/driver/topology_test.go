package driver

import (
	"context"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/hangar-csi/hangar/pkg/csicommon"
)

func topo(kv ...string) *csi.Topology {
	t := &csi.Topology{Segments: map[string]string{}}
	for i := 0; i+1 < len(kv); i += 2 {
		t.Segments[kv[i]] = kv[i+1]
	}
	return t
}

// TestTopology: the node plugin and every volume report the one segment
// (every node with the node plugin reaches every volume), both
// accessibility capabilities are advertised, and CreateVolume,
// CreateSnapshot and GetCapacity honour topologies over CSI gRPC: a
// requisite without Hangar's segment is ResourceExhausted, a key Hangar
// does not report is InvalidArgument.
func TestTopology(t *testing.T) {
	ctx := context.Background()

	caps, err := (&Identity{}).GetPluginCapabilities(ctx, &csi.GetPluginCapabilitiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[csi.PluginCapability_Service_Type]bool{
		csi.PluginCapability_Service_VOLUME_ACCESSIBILITY_CONSTRAINTS:   true,
		csi.PluginCapability_Service_SNAPSHOT_ACCESSIBILITY_CONSTRAINTS: true,
	}
	for _, c := range caps.GetCapabilities() {
		delete(want, c.GetService().GetType())
	}
	if len(want) != 0 {
		t.Errorf("plugin capabilities lack %v", want)
	}

	n, _, _ := newTestNode(nil)
	info, err := serveNode(t, n).NodeGetInfo(ctx, &csi.NodeGetInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ours := topo(csicommon.TopologyKey, csicommon.TopologyValue)
	if !proto.Equal(info.GetAccessibleTopology(), ours) {
		t.Errorf("NodeGetInfo topology %v, want %v", info.GetAccessibleTopology(), ours)
	}

	a := startServer(t, "a", 1<<30)
	c := serveController(t, newTestController(t, ServerRef{"a", a.addr}))
	create := func(name string, r *csi.TopologyRequirement) (*csi.CreateVolumeResponse, error) {
		req := createReq(name, 1<<20)
		req.AccessibilityRequirements = r
		return c.CreateVolume(ctx, req)
	}
	isOurs := func(what string, ts []*csi.Topology) {
		t.Helper()
		if len(ts) != 1 || !proto.Equal(ts[0], ours) {
			t.Errorf("%s: accessible_topology %v, want [%v]", what, ts, ours)
		}
	}

	for _, tc := range []struct {
		name string
		req  *csi.TopologyRequirement
		code codes.Code
	}{
		{"none", nil, codes.OK},
		{"requisite", &csi.TopologyRequirement{Requisite: []*csi.Topology{ours}, Preferred: []*csi.Topology{ours}}, codes.OK},
		{"one-of-requisite", &csi.TopologyRequirement{Requisite: []*csi.Topology{topo(csicommon.TopologyKey, "elsewhere"), ours}}, codes.OK},
		{"preferred-elsewhere", &csi.TopologyRequirement{Preferred: []*csi.Topology{topo(csicommon.TopologyKey, "elsewhere")}}, codes.OK},
		{"requisite-elsewhere", &csi.TopologyRequirement{Requisite: []*csi.Topology{topo(csicommon.TopologyKey, "false")}}, codes.ResourceExhausted},
		{"requisite-empty-segments", &csi.TopologyRequirement{Requisite: []*csi.Topology{topo()}}, codes.ResourceExhausted},
		{"unknown-key", &csi.TopologyRequirement{Requisite: []*csi.Topology{topo(csicommon.TopologyKey, csicommon.TopologyValue, "zone", "z1")}}, codes.InvalidArgument},
		{"unknown-preferred-key", &csi.TopologyRequirement{Requisite: []*csi.Topology{ours}, Preferred: []*csi.Topology{topo("zone", "z1")}}, codes.InvalidArgument},
		{"empty-requirement", &csi.TopologyRequirement{}, codes.InvalidArgument},
	} {
		r, err := create("v-"+tc.name, tc.req)
		if status.Code(err) != tc.code {
			t.Errorf("CreateVolume %s: %v, want %v", tc.name, err, tc.code)
			continue
		}
		if err == nil {
			isOurs("CreateVolume "+tc.name, r.GetVolume().GetAccessibleTopology())
		}
	}

	v, err := create("v-snap", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.ControllerGetVolume(ctx, &csi.ControllerGetVolumeRequest{VolumeId: v.Volume.VolumeId})
	if err != nil {
		t.Fatal(err)
	}
	isOurs("ControllerGetVolume", got.GetVolume().GetAccessibleTopology())
	list, err := c.ListVolumes(ctx, &csi.ListVolumesRequest{})
	if err != nil || len(list.GetEntries()) == 0 {
		t.Fatalf("ListVolumes: %v %v", list, err)
	}
	for _, e := range list.GetEntries() {
		isOurs("ListVolumes "+e.GetVolume().GetVolumeId(), e.GetVolume().GetAccessibleTopology())
	}

	snap := func(name string, r *csi.TopologyRequirement) error {
		_, err := c.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: name, SourceVolumeId: v.Volume.VolumeId, AccessibilityRequirements: r})
		return err
	}
	if err := snap("s-ok", &csi.TopologyRequirement{Requisite: []*csi.Topology{ours}, Preferred: []*csi.Topology{ours}}); err != nil {
		t.Errorf("CreateSnapshot in Hangar's topology: %v", err)
	}
	if err := snap("s-elsewhere", &csi.TopologyRequirement{Requisite: []*csi.Topology{topo(csicommon.TopologyKey, "false")}}); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("CreateSnapshot elsewhere: %v, want ResourceExhausted", err)
	}
	if err := snap("s-zone", &csi.TopologyRequirement{Requisite: []*csi.Topology{topo("zone", "z1")}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("CreateSnapshot with an unknown key: %v, want InvalidArgument", err)
	}

	for _, tc := range []struct {
		name    string
		t       *csi.Topology
		nonzero bool
	}{
		{"all", nil, true},
		{"ours", ours, true},
		{"elsewhere", topo(csicommon.TopologyKey, "false"), false},
		{"zone", topo("zone", "z1"), false},
	} {
		r, err := c.GetCapacity(ctx, &csi.GetCapacityRequest{AccessibleTopology: tc.t})
		if err != nil {
			t.Fatalf("GetCapacity %s: %v", tc.name, err)
		}
		if (r.GetAvailableCapacity() > 0) != tc.nonzero {
			t.Errorf("GetCapacity %s: %d bytes available", tc.name, r.GetAvailableCapacity())
		}
	}
}
