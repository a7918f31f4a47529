package localfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

// Each test here must fail if confinement or handle integrity breaks.

func TestAttackDotDotAtRoot(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		h := env.root
		for i := 0; i < 5; i++ {
			h, _ = env.lookup(t, h, "..")
			if !bytes.Equal(h, env.root) {
				t.Fatal("lookup .. at the root left the root")
			}
		}
		// Also from a subdirectory, two levels up.
		d := env.mkdir(t, env.root, "d")
		up, _ := env.lookup(t, d, "..")
		up2, _ := env.lookup(t, up, "..")
		if !bytes.Equal(up, env.root) || !bytes.Equal(up2, env.root) {
			t.Fatal(".. chain left the root")
		}
		// The root's ".." entry in a listing is the root too.
		for _, e := range listAll(t, env.fs, env.root, true, 100) {
			if e.Name == ".." && (!bytes.Equal(e.Handle, env.root) || e.FileID != env.getattr(t, env.root).FileID) {
				t.Fatal("readdir .. at root reveals the parent")
			}
		}
		env.sentinelIntact(t)
	})
}

func TestAttackSymlinksNeverFollowed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		f := env.fs
		outsideDir := filepath.Join(env.base, "outdir")
		if err := os.Mkdir(outsideDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, target := range []string{"/etc", "../../outside", "../outdir", "/" + strings.TrimPrefix(outsideDir, "/")} {
			l, _, _, err := f.Symlink(ctx, user, env.root, "x", target, vfs.SetAttr{})
			if err != nil {
				t.Fatal(err)
			}
			h, a := env.lookup(t, env.root, "x")
			if a.Type != vfs.TypeSymlink || !bytes.Equal(h, l) {
				t.Fatalf("lookup of symlink to %s followed it: %+v", target, a)
			}
			// Using the symlink as a directory fails.
			for _, op := range []func() error{
				func() error { _, _, _, err := f.Lookup(ctx, user, h, "passwd"); return err },
				func() error { _, _, _, err := f.Lookup(ctx, user, h, "outside"); return err },
				func() error {
					_, _, _, err := f.Create(ctx, user, h, "new", vfs.CreateUnchecked, vfs.SetAttr{}, vfs.Verifier{})
					return err
				},
				func() error { _, _, _, err := f.Mkdir(ctx, user, h, "new", vfs.SetAttr{}); return err },
				func() error { _, err := f.Remove(ctx, user, h, "outside"); return err },
				func() error {
					_, _, _, err := f.ReadDir(ctx, user, h, 0, vfs.Verifier{}, true, func(vfs.DirEntry) bool { return true })
					return err
				},
			} {
				wantErr(t, "op through symlink "+target, op(), unix.ENOTDIR)
			}
			// Data and attribute operations act on the link, never the target.
			_, _, _, err = f.Read(ctx, user, h, 0, make([]byte, 100))
			wantErr(t, "read symlink", err, unix.EINVAL)
			_, _, _, err = f.Write(ctx, user, h, 0, []byte("pwned"), vfs.FileSync)
			wantErr(t, "write symlink", err, unix.EINVAL)
			_, err = f.SetAttr(ctx, root, h, vfs.SetAttr{Mode: u32(0o700)}, nil)
			wantErr(t, "chmod symlink", err, vfs.ErrNotSupp)
			if _, err := f.SetAttr(ctx, root, h, vfs.SetAttr{UID: u32(4321), GID: u32(4321)}, nil); err != nil {
				t.Fatal(err)
			}
			// A create over the symlink's name must not create its target.
			for _, how := range []vfs.CreateHow{vfs.CreateUnchecked, vfs.CreateGuarded, vfs.CreateExclusive} {
				_, _, _, err := f.Create(ctx, user, env.root, "x", how, vfs.SetAttr{Size: u64(0)}, vfs.Verifier{})
				wantErr(t, "create over symlink", err, unix.EEXIST)
			}
			// Link, rename and remove act on the symlink itself.
			if _, _, err := f.Link(ctx, user, h, env.root, "x2"); err != nil {
				t.Fatal(err)
			}
			if _, _, err := f.Rename(ctx, user, env.root, "x2", env.root, "x3"); err != nil {
				t.Fatal(err)
			}
			for _, n := range []string{"x", "x3"} {
				if _, err := f.Remove(ctx, user, env.root, n); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := os.Stat(outsideDir); err != nil {
				t.Fatal("outside directory gone")
			}
			env.sentinelIntact(t)
		}
		// A dangling symlink to an outside path: creating over it must not
		// create the outside file.
		if _, _, _, err := f.Symlink(ctx, user, env.root, "dangle", "../created-outside", vfs.SetAttr{}); err != nil {
			t.Fatal(err)
		}
		_, _, _, err := f.Create(ctx, user, env.root, "dangle", vfs.CreateUnchecked, vfs.SetAttr{}, vfs.Verifier{})
		wantErr(t, "create over dangling symlink", err, unix.EEXIST)
		_, _, _, err = f.Mkdir(ctx, user, env.root, "dangle", vfs.SetAttr{})
		wantErr(t, "mkdir over dangling symlink", err, unix.EEXIST)
		if _, err := os.Lstat(filepath.Join(env.base, "created-outside")); !os.IsNotExist(err) {
			t.Fatal("file created outside the export through a symlink")
		}
		// A symlink inside the volume is not followed either.
		env.create(t, env.root, "target")
		f.Symlink(ctx, user, env.root, "in", "target", vfs.SetAttr{})
		if _, a := env.lookup(t, env.root, "in"); a.Type != vfs.TypeSymlink {
			t.Fatal("in-volume symlink followed")
		}
	})
}

func TestAttackBadNames(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		f := env.fs
		d := env.mkdir(t, env.root, "d")
		env.create(t, d, "file")
		bad := []string{"", "/", "../outside", "../../outside", "a/b", "d/file", "/etc/passwd", "x\x00y", strings.Repeat("a", 256), "..\x00"}
		for _, name := range bad {
			errs := map[string]error{}
			_, _, _, errs["lookup"] = f.Lookup(ctx, user, d, name)
			_, _, _, errs["create"] = f.Create(ctx, user, d, name, vfs.CreateUnchecked, vfs.SetAttr{}, vfs.Verifier{})
			_, _, _, errs["mkdir"] = f.Mkdir(ctx, user, d, name, vfs.SetAttr{})
			_, _, _, errs["symlink"] = f.Symlink(ctx, user, d, name, "t", vfs.SetAttr{})
			_, _, _, errs["mknod"] = f.Mknod(ctx, user, d, name, vfs.TypeFIFO, vfs.SetAttr{}, 0, 0)
			_, errs["remove"] = f.Remove(ctx, user, d, name)
			_, errs["rmdir"] = f.Rmdir(ctx, user, d, name)
			_, _, errs["rename-from"] = f.Rename(ctx, user, d, name, d, "ok")
			_, _, errs["rename-to"] = f.Rename(ctx, user, d, "file", d, name)
			fh, _ := env.lookup(t, d, "file")
			_, _, errs["link"] = f.Link(ctx, user, fh, d, name)
			for op, err := range errs {
				var errno unix.Errno
				if !errors.As(err, &errno) || (errno != unix.EINVAL && errno != unix.EACCES && errno != unix.ENAMETOOLONG) {
					t.Errorf("%s %q: got %v, want EINVAL/EACCES/ENAMETOOLONG", op, name, err)
				}
			}
		}
		// "." and ".." cannot be created, removed or renamed.
		for _, name := range []string{".", ".."} {
			_, _, _, err := f.Create(ctx, user, d, name, vfs.CreateUnchecked, vfs.SetAttr{}, vfs.Verifier{})
			wantErr(t, "create "+name, err, unix.EEXIST)
			_, _, _, err = f.Mkdir(ctx, user, d, name, vfs.SetAttr{})
			wantErr(t, "mkdir "+name, err, unix.EEXIST)
			_, err = f.Remove(ctx, user, d, name)
			wantErr(t, "remove "+name, err, unix.EINVAL)
			_, err = f.Rmdir(ctx, user, d, name)
			wantErr(t, "rmdir "+name, err, unix.EINVAL)
			_, _, err = f.Rename(ctx, user, d, name, env.root, "moved")
			wantErr(t, "rename "+name, err, unix.EINVAL)
			_, _, err = f.Rename(ctx, user, d, "file", d, name)
			wantErr(t, "rename onto "+name, err, unix.EINVAL)
		}
		// A 255-byte name is fine.
		long := strings.Repeat("b", 255)
		env.create(t, d, long)
		env.lookup(t, d, long)
		// Nothing escaped.
		entries, _ := os.ReadDir(env.base)
		for _, e := range entries {
			if e.Name() != "vol" && e.Name() != "outside" && e.Name() != "key" {
				t.Fatalf("unexpected entry outside the export: %s", e.Name())
			}
		}
		env.sentinelIntact(t)
	})
}

// TestAttackRenameRace: a handle keeps naming its inode even when the path
// to it is replaced by a symlink to the outside.
func TestAttackRenameRace(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		f := env.fs
		a := env.mkdir(t, env.root, "a")
		secret := env.create(t, a, "secret")
		env.write(t, secret, 0, "inside")
		ad := env.mkdir(t, a, "dir")
		for restart := 0; restart < 2; restart++ {
			if restart == 1 {
				// Again without cached fds: handles resolve through
				// open_by_handle_at alone.
				env.open(t, Options{})
				f = env.fs
			}
			if _, _, err := f.Rename(ctx, user, env.root, "a", env.root, "b"); err != nil {
				t.Fatal(err)
			}
			if _, _, _, err := f.Symlink(ctx, user, env.root, "a", "../", vfs.SetAttr{}); err != nil {
				t.Fatal(err)
			}
			// Also plant outside-pointing symlinks named like the secret.
			if err := os.Symlink(filepath.Join(env.base, "outside"), filepath.Join(env.dir, "secret")); err != nil {
				t.Fatal(err)
			}
			attr := env.getattr(t, secret)
			if attr.Type != vfs.TypeRegular || attr.Size != 6 {
				t.Fatalf("getattr through old handle: %+v", attr)
			}
			if _, err := f.SetAttr(ctx, root, secret, vfs.SetAttr{Mode: u32(0o666), UID: u32(55)}, nil); err != nil {
				t.Fatal(err)
			}
			env.write(t, secret, 0, "INSIDE")
			if got := env.read(t, secret); got != "INSIDE" {
				t.Fatalf("read through old handle: %q", got)
			}
			// The directory handle still names the moved directory.
			if _, _, _, err := f.Create(ctx, user, ad, "new", vfs.CreateUnchecked, vfs.SetAttr{}, vfs.Verifier{}); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(env.dir, "b", "dir", "new")); err != nil {
				t.Fatal("create through moved directory handle went elsewhere")
			}
			if b, _ := os.ReadFile(filepath.Join(env.dir, "b", "secret")); string(b) != "INSIDE" {
				t.Fatalf("original inode not written: %q", b)
			}
			env.sentinelIntact(t)
			// Undo for the next round.
			os.Remove(filepath.Join(env.dir, "secret"))
			os.Remove(filepath.Join(env.dir, "b", "dir", "new"))
			f.Remove(ctx, user, env.root, "a")
			if _, _, err := f.Rename(ctx, user, env.root, "b", env.root, "a"); err != nil {
				t.Fatal(err)
			}
			env.write(t, secret, 0, "inside")
		}
	})
}

func TestAttackForgedHandles(t *testing.T) {
	env := newEnv(t)
	f := env.fs
	h := env.create(t, env.root, "f")
	for _, orig := range []vfs.Handle{h, env.root} {
		for i := range orig {
			for _, bit := range []byte{0x01, 0x80, 0xff} {
				forged := append(vfs.Handle(nil), orig...)
				forged[i] ^= bit
				if _, err := f.GetAttr(ctx, forged); !errors.Is(err, vfs.ErrBadHandle) {
					t.Fatalf("byte %d ^ %#x: got %v", i, bit, err)
				}
			}
		}
		for n := 0; n < len(orig); n++ {
			if _, err := f.GetAttr(ctx, orig[:n]); !errors.Is(err, vfs.ErrBadHandle) {
				t.Fatalf("truncated to %d: got %v", n, err)
			}
		}
		if _, err := f.GetAttr(ctx, append(append(vfs.Handle(nil), orig...), 0)); !errors.Is(err, vfs.ErrBadHandle) {
			t.Fatalf("extended: %v", err)
		}
	}
	if _, err := f.GetAttr(ctx, make(vfs.Handle, 80)); !errors.Is(err, vfs.ErrBadHandle) {
		t.Fatalf("oversized: %v", err)
	}
	// Every operation checks.
	bad := append(vfs.Handle(nil), h...)
	bad[len(bad)-1] ^= 1
	_, _, _, err := f.Lookup(ctx, user, bad, "x")
	wantErr(t, "lookup", err, vfs.ErrBadHandle)
	_, _, _, err = f.Write(ctx, user, bad, 0, []byte("x"), vfs.FileSync)
	wantErr(t, "write", err, vfs.ErrBadHandle)
	_, _, err = f.Link(ctx, user, bad, env.root, "l")
	wantErr(t, "link", err, vfs.ErrBadHandle)
}

// TestAttackCrossExport: a handle of export A cannot be moved to export B,
// and objects cannot be linked or renamed between exports.
func TestAttackCrossExport(t *testing.T) {
	env := newEnv(t)
	f := env.fs
	bdir := filepath.Join(env.base, "volB")
	if err := os.Mkdir(bdir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(bdir, 0o777); err != nil { // past the umask
		t.Fatal(err)
	}
	if err := f.AddExport("/volB", bdir, "vol-2", nil); err != nil {
		t.Fatal(err)
	}
	broot, err := f.Mount(ctx, "/volB")
	if err != nil {
		t.Fatal(err)
	}
	if env.getattr(t, broot).FSID == env.getattr(t, env.root).FSID {
		t.Fatal("two exports share an fsid")
	}
	ah := env.create(t, env.root, "a")
	// Swap in B's tag: the MAC no longer matches.
	swapped := append(vfs.Handle(nil), ah...)
	copy(swapped[1:1+tagLen], broot[1:1+tagLen])
	if bytes.Equal(swapped, ah) {
		t.Fatal("tags equal")
	}
	if _, err := f.GetAttr(ctx, swapped); !errors.Is(err, vfs.ErrBadHandle) {
		t.Fatalf("handle with another export's tag: %v", err)
	}
	_, _, err = f.Link(ctx, user, ah, broot, "l")
	wantErr(t, "link across exports", err, unix.EXDEV)
	_, _, err = f.Rename(ctx, user, env.root, "a", broot, "a")
	wantErr(t, "rename across exports", err, unix.EXDEV)
	if _, err := os.Lstat(filepath.Join(bdir, "a")); !os.IsNotExist(err) {
		t.Fatal("object appeared in the other export")
	}
	// A removed export's handles are stale.
	bh := env.create(t, broot, "b")
	if err := f.RemoveExport("/volB"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.GetAttr(ctx, bh); !errors.Is(err, vfs.ErrStale) {
		t.Fatalf("handle of removed export: %v", err)
	}
	if _, err := f.GetAttr(ctx, broot); !errors.Is(err, vfs.ErrStale) {
		t.Fatalf("root handle of removed export: %v", err)
	}
	if err := f.RemoveExport("/volB"); !errors.Is(err, vfs.ErrNoExport) {
		t.Fatalf("double remove: %v", err)
	}
	// Export A is unaffected.
	env.getattr(t, ah)
}

// TestAttackOutsideHandle: a kernel handle of a file outside every export,
// wrapped with a MAC under another key, is refused.
func TestAttackOutsideHandle(t *testing.T) {
	env := newEnv(t)
	fh, _, err := unix.NameToHandleAt(unix.AT_FDCWD, filepath.Join(env.base, "outside"), 0)
	if err != nil {
		t.Fatal(err)
	}
	wrong := newKeys(bytes.Repeat([]byte{0x42}, keySize))
	// Use the real export's tag: only the key is unknown to the attacker.
	var tg tag
	copy(tg[:], env.root[1:1+tagLen])
	forged, err := wrong.encodeHandle(tg, fh.Type(), fh.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.fs.GetAttr(ctx, forged); !errors.Is(err, vfs.ErrBadHandle) {
		t.Fatalf("outside handle with wrong key: %v", err)
	}
	_, _, _, err = env.fs.Write(ctx, root, forged, 0, []byte("pwned"), vfs.FileSync)
	wantErr(t, "write", err, vfs.ErrBadHandle)
	_, err = env.fs.SetAttr(ctx, root, forged, vfs.SetAttr{Mode: u32(0o777)}, nil)
	wantErr(t, "setattr", err, vfs.ErrBadHandle)
	env.sentinelIntact(t)
	// Sanity check of the test itself: with the right key the same kernel
	// handle would resolve, so the MAC is what stops it.
	right, err := env.fs.keys.encodeHandle(tg, fh.Type(), fh.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.fs.GetAttr(ctx, right); err != nil {
		t.Fatalf("control: %v", err)
	}
}

func TestAttackRemovedIsStale(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		f := env.fs
		h := env.create(t, env.root, "f")
		d := env.mkdir(t, env.root, "d")
		env.write(t, h, 0, "x")
		if _, err := f.Remove(ctx, user, env.root, "f"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Rmdir(ctx, user, env.root, "d"); err != nil {
			t.Fatal(err)
		}
		check := func() {
			t.Helper()
			for _, obj := range []vfs.Handle{h, d} {
				_, err := f.GetAttr(ctx, obj)
				wantErr(t, "getattr removed", err, vfs.ErrStale)
			}
			_, _, _, err := f.Read(ctx, user, h, 0, make([]byte, 4))
			wantErr(t, "read removed", err, vfs.ErrStale)
			_, _, _, err = f.Write(ctx, user, h, 0, []byte("x"), vfs.Unstable)
			wantErr(t, "write removed", err, vfs.ErrStale)
			_, _, _, err = f.Lookup(ctx, user, d, "x")
			wantErr(t, "lookup in removed dir", err, vfs.ErrStale)
		}
		check()
		env.open(t, Options{})
		f = env.fs
		check()
	})
}

// TestAttackDevices: device nodes are stored, for root callers only, but
// never become a door into the server's devices: every data operation on
// one fails before anything opens it.
func TestAttackDevices(t *testing.T) {
	env := newEnv(t)
	var st unix.Stat_t
	if err := unix.Stat(env.dir, &st); err != nil {
		t.Fatal(err)
	}
	for i, d := range []struct {
		ty           vfs.FileType
		major, minor uint32
	}{
		{vfs.TypeChar, 1, 1}, // /dev/mem
		{vfs.TypeBlock, unix.Major(st.Dev), unix.Minor(st.Dev)}, // the disk under the volume
	} {
		name := fmt.Sprint("dev", i)
		_, _, wcc, err := env.fs.Mknod(ctx, user, env.root, name, d.ty, vfs.SetAttr{}, d.major, d.minor)
		wantErr(t, "mknod device as a user", err, unix.EPERM)
		if wcc.After == nil {
			t.Fatal("no wcc data")
		}
		if _, err := os.Lstat(filepath.Join(env.dir, name)); !os.IsNotExist(err) {
			t.Fatal("device node created for a user")
		}
		h, _, _, err := env.fs.Mknod(ctx, root, env.root, name, d.ty, vfs.SetAttr{}, d.major, d.minor)
		if err != nil {
			t.Fatalf("mknod device as root: %v", err)
		}
		_, _, _, err = env.fs.Read(ctx, root, h, 0, make([]byte, 4096))
		wantErr(t, "read device", err, unix.EINVAL)
		fd, _, _, _, err := env.fs.ReadFile(ctx, root, h, 0, 1<<20)
		wantErr(t, "readfile device", err, unix.EINVAL)
		if fd != -1 {
			t.Fatalf("readfile of a device handed out fd %d", fd)
		}
		_, _, _, err = env.fs.Write(ctx, root, h, 0, []byte("x"), vfs.FileSync)
		wantErr(t, "write device", err, unix.EINVAL)
		_, err = env.fs.Commit(ctx, root, h, 0, 0)
		wantErr(t, "commit device", err, unix.EINVAL)
		_, err = env.fs.SetAttr(ctx, root, h, vfs.SetAttr{Size: u64(0)}, nil)
		wantErr(t, "truncate device", err, unix.EINVAL)
		n := env.fs.cache.get(h)
		if n == nil {
			t.Fatal("device node not cached")
		}
		if io := n.io.Load(); io != -1 {
			t.Errorf("device node opened for I/O (fd %d)", io)
		}
		env.fs.cache.release(n)
	}
	env.configure(t, ExportConfig{RootSquash: true, AnonUID: 65534, AnonGID: 65534})
	_, _, _, err := env.fs.Mknod(ctx, root, env.root, "squashed", vfs.TypeChar, vfs.SetAttr{}, 1, 1)
	wantErr(t, "mknod device as a squashed root", err, unix.EPERM)
}

// TestAttackMountPoint: lookup does not cross into a file system mounted
// inside the volume.
func TestAttackMountPoint(t *testing.T) {
	env := newEnv(t)
	mp := filepath.Join(env.dir, "mnt")
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(env.base, mp, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount: %v", err)
	}
	defer unix.Unmount(mp, unix.MNT_DETACH)
	_, _, _, err := env.fs.Lookup(ctx, user, env.root, "mnt")
	wantErr(t, "lookup mount point", err, unix.EACCES)
	for _, e := range listAll(t, env.fs, env.root, true, 100) {
		if e.Name == "mnt" && e.Handle != nil {
			// A bind mount of the same device: the handle would name the
			// mounted directory, outside the volume.
			a := env.getattr(t, e.Handle)
			if a.FileID != e.FileID {
				t.Fatal("readdirplus crossed a mount point")
			}
		}
	}
}

// TestChmodFallback exercises the path used on kernels without fchmodat2.
func TestChmodFallback(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(p, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if got := procFdPath(fd); got != "/proc/self/fd/"+strconv.Itoa(fd) {
		t.Fatalf("procFdPath = %q", got)
	}
	if err := unix.Fchmodat(unix.AT_FDCWD, procFdPath(fd), 0o4751, 0); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(p); st.Mode()&os.ModePerm != 0o751 || st.Mode()&os.ModeSetuid == 0 {
		t.Fatalf("mode %v", st.Mode())
	}
}
