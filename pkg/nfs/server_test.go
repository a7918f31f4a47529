package nfs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hangar-csi/hangar/pkg/nfs"
	"github.com/hangar-csi/hangar/pkg/nfs/mount"
	"github.com/hangar-csi/hangar/pkg/nfs/nfs3"
	"github.com/hangar-csi/hangar/pkg/nfs/nfs4"
	"github.com/hangar-csi/hangar/pkg/nfs/nfsclient"
	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/vfs"
	"github.com/hangar-csi/hangar/pkg/volume/localfs"
)

// server runs NewServer over a real localfs with two exports on 127.0.0.1
// and returns a client and the root handle of /vol1.
type server struct {
	c           *nfsclient.Client
	addr        string
	root, root2 vfs.Handle
	dir1        string
	fs          *localfs.FS
}

func start(t *testing.T) *server { return startB(t) }

func startB(t testing.TB) *server {
	t.Helper()
	base := t.TempDir()
	dir1, dir2 := filepath.Join(base, "vol1"), filepath.Join(base, "vol2")
	for _, d := range []string{dir1, dir2} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fs, err := localfs.New(localfs.Options{KeyFile: filepath.Join(base, "key")})
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.AddExport("/vol1", dir1, "vol1", nil); err != nil {
		t.Fatal(err)
	}
	if err := fs.AddExport("/vol2", dir2, "vol2", nil); err != nil {
		t.Fatal(err)
	}
	srv := nfs.NewServer(fs, rpc.Options{}, nfs4.Options{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	ctx := context.Background()
	c, err := nfsclient.Dial(ctx, l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		srv.Close()
		<-done
		fs.Close()
	})
	s := &server{c: c, addr: l.Addr().String(), dir1: dir1, fs: fs}
	if s.root, err = c.Mount(ctx, "/vol1"); err != nil {
		t.Fatal(err)
	}
	if s.root2, err = c.Mount(ctx, "/vol2"); err != nil {
		t.Fatal(err)
	}
	return s
}

func wantStatus(t *testing.T, err error, status uint32) {
	t.Helper()
	var se *nfsclient.StatusError
	if !errors.As(err, &se) || se.Status != status {
		t.Fatalf("got %v, want %s", err, nfs3.StatusName(status))
	}
}

func TestConformance(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the localfs server needs root (open_by_handle_at)")
	}
	s := start(t)
	c, root := s.c, s.root
	ctx := context.Background()

	t.Run("mount", func(t *testing.T) {
		_, err := c.Mount(ctx, "/nope")
		wantStatus(t, err, mount.StatusNoEnt)
		_, err = c.Mount(ctx, "/"+string(bytes.Repeat([]byte{'x'}, 1100)))
		wantStatus(t, err, mount.StatusNameTooLong)
		if err := c.Null(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("data", func(t *testing.T) {
		f, err := c.Create(ctx, root, "data", 0o644, vfs.CreateGuarded)
		if err != nil {
			t.Fatal(err)
		}
		data := make([]byte, 3<<19)
		for i := range data {
			data[i] = byte(i ^ i>>8)
		}
		n, committed, verf, err := c.Write(ctx, f, 0, data[:1<<20], vfs.Unstable)
		if err != nil || n != 1<<20 {
			t.Fatalf("WRITE: %d, %v", n, err)
		}
		if _, _, verf2, err := c.Write(ctx, f, 1<<20, data[1<<20:], vfs.FileSync); err != nil || verf2 != verf {
			t.Fatalf("second WRITE: %v, verifier changed %x→%x", err, verf, verf2)
		}
		cverf, err := c.Commit(ctx, f)
		if err != nil || cverf != verf {
			t.Fatalf("COMMIT: %v, verifier %x want %x (committed %d)", err, cverf, verf, committed)
		}
		a, err := c.GetAttr(ctx, f)
		if err != nil || a.Size != uint64(len(data)) || a.Type != vfs.TypeRegular || a.Mode != 0o644 {
			t.Fatalf("GETATTR: %+v %v", a, err)
		}
		if a.Used == 0 || a.FileID == 0 || a.FSID == 0 || a.Ctime.IsZero() {
			t.Errorf("GETATTR fields missing: %+v", a)
		}
		buf := make([]byte, 1<<20)
		var got []byte
		for off := 0; ; {
			n, eof, err := c.Read(ctx, f, uint64(off), buf)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, buf[:n]...)
			off += n
			if eof {
				break
			}
			if n == 0 {
				t.Fatal("READ: no progress without eof")
			}
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("read back %d bytes, differ from the %d written", len(got), len(data))
		}
		onDisk, err := os.ReadFile(filepath.Join(s.dir1, "data"))
		if err != nil || !bytes.Equal(onDisk, data) {
			t.Fatalf("file on disk differs: %v", err)
		}
		// Reading a directory is ISDIR.
		_, _, err = c.Read(ctx, root, 0, buf[:10])
		wantStatus(t, err, nfs3.StatusIsDir)
	})

	t.Run("exclusive create", func(t *testing.T) {
		v1 := vfs.Verifier{1, 2, 3, 4, 5, 6, 7, 8}
		h1, err := c.CreateExclusive(ctx, root, "excl", v1)
		if err != nil {
			t.Fatal(err)
		}
		// A retransmission (same verifier) succeeds with the same file.
		h2, err := c.CreateExclusive(ctx, root, "excl", v1)
		if err != nil {
			t.Fatalf("retransmitted exclusive CREATE: %v", err)
		}
		a1, _ := c.GetAttr(ctx, h1)
		a2, _ := c.GetAttr(ctx, h2)
		if a1.FileID != a2.FileID {
			t.Errorf("retransmission made another file: %d vs %d", a1.FileID, a2.FileID)
		}
		_, err = c.CreateExclusive(ctx, root, "excl", vfs.Verifier{9})
		wantStatus(t, err, nfs3.StatusExist)
		_, err = c.Create(ctx, root, "excl", 0o644, vfs.CreateGuarded)
		wantStatus(t, err, nfs3.StatusExist)
	})

	t.Run("unchecked create keeps data", func(t *testing.T) {
		f, err := c.Create(ctx, root, "keep", 0o644, vfs.CreateUnchecked)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := c.Write(ctx, f, 0, []byte("payload"), vfs.FileSync); err != nil {
			t.Fatal(err)
		}
		f2, err := c.Create(ctx, root, "keep", 0o644, vfs.CreateUnchecked)
		if err != nil {
			t.Fatalf("UNCHECKED over existing: %v", err)
		}
		a, err := c.GetAttr(ctx, f2)
		if err != nil || a.Size != 7 {
			t.Fatalf("UNCHECKED create truncated the file: %+v %v", a, err)
		}
	})

	t.Run("link", func(t *testing.T) {
		f, err := c.Create(ctx, root, "orig", 0o600, vfs.CreateGuarded)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Link(ctx, f, root, "hard"); err != nil {
			t.Fatal(err)
		}
		_, la, err := c.Lookup(ctx, root, "hard")
		fa, _ := c.GetAttr(ctx, f)
		if err != nil || la.FileID != fa.FileID || fa.Nlink != 2 {
			t.Fatalf("LINK: %v fileids %d/%d nlink %d", err, la.FileID, fa.FileID, fa.Nlink)
		}
		wantStatus(t, c.Link(ctx, f, root, "hard"), nfs3.StatusExist)
		wantStatus(t, c.Link(ctx, f, s.root2, "x"), nfs3.StatusXDev)
	})

	t.Run("symlink", func(t *testing.T) {
		h, err := c.Symlink(ctx, root, "sl", "../../etc/passwd")
		if err != nil {
			t.Fatal(err)
		}
		target, err := c.Readlink(ctx, h)
		if err != nil || target != "../../etc/passwd" {
			t.Fatalf("READLINK %q %v", target, err)
		}
		a, err := c.GetAttr(ctx, h)
		if err != nil || a.Type != vfs.TypeSymlink || a.Size != uint64(len(target)) {
			t.Fatalf("symlink attrs %+v %v", a, err)
		}
		_, err = c.Readlink(ctx, root)
		wantStatus(t, err, nfs3.StatusInval)
	})

	t.Run("mknod", func(t *testing.T) {
		for _, typ := range []vfs.FileType{vfs.TypeFIFO, vfs.TypeSocket} {
			h, err := c.Mknod(ctx, root, fmt.Sprint("node", typ), typ, 0o640, 0, 0)
			if err != nil {
				t.Fatalf("MKNOD %d: %v", typ, err)
			}
			if a, err := c.GetAttr(ctx, h); err != nil || a.Type != typ || a.Mode != 0o640 {
				t.Errorf("MKNOD %d attrs %+v %v", typ, a, err)
			}
		}
		// Devices: TestMknodDevices.
		_, err := c.Mknod(ctx, root, "reg", vfs.TypeRegular, 0o600, 0, 0)
		wantStatus(t, err, nfs3.StatusBadType)
	})

	t.Run("rename over existing", func(t *testing.T) {
		a, _ := c.Create(ctx, root, "ra", 0o644, vfs.CreateGuarded)
		b, _ := c.Create(ctx, root, "rb", 0o644, vfs.CreateGuarded)
		c.Write(ctx, a, 0, []byte("AAAA"), vfs.FileSync)
		c.Write(ctx, b, 0, []byte("B"), vfs.FileSync)
		if err := c.Rename(ctx, root, "ra", root, "rb"); err != nil {
			t.Fatal(err)
		}
		_, _, err := c.Lookup(ctx, root, "ra")
		wantStatus(t, err, nfs3.StatusNoEnt)
		h, attr, err := c.Lookup(ctx, root, "rb")
		if err != nil || attr.Size != 4 {
			t.Fatalf("target after rename: %+v %v", attr, err)
		}
		buf := make([]byte, 10)
		if n, _, err := c.Read(ctx, h, 0, buf); err != nil || string(buf[:n]) != "AAAA" {
			t.Fatalf("READ renamed: %q %v", buf[:n], err)
		}
		// The source's handle stays valid across the rename.
		if _, err := c.GetAttr(ctx, a); err != nil {
			t.Errorf("handle after rename: %v", err)
		}
		d, _ := c.Mkdir(ctx, root, "rd", 0o755)
		c.Create(ctx, d, "child", 0o644, vfs.CreateGuarded)
		c.Mkdir(ctx, root, "rd2", 0o755)
		wantStatus(t, c.Rename(ctx, root, "rd2", root, "rd"), nfs3.StatusNotEmpty)
		wantStatus(t, c.Rmdir(ctx, root, "rd"), nfs3.StatusNotEmpty)
		if err := c.Remove(ctx, d, "child"); err != nil {
			t.Fatal(err)
		}
		if err := c.Rmdir(ctx, root, "rd"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("setattr special bits", func(t *testing.T) {
		f, _ := c.Create(ctx, root, "suid", 0o755, vfs.CreateGuarded)
		d, _ := c.Mkdir(ctx, root, "sdir", 0o755)
		for _, x := range []struct {
			h    vfs.Handle
			mode uint32
		}{{f, 04755}, {f, 02711}, {d, 03775}, {d, 01777}} {
			m := x.mode
			if _, err := c.SetAttr(ctx, x.h, vfs.SetAttr{Mode: &m}, nil); err != nil {
				t.Fatalf("SETATTR %o: %v", m, err)
			}
			if a, err := c.GetAttr(ctx, x.h); err != nil || a.Mode != x.mode {
				t.Errorf("mode %o came back as %o (%v)", x.mode, a.Mode, err)
			}
		}
		// Client times round-trip; a stale guard is NOT_SYNC.
		at, mt := time.Unix(1_600_000_000, 123), time.Unix(1_600_000_100, 456)
		wcc, err := c.SetAttr(ctx, f, vfs.SetAttr{
			Atime: vfs.SetTime{How: vfs.TimeClient, Time: at},
			Mtime: vfs.SetTime{How: vfs.TimeClient, Time: mt}}, nil)
		if err != nil || wcc.After == nil {
			t.Fatalf("SETATTR times: %v", err)
		}
		a, _ := c.GetAttr(ctx, f)
		if !a.Atime.Equal(at) || !a.Mtime.Equal(mt) {
			t.Errorf("times %v %v", a.Atime, a.Mtime)
		}
		old := time.Unix(1, 0)
		m := uint32(0o600)
		_, err = c.SetAttr(ctx, f, vfs.SetAttr{Mode: &m}, &old)
		wantStatus(t, err, nfs3.StatusNotSync)
	})

	t.Run("fsid per export", func(t *testing.T) {
		a1, err1 := c.GetAttr(ctx, root)
		a2, err2 := c.GetAttr(ctx, s.root2)
		if err1 != nil || err2 != nil || a1.FSID == a2.FSID || a1.FSID == 0 {
			t.Fatalf("fsids %x %x (%v %v)", a1.FSID, a2.FSID, err1, err2)
		}
		f, _ := c.Create(ctx, s.root2, "in2", 0o644, vfs.CreateGuarded)
		if a, _ := c.GetAttr(ctx, f); a.FSID != a2.FSID {
			t.Errorf("file fsid %x, export %x", a.FSID, a2.FSID)
		}
	})

	t.Run("fs info", func(t *testing.T) {
		st, err := c.FSStat(ctx, root)
		if err != nil || st.TotalBytes == 0 || st.AvailBytes > st.TotalBytes {
			t.Errorf("FSSTAT %+v %v", st, err)
		}
		fi, err := c.FSInfo(ctx, root)
		if err != nil || fi.RTMax != 1<<20 || fi.WTMax != 1<<20 || fi.DTPref != 64<<10 || fi.TimeDelta != time.Nanosecond {
			t.Errorf("FSINFO %+v %v", fi, err)
		}
		pc, err := c.PathConf(ctx, root)
		if err != nil || pc.NameMax != 255 || !pc.NoTrunc || pc.CaseInsensitive {
			t.Errorf("PATHCONF %+v %v", pc, err)
		}
		g, err := c.Access(ctx, root, vfs.AccessRead|vfs.AccessLookup)
		if err != nil || g != vfs.AccessRead|vfs.AccessLookup {
			t.Errorf("ACCESS %#x %v", g, err)
		}
	})

	t.Run("readdirplus while modified", func(t *testing.T) { readdirWhileModified(t, c, root) })

	t.Run("concurrent", func(t *testing.T) {
		f, _ := c.Create(ctx, root, "conc", 0o644, vfs.CreateGuarded)
		c.Write(ctx, f, 0, bytes.Repeat([]byte("z"), 8192), vfs.FileSync)
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for g := range 16 {
			wg.Go(func() {
				buf := make([]byte, 4096)
				for i := range 20 {
					if n, _, err := c.Read(ctx, f, uint64((g+i)%2*4096), buf); err != nil || n != 4096 {
						errs <- fmt.Errorf("read %d: %v", n, err)
						return
					}
					if _, err := c.GetAttr(ctx, root); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("mount export dump umnt", func(t *testing.T) {
		ex, err := c.Exports(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var dirs []string
		for _, e := range ex {
			dirs = append(dirs, e.Dir)
			if len(e.Groups) != 0 {
				t.Errorf("export %s has groups %v", e.Dir, e.Groups)
			}
		}
		slices.Sort(dirs)
		if !slices.Equal(dirs, []string{"/vol1", "/vol2"}) {
			t.Errorf("EXPORT %v", dirs)
		}
		want := []nfsclient.MountEntry{{Host: "127.0.0.1", Dir: "/vol1"}, {Host: "127.0.0.1", Dir: "/vol2"}}
		if d, err := c.Dump(ctx); err != nil || !slices.Equal(d, want) {
			t.Errorf("DUMP %v %v", d, err)
		}
		if err := c.Unmount(ctx, "/vol1"); err != nil {
			t.Fatal(err)
		}
		if d, _ := c.Dump(ctx); !slices.Equal(d, want[1:]) {
			t.Errorf("DUMP after UMNT %v", d)
		}
		if err := c.UnmountAll(ctx); err != nil {
			t.Fatal(err)
		}
		if d, _ := c.Dump(ctx); len(d) != 0 {
			t.Errorf("DUMP after UMNTALL %v", d)
		}
		// Handles outlive MOUNT bookkeeping: NFS has no session.
		if _, err := c.GetAttr(ctx, root); err != nil {
			t.Errorf("GETATTR after UMNT: %v", err)
		}
	})
}

// readdirWhileModified pages through a directory with small READDIRPLUS
// replies while entries come and go between pages. Every entry that exists
// throughout must be listed exactly once; nothing may be listed twice.
func readdirWhileModified(t *testing.T, c *nfsclient.Client, root vfs.Handle) {
	ctx := context.Background()
	d, err := c.Mkdir(ctx, root, "busy", 0o755)
	if err != nil {
		t.Fatal(err)
	}
	const stable, churn = 150, 60
	for i := range stable {
		if _, err := c.Create(ctx, d, fmt.Sprintf("stable-%03d-with-a-longer-name", i), 0o644, vfs.CreateGuarded); err != nil {
			t.Fatal(err)
		}
	}
	for i := range churn {
		c.Create(ctx, d, fmt.Sprintf("churn-%03d", i), 0o644, vfs.CreateGuarded)
	}
	seen := map[string]int{}
	var cookie uint64
	var verf vfs.Verifier
	next := 0
	for page := 0; ; page++ {
		if page > 500 {
			t.Fatal("listing does not end")
		}
		p, err := c.ReadDirPlusPage(ctx, d, cookie, verf, 512, 2048)
		if err != nil {
			t.Fatalf("page %d (cookie %d): %v", page, cookie, err)
		}
		for _, e := range p.Entries {
			seen[e.Name]++
			if e.Name != "." && e.Name != ".." && (e.Attr == nil || len(e.Handle) == 0 || e.Attr.FileID != e.FileID) {
				t.Errorf("entry %q without attributes or handle", e.Name)
			}
		}
		if p.EOF {
			break
		}
		if len(p.Entries) == 0 {
			t.Fatal("empty page without eof")
		}
		cookie, verf = p.Entries[len(p.Entries)-1].Cookie, p.Verf
		// Churn: remove two old volatile entries, add two new ones.
		for range 2 {
			c.Remove(ctx, d, fmt.Sprintf("churn-%03d", next))
			c.Create(ctx, d, fmt.Sprintf("new-%03d", next), 0o644, vfs.CreateGuarded)
			next++
		}
	}
	for i := range stable {
		name := fmt.Sprintf("stable-%03d-with-a-longer-name", i)
		if seen[name] != 1 {
			t.Errorf("%s listed %d times", name, seen[name])
		}
	}
	for name, n := range seen {
		if n > 1 {
			t.Errorf("%s listed %d times", name, n)
		}
	}
	if next < 10 {
		t.Errorf("only %d churn rounds: pages too big for the test to mean anything", next)
	}
}

// BenchmarkLoopback measures whole round trips (nfsclient → rpc → nfs3 →
// localfs) over 127.0.0.1, one call at a time.
func BenchmarkLoopback(b *testing.B) {
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		size int
	}{{"GETATTR", 0}, {"GETATTR-policy", 0}, {"READ-1MiB", 1 << 20}, {"WRITE-1MiB-unstable", -(1 << 20)}} {
		b.Run(bc.name, func(b *testing.B) {
			s := startB(b)
			if strings.HasSuffix(bc.name, "-policy") {
				// The client's address is looked up on every call.
				grants := map[netip.Addr]vfs.Grant{netip.MustParseAddr("127.0.0.1"): vfs.GrantReadWrite}
				s.fs.SetPolicy("/vol1", func(c netip.Addr) vfs.Grant { return grants[c] })
			}
			f, err := s.c.Create(ctx, s.root, "bench", 0o644, vfs.CreateUnchecked)
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 1<<20)
			if _, _, _, err := s.c.Write(ctx, f, 0, buf, vfs.FileSync); err != nil {
				b.Fatal(err)
			}
			switch {
			case bc.size > 0:
				b.SetBytes(int64(bc.size))
			case bc.size < 0:
				b.SetBytes(int64(-bc.size))
			}
			for b.Loop() {
				switch {
				case bc.size == 0:
					_, err = s.c.GetAttr(ctx, f)
				case bc.size > 0:
					_, _, err = s.c.Read(ctx, f, 0, buf)
				default:
					_, _, _, err = s.c.Write(ctx, f, 0, buf, vfs.Unstable)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestPolicySeesPeerAddress: the server hands each connection's peer
// address to the FS, which applies the export's policy to every call.
func TestPolicySeesPeerAddress(t *testing.T) {
	ctx := context.Background()
	s := start(t)
	f, err := s.c.Create(ctx, s.root, "f", 0o644, vfs.CreateUnchecked)
	if err != nil {
		t.Fatal(err)
	}
	grants := map[netip.Addr]vfs.Grant{
		netip.MustParseAddr("127.0.0.1"): vfs.GrantReadWrite,
		netip.MustParseAddr("127.0.0.2"): vfs.GrantReadOnly,
	}
	if err := s.fs.SetPolicy("/vol1", func(c netip.Addr) vfs.Grant { return grants[c] }); err != nil {
		t.Fatal(err)
	}
	from := func(ip string) *nfsclient.Client {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		nc, err := d.DialContext(ctx, "tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		c := nfsclient.New(rpc.NewClient(nc))
		t.Cleanup(func() { c.Close() })
		return c
	}
	if _, _, _, err := s.c.Write(ctx, f, 0, []byte("x"), vfs.FileSync); err != nil {
		t.Errorf("WRITE from 127.0.0.1 (read-write): %v", err)
	}
	ro := from("127.0.0.2")
	if _, err := ro.GetAttr(ctx, f); err != nil {
		t.Errorf("GETATTR from 127.0.0.2 (read-only): %v", err)
	}
	_, _, _, err = ro.Write(ctx, f, 0, []byte("x"), vfs.FileSync)
	wantStatus(t, err, nfs3.StatusROFS)
	none := from("127.0.0.3")
	_, err = none.GetAttr(ctx, f)
	wantStatus(t, err, nfs3.StatusAcces)
	ex, err := none.Exports(ctx)
	if err != nil || len(ex) != 1 || ex[0].Dir != "/vol2" {
		t.Errorf("EXPORT to 127.0.0.3: %v, %v; want only /vol2", ex, err)
	}
}
