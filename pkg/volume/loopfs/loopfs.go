// Package loopfs mounts small file systems on loop devices for tests: XFS
// with reflink, btrfs, ext4 and tmpfs, so snapshot code is tested on each
// kind of file system it meets. Tests run as root; mkfs.xfs and mkfs.btrfs
// come from test/install-fs-tools.sh (xfsprogs, btrfs-progs).
package loopfs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// Kinds are the file systems Mount knows.
var Kinds = []string{"xfs", "btrfs", "ext4", "tmpfs"}

// Reflink reports whether kind clones extents (FICLONE).
func Reflink(kind string) bool { return kind == "xfs" || kind == "btrfs" }

// Mount makes a file system of kind of size bytes, mounts it on a fresh
// directory and unmounts it when t ends. Without root the test is skipped
// (mounting needs it); a missing mkfs.xfs fails the test, a missing
// mkfs.btrfs skips it (btrfs is optional).
func Mount(t testing.TB, kind string, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("mounting a %s file system needs root", kind)
	}
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if kind == "tmpfs" {
		if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
			t.Fatalf("mounting tmpfs: %v", err)
		}
		t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
		return mnt
	}
	var mkfs []string
	switch kind {
	case "xfs":
		mkfs = []string{"mkfs.xfs", "-q", "-f", "-m", "reflink=1"}
	case "btrfs":
		mkfs = []string{"mkfs.btrfs", "-q", "-f"}
	case "ext4":
		mkfs = []string{"mkfs.ext4", "-q", "-F", "-b", "4096"}
	default:
		t.Fatalf("loopfs: unknown kind %q", kind)
	}
	if _, err := exec.LookPath(mkfs[0]); err != nil {
		if kind == "btrfs" {
			t.Skipf("%s not installed (optional; test/install-fs-tools.sh installs it)", mkfs[0])
		}
		t.Fatalf("%s not installed: run test/install-fs-tools.sh", mkfs[0])
	}
	img := filepath.Join(dir, "img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	err = f.Truncate(size)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range [][]string{append(mkfs, img), {"mount", "-o", "loop", img, mnt}} {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", cmd, err, out)
		}
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
	})
	return mnt
}

// UsedBytes is how much of the file system holding dir is in use.
func UsedBytes(t testing.TB, dir string) int64 {
	t.Helper()
	// btrfs frees and accounts space in its transaction; commit first.
	if fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0); err == nil {
		unix.Syncfs(fd)
		unix.Close(fd)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks-st.Bfree) * st.Bsize
}
