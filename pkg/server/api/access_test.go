package api

import (
	"net/netip"
	"os"
	"testing"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestAccessPublishRules(t *testing.T) {
	dir := t.TempDir()
	a, err := OpenAccess(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	const vol = "00112233445566aa"
	n1 := Attachment{NodeID: "n1@10.0.0.1", Addrs: []string{"10.0.0.1"}}
	n2 := Attachment{NodeID: "n2@10.0.0.2", Addrs: []string{"10.0.0.2"}}
	pol := a.Policy(vol) // installed before any publish, as at CreateVolume
	if pol(ip("10.0.0.1")) != vfs.GrantNone {
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
	if pol(ip("10.0.0.2")) != vfs.GrantReadWrite || pol(ip("10.0.0.1")) != vfs.GrantReadWrite || pol(ip("10.0.0.3")) != vfs.GrantNone || pol(netip.Addr{}) != vfs.GrantNone {
		t.Fatal("the policy does not follow the list")
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
	pol = b.Policy(vol)
	if pol(ip("10.0.0.1")) != vfs.GrantNone || pol(ip("10.0.0.2")) != vfs.GrantReadWrite {
		t.Fatal("unpublish did not revoke exactly n1")
	}
	if err := b.Prune(func(id string) bool { return id != vol }); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("files left after Forget: %v", ents)
	}
}

func TestAccessGrants(t *testing.T) {
	const vol = "00112233445566aa"
	a, err := OpenAccess(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	pol := a.Policy(vol)
	// Two nodes sharing 10.0.0.9: read-write wins over read-only.
	for _, at := range []Attachment{
		{NodeID: "ro@10.0.0.1", Addrs: []string{"10.0.0.1", "10.0.0.9"}, ReadOnly: true},
		{NodeID: "rw@10.0.0.2", Addrs: []string{"10.0.0.2", "::ffff:10.0.0.9"}},
		{NodeID: "bad@x", Addrs: []string{"not-an-ip"}},
	} {
		if err := a.Publish(vol, at); err != nil {
			t.Fatal(err)
		}
	}
	for addr, want := range map[string]vfs.Grant{"10.0.0.1": vfs.GrantReadOnly, "10.0.0.2": vfs.GrantReadWrite, "10.0.0.9": vfs.GrantReadWrite, "10.0.0.3": vfs.GrantNone} {
		if got := pol(ip(addr)); got != want {
			t.Errorf("grant of %s: %d, want %d", addr, got, want)
		}
	}
	if err := a.Unpublish(vol, ""); err != nil {
		t.Fatal(err)
	}
	if pol(ip("10.0.0.2")) != vfs.GrantNone {
		t.Error("unpublish from every node left a grant")
	}
	if err := a.Publish(vol, Attachment{NodeID: "rw@10.0.0.2", Addrs: []string{"10.0.0.2"}}); err != nil {
		t.Fatal(err)
	}
	if pol(ip("10.0.0.2")) != vfs.GrantReadWrite {
		t.Error("the export's policy missed a publish after an unpublish from every node")
	}

	off, err := OpenAccess(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	if off.Policy(vol) != nil {
		t.Error("not enforcing, but Policy is not nil (everyone)")
	}
}
