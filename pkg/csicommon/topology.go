package csicommon

import (
	"fmt"
	"maps"
	"slices"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Topology. A Hangar volume is reachable over the network from every node
// that runs Hangar's node plugin, and from no other: without the plugin
// nothing mounts it. So there is exactly one topology segment, the same on
// every node plugin (NodeGetInfo) and on every volume and snapshot
// (accessible_topology). In Kubernetes, kubelet labels a node with it when
// the node plugin registers and csi-provisioner turns a volume's into PV
// node affinity, so pods with Hangar volumes are only scheduled onto nodes
// that can mount them. A snapshot restores onto any storage server, so it
// is usable wherever its volumes are.
//
// The key and value are part of every provisioned PV: never change them.
const (
	TopologyKey   = "topology.nfs.hangar.dev/reachable"
	TopologyValue = "true"
)

// Topology is where every Hangar volume and snapshot is accessible from.
func Topology() *csi.Topology {
	return &csi.Topology{Segments: map[string]string{TopologyKey: TopologyValue}}
}

// AccessibleTopology is a volume's or snapshot's accessible_topology.
func AccessibleTopology() []*csi.Topology { return []*csi.Topology{Topology()} }

// CheckTopologyRequirement checks a CreateVolume or CreateSnapshot request's
// accessibility_requirements (field names the field): InvalidArgument for
// a topology naming a key Hangar does not report, ResourceExhausted when no
// requisite topology is Hangar's (the spec's code for "valid, but cannot be
// provisioned there"). Preferred topologies only order a choice Hangar does
// not have.
func CheckTopologyRequirement(field string, req *csi.TopologyRequirement) error {
	if req == nil {
		return nil
	}
	if len(req.GetRequisite()) == 0 && len(req.GetPreferred()) == 0 {
		return status.Errorf(codes.InvalidArgument, "%s has neither requisite nor preferred topologies", field)
	}
	for _, list := range [][]*csi.Topology{req.GetRequisite(), req.GetPreferred()} {
		for _, t := range list {
			for _, k := range slices.Sorted(maps.Keys(t.GetSegments())) {
				if k != TopologyKey {
					return status.Errorf(codes.InvalidArgument, "%s: unknown topology key %q (Hangar reports only %s)", field, k, TopologyKey)
				}
			}
		}
	}
	if len(req.GetRequisite()) == 0 {
		return nil
	}
	for _, t := range req.GetRequisite() {
		if t.GetSegments()[TopologyKey] == TopologyValue {
			return nil
		}
	}
	return status.Error(codes.ResourceExhausted, fmt.Sprintf("%s: no requisite topology is %s=%s, the only place Hangar volumes are accessible from", field, TopologyKey, TopologyValue))
}

// InTopology reports whether capacity asked for at topology t (nil: all
// of it) is Hangar's: GetCapacity for any other topology is zero.
func InTopology(t *csi.Topology) bool {
	if t == nil {
		return true
	}
	s := t.GetSegments()
	return len(s) == 1 && s[TopologyKey] == TopologyValue
}
