package csicommon

import (
	"net/netip"
	"testing"
)

func TestNodeID(t *testing.T) {
	id := FormatNodeID("worker-1", []netip.Addr{netip.MustParseAddr("::ffff:10.0.0.5"), netip.MustParseAddr("fd00::1")})
	if id != "worker-1@10.0.0.5,fd00::1" {
		t.Fatalf("FormatNodeID = %q", id)
	}
	name, addrs, err := ParseNodeID(id)
	if err != nil || name != "worker-1" || len(addrs) != 2 || addrs[1] != netip.MustParseAddr("fd00::1") {
		t.Fatalf("ParseNodeID(%q) = %q, %v, %v", id, name, addrs, err)
	}
	for _, bad := range []string{"worker-1", "worker-1@", "@10.0.0.1", "w@10.0.0.300", "w@host.example"} {
		if _, _, err := ParseNodeID(bad); err == nil {
			t.Errorf("ParseNodeID(%q) succeeded", bad)
		}
	}
}
