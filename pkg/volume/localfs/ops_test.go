package localfs

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

func TestExportsAndMount(t *testing.T) {
	env := newEnv(t)
	if got := env.fs.Exports(ctx); len(got) != 1 || got[0].Path != "/vol" {
		t.Fatalf("Exports = %v", got)
	}
	if _, err := env.fs.Mount(ctx, "/nope"); !errors.Is(err, vfs.ErrNoExport) {
		t.Fatalf("mount unknown: %v", err)
	}
	local := vfs.WithClient(ctx, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 700})
	other := vfs.WithClient(ctx, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 700})
	if err := env.fs.SetPolicy("/vol", func(c netip.Addr) vfs.Grant {
		if c == netip.MustParseAddr("127.0.0.1") {
			return vfs.GrantReadWrite
		}
		return vfs.GrantNone
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.fs.Mount(other, "/vol"); !errors.Is(err, vfs.ErrNotAllowed) {
		t.Fatalf("mount from a client not allowed: %v", err)
	}
	if got := env.fs.Exports(other); len(got) != 0 {
		t.Fatalf("Exports to a client not allowed = %v", got)
	}
	h, err := env.fs.Mount(local, "/vol")
	if err != nil || !bytes.Equal(h, env.root) {
		t.Fatalf("mount: %x %v", h, err)
	}
	if err := env.fs.SetPolicy("/vol", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := env.fs.Mount(other, "/vol"); err != nil {
		t.Fatalf("mount after allowing all: %v", err)
	}
	if err := env.fs.SetPolicy("/nope", nil); !errors.Is(err, vfs.ErrNoExport) {
		t.Fatalf("SetPolicy unknown: %v", err)
	}
	a := env.getattr(t, env.root)
	if a.Type != vfs.TypeDirectory || a.FSID == 0 {
		t.Fatalf("root attr %+v", a)
	}
	if len(env.root) > vfs.MaxHandleSize {
		t.Fatalf("handle too long: %d", len(env.root))
	}
	if err := env.fs.AddExport("/vol", env.dir, "other", nil); err == nil {
		t.Fatal("duplicate export path accepted")
	}
	if err := env.fs.AddExport("/again", env.dir, "vol-1", nil); err == nil {
		t.Fatal("duplicate volume ID accepted")
	}
	if err := env.fs.AddExport("a/b", env.dir, "x", nil); err == nil {
		t.Fatal("bad export path accepted")
	}
}

func TestBasicOps(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		f := env.fs
		fh := env.create(t, env.root, "file")
		env.write(t, fh, 0, "hello world")
		if got := env.read(t, fh); got != "hello world" {
			t.Fatalf("read %q", got)
		}
		h2, a := env.lookup(t, env.root, "file")
		if !bytes.Equal(h2, fh) || a.Size != 11 || a.Type != vfs.TypeRegular || a.Nlink != 1 {
			t.Fatalf("lookup: %x %+v", h2, a)
		}
		// "." is the directory itself.
		dot, _ := env.lookup(t, env.root, ".")
		if !bytes.Equal(dot, env.root) {
			t.Fatal("lookup . is not the directory")
		}
		if _, _, _, err := f.Lookup(ctx, user, env.root, "missing"); !errors.Is(err, unix.ENOENT) {
			t.Fatalf("lookup missing: %v", err)
		}
		if _, _, da, err := f.Lookup(ctx, user, fh, "x"); !errors.Is(err, unix.ENOTDIR) || da == nil {
			t.Fatalf("lookup in file: %v %v", err, da)
		}

		// Directories, ".." and non-empty rmdir.
		d := env.mkdir(t, env.root, "d")
		sub := env.mkdir(t, d, "sub")
		up, _ := env.lookup(t, sub, "..")
		if !bytes.Equal(up, d) {
			t.Fatal("lookup .. is not the parent")
		}
		_, err := f.Rmdir(ctx, user, env.root, "d")
		wantErr(t, "rmdir non-empty", err, unix.ENOTEMPTY)
		_, err = f.Remove(ctx, user, d, "sub")
		wantErr(t, "remove dir", err, unix.EISDIR)
		_, err = f.Rmdir(ctx, user, env.root, "file")
		wantErr(t, "rmdir file", err, unix.ENOTDIR)

		// Symlinks store and return the target verbatim.
		for _, target := range []string{"/etc/passwd", "../../x", "a//b/", "dangling"} {
			name := fmt.Sprintf("l%d", len(target))
			lh, la, wcc, err := f.Symlink(ctx, user, env.root, name, target, vfs.SetAttr{})
			if err != nil || la.Type != vfs.TypeSymlink || wcc.Before == nil || wcc.After == nil {
				t.Fatalf("symlink: %v %+v %+v", err, la, wcc)
			}
			got, _, err := f.Readlink(ctx, user, lh)
			if err != nil || got != target {
				t.Fatalf("readlink: %q %v", got, err)
			}
			if la.UID != user.UID || la.GID != user.GID {
				t.Fatalf("symlink owner %d:%d", la.UID, la.GID)
			}
		}
		if _, _, err := f.Readlink(ctx, user, fh); !errors.Is(err, unix.EINVAL) {
			t.Fatalf("readlink of file: %v", err)
		}

		// FIFO and socket.
		for _, ty := range []vfs.FileType{vfs.TypeFIFO, vfs.TypeSocket} {
			_, a, _, err := f.Mknod(ctx, user, env.root, fmt.Sprintf("n%d", ty), ty, vfs.SetAttr{Mode: u32(0o640)}, 0, 0)
			if err != nil || a.Type != ty || a.Mode != 0o640 {
				t.Fatalf("mknod %d: %v %+v", ty, err, a)
			}
		}
		_, _, _, err = f.Mknod(ctx, user, env.root, "bad", vfs.TypeRegular, vfs.SetAttr{}, 0, 0)
		wantErr(t, "mknod regular", err, vfs.ErrBadType)

		// Rename over an existing file replaces it.
		other := env.create(t, env.root, "other")
		env.write(t, other, 0, "other")
		if _, _, err := f.Rename(ctx, user, env.root, "file", env.root, "other"); err != nil {
			t.Fatal(err)
		}
		nh, _ := env.lookup(t, env.root, "other")
		if !bytes.Equal(nh, fh) || env.read(t, nh) != "hello world" {
			t.Fatal("rename did not replace the target")
		}
		if _, err := f.GetAttr(ctx, other); !errors.Is(err, vfs.ErrStale) {
			t.Fatalf("replaced file: %v", err)
		}
		// Directory onto a non-empty directory.
		env.mkdir(t, env.root, "e")
		_, _, err = f.Rename(ctx, user, env.root, "e", env.root, "d")
		if !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.EEXIST) {
			t.Fatalf("rename onto non-empty dir: %v", err)
		}
		// Into another directory, with wcc of both.
		fw, tw, err := f.Rename(ctx, user, env.root, "other", d, "moved")
		if err != nil || fw.Before == nil || fw.After == nil || tw.Before == nil || tw.After == nil {
			t.Fatalf("rename: %v %+v %+v", err, fw, tw)
		}

		// Hard links.
		la, wcc, err := f.Link(ctx, user, fh, env.root, "link")
		if err != nil || la.Nlink != 2 || wcc.After == nil {
			t.Fatalf("link: %v %+v", err, la)
		}
		if _, err := f.Remove(ctx, user, d, "moved"); err != nil {
			t.Fatal(err)
		}
		if a := env.getattr(t, fh); a.Nlink != 1 {
			t.Fatalf("nlink after remove: %d", a.Nlink)
		}
		_, _, err = f.Link(ctx, user, d, env.root, "dirlink")
		wantErr(t, "link dir", err, unix.EISDIR)
		_, _, err = f.Link(ctx, user, fh, env.root, "link")
		wantErr(t, "link existing", err, unix.EEXIST)

		// FSSTAT and COMMIT.
		st, _, err := f.FSStat(ctx, env.root)
		if err != nil || st.TotalBytes == 0 || st.AvailBytes > st.TotalBytes {
			t.Fatalf("fsstat: %+v %v", st, err)
		}
		if _, err := f.Commit(ctx, user, fh, 0, 0); err != nil {
			t.Fatal(err)
		}
		_, err = f.Commit(ctx, user, d, 0, 0)
		wantErr(t, "commit dir", err, unix.EISDIR)

		// Remove and rmdir.
		if _, err := f.Rmdir(ctx, user, d, "sub"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.GetAttr(ctx, sub); !errors.Is(err, vfs.ErrStale) {
			t.Fatalf("removed dir: %v", err)
		}
		if _, err := f.Rmdir(ctx, user, env.root, "d"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestCreateModes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		f := env.fs
		h := env.create(t, env.root, "f")
		env.write(t, h, 0, "keep me")
		// GUARDED on an existing name fails.
		_, _, _, err := f.Create(ctx, user, env.root, "f", vfs.CreateGuarded, vfs.SetAttr{}, vfs.Verifier{})
		wantErr(t, "guarded create", err, unix.EEXIST)
		// UNCHECKED returns the existing file untouched...
		h2, a, _, err := f.Create(ctx, user, env.root, "f", vfs.CreateUnchecked, vfs.SetAttr{Mode: u32(0o600)}, vfs.Verifier{})
		if err != nil || !bytes.Equal(h, h2) || a.Size != 7 || a.Mode != 0o644 {
			t.Fatalf("unchecked create: %v %+v", err, a)
		}
		// ...unless it asks for size 0.
		_, a, _, err = f.Create(ctx, user, env.root, "f", vfs.CreateUnchecked, vfs.SetAttr{Size: u64(0)}, vfs.Verifier{})
		if err != nil || a.Size != 0 {
			t.Fatalf("unchecked create with size 0: %v %+v", err, a)
		}
		// UNCHECKED on a directory name fails.
		env.mkdir(t, env.root, "d")
		_, _, _, err = f.Create(ctx, user, env.root, "d", vfs.CreateUnchecked, vfs.SetAttr{}, vfs.Verifier{})
		wantErr(t, "unchecked create over dir", err, unix.EEXIST)
		// A new UNCHECKED file gets the mode asked for, whatever the umask.
		_, a, _, err = f.Create(ctx, user, env.root, "g", vfs.CreateUnchecked, vfs.SetAttr{Mode: u32(0o664)}, vfs.Verifier{})
		if err != nil || a.Mode != 0o664 {
			t.Fatalf("unchecked new: %v %+v", err, a)
		}
	})
}

func TestExclusiveCreate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		f := env.fs
		v := vfs.Verifier{0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04}
		h, a, _, err := f.Create(ctx, user, env.root, "x", vfs.CreateExclusive, vfs.SetAttr{}, v)
		if err != nil || a.UID != user.UID {
			t.Fatalf("exclusive create: %v %+v", err, a)
		}
		// A retransmission succeeds with the same file.
		h2, _, _, err := f.Create(ctx, user, env.root, "x", vfs.CreateExclusive, vfs.SetAttr{}, v)
		if err != nil || !bytes.Equal(h, h2) {
			t.Fatalf("retransmitted exclusive create: %v", err)
		}
		// Also after a restart (the verifier is on disk).
		env.open(t, Options{})
		h3, _, _, err := env.fs.Create(ctx, user, env.root, "x", vfs.CreateExclusive, vfs.SetAttr{}, v)
		if err != nil || !bytes.Equal(h, h3) {
			t.Fatalf("retransmission after restart: %v", err)
		}
		f = env.fs
		// Another verifier is another client: EEXIST.
		v2 := v
		v2[7]++
		_, _, _, err = f.Create(ctx, user, env.root, "x", vfs.CreateExclusive, vfs.SetAttr{}, v2)
		wantErr(t, "exclusive create, other verifier", err, unix.EEXIST)
		// Once the client has set real times, the verifier no longer matches.
		now := time.Now()
		if _, err := f.SetAttr(ctx, user, h, vfs.SetAttr{Mode: u32(0o640), Atime: vfs.SetTime{How: vfs.TimeClient, Time: now}, Mtime: vfs.SetTime{How: vfs.TimeServer}}, nil); err != nil {
			t.Fatal(err)
		}
		_, _, _, err = f.Create(ctx, user, env.root, "x", vfs.CreateExclusive, vfs.SetAttr{}, v)
		wantErr(t, "exclusive create after setattr", err, unix.EEXIST)
		ga := env.getattr(t, h)
		if !ga.Atime.Equal(time.Unix(now.Unix(), int64(now.Nanosecond()))) || ga.Mode != 0o640 {
			t.Fatalf("attrs after setattr: %+v", ga)
		}
	})
}

func TestReadWrite(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		f := env.fs
		h := env.create(t, env.root, "f")
		data := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
		for i, s := range []vfs.Stable{vfs.Unstable, vfs.DataSync, vfs.FileSync} {
			n, got, wcc, err := f.Write(ctx, user, h, uint64(i)*uint64(len(data)), data, s)
			want := s
			var sfs unix.Statfs_t
			if unix.Statfs(env.dir, &sfs) == nil && sfs.Type == unix.TMPFS_MAGIC {
				want = vfs.FileSync // nothing to sync there: every write is as durable as it gets
			}
			if err != nil || n != len(data) || got != want {
				t.Fatalf("write %d: n=%d committed=%d err=%v", s, n, got, err)
			}
			if wcc.Before == nil || wcc.After == nil || wcc.After.Size != uint64(i+1)*uint64(len(data)) || wcc.Before.Size != uint64(i)*uint64(len(data)) {
				t.Fatalf("write wcc: %+v %+v", wcc.Before, wcc.After)
			}
		}
		size := uint64(3 * len(data))
		// Read into the caller's buffer, in the middle, at the end, past it.
		buf := make([]byte, 1000)
		n, eof, a, err := f.Read(ctx, user, h, 100, buf)
		if err != nil || n != 1000 || eof || !bytes.Equal(buf, data[100:1100]) || a.Size != size {
			t.Fatalf("read middle: n=%d eof=%v err=%v", n, eof, err)
		}
		n, eof, _, err = f.Read(ctx, user, h, size-10, buf)
		if err != nil || n != 10 || !eof || !bytes.Equal(buf[:10], data[len(data)-10:]) {
			t.Fatalf("read tail: n=%d eof=%v err=%v", n, eof, err)
		}
		n, eof, _, err = f.Read(ctx, user, h, size-1000, buf)
		if err != nil || n != 1000 || !eof {
			t.Fatalf("read to exact end: n=%d eof=%v err=%v", n, eof, err)
		}
		n, eof, _, err = f.Read(ctx, user, h, size+5, buf)
		if err != nil || n != 0 || !eof {
			t.Fatalf("read past end: n=%d eof=%v err=%v", n, eof, err)
		}
		n, eof, _, err = f.Read(ctx, user, h, 1<<63+5, buf)
		if err != nil || n != 0 || !eof {
			t.Fatalf("read at huge offset: n=%d eof=%v err=%v", n, eof, err)
		}
		_, _, _, err = f.Write(ctx, user, h, 1<<63, []byte("x"), vfs.Unstable)
		wantErr(t, "write at huge offset", err, unix.EFBIG)
		// Data operations on a directory.
		_, _, _, err = f.Read(ctx, user, env.root, 0, buf)
		wantErr(t, "read dir", err, unix.EISDIR)
		_, _, _, err = f.Write(ctx, user, env.root, 0, buf, vfs.Unstable)
		wantErr(t, "write dir", err, unix.EISDIR)
		// The data is on disk where a local reader sees it.
		b, err := os.ReadFile(filepath.Join(env.dir, "f"))
		if err != nil || !bytes.Equal(b, bytes.Repeat(data, 3)) {
			t.Fatal("file contents differ on disk")
		}
		if f.WriteVerifier() == (vfs.Verifier{}) {
			t.Fatal("zero write verifier")
		}
	})
}

func TestSetAttr(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		f := env.fs
		h := env.create(t, env.root, "f")
		env.write(t, h, 0, "0123456789")
		d := env.mkdir(t, env.root, "d")
		// setuid, setgid and sticky survive, also when set with an owner change.
		for _, m := range []uint32{0o4755, 0o2755, 0o1777, 0o7777, 0o0000, 0o6750} {
			for _, obj := range []vfs.Handle{h, d} {
				if _, err := f.SetAttr(ctx, root, obj, vfs.SetAttr{Mode: u32(m), UID: u32(7), GID: u32(8)}, nil); err != nil {
					t.Fatalf("setattr %o: %v", m, err)
				}
				if a := env.getattr(t, obj); a.Mode != m || a.UID != 7 || a.GID != 8 {
					t.Fatalf("mode %o: got %+v", m, a)
				}
			}
		}
		// Size.
		wcc, err := f.SetAttr(ctx, root, h, vfs.SetAttr{Size: u64(4)}, nil)
		if err != nil || wcc.Before.Size != 10 || wcc.After.Size != 4 {
			t.Fatalf("truncate: %v %+v", err, wcc)
		}
		_, err = f.SetAttr(ctx, root, d, vfs.SetAttr{Size: u64(0)}, nil)
		wantErr(t, "truncate dir", err, unix.EISDIR)
		// Times, with nanoseconds.
		at := time.Unix(1_000_000_000, 123456789)
		mt := time.Unix(1_100_000_000, 987654321)
		if _, err := f.SetAttr(ctx, root, h, vfs.SetAttr{Atime: vfs.SetTime{How: vfs.TimeClient, Time: at}, Mtime: vfs.SetTime{How: vfs.TimeClient, Time: mt}}, nil); err != nil {
			t.Fatal(err)
		}
		a := env.getattr(t, h)
		if !a.Atime.Equal(at) || !a.Mtime.Equal(mt) {
			t.Fatalf("times: %v %v", a.Atime, a.Mtime)
		}
		before := time.Now().Add(-time.Second)
		// Let the kernel's coarse ctime clock (a jiffy) tick, so the change
		// below gets a ctime different from a's and the guard can mismatch.
		time.Sleep(20 * time.Millisecond)
		if _, err := f.SetAttr(ctx, root, h, vfs.SetAttr{Mtime: vfs.SetTime{How: vfs.TimeServer}}, nil); err != nil {
			t.Fatal(err)
		}
		a2 := env.getattr(t, h)
		if a2.Mtime.Before(before) || !a2.Atime.Equal(at) {
			t.Fatalf("server mtime: %v, atime %v", a2.Mtime, a2.Atime)
		}
		// Guard: stale ctime fails with NOT_SYNC and changes nothing.
		wcc, err = f.SetAttr(ctx, root, h, vfs.SetAttr{Mode: u32(0o600)}, &a.Ctime)
		if a.Ctime.Equal(a2.Ctime) {
			t.Fatalf("ctime did not advance across a SETATTR: %v", a.Ctime)
		}
		wantErr(t, "guarded setattr", err, vfs.ErrNotSync)
		if wcc.After == nil || wcc.After.Mode == 0o600 {
			t.Fatal("guard mismatch changed the mode")
		}
		if _, err := f.SetAttr(ctx, root, h, vfs.SetAttr{Mode: u32(0o600)}, &a2.Ctime); err != nil {
			t.Fatalf("guarded setattr with current ctime: %v", err)
		}
		// Symlinks: no mode, no size.
		l, _, _, err := f.Symlink(ctx, user, env.root, "l", "f", vfs.SetAttr{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.SetAttr(ctx, root, l, vfs.SetAttr{Mode: u32(0o600)}, nil)
		wantErr(t, "chmod symlink", err, vfs.ErrNotSupp)
		_, err = f.SetAttr(ctx, root, l, vfs.SetAttr{Size: u64(0)}, nil)
		wantErr(t, "truncate symlink", err, unix.EINVAL)
		_, _, _, err = f.Read(ctx, user, l, 0, make([]byte, 10))
		wantErr(t, "read symlink", err, unix.EINVAL)
		// chown of a symlink changes the link, not its target.
		if _, err := f.SetAttr(ctx, root, l, vfs.SetAttr{UID: u32(99)}, nil); err != nil {
			t.Fatal(err)
		}
		if env.getattr(t, l).UID != 99 || env.getattr(t, h).UID == 99 {
			t.Fatal("chown of symlink went to the target")
		}
	})
}

func TestOwnership(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		f := env.fs
		c := vfs.Cred{UID: 1234, GID: 5678, Groups: []uint32{9}}
		_, a, _, err := f.Create(ctx, c, env.root, "f", vfs.CreateGuarded, vfs.SetAttr{Mode: u32(0o640)}, vfs.Verifier{})
		if err != nil || a.UID != 1234 || a.GID != 5678 || a.Mode != 0o640 {
			t.Fatalf("create: %v %+v", err, a)
		}
		// A setgid directory passes its group on, and setgid to subdirectories.
		sg, _, _, err := f.Mkdir(ctx, root, env.root, "sg", vfs.SetAttr{Mode: u32(0o2777), GID: u32(4242)})
		if err != nil {
			t.Fatal(err)
		}
		if a := env.getattr(t, sg); a.GID != 4242 || a.Mode != 0o2777 {
			t.Fatalf("setgid dir: %+v", a)
		}
		_, a, _, err = f.Create(ctx, c, sg, "f", vfs.CreateGuarded, vfs.SetAttr{}, vfs.Verifier{})
		if err != nil || a.UID != 1234 || a.GID != 4242 || a.Mode != defaultFileMode {
			t.Fatalf("create in setgid dir: %v %+v", err, a)
		}
		_, a, _, err = f.Mkdir(ctx, c, sg, "sub", vfs.SetAttr{Mode: u32(0o750)})
		if err != nil || a.UID != 1234 || a.GID != 4242 || a.Mode != 0o2750 {
			t.Fatalf("mkdir in setgid dir: %v %+v", err, a)
		}
		_, a, _, err = f.Symlink(ctx, c, sg, "l", "x", vfs.SetAttr{})
		if err != nil || a.UID != 1234 || a.GID != 4242 {
			t.Fatalf("symlink in setgid dir: %v %+v", err, a)
		}
		// Check on disk too.
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(env.dir, "sg", "sub"), &st); err != nil || st.Uid != 1234 || st.Gid != 4242 {
			t.Fatalf("on disk: %+v %v", st, err)
		}
	})
}

func TestAccess(t *testing.T) {
	env := newEnv(t)
	f := env.fs
	all := uint32(vfs.AccessRead | vfs.AccessLookup | vfs.AccessModify | vfs.AccessExtend | vfs.AccessDelete | vfs.AccessExecute)
	h := env.create(t, env.root, "f")
	d := env.mkdir(t, env.root, "d")
	set := func(obj vfs.Handle, mode, uid, gid uint32) {
		if _, err := f.SetAttr(ctx, root, obj, vfs.SetAttr{Mode: &mode, UID: &uid, GID: &gid}, nil); err != nil {
			t.Fatal(err)
		}
	}
	const (
		rd  = vfs.AccessRead
		mod = vfs.AccessModify | vfs.AccessExtend
		ex  = vfs.AccessExecute
	)
	tests := []struct {
		obj            vfs.Handle
		mode, uid, gid uint32
		c              vfs.Cred
		want           uint32
	}{
		{h, 0o640, 1000, 1000, user, rd | mod},
		{h, 0o640, 1, 1000, user, rd},
		{h, 0o640, 1, 2, vfs.Cred{UID: 1000, GID: 1000, Groups: []uint32{2}}, rd},
		{h, 0o604, 1, 2, user, rd},
		{h, 0o075, 1000, 1000, user, 0}, // owner class decides even if others may more
		{h, 0o755, 1, 1, user, rd | ex},
		{h, 0o000, 1, 1, root, rd | mod},
		{h, 0o001, 1, 1, root, rd | mod | ex},
		{d, 0o755, 1000, 1, user, rd | mod | vfs.AccessDelete | vfs.AccessLookup},
		{d, 0o711, 1, 1, user, vfs.AccessLookup},
		{d, 0o000, 1, 1, root, rd | mod | vfs.AccessDelete | vfs.AccessLookup},
	}
	for i, tc := range tests {
		set(tc.obj, tc.mode, tc.uid, tc.gid)
		got, a, err := f.Access(ctx, tc.c, tc.obj, all)
		if err != nil || got != tc.want || a.Mode != tc.mode {
			t.Errorf("%d: mode %o owner %d:%d cred %+v: got %#x want %#x (%v)", i, tc.mode, tc.uid, tc.gid, tc.c, got, tc.want, err)
		}
		// Only requested bits are reported.
		if got, _, _ := f.Access(ctx, tc.c, tc.obj, vfs.AccessRead); got != tc.want&vfs.AccessRead {
			t.Errorf("%d: read only: got %#x", i, got)
		}
	}
}

func TestReadDir(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		f := env.fs
		names := map[string]bool{".": true, "..": true}
		for i := 0; i < 50; i++ {
			n := fmt.Sprintf("f%03d", i)
			names[n] = true
			env.create(t, env.root, n)
		}
		env.mkdir(t, env.root, "dir")
		names["dir"] = true
		f.Symlink(ctx, user, env.root, "link", "/etc", vfs.SetAttr{})
		names["link"] = true
		for _, plus := range []bool{false, true} {
			for _, page := range []int{1, 7, 1000} {
				got := listAll(t, f, env.root, plus, page)
				seen := map[string]bool{}
				for _, e := range got {
					if seen[e.Name] || !names[e.Name] {
						t.Fatalf("plus=%v page=%d: unexpected or repeated %q", plus, page, e.Name)
					}
					seen[e.Name] = true
					if plus {
						if e.Attr == nil || e.Handle == nil {
							t.Fatalf("plus entry %q without attrs/handle", e.Name)
						}
						a := env.getattr(t, e.Handle)
						if a.FileID != e.Attr.FileID || (e.Name != ".." && a.FileID != e.FileID) {
							t.Fatalf("entry %q: handle and attrs disagree", e.Name)
						}
						if e.Name == "link" && a.Type != vfs.TypeSymlink {
							t.Fatalf("symlink entry followed: %+v", a)
						}
					}
				}
				if len(seen) != len(names) {
					t.Fatalf("plus=%v page=%d: got %d entries, want %d", plus, page, len(seen), len(names))
				}
			}
		}
		// At the root, ".." is the root.
		for _, e := range listAll(t, f, env.root, true, 1000) {
			if e.Name == ".." && !bytes.Equal(e.Handle, env.root) {
				t.Fatal(".. at the root is not the root")
			}
		}
		_, _, _, err := f.ReadDir(ctx, user, env.create(t, env.root, "file"), 0, vfs.Verifier{}, false, func(vfs.DirEntry) bool { return true })
		wantErr(t, "readdir of file", err, unix.ENOTDIR)
	})
}

// TestReadDirCookiesStable lists a directory page by page while entries are
// added and removed between pages: every entry present throughout must be
// returned exactly once.
func TestReadDirCookiesStable(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		f := env.fs
		d := env.mkdir(t, env.root, "d")
		const n = 300
		// Set up directly on disk: only the listing is under test, and
		// durable creates are slow on loop devices.
		for i := 0; i < n; i++ {
			for _, name := range []string{fmt.Sprintf("keep%03d", i), fmt.Sprintf("gone%03d", i)} {
				if err := os.WriteFile(filepath.Join(env.dir, "d", name), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		seen := map[string]int{}
		var cookie uint64
		removed, added := 0, 0
		for pages := 0; ; pages++ {
			if pages > 10*n {
				t.Fatal("listing does not end")
			}
			var got []vfs.DirEntry
			_, eof, _, err := f.ReadDir(ctx, user, d, cookie, vfs.Verifier{}, pages%2 == 0, func(e vfs.DirEntry) bool {
				if len(got) == 13 {
					return false
				}
				got = append(got, e)
				return true
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range got {
				seen[e.Name]++
			}
			if eof {
				break
			}
			cookie = got[len(got)-1].Cookie
			// Churn: remove some entries, add new ones.
			for k := 0; k < 5 && removed < n; k++ {
				if _, err := f.Remove(ctx, user, d, fmt.Sprintf("gone%03d", removed)); err != nil {
					t.Fatal(err)
				}
				removed++
			}
			for k := 0; k < 3; k++ {
				env.create(t, d, fmt.Sprintf("new%04d", added))
				added++
			}
		}
		for i := 0; i < n; i++ {
			if c := seen[fmt.Sprintf("keep%03d", i)]; c != 1 {
				t.Fatalf("keep%03d returned %d times", i, c)
			}
		}
		for name, c := range seen {
			if c != 1 {
				t.Fatalf("%s returned %d times", name, c)
			}
		}
		if seen["."] != 1 || seen[".."] != 1 {
			t.Fatal("missing . or ..")
		}
	})
}
