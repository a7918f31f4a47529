package server

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/csicommon"
	"github.com/hangar-csi/hangar/pkg/nfs/nfs3"
	"github.com/hangar-csi/hangar/pkg/nfs/nfsclient"
	"github.com/hangar-csi/hangar/pkg/vfs"
)

// mountExt4 mounts a small ext4 file system that goes read-only on errors,
// as data disks are usually mounted (root is needed to mount it; the suite
// runs as root, other users get an explicit skip).
func mountExt4(t *testing.T, size string) string {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("mounting a file system needs root")
	}
	dir := t.TempDir()
	img := filepath.Join(t.TempDir(), "disk.img")
	for _, cmd := range [][]string{
		{"truncate", "-s", size, img},
		{"mkfs.ext4", "-q", "-F", img},
		{"mount", "-o", "loop,errors=remount-ro", img, dir},
	} {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", cmd, err, out)
		}
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// fill writes to path until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

func healthOf(t *testing.T, c csi.ControllerClient, id string) []*csi.VolumeHealth_VolumeHealthEntry {
	t.Helper()
	r, err := c.ControllerGetVolumeHealth(context.Background(), &csi.ControllerGetVolumeHealthRequest{VolumeId: id})
	if err != nil {
		t.Fatal(err)
	}
	return r.GetVolumeHealth().GetHealthStatuses()
}

// TestHealthOfBackingDisk: a volume far from its quota is still unhealthy
// when the server's disk under it is full (every WRITE gets NFS3ERR_NOSPC)
// or read-only (NFS3ERR_ROFS); health says so, and which.
func TestHealthOfBackingDisk(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := mountExt4(t, "64M")
	srv, c, stop := start(t, filepath.Join(base, "data"), "127.0.0.1:0")
	defer stop()
	v := createWith(t, c, "v", 8<<20, nil)
	if hs := healthOf(t, c, v.VolumeId); len(hs) != 0 {
		t.Fatalf("new volume: %v", hs)
	}
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
	h, err := nc.Create(ctx, root, "f", 0o644, vfs.CreateGuarded)
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("x"), 64<<10)

	// Something else fills the disk.
	filler := filepath.Join(base, "filler")
	fill(t, filler)
	if _, _, _, err := nc.Write(ctx, h, 0, chunk, vfs.FileSync); !nfsclient.IsStatus(err, nfs3.StatusNoSpc) {
		t.Fatalf("write with the disk full: %v, want NFS3ERR_NOSPC", err)
	}
	hs := healthOf(t, c, v.VolumeId)
	if len(hs) != 1 || hs[0].Status != csi.VolumeHealthErrorType_DEGRADED || hs[0].Reason != csicommon.ReasonBackingDiskFull ||
		!strings.Contains(hs[0].Message, "No space left on device") {
		t.Fatalf("health with the disk full: %v", hs)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := nc.Write(ctx, h, 0, chunk, vfs.FileSync); err != nil {
		t.Fatalf("write after space was freed: %v", err)
	}
	if hs := healthOf(t, c, v.VolumeId); len(hs) != 0 {
		t.Fatalf("health after space was freed: %v", hs)
	}

	// The disk fails and ext4 turns it read-only (errors=remount-ro), open
	// files or not.
	if out, err := exec.Command("mount", "-o", "remount,abort", base).CombinedOutput(); err != nil {
		t.Fatalf("abort %s: %v: %s", base, err, out)
	}
	if _, _, _, err := nc.Write(ctx, h, 0, chunk, vfs.FileSync); err == nil {
		t.Fatal("write to a read-only disk succeeded")
	}
	hs = healthOf(t, c, v.VolumeId)
	if len(hs) != 1 || hs[0].Status != csi.VolumeHealthErrorType_DEGRADED || hs[0].Reason != csicommon.ReasonBackingDiskReadOnly ||
		!strings.Contains(hs[0].Message, "read-only") {
		t.Fatalf("health with the disk read-only: %v", hs)
	}
}
