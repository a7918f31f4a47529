package csicommon

import (
	"fmt"
	"net/netip"
	"strings"
)

// Node IDs. Access control needs the address a node's NFS client mounts
// from, and ControllerPublishVolume carries only the node ID, so the node ID
// carries it: "<node-name>@<ip>[,<ip>...]" (the node plugin's --node-id and
// --node-address). Kubernetes maps a node name to this ID through the
// CSINode object; the name part keeps logs and VolumeAttachments readable.
// Reporting the address as a topology segment instead would pin every
// volume to one node, since the provisioner turns topology into PV node
// affinity.

// FormatNodeID joins a node name and its addresses into a node ID.
func FormatNodeID(name string, addrs []netip.Addr) string {
	if len(addrs) == 0 {
		return name
	}
	parts := make([]string, len(addrs))
	for i, a := range addrs {
		parts[i] = a.Unmap().String()
	}
	return name + "@" + strings.Join(parts, ",")
}

// ParseNodeID splits a node ID into the node name and its addresses. IDs
// without addresses are an error: a publish for them could never be
// enforced.
func ParseNodeID(id string) (name string, addrs []netip.Addr, err error) {
	name, list, ok := strings.Cut(id, "@")
	if !ok || name == "" || list == "" {
		return "", nil, fmt.Errorf("node ID %q is not of the form <node-name>@<ip>[,<ip>...] (is the node plugin running with --node-address?)", id)
	}
	for _, s := range strings.Split(list, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return "", nil, fmt.Errorf("node ID %q: address %q: %v", id, s, err)
		}
		addrs = append(addrs, a.Unmap())
	}
	return name, addrs, nil
}

// ParseNodeAddresses parses a comma-separated list of IP addresses (the
// node plugin's --node-address flag).
func ParseNodeAddresses(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("node address %q: %v", f, err)
		}
		out = append(out, a.Unmap())
	}
	return out, nil
}
