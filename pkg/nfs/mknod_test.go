package nfs_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/nfs/nfs3"
	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/vfs"
)

// TestMknodDevices makes block and character devices over the wire, as
// extracting a root file system or `cp -a` of a tree with /dev onto a volume
// does. The server stores them as knfsd does, but must never open one: a
// client that makes a block device with the numbers of the storage node's
// own disk and READs or WRITEs it would otherwise reach that disk, and
// opening some devices (or a FIFO) has side effects or blocks.
func TestMknodDevices(t *testing.T) {
	s := start(t)
	c, root := s.c, s.root
	// A FIFO opened for reading would block the server: fail, don't hang.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var st unix.Stat_t
	if err := unix.Stat(s.dir1, &st); err != nil {
		t.Fatal(err)
	}
	devs := []struct {
		name         string
		typ          vfs.FileType
		ifmt         uint32
		major, minor uint32
	}{
		{"null", vfs.TypeChar, unix.S_IFCHR, 1, 3},
		// The disk the volume lives on.
		{"disk", vfs.TypeBlock, unix.S_IFBLK, unix.Major(st.Dev), unix.Minor(st.Dev)},
		// The largest numbers Linux's dev_t holds (12-bit major, 20-bit minor).
		{"big", vfs.TypeChar, unix.S_IFCHR, 1<<12 - 1, 1<<20 - 1},
	}
	for _, d := range devs {
		h, err := c.Mknod(ctx, root, d.name, d.typ, 0o660, d.major, d.minor)
		if err != nil {
			t.Fatalf("MKNOD %s %d:%d: %v", d.name, d.major, d.minor, err)
		}
		a, err := c.GetAttr(ctx, h)
		if err != nil || a.Type != d.typ || a.RdevMajor != d.major || a.RdevMinor != d.minor || a.Mode != 0o660 {
			t.Fatalf("GETATTR %s: %+v %v; want type %d rdev %d:%d mode 660", d.name, a, err, d.typ, d.major, d.minor)
		}
		lh, la, err := c.Lookup(ctx, root, d.name)
		if err != nil || !bytes.Equal(lh, h) || la.RdevMajor != d.major || la.RdevMinor != d.minor {
			t.Fatalf("LOOKUP %s: %x %+v %v", d.name, lh, la, err)
		}
		var ds unix.Stat_t
		if err := unix.Lstat(filepath.Join(s.dir1, d.name), &ds); err != nil {
			t.Fatal(err)
		}
		if ds.Mode&unix.S_IFMT != d.ifmt || unix.Major(ds.Rdev) != d.major || unix.Minor(ds.Rdev) != d.minor {
			t.Fatalf("on disk %s: mode %o rdev %d:%d", d.name, ds.Mode, unix.Major(ds.Rdev), unix.Minor(ds.Rdev))
		}
		// No I/O through the server, as knfsd (NFS3ERR_INVAL: not a file).
		_, _, err = c.Read(ctx, h, 0, make([]byte, 4096))
		wantStatus(t, err, nfs3.StatusInval)
		_, _, _, err = c.Write(ctx, h, 0, []byte("overwrite the disk"), vfs.FileSync)
		wantStatus(t, err, nfs3.StatusInval)
		_, err = c.Commit(ctx, h)
		wantStatus(t, err, nfs3.StatusInval)
		_, err = c.SetAttr(ctx, h, vfs.SetAttr{Size: new(uint64)}, nil)
		wantStatus(t, err, nfs3.StatusInval)
	}
	seen := map[string]vfs.Attr{}
	if err := c.ReadDirPlus(ctx, root, func(e vfs.DirEntry) {
		if e.Attr != nil {
			seen[e.Name] = *e.Attr
		}
	}); err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if a := seen[d.name]; a.Type != d.typ || a.RdevMajor != d.major || a.RdevMinor != d.minor {
			t.Errorf("READDIRPLUS %s: %+v", d.name, a)
		}
	}

	fifo, err := c.Mknod(ctx, root, "fifo", vfs.TypeFIFO, 0o666, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Read(ctx, fifo, 0, make([]byte, 1<<17)) // large: the sendfile path
	wantStatus(t, err, nfs3.StatusInval)
	_, _, err = c.Read(ctx, fifo, 0, make([]byte, 10))
	wantStatus(t, err, nfs3.StatusInval)
	_, _, _, err = c.Write(ctx, fifo, 0, []byte("x"), vfs.Unstable)
	wantStatus(t, err, nfs3.StatusInval)
	_, err = c.Commit(ctx, fifo)
	wantStatus(t, err, nfs3.StatusInval)
	_, err = c.Create(ctx, root, "fifo", 0o644, vfs.CreateUnchecked)
	wantStatus(t, err, nfs3.StatusExist)

	noIOFds(t, s.dir1, "null", "disk", "big", "fifo")

	// Numbers Linux's dev_t cannot hold are refused, not truncated into
	// another device (as knfsd).
	for _, mm := range [][2]uint32{{1 << 12, 0}, {0, 1 << 20}, {1<<32 - 1, 1<<32 - 1}} {
		_, err := c.Mknod(ctx, root, "wide", vfs.TypeBlock, 0o600, mm[0], mm[1])
		wantStatus(t, err, nfs3.StatusInval)
	}
	if _, err := os.Lstat(filepath.Join(s.dir1, "wide")); !os.IsNotExist(err) {
		t.Errorf("out-of-range device created: %v", err)
	}

	// Only root may make devices (knfsd drops CAP_MKNOD for other callers).
	pub, err := c.Mkdir(ctx, root, "pub", 0o777)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetAttr(ctx, pub, vfs.SetAttr{Mode: ptrU32(0o777)}, nil); err != nil {
		t.Fatal(err)
	}
	c.SetCred(rpc.Cred{Flavor: rpc.AuthSys, UID: 1000, GID: 1000})
	defer c.SetCred(rpc.Cred{Flavor: rpc.AuthSys})
	for _, typ := range []vfs.FileType{vfs.TypeChar, vfs.TypeBlock} {
		_, err := c.Mknod(ctx, pub, "dev", typ, 0o666, 1, 3)
		wantStatus(t, err, nfs3.StatusPerm)
	}
	if _, err := os.Lstat(filepath.Join(s.dir1, "pub", "dev")); !os.IsNotExist(err) {
		t.Errorf("device made by a non-root caller: %v", err)
	}
	if _, err := c.Mknod(ctx, pub, "fifo", vfs.TypeFIFO, 0o666, 0, 0); err != nil {
		t.Errorf("FIFO by a non-root caller: %v", err)
	}
	c.SetCred(rpc.Cred{Flavor: rpc.AuthSys})

	for _, d := range devs {
		if err := c.Remove(ctx, root, d.name); err != nil {
			t.Errorf("REMOVE %s: %v", d.name, err)
		}
	}
}

func ptrU32(v uint32) *uint32 { return &v }

// noIOFds fails if this process (the server) holds a descriptor of one of
// names in dir that is open for anything but O_PATH.
func noIOFds(t *testing.T, dir string, names ...string) {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		target, err := os.Readlink("/proc/self/fd/" + fd.Name())
		if err != nil {
			continue // closed meanwhile
		}
		for _, name := range names {
			if target != filepath.Join(dir, name) {
				continue
			}
			info, err := os.ReadFile("/proc/self/fdinfo/" + fd.Name())
			if err != nil {
				continue
			}
			flags := fdFlags(t, string(info))
			if flags&unix.O_PATH == 0 {
				t.Errorf("the server holds fd %s on %s open with flags %#o, not O_PATH", fd.Name(), name, flags)
			}
		}
	}
}

func fdFlags(t *testing.T, info string) int {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			f, err := strconv.ParseInt(strings.TrimSpace(v), 8, 64)
			if err != nil {
				t.Fatalf("fdinfo flags %q: %v", v, err)
			}
			return int(f)
		}
	}
	t.Fatalf("no flags in fdinfo %q", info)
	return 0
}

// TestSymlinkLongTarget: RFC 1813 sets no limit on a symlink target
// (nfspath3) and Linux allows PATH_MAX-1 bytes; the MOUNT protocol's
// 1024-byte path limit does not apply.
func TestSymlinkLongTarget(t *testing.T) {
	s := start(t)
	c, root := s.c, s.root
	ctx := context.Background()
	for _, n := range []int{1024, 1025, 4095} {
		target := strings.Repeat("d/", n/2) + strings.Repeat("x", n%2)
		name := fmt.Sprint("l", n)
		h, err := c.Symlink(ctx, root, name, target)
		if err != nil {
			t.Fatalf("SYMLINK with a %d-byte target: %v", n, err)
		}
		got, err := c.Readlink(ctx, h)
		if err != nil || got != target {
			t.Fatalf("READLINK of a %d-byte target: %d bytes, %v", n, len(got), err)
		}
		if a, err := c.GetAttr(ctx, h); err != nil || a.Size != uint64(n) {
			t.Fatalf("GETATTR: %+v %v", a, err)
		}
		if disk, err := os.Readlink(filepath.Join(s.dir1, name)); err != nil || disk != target {
			t.Fatalf("on disk: %d bytes, %v", len(disk), err)
		}
	}
	for _, n := range []int{4096, 5000} {
		_, err := c.Symlink(ctx, root, "toolong", strings.Repeat("x", n))
		wantStatus(t, err, nfs3.StatusNameTooLong)
	}
	if _, err := os.Lstat(filepath.Join(s.dir1, "toolong")); !os.IsNotExist(err) {
		t.Errorf("over-long symlink created: %v", err)
	}
}
