package server

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hangar-csi/hangar/pkg/csicommon"
	"github.com/hangar-csi/hangar/pkg/nfs/nfsclient"
	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/vfs"
)

// NFS3 status codes the tests expect.
const (
	nfs3ErrAcces = 13
	nfs3ErrDquot = 69
)

func createWith(t *testing.T, c csi.ControllerClient, name string, capacity int64, params map[string]string) *csi.Volume {
	t.Helper()
	r, err := c.CreateVolume(context.Background(), &csi.CreateVolumeRequest{
		Name:          name,
		CapacityRange: &csi.CapacityRange{RequiredBytes: capacity},
		Parameters:    params,
		VolumeCapabilities: []*csi.VolumeCapability{{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r.Volume
}

func authSys(uid, gid uint32, groups ...uint32) rpc.Cred {
	return rpc.Cred{Flavor: rpc.AuthSys, Machine: "test", UID: uid, GID: gid, GIDs: groups}
}

// TestQuotaOverNFS checks capacity end to end: FSSTAT shows the volume's
// size, a WRITE past it fails with NFS3ERR_DQUOT leaving the data intact,
// ControllerExpandVolume lets the next WRITE on the same handle succeed,
// usage survives a restart, and health reports a nearly full volume.
func TestQuotaOverNFS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "data")
	srv, c, stop := start(t, dir, "127.0.0.1:0")
	const capacity = 1 << 20
	v := createWith(t, c, "q", capacity, map[string]string{csicommon.ParamMaxInodes: "50"})
	nc, err := nfsclient.Dial(ctx, srv.NFSListenAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetCred(authSys(1000, 1000))
	root, err := nc.Mount(ctx, "/"+v.VolumeId)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := nc.FSStat(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	if fs.TotalBytes != capacity || fs.FreeBytes > capacity || fs.FreeBytes < capacity-64<<10 || fs.TotalFiles != 50 || fs.FreeFiles != 49 {
		t.Fatalf("fsstat of a new 1 MiB volume: %+v", fs)
	}
	h, err := nc.Create(ctx, root, "f", 0o644, vfs.CreateGuarded)
	if err != nil {
		t.Fatal(err)
	}
	if a, err := nc.GetAttr(ctx, h); err != nil || a.UID != 1000 || a.GID != 1000 {
		t.Fatalf("owner of a file created by uid 1000: %+v %v", a, err)
	}
	chunk := bytes.Repeat([]byte("hangar!\n"), 8<<10) // 64 KiB
	var off uint64
	for i := 0; i < 15; i++ { // 960 KiB
		if _, _, _, err := nc.Write(ctx, h, off, chunk, vfs.FileSync); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		off += uint64(len(chunk))
	}
	// 976 KiB: over 95%.
	if _, _, _, err := nc.Write(ctx, h, off, chunk[:16<<10], vfs.FileSync); err != nil {
		t.Fatal(err)
	}
	off += 16 << 10
	big := bytes.Repeat([]byte("x"), 256<<10)
	_, _, _, err = nc.Write(ctx, h, off, big, vfs.FileSync)
	if !nfsclient.IsStatus(err, nfs3ErrDquot) {
		t.Fatalf("write past the capacity: %v, want NFS3ERR_DQUOT", err)
	}
	a, err := nc.GetAttr(ctx, h)
	if err != nil || a.Size != off {
		t.Fatalf("size after refused write %d (%v), want %d", a.Size, err, off)
	}
	buf := make([]byte, len(chunk))
	if n, _, err := nc.Read(ctx, h, off-uint64(len(chunk)), buf); err != nil || !bytes.Equal(buf[:n], append(chunk[16<<10:], chunk[:16<<10]...)) {
		t.Fatalf("data before the refused write: n=%d err=%v", n, err)
	}
	fs, _ = nc.FSStat(ctx, root)
	if fs.TotalBytes != capacity || fs.AvailBytes > capacity-off {
		t.Fatalf("fsstat of a nearly full volume: %+v (wrote %d)", fs, off)
	}
	health, err := srv.api.ControllerGetVolumeHealth(ctx, &csi.ControllerGetVolumeHealthRequest{VolumeId: v.VolumeId})
	if err != nil {
		t.Fatal(err)
	}
	if hs := health.GetVolumeHealth().GetHealthStatuses(); len(hs) != 1 || hs[0].Reason != csicommon.ReasonNearlyFull {
		t.Fatalf("health of a nearly full volume: %v", hs)
	}

	// Shrinking is refused; growing is online.
	_, err = c.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: v.VolumeId, CapacityRange: &csi.CapacityRange{RequiredBytes: capacity / 2, LimitBytes: capacity / 2}})
	if status.Code(err) != codes.OutOfRange {
		t.Fatalf("shrink: %v", err)
	}
	er, err := c.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: v.VolumeId, CapacityRange: &csi.CapacityRange{RequiredBytes: 4 * capacity}})
	if err != nil || er.NodeExpansionRequired {
		t.Fatalf("expand: %v %+v", err, er)
	}
	if _, _, _, err := nc.Write(ctx, h, off, big, vfs.FileSync); err != nil {
		t.Fatalf("write after expansion, same handle: %v", err)
	}
	if fs, _ = nc.FSStat(ctx, root); fs.TotalBytes != 4*capacity {
		t.Fatalf("fsstat after expansion: %+v", fs)
	}
	health, _ = srv.api.ControllerGetVolumeHealth(ctx, &csi.ControllerGetVolumeHealthRequest{VolumeId: v.VolumeId})
	if hs := health.GetVolumeHealth().GetHealthStatuses(); len(hs) != 0 {
		t.Fatalf("health after expansion: %v", hs)
	}

	// Restart: usage and the expanded limit are still right.
	before, err := srv.api.Quota.Usage(v.VolumeId)
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	stop()
	if _, err := os.Stat(filepath.Join(dir, "usage", v.VolumeId+".json")); err != nil {
		t.Fatalf("usage not saved at shutdown: %v", err)
	}
	srv, c, stop = start(t, dir, "127.0.0.1:0")
	defer stop()
	after, err := srv.api.Quota.Usage(v.VolumeId)
	if err != nil || after != before {
		t.Fatalf("usage after restart %+v (%v), before %+v", after, err, before)
	}
	// Deleting the volume drops its saved usage.
	if _, err := c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: v.VolumeId}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "usage", v.VolumeId+".json")); !os.IsNotExist(err) {
		t.Fatalf("usage of a deleted volume: %v", err)
	}
}

// TestIdentityOverNFS checks permission enforcement and root squash over
// the wire.
func TestIdentityOverNFS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, c, stop := start(t, filepath.Join(t.TempDir(), "data"), "127.0.0.1:0")
	defer stop()
	v := createWith(t, c, "squashed", 1<<20, map[string]string{csicommon.ParamRootSquash: "true", csicommon.ParamAnonUID: "4000", csicommon.ParamAnonGID: "4001"})
	nc, err := nfsclient.Dial(ctx, srv.NFSListenAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetCred(authSys(0, 0))
	root, err := nc.Mount(ctx, "/"+v.VolumeId)
	if err != nil {
		t.Fatal(err)
	}
	h, err := nc.Create(ctx, root, "by-root", 0o600, vfs.CreateGuarded)
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := nc.GetAttr(ctx, h); a.UID != 4000 || a.GID != 4001 {
		t.Fatalf("file created by squashed root: uid %d gid %d", a.UID, a.GID)
	}
	nc.SetCred(authSys(1000, 1000))
	if _, _, err := nc.Read(ctx, h, 0, make([]byte, 1)); !nfsclient.IsStatus(err, nfs3ErrAcces) {
		t.Fatalf("read of another's 0600 file: %v, want NFS3ERR_ACCES", err)
	}
	d, err := nc.Mkdir(ctx, root, "private", 0o700)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetCred(authSys(0, 0))
	if _, err := nc.Create(ctx, d, "x", 0o644, vfs.CreateGuarded); !nfsclient.IsStatus(err, nfs3ErrAcces) {
		t.Fatalf("squashed root creates in a private dir: %v, want NFS3ERR_ACCES", err)
	}
	// Bad parameters are refused, naming the parameter.
	_, err = c.CreateVolume(ctx, &csi.CreateVolumeRequest{
		Name: "bad", Parameters: map[string]string{csicommon.ParamMaxInodes: "lots"},
		VolumeCapabilities: []*csi.VolumeCapability{{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
		}},
	})
	if status.Code(err) != codes.InvalidArgument || !bytes.Contains([]byte(err.Error()), []byte(csicommon.ParamMaxInodes)) {
		t.Fatalf("bad maxInodes: %v", err)
	}
}

// TestAvailableOvercommit checks what GetCapacity offers with and without
// overcommit.
func TestAvailableOvercommit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	srv, c, stop := start(t, dir, "127.0.0.1:0")
	free, err := srv.store.DiskFree()
	if err != nil {
		t.Fatal(err)
	}
	createWith(t, c, "a", 1<<30, nil)
	r, err := c.GetCapacity(context.Background(), &csi.GetCapacityRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// The disk is shared with other tests: allow it to move by 1 GiB.
	if d := free - 1<<30 - r.AvailableCapacity; d > 1<<30 || d < -(1<<30) {
		t.Fatalf("available %d with %d free and 1 GiB promised", r.AvailableCapacity, free)
	}
	stop()
	srv, err = New(Options{DataDir: dir, Name: "t", NFSListen: "127.0.0.1:0", APIListen: "127.0.0.1:0", Overcommit: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	avail, err := srv.api.Quota.Available(srv.store.Promised())
	if err != nil {
		t.Fatal(err)
	}
	if d := 2*free - 1<<30 - avail; d > 2<<30 || d < -(2<<30) {
		t.Fatalf("available %d with overcommit 2, %d free and 1 GiB promised", avail, free)
	}
	if _, err := New(Options{DataDir: filepath.Join(t.TempDir(), "x"), Name: "t", NFSListen: "127.0.0.1:0", APIListen: "127.0.0.1:0", Overcommit: 0.5}); err == nil {
		t.Fatal("overcommit 0.5 accepted")
	}
}
