package localfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/nfs"
	"github.com/hangar-csi/hangar/pkg/nfs/nfs3"
	"github.com/hangar-csi/hangar/pkg/nfs/nfs4"
	"github.com/hangar-csi/hangar/pkg/nfs/nfsclient"
	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/vfs"
)

// NFS3 status codes the wire tests expect.
const (
	nfs3ErrInval = 22
	nfs3ErrDquot = 69
)

// wireEnv is one localfs export, /vol, served over NFSv3 on 127.0.0.1, as
// clients see it.
type wireEnv struct {
	fs   *FS
	dir  string
	addr string
	cfg  ExportConfig
}

func newWire(t testing.TB, cfg ExportConfig) *wireEnv {
	t.Helper()
	base := t.TempDir()
	w := &wireEnv{dir: filepath.Join(base, "vol"), cfg: cfg}
	if err := os.Mkdir(w.dir, 0o777); err != nil {
		t.Fatal(err)
	}
	// Shared by every uid, like a volume root made by the volume store.
	if err := os.Chmod(w.dir, 0o777); err != nil {
		t.Fatal(err)
	}
	f, err := New(Options{KeyFile: filepath.Join(base, "key")})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.AddExport("/vol", w.dir, "vol-1", nil); err != nil {
		t.Fatal(err)
	}
	if err := f.Configure("/vol", cfg); err != nil {
		t.Fatal(err)
	}
	// Every racing client dials from 127.0.0.1: lift the per-address
	// connection limit, which would otherwise close idle ones between rounds.
	w.fs, w.addr = f, serveLoopback(t, f, f, rpc.Options{MaxConnsPerAddr: 1 << 12})
	return w
}

// serveLoopback serves fsys (f itself, or a wrapper of it) over NFS on a
// loopback port until the test ends, then closes the server and f.
func serveLoopback(t testing.TB, f *FS, fsys vfs.FS, o rpc.Options) string {
	t.Helper()
	srv := nfs.NewServer(fsys, o, nfs4.Options{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		<-done
		f.Close()
	})
	return l.Addr().String()
}

// client is a new connection calling as cred, and the root handle of /vol.
func (w *wireEnv) client(t testing.TB, cred rpc.Cred) (*nfsclient.Client, vfs.Handle) {
	t.Helper()
	c, err := nfsclient.Dial(context.Background(), w.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetCred(cred)
	root, err := c.Mount(context.Background(), "/vol")
	if err != nil {
		t.Fatal(err)
	}
	return c, root
}

func authSys(uid, gid uint32, groups ...uint32) rpc.Cred {
	return rpc.Cred{Flavor: rpc.AuthSys, Machine: "test", UID: uid, GID: gid, GIDs: groups}
}

var wireUser = authSys(1000, 1000)

// usageVsScan returns the accounted usage and a fresh scan of the volume.
func (w *wireEnv) usageVsScan(t testing.TB) (u Usage, bytes, inodes int64) {
	t.Helper()
	u, err := w.fs.Usage("/vol")
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(w.dir, &st); err != nil {
		t.Fatal(err)
	}
	bytes, inodes, err = scanUsage(w.dir, st.Dev)
	if err != nil {
		t.Fatal(err)
	}
	return u, bytes, inodes
}

// checkExact fails unless the accounted usage equals a fresh scan and is
// within the capacity.
func (w *wireEnv) checkExact(t testing.TB, what string) {
	t.Helper()
	u, b, i := w.usageVsScan(t)
	if u.Bytes != uint64(b) || u.Inodes != uint64(i) {
		t.Fatalf("%s: accounted %d bytes %d inodes, a scan finds %d bytes %d inodes", what, u.Bytes, u.Inodes, b, i)
	}
	if w.cfg.MaxBytes > 0 && uint64(b) > w.cfg.MaxBytes {
		t.Fatalf("%s: %d bytes on disk, capacity %d", what, b, w.cfg.MaxBytes)
	}
}

// raceRounds runs rounds of races over the wire, at most rounds and for a
// few seconds: in each, setup(p) prepares each of pairs pairs (all at
// once), then every op(c, p) runs at once on its own connection, and check
// runs when all are done. It stops at the first failure.
func (w *wireEnv) raceRounds(t *testing.T, rounds, pairs int, setup func(p int), check func(round int), ops ...func(c *nfsclient.Client, root vfs.Handle, p int)) {
	t.Helper()
	type conn struct {
		c    *nfsclient.Client
		root vfs.Handle
	}
	conns := make([][]conn, pairs)
	for p := range conns {
		for range ops {
			c, root := w.client(t, wireUser)
			conns[p] = append(conns[p], conn{c, root})
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for round := 0; round < rounds && time.Now().Before(deadline) && !t.Failed(); round++ {
		var wg sync.WaitGroup
		for p := range pairs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				setup(p)
			}()
		}
		wg.Wait()
		start := make(chan struct{})
		for p := range pairs {
			for i, op := range ops {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					// Sweep the ops' relative timing across rounds, so
					// one lands inside another's window now and then.
					for spin := time.Now().Add(time.Duration(rand.IntN(150)) * time.Microsecond); time.Now().Before(spin); {
					}
					op(conns[p][i].c, conns[p][i].root, p)
				}()
			}
		}
		close(start)
		wg.Wait()
		check(round)
	}
}

// TestWireRemoveRacingLink: a REMOVE that races a LINK of the same file
// must not discharge the file when the LINK kept it alive (once,
// usage fell to 4 KiB while the disk held five times the capacity).
func TestWireRemoveRacingLink(t *testing.T) {
	w := newWire(t, ExportConfig{MaxBytes: 64 << 20})
	c, root := w.client(t, wireUser)
	// Enough usage that an undercount cannot hide below zero.
	keep := wireCreate(t, c, root, "keep")
	wireWrite(t, c, keep, 0, pattern(1<<20, 1))
	files := make([]vfs.Handle, 32)
	w.raceRounds(t, 120, len(files),
		func(p int) {
			files[p] = wireCreate(t, c, root, fmt.Sprint("f", p))
			wireWrite(t, c, files[p], 0, pattern(64<<10, byte(p)))
		},
		func(round int) {
			w.checkExact(t, fmt.Sprint("after round ", round))
			for p := range files {
				c.Remove(ctx, root, fmt.Sprint("g", p))
			}
		},
		func(c *nfsclient.Client, root vfs.Handle, p int) { c.Remove(ctx, root, fmt.Sprint("f", p)) },
		func(c *nfsclient.Client, root vfs.Handle, p int) { c.Link(ctx, files[p], root, fmt.Sprint("g", p)) },
	)
	w.checkExact(t, "at the end")
}

// TestWireRemoveRacingRename: a REMOVE of a name that a RENAME replaces at
// the same time must not discharge the replaced file twice (once, a
// file then grew to three times the capacity without EDQUOT).
func TestWireRemoveRacingRename(t *testing.T) {
	w := newWire(t, ExportConfig{MaxBytes: 64 << 20})
	c, root := w.client(t, wireUser)
	keep := wireCreate(t, c, root, "keep")
	wireWrite(t, c, keep, 0, pattern(1<<20, 1))
	const pairs = 8
	w.raceRounds(t, 100, pairs,
		func(p int) {
			// Different sizes, so discharging one for the other shows.
			wireWrite(t, c, wireCreate(t, c, root, fmt.Sprint("a", p)), 0, pattern(64<<10, byte(p)))
			wireWrite(t, c, wireCreate(t, c, root, fmt.Sprint("b", p)), 0, pattern(4<<10, byte(p)))
		},
		func(round int) {
			w.checkExact(t, fmt.Sprint("after round ", round))
			for p := range pairs {
				c.Remove(ctx, root, fmt.Sprint("a", p))
				c.Remove(ctx, root, fmt.Sprint("b", p))
			}
		},
		func(c *nfsclient.Client, root vfs.Handle, p int) { c.Remove(ctx, root, fmt.Sprint("a", p)) },
		func(c *nfsclient.Client, root vfs.Handle, p int) {
			c.Rename(ctx, root, fmt.Sprint("b", p), root, fmt.Sprint("a", p))
		},
	)
	w.checkExact(t, "at the end")
}

func wireCreate(t testing.TB, c *nfsclient.Client, dir vfs.Handle, name string) vfs.Handle {
	t.Helper()
	h, err := c.Create(ctx, dir, name, 0o644, vfs.CreateGuarded)
	if err != nil {
		t.Fatalf("CREATE %s: %v", name, err)
	}
	return h
}

func wireWrite(t testing.TB, c *nfsclient.Client, h vfs.Handle, off uint64, data []byte) {
	t.Helper()
	if n, _, _, err := c.Write(ctx, h, off, data, vfs.Unstable); err != nil || n != len(data) {
		t.Fatalf("WRITE: n=%d err=%v", n, err)
	}
}

// TestWireRenameLinkGrowDirs: RENAME and LINK grow directories like any
// new entry, and must be refused with EDQUOT, changing nothing, where the
// growth could pass the capacity (once, moving files with long names
// through many directories grew a 2 MiB volume to 17.8 MB).
func TestWireRenameLinkGrowDirs(t *testing.T) {
	const capacity = 256 << 10
	w := newWire(t, ExportConfig{MaxBytes: capacity})
	c, root := w.client(t, wireUser)
	dirs := make([]vfs.Handle, 6)
	for i := range dirs {
		d, err := c.Mkdir(ctx, root, fmt.Sprint("d", i), 0o755)
		if err != nil {
			t.Fatal(err)
		}
		dirs[i] = d
	}
	long := func(i int) string { return fmt.Sprintf("%0250d", i) }
	files := make([]vfs.Handle, 100)
	for i := range files {
		files[i] = wireCreate(t, c, dirs[0], long(i))
	}
	// Fill the rest with data, a block at a time, until refused.
	fill := wireCreate(t, c, root, "fill")
	block := pattern(4<<10, 3)
	for off := uint64(0); ; off += uint64(len(block)) {
		_, _, _, err := c.Write(ctx, fill, off, block, vfs.Unstable)
		if nfsclient.IsStatus(err, nfs3ErrDquot) {
			break
		}
		if err != nil || off > capacity {
			t.Fatalf("filling: WRITE at %d: %v", off, err)
		}
	}
	// Room for a few directory blocks, not for all.
	a, err := c.GetAttr(ctx, fill)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetAttr(ctx, fill, vfs.SetAttr{Size: u64(a.Size - 32<<10)}, nil); err != nil {
		t.Fatal(err)
	}
	w.checkExact(t, "nearly full")
	refused := 0
	for i := range files {
		err := c.Link(ctx, files[i], dirs[len(dirs)-1], long(1000+i))
		if nfsclient.IsStatus(err, nfs3ErrDquot) {
			refused++
			if _, _, err := c.Lookup(ctx, dirs[len(dirs)-1], long(1000+i)); !nfsclient.IsStatus(err, 2) {
				t.Fatalf("refused LINK made the link: %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("LINK: %v", err)
		}
	}
	w.checkExact(t, "after LINKs")
	at := make([]int, len(files)) // the directory each file is in
	for step := 1; step < len(dirs)-1; step++ {
		for i := range files {
			err := c.Rename(ctx, dirs[at[i]], long(i), dirs[step], long(i))
			if nfsclient.IsStatus(err, nfs3ErrDquot) {
				refused++
				if _, _, err := c.Lookup(ctx, dirs[at[i]], long(i)); err != nil {
					t.Fatalf("refused RENAME: source gone: %v", err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("RENAME: %v", err)
			}
			at[i] = step
		}
	}
	w.checkExact(t, "after RENAMEs")
	if refused == 0 {
		t.Fatal("no RENAME or LINK was refused")
	}
}

// TestWireWriteMetadataWithinCapacity: a WRITE that adds an extent to a
// fragmented file may make the file system allocate an extent tree block
// besides the data; at the limit that block must have been reserved too,
// or the volume ends up past its capacity.
func TestWireWriteMetadataWithinCapacity(t *testing.T) {
	const capacity = 256 << 10
	w := newWire(t, ExportConfig{MaxBytes: capacity})
	c, root := w.client(t, wireUser)
	pad := wireCreate(t, c, root, "pad")
	f := wireCreate(t, c, root, "f")
	u, _, _ := w.usageVsScan(t)
	// Leave room for exactly five separate blocks of f.
	wireWrite(t, c, pad, 0, pattern(int(capacity-u.Bytes-5*4096), 1))
	w.checkExact(t, "padded")
	for i := range 5 {
		// Every block its own extent; the fifth no longer fits in the inode.
		_, _, _, err := c.Write(ctx, f, uint64(i)*8192, pattern(4096, byte(i)), vfs.FileSync)
		if nfsclient.IsStatus(err, nfs3ErrDquot) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		w.checkExact(t, fmt.Sprint("after write ", i))
	}
}

// TestWireMkdirRacingRename: a RENAME that puts someone else's directory
// on a name between the server's mkdir of it and its open must not get
// that directory handed (chowned) to the MKDIR's caller (once, an
// object owned by root passed the post-create check).
func TestWireMkdirRacingRename(t *testing.T) {
	w := newWire(t, ExportConfig{})
	rc, root := w.client(t, authSys(0, 0))
	const pairs = 32
	w.raceRounds(t, 30, pairs,
		func(p int) {
			d, err := rc.Mkdir(ctx, root, fmt.Sprint("r", p), 0o755)
			if err != nil {
				t.Error(err)
				return
			}
			wireCreate(t, rc, d, "secret")
		},
		func(round int) {
			for p := range pairs {
				d, a, err := rc.Lookup(ctx, root, fmt.Sprint("d", p))
				if err != nil {
					t.Fatalf("d%d: %v", p, err)
				}
				if _, _, err := rc.Lookup(ctx, d, "secret"); err == nil && a.UID != 0 {
					t.Fatalf("round %d: root's directory, renamed over a new one, was given to uid %d", round, a.UID)
				}
				for _, name := range []string{fmt.Sprint("d", p), fmt.Sprint("r", p)} {
					if d, _, err := rc.Lookup(ctx, root, name); err == nil {
						rc.Remove(ctx, d, "secret")
						rc.Rmdir(ctx, root, name)
					}
				}
			}
		},
		func(c *nfsclient.Client, root vfs.Handle, p int) { c.Mkdir(ctx, root, fmt.Sprint("d", p), 0o755) },
		func(c *nfsclient.Client, root vfs.Handle, p int) {
			c.Rename(ctx, root, fmt.Sprint("r", p), root, fmt.Sprint("d", p))
		},
	)
}

// TestWireInvalidIDs: uid and gid 4294967295 are (uid_t)-1, which chown
// reads as "leave unchanged". Callers with them are the anonymous user,
// not the server's root, and no SETATTR may give a file them.
func TestWireInvalidIDs(t *testing.T) {
	const bad = 4294967295
	for _, tc := range []struct {
		name     string
		cfg      ExportConfig
		uid, gid uint32
	}{
		{"no squash", ExportConfig{}, 65534, 65534},
		{"root squash", ExportConfig{RootSquash: true, AnonUID: 4000, AnonGID: 4001}, 4000, 4001},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWire(t, tc.cfg)
			c, root := w.client(t, authSys(bad, bad, bad))
			h, err := c.Create(ctx, root, "f", 0o644, vfs.CreateGuarded)
			if err != nil {
				t.Fatal(err)
			}
			d, err := c.Mkdir(ctx, root, "d", 0o755)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range []vfs.Handle{h, d} {
				if a, err := c.GetAttr(ctx, x); err != nil || a.UID != tc.uid || a.GID != tc.gid {
					t.Fatalf("made by uid and gid %d: owner %d:%d (%v), want %d:%d", uint32(bad), a.UID, a.GID, err, tc.uid, tc.gid)
				}
			}
			rc, _ := w.client(t, authSys(0, 0))
			for _, sa := range []vfs.SetAttr{{UID: u32(bad)}, {GID: u32(bad)}} {
				if _, err := rc.SetAttr(ctx, h, sa, nil); !nfsclient.IsStatus(err, nfs3ErrInval) {
					t.Fatalf("SETATTR owner %d: %v, want NFS3ERR_INVAL", uint32(bad), err)
				}
			}
		})
	}
}

// TestWireQuotaStress: many clients race CREATE, WRITE, truncation, LINK,
// REMOVE and RENAME over a few names of a small volume. Afterwards the
// accounted usage must equal a fresh scan, inodes and bytes, and the disk
// must hold no more than the capacity.
func TestWireQuotaStress(t *testing.T) {
	const capacity = 512 << 10
	w := newWire(t, ExportConfig{MaxBytes: capacity, MaxInodes: 200})
	c, root := w.client(t, wireUser)
	sub, err := c.Mkdir(ctx, root, "sub", 0o777)
	if err != nil {
		t.Fatal(err)
	}
	dirs := []vfs.Handle{root, sub}
	const clients, ops = 12, 1500
	deadline := time.Now().Add(8 * time.Second)
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[string]int{}
	for i := range clients {
		c, _ := w.client(t, wireUser)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(i), 1))
			name := func() (vfs.Handle, string) {
				return dirs[r.IntN(len(dirs))], fmt.Sprint("n", r.IntN(12))
			}
			lookup := func() vfs.Handle {
				d, n := name()
				h, _, err := c.Lookup(ctx, d, n)
				if err != nil {
					return nil
				}
				return h
			}
			data := pattern(64<<10, byte(i))
			for k := 0; k < ops && time.Now().Before(deadline); k++ {
				var op string
				var err error
				switch r.IntN(7) {
				case 0:
					op = "CREATE"
					d, n := name()
					_, err = c.Create(ctx, d, n, 0o666, vfs.CreateUnchecked)
				case 1, 2:
					op = "WRITE"
					if h := lookup(); h != nil {
						stable := vfs.Unstable
						if r.IntN(2) == 0 {
							stable = vfs.FileSync
						}
						_, _, _, err = c.Write(ctx, h, uint64(r.IntN(64))*4096, data[:4096*(1+r.IntN(16))], stable)
					}
				case 3:
					op = "SETATTR"
					if h := lookup(); h != nil {
						_, err = c.SetAttr(ctx, h, vfs.SetAttr{Size: u64(uint64(r.IntN(320 << 10)))}, nil)
					}
				case 4:
					op = "LINK"
					if h := lookup(); h != nil {
						d, n := name()
						err = c.Link(ctx, h, d, n)
					}
				case 5:
					op = "REMOVE"
					d, n := name()
					err = c.Remove(ctx, d, n)
				case 6:
					op = "RENAME"
					fd, fn := name()
					td, tn := name()
					err = c.Rename(ctx, fd, fn, td, tn)
				}
				var se *nfsclient.StatusError
				switch {
				case err == nil:
					op += " ok"
				case errors.As(err, &se):
					op += " " + nfs3.StatusName(se.Status)
				default:
					t.Errorf("%s: %v", op, err)
					return
				}
				mu.Lock()
				counts[op]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for op, n := range counts {
		if strings.Contains(op, "SERVERFAULT") || strings.Contains(op, "ERR_IO") {
			t.Errorf("%d x %s", n, op)
		}
	}
	t.Logf("operations: %v", counts)
	// Writeback may still allocate extent tree blocks: COMMIT settles them.
	for _, d := range dirs {
		if err := c.ReadDirPlus(ctx, d, func(e vfs.DirEntry) {
			if e.Attr != nil && e.Attr.Type == vfs.TypeRegular && e.Handle != nil {
				c.Commit(ctx, e.Handle)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	u, b, i := w.usageVsScan(t)
	t.Logf("accounted %d bytes %d inodes; scan %d bytes %d inodes; capacity %d", u.Bytes, u.Inodes, b, i, capacity)
	w.checkExact(t, "after the stress")
}

// CREATE's reply carries the new file's attributes and the directory's
// after it, as a GETATTR then reads them: the mode asked for (whatever the
// server's umask), the owner, and the directory changed by the entry. Root
// callers' files are created with their final mode, others' get it after
// the chown.
func TestWireCreateAttrs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates files as other users")
	}
	ctx := context.Background()
	w := newWire(t, ExportConfig{})
	sgid := wireCreateDir(t, w, "sgid")
	for _, cred := range []rpc.Cred{authSys(0, 0), wireUser} {
		c, rootH := w.client(t, cred)
		// An EXCLUSIVE create gets the default mode (and the verifier in
		// its times, until the client's SETATTR).
		name := fmt.Sprintf("x%d", cred.UID)
		h, err := c.CreateExclusive(ctx, rootH, name, vfs.Verifier{1, 2, 3, 4, 5, 6, 7, 8})
		if err != nil {
			t.Fatalf("exclusive create %s: %v", name, err)
		}
		if a, err := c.GetAttr(ctx, h); err != nil || a.Mode != 0o644 || a.UID != cred.UID || a.GID != cred.GID {
			t.Errorf("%s: mode %o owner %d:%d (%v), want 644 %d:%d", name, a.Mode, a.UID, a.GID, err, cred.UID, cred.GID)
		}
		for _, dir := range []struct {
			name string
			h    vfs.Handle
			gid  uint32
		}{{"root", rootH, cred.GID}, {"sgid", sgid, 4321}} {
			for i, mode := range []uint32{0o640, 0o666, 0o600, 0o777, 0o2755} {
				name := fmt.Sprintf("f%d-%d-%s", cred.UID, i, dir.name)
				h, attr, wcc, err := c.CreateAttr(ctx, dir.h, name, mode, vfs.CreateGuarded)
				if err != nil {
					t.Fatalf("create %s: %v", name, err)
				}
				want := mode
				if dir.gid != cred.GID && cred.UID != 0 {
					want &^= 0o2000 // not in the file's group
				}
				got, err := c.GetAttr(ctx, h)
				if err != nil {
					t.Fatal(err)
				}
				if attr == nil || *attr != got {
					t.Errorf("%s: CREATE's attributes %+v, GETATTR %+v", name, attr, got)
				}
				if got.Mode != want || got.UID != cred.UID || got.GID != dir.gid {
					t.Errorf("%s: mode %o owner %d:%d, want %o %d:%d", name, got.Mode, got.UID, got.GID, want, cred.UID, dir.gid)
				}
				d, err := c.GetAttr(ctx, dir.h)
				if err != nil {
					t.Fatal(err)
				}
				if wcc.Before == nil || wcc.After == nil || *wcc.After != d {
					t.Errorf("%s: directory wcc %+v, GETATTR %+v", name, wcc, d)
				}
			}
		}
	}
}

// wireCreateDir makes a setgid directory, group 4321, everyone may write.
func wireCreateDir(t *testing.T, w *wireEnv, name string) vfs.Handle {
	t.Helper()
	c, root := w.client(t, authSys(0, 0))
	h, err := c.Mkdir(context.Background(), root, name, 0o2777)
	if err != nil {
		t.Fatal(err)
	}
	gid, mode := uint32(4321), uint32(0o2777)
	if _, err := c.SetAttr(context.Background(), h, vfs.SetAttr{GID: &gid, Mode: &mode}, nil); err != nil {
		t.Fatal(err)
	}
	return h
}

// LOOKUP of a name whose object is open in the server (just created,
// looked up before) answers from one fstatat; it must still follow every
// change of the name: a removal, a new file on the name, a rename over it,
// and give the object's current attributes.
func TestWireLookupFollowsName(t *testing.T) {
	ctx := context.Background()
	w := newWire(t, ExportConfig{})
	c, root := w.client(t, authSys(0, 0))
	lookup := func(name string) (vfs.Handle, vfs.Attr) {
		t.Helper()
		h, a, err := c.Lookup(ctx, root, name)
		if err != nil {
			t.Fatalf("lookup %s: %v", name, err)
		}
		return h, a
	}
	same := func(what string, h vfs.Handle, a vfs.Attr) {
		t.Helper()
		got, err := c.GetAttr(ctx, h)
		if err != nil || got != a {
			t.Errorf("%s: LOOKUP's attributes %+v, GETATTR %+v (%v)", what, a, got, err)
		}
	}
	f1 := wireCreate(t, c, root, "a")
	h, a := lookup("a")
	if !bytes.Equal(h, f1) {
		t.Fatalf("lookup a: another handle than CREATE's")
	}
	wireWrite(t, c, f1, 0, []byte("grow"))
	h, a = lookup("a")
	if a.Size != 4 {
		t.Errorf("lookup after a write: size %d, want 4", a.Size)
	}
	same("after write", h, a)
	if err := c.Link(ctx, f1, root, "b"); err != nil {
		t.Fatal(err)
	}
	if hb, ab := lookup("b"); !bytes.Equal(hb, f1) || ab.Nlink != 2 {
		t.Errorf("lookup of a second link: handle equal %v, nlink %d", bytes.Equal(hb, f1), ab.Nlink)
	}
	if err := c.Remove(ctx, root, "a"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Lookup(ctx, root, "a"); !nfsclient.IsStatus(err, 2) {
		t.Fatalf("lookup of a removed name: %v, want NOENT", err)
	}
	f2 := wireCreate(t, c, root, "a")
	if h, a = lookup("a"); !bytes.Equal(h, f2) || bytes.Equal(h, f1) {
		t.Errorf("lookup of a new file on the name: not its handle")
	}
	same("new file", h, a)
	if err := c.Rename(ctx, root, "b", root, "a"); err != nil {
		t.Fatal(err)
	}
	if h, a = lookup("a"); !bytes.Equal(h, f1) || a.Nlink != 1 {
		t.Errorf("lookup after a rename over the name: handle of the renamed file %v, nlink %d", bytes.Equal(h, f1), a.Nlink)
	}
	same("renamed", h, a)
	if _, err := c.GetAttr(ctx, f2); !nfsclient.IsStatus(err, 70) {
		t.Errorf("GETATTR of the replaced file: %v, want STALE", err)
	}
}
