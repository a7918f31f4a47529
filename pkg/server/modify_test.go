package server

import (
	"context"
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hangar-csi/hangar/pkg/csicommon"
	"github.com/hangar-csi/hangar/pkg/nfs/nfsclient"
	"github.com/hangar-csi/hangar/pkg/vfs"
)

// TestModifyVolumeOverNFS changes a live volume's policy with
// ControllerModifyVolume and checks over the NFS wire, on the same mount,
// that root squash and the inode limit take effect at once, that refused
// requests change nothing, and that the policy survives a restart.
func TestModifyVolumeOverNFS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "data")
	srv, c, stop := start(t, dir, "127.0.0.1:0")
	v := createWith(t, c, "live", 1<<20, map[string]string{csicommon.ParamOnDelete: "delete"})
	nc, err := nfsclient.Dial(ctx, srv.NFSListenAddr())
	if err != nil {
		t.Fatal(err)
	}
	nc.SetCred(authSys(0, 0))
	root, err := nc.Mount(ctx, "/"+v.VolumeId)
	if err != nil {
		t.Fatal(err)
	}
	owner := func(name string) uint32 {
		t.Helper()
		h, err := nc.Create(ctx, root, name, 0o644, vfs.CreateGuarded)
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		a, err := nc.GetAttr(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		return a.UID
	}
	if uid := owner("before"); uid != 0 {
		t.Fatalf("root's file before modify: uid %d", uid)
	}

	// Refused requests name the key and change nothing.
	for _, bad := range []struct {
		p    map[string]string
		want string
	}{
		{map[string]string{csicommon.ParamRootSquash: "true", "speed": "fast"}, `"speed"`},
		{map[string]string{csicommon.ParamRootSquash: "true", csicommon.ParamOnDelete: "retain"}, `"onDelete"`},
		{map[string]string{csicommon.ParamRootSquash: "true", csicommon.ParamAnonUID: "-1"}, `"anonUID"`},
	} {
		_, err := c.ControllerModifyVolume(ctx, &csi.ControllerModifyVolumeRequest{VolumeId: v.VolumeId, MutableParameters: bad.p})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("modify %v: %v, want InvalidArgument naming %s", bad.p, err, bad.want)
		}
	}
	if uid := owner("after-refused"); uid != 0 {
		t.Fatalf("a refused modify changed the policy: root's file has uid %d", uid)
	}
	if _, err := c.ControllerModifyVolume(ctx, &csi.ControllerModifyVolumeRequest{VolumeId: "0123456789abcdef", MutableParameters: map[string]string{csicommon.ParamRootSquash: "true"}}); status.Code(err) != codes.NotFound {
		t.Errorf("modify of a missing volume: %v, want NotFound", err)
	}

	mod := &csi.ControllerModifyVolumeRequest{VolumeId: v.VolumeId, MutableParameters: map[string]string{
		csicommon.ParamRootSquash: "true", csicommon.ParamAnonUID: "4000", csicommon.ParamAnonGID: "4001", csicommon.ParamMaxInodes: "5",
	}}
	for range 2 { // idempotent
		if _, err := c.ControllerModifyVolume(ctx, mod); err != nil {
			t.Fatal(err)
		}
	}
	if uid := owner("squashed"); uid != 4000 {
		t.Fatalf("root's file after rootSquash=true: uid %d, want 4000", uid)
	}
	// Root, "before", "after-refused", "squashed": the fifth inode is the last.
	if _, err := nc.Create(ctx, root, "fifth", 0o644, vfs.CreateGuarded); err != nil {
		t.Fatalf("fifth inode: %v", err)
	}
	if _, err := nc.Create(ctx, root, "sixth", 0o644, vfs.CreateGuarded); !nfsclient.IsStatus(err, nfs3ErrDquot) {
		t.Fatalf("sixth inode with maxInodes=5: %v, want NFS3ERR_DQUOT", err)
	}
	nc.Close()

	// Only the keys given change; creation parameters stay.
	if _, err := c.ControllerModifyVolume(ctx, &csi.ControllerModifyVolumeRequest{VolumeId: v.VolumeId, MutableParameters: map[string]string{csicommon.ParamMaxInodes: "100"}}); err != nil {
		t.Fatal(err)
	}
	stop()
	srv, _, stop = start(t, dir, "127.0.0.1:0")
	defer stop()
	rec, err := srv.Store().Get(v.VolumeId)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{csicommon.ParamRootSquash: "true", csicommon.ParamAnonUID: "4000", csicommon.ParamAnonGID: "4001", csicommon.ParamMaxInodes: "100"}
	if !maps.Equal(rec.MutableParameters, want) || rec.Parameters[csicommon.ParamOnDelete] != "delete" {
		t.Fatalf("record after restart: parameters %v, mutable %v", rec.Parameters, rec.MutableParameters)
	}
	nc, err = nfsclient.Dial(ctx, srv.NFSListenAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetCred(authSys(0, 0))
	if root, err = nc.Mount(ctx, "/"+v.VolumeId); err != nil {
		t.Fatal(err)
	}
	if uid := owner("after-restart"); uid != 4000 {
		t.Fatalf("root squash after restart: uid %d", uid)
	}
}

// TestCreateWithMutableParameters: a VolumeAttributesClass's parameters at
// creation override the StorageClass's, and bad ones are refused.
func TestCreateWithMutableParameters(t *testing.T) {
	ctx := context.Background()
	srv, c, stop := start(t, filepath.Join(t.TempDir(), "data"), "127.0.0.1:0")
	defer stop()
	capab := []*csi.VolumeCapability{{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}}
	r, err := c.CreateVolume(ctx, &csi.CreateVolumeRequest{
		Name: "vac", VolumeCapabilities: capab,
		Parameters:        map[string]string{csicommon.ParamRootSquash: "false"},
		MutableParameters: map[string]string{csicommon.ParamRootSquash: "true", csicommon.ParamAnonUID: "4000"},
	})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nfsclient.Dial(ctx, srv.NFSListenAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetCred(authSys(0, 0))
	root, err := nc.Mount(ctx, "/"+r.Volume.VolumeId)
	if err != nil {
		t.Fatal(err)
	}
	h, err := nc.Create(ctx, root, "f", 0o644, vfs.CreateGuarded)
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := nc.GetAttr(ctx, h); a.UID != 4000 {
		t.Fatalf("mutable rootSquash=true over parameter false: uid %d", a.UID)
	}
	// 2^64-1 inodes would wrap to a negative limit, which means none.
	huge := map[string]string{csicommon.ParamMaxInodes: "18446744073709551615"}
	for _, p := range []map[string]string{{"XXX_FakeKey": "v"}, {csicommon.ParamOnDelete: "retain"}, {csicommon.ParamMaxInodes: "0"}, huge} {
		_, err := c.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "vac-bad", VolumeCapabilities: capab, MutableParameters: p})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("create with mutable %v: %v, want InvalidArgument", p, err)
		}
	}
	if _, err := c.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "sc-bad", VolumeCapabilities: capab, Parameters: huge}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("create with parameters %v: %v, want InvalidArgument", huge, err)
	}
	if _, err := c.ControllerModifyVolume(ctx, &csi.ControllerModifyVolumeRequest{VolumeId: r.Volume.VolumeId, MutableParameters: huge}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("modify to %v: %v, want InvalidArgument", huge, err)
	}
}
