package csi

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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

func TestControllerPublishErrors(t *testing.T) {
	ctx := context.Background()
	s := startServer(t, "a", 1<<30)
	acc, err := OpenAccess(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	s.api.Access = acc
	c := newTestController(t, ServerRef{"a", s.addr})
	v, err := c.CreateVolume(ctx, createReq("v", 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	vid := v.Volume.VolumeId
	rwo := mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
	for _, tc := range []struct {
		req  *csi.ControllerPublishVolumeRequest
		code codes.Code
	}{
		{&csi.ControllerPublishVolumeRequest{NodeId: "n@127.0.0.1", VolumeCapability: rwo}, codes.InvalidArgument},
		{&csi.ControllerPublishVolumeRequest{VolumeId: vid, VolumeCapability: rwo}, codes.InvalidArgument},
		{&csi.ControllerPublishVolumeRequest{VolumeId: vid, NodeId: "n@127.0.0.1"}, codes.InvalidArgument},
		{&csi.ControllerPublishVolumeRequest{VolumeId: vid, NodeId: "no-address", VolumeCapability: rwo}, codes.NotFound},
		{&csi.ControllerPublishVolumeRequest{VolumeId: VolumeID("a", "0123456789abcdef"), NodeId: "n@127.0.0.1", VolumeCapability: rwo}, codes.NotFound},
		{&csi.ControllerPublishVolumeRequest{VolumeId: VolumeID("zz", "0123456789abcdef"), NodeId: "n@127.0.0.1", VolumeCapability: rwo}, codes.NotFound},
		{&csi.ControllerPublishVolumeRequest{VolumeId: vid, NodeId: "n@127.0.0.1", VolumeCapability: rwo}, codes.OK},
		{&csi.ControllerPublishVolumeRequest{VolumeId: vid, NodeId: "n@127.0.0.1", VolumeCapability: rwo, Readonly: true}, codes.AlreadyExists},
		{&csi.ControllerPublishVolumeRequest{VolumeId: vid, NodeId: "m@127.0.0.2", VolumeCapability: rwo}, codes.FailedPrecondition},
	} {
		_, err := c.ControllerPublishVolume(ctx, tc.req)
		if status.Code(err) != tc.code {
			t.Errorf("ControllerPublishVolume(%v): %v, want %s", tc.req, err, tc.code)
		}
	}
	if got := acc.Nodes(strings.TrimPrefix(vid, "a:")); len(got) != 1 || got[0].NodeID != "n@127.0.0.1" {
		t.Errorf("access list = %v", got)
	}
}

func TestOnDelete(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []string{"delete", "retain", "archive"} {
		t.Run(mode, func(t *testing.T) {
			s := startServer(t, "a", 1<<30)
			req := createReq("pvc-x", 1<<20)
			req.Parameters = map[string]string{ParamOnDelete: mode, "csi.storage.k8s.io/pvc/namespace": "ns", "csi.storage.k8s.io/pvc/name": "data"}
			v, err := s.api.CreateVolume(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			id := v.Volume.VolumeId
			if err := os.WriteFile(filepath.Join(s.api.Store.VolumeDir(id), "f"), []byte("kept"), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := s.api.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.api.Store.Get(id); err == nil {
				t.Fatal("volume still exists")
			}
			root := s.api.Store.Dir()
			kept, _ := filepath.Glob(filepath.Join(root, "*", "*", "f"))
			switch mode {
			case "delete":
				if len(kept) != 0 {
					t.Fatalf("data kept: %v", kept)
				}
			case "retain":
				if len(kept) != 1 || kept[0] != filepath.Join(root, "retained", id, "f") {
					t.Fatalf("kept %v, want retained/%s/f", kept, id)
				}
			case "archive":
				if len(kept) != 1 || !strings.HasPrefix(kept[0], filepath.Join(root, "archive", "ns_data_"+id+"_")) {
					t.Fatalf("kept %v, want archive/ns_data_%s_<time>/f", kept, id)
				}
				if _, err := os.Stat(filepath.Dir(kept[0]) + ".json"); err != nil {
					t.Fatalf("archived record: %v", err)
				}
			}
		})
	}
	err := ValidateParameters(map[string]string{ParamOnDelete: "shred"})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "shred") {
		t.Fatalf("onDelete=shred: %v", err)
	}
}
