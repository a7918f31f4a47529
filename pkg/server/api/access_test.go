package api

import (
	"net"
	"net/netip"
	"os"
	"testing"
)

func tcpAddr(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }

func TestAccessPublishRules(t *testing.T) {
	dir := t.TempDir()
	a, err := OpenAccess(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	const vol = "00112233445566aa"
	n1 := Attachment{NodeID: "n1@10.0.0.1", Addrs: []string{"10.0.0.1"}}
	n2 := Attachment{NodeID: "n2@10.0.0.2", Addrs: []string{"10.0.0.2"}}
	if a.Allowed(vol, tcpAddr("10.0.0.1:700")) {
		t.Fatal("allowed before any publish")
	}
	if err := a.Publish(vol, n1); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(vol, n1); err != nil {
		t.Fatalf("republish: %v", err)
	}
	ro := n1
	ro.ReadOnly = true
	if err := a.Publish(vol, ro); err != ErrPublishConflict {
		t.Fatalf("republish read-only: %v, want ErrPublishConflict", err)
	}
	single := n2
	single.Single = true
	if err := a.Publish(vol, single); err == nil {
		t.Fatal("single-node publish beside another node succeeded")
	}
	if err := a.Publish(vol, n2); err != nil {
		t.Fatal(err)
	}
	if !a.Allowed(vol, tcpAddr("10.0.0.2:1")) || !a.Allowed(vol, tcpAddr("[::ffff:10.0.0.1]:1")) || a.Allowed(vol, tcpAddr("10.0.0.3:1")) {
		t.Fatal("Allowed does not follow the list")
	}
	// Reopened from disk: the same lists.
	b, err := OpenAccess(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Nodes(vol); len(got) != 2 {
		t.Fatalf("after reopen: %v", got)
	}
	if err := b.Unpublish(vol, n1.NodeID); err != nil {
		t.Fatal(err)
	}
	if b.Allowed(vol, tcpAddr("10.0.0.1:1")) || !b.Allowed(vol, tcpAddr("10.0.0.2:1")) {
		t.Fatal("unpublish did not revoke exactly n1")
	}
	if err := b.Prune(func(id string) bool { return id != vol }); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("files left after Forget: %v", ents)
	}
}
