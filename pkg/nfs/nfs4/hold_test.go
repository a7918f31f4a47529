package nfs4

import (
	"bytes"
	"context"
	"github.com/go-logr/logr"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hangar-csi/hangar/pkg/nfs/nfs3"
	"github.com/hangar-csi/hangar/pkg/nfs/nfsclient"
	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
	"github.com/hangar-csi/hangar/pkg/vfs"
	"github.com/hangar-csi/hangar/pkg/volume/localfs"
)

// holdServer is a wire server (v3 and v4.1 on one port) over a localfs
// volume with a byte limit and a usage file, on a settable lease clock,
// that can be restarted over the same directory.
type holdServer struct {
	wireServer
	base  string
	h     *Handler
	clk   *clock
	stop  func()
	saved *localfs.Usage
}

const holdLimit = 8 << 20

func startHold(t *testing.T) *holdServer {
	base := t.TempDir()
	dir := filepath.Join(base, "vol")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	s := &holdServer{base: base, clk: &clock{t: time.Unix(1e9, 0)}}
	s.dir = dir
	s.start(t)
	return s
}

// start serves the volume, taking usage from the saved usage (a clean
// restart) or a scan.
func (s *holdServer) start(t *testing.T) {
	t.Helper()
	fs, err := localfs.New(localfs.Options{KeyFile: filepath.Join(s.base, "key")})
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.AddExport("/vol", s.dir, "vol", nil); err != nil {
		t.Fatal(err)
	}
	if err := fs.Configure("/vol", localfs.ExportConfig{MaxBytes: holdLimit, MaxInodes: 100,
		UsageFile: filepath.Join(s.base, "usage"), Saved: s.saved}); err != nil {
		t.Fatal(err)
	}
	rs := rpc.NewServer(rpc.Options{ConnContext: func(ctx context.Context, c net.Conn) context.Context {
		return vfs.WithClient(ctx, c.RemoteAddr())
	}})
	s.h = newHandler(fs, discard(), Options{LeaseTime: 30 * time.Second}, s.clk.now)
	rs.Register(nfs3.Program, nfs3.Version, nfs3.NewHandler(fs, discard()), nfs3.Idempotent)
	rs.Register(Program, Version, s.h, Idempotent)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- rs.Serve(l) }()
	stopped := false
	s.stop = func() {
		if !stopped {
			stopped = true
			rs.Close()
			<-done
			fs.Close()
		}
	}
	t.Cleanup(s.stop)
	s.addr, s.fs = l.Addr().String(), fs
}

// restart stops the server cleanly (Close saves usage) and starts it again
// on the saved usage, as pkg/server does after a clean shutdown.
func (s *holdServer) restart(t *testing.T) {
	t.Helper()
	s.stop()
	u, err := localfs.LoadUsage(filepath.Join(s.base, "usage"))
	if err != nil {
		t.Fatal(err)
	}
	s.saved = &u
	s.start(t)
}

func (s *holdServer) used(t *testing.T) uint64 {
	t.Helper()
	u, err := s.fs.Usage("/vol")
	if err != nil {
		t.Fatal(err)
	}
	return u.Bytes
}

// spaceAvail is space_avail of the volume as client c sees it.
func (c *tclient) spaceAvail(dir []byte) uint64 {
	c.t.Helper()
	return c.getattr(dir, bits(AttrSpaceAvail)).vals.Uint64()
}

// openFlags opens name in dir and returns the stateid, handle and rflags.
func (c *tclient) openFlags(dir []byte, a openArgs) (stateid, []byte, uint32) {
	c.t.Helper()
	p := c.must(putfh(dir), openOp(a), getfh())
	p.ok(OpPutFH)
	r := p.ok(OpOpen)
	sid := decodeStateid(r)
	skipChangeInfo(r)
	flags := r.Uint32()
	decodeBitmap(r)
	r.Uint32()
	return sid, append([]byte(nil), p.ok(OpGetFH).Opaque(MaxFHSize)...), flags
}

// readAll reads fh through sid (n bytes at most) in 256 KiB READs.
func (c *tclient) readAll(fh []byte, sid stateid, n int) ([]byte, uint32) {
	c.t.Helper()
	var got []byte
	for len(got) < n {
		p := c.do(putfh(fh), readOp(sid, uint64(len(got)), 256<<10))
		if p.status != OK {
			return got, p.status
		}
		p.ok(OpPutFH)
		r := p.ok(OpRead)
		eof := r.Bool()
		got = append(got, r.Opaque(1<<20)...)
		if eof {
			break
		}
	}
	return got, OK
}

// holdCase: client A writes a 2 MiB file, client B opens it, remove takes
// the file's name away (A over v4, or a v3 client), and B keeps using it.
func holdCase(t *testing.T, remove func(s *holdServer, a *tclient, dir []byte)) (s *holdServer, a, b *tclient, dir, fh []byte, sidB stateid, data []byte) {
	s = startHold(t)
	a, b = s.dial(t), s.dial(t)
	a.connect("a")
	b.connect("b")
	dir = a.volRoot()
	data = bytes.Repeat([]byte("removed while open "), 2<<20/19)
	sidA, fhA, _ := a.openFlags(dir, openArgs{access: ShareAccessBoth, owner: "oa", create: true, how: createGuarded, name: "f"})
	for off := 0; off < len(data); off += 512 << 10 {
		a.must(putfh(fhA), writeOp(sidA, uint64(off), data[off:min(off+512<<10, len(data))]))
	}
	a.must(putfh(fhA), closeOp(sidA))
	sidB, fh, flags := b.openFlags(b.volRoot(), openArgs{access: ShareAccessBoth, owner: "ob", name: "f"})
	if flags&openResultPreserveUnlinked != 0 {
		t.Fatalf("OPEN rflags %#x with PRESERVE_UNLINKED (holds do not survive a restart)", flags)
	}
	before, availBefore := s.used(t), a.spaceAvail(dir)
	remove(s, a, dir)
	// The name is gone, or names another file.
	if p := a.do(putfh(dir), lookup("f"), getfh()); p.status == OK {
		p.ok(OpPutFH)
		p.ok(OpLookup)
		if bytes.Equal(p.ok(OpGetFH).Opaque(MaxFHSize), fh) {
			t.Fatal("the name still names B's file")
		}
	} else if p.status != ErrNoEnt {
		t.Fatalf("LOOKUP of the removed name: %d", p.status)
	}
	// B reads what it opened, writes through its open, sees its attributes.
	got, st := b.readAll(fh, sidB, len(data))
	if st != OK || !bytes.Equal(got, data) {
		t.Fatalf("B's READ of the removed file: status %d, %d of %d bytes equal", st, len(got), len(data))
	}
	b.must(putfh(fh), writeOp(sidB, 3, []byte("REWRITTEN")))
	copy(data[3:], "REWRITTEN")
	if got, st := b.readAll(fh, sidB, len(data)); st != OK || !bytes.Equal(got, data) {
		t.Fatalf("READ after B's WRITE: status %d", st)
	}
	if links := b.getattr(fh, bits(AttrNumLinks)).vals.Uint32(); links != 0 {
		t.Fatalf("numlinks %d of the removed file", links)
	}
	// Still charged to the volume: usage and what A's client sees.
	if u := s.used(t); u < before {
		t.Fatalf("usage %d after the removal of an open file, %d before", u, before)
	}
	if av := a.spaceAvail(dir); av > availBefore {
		t.Fatalf("space_avail grew from %d to %d while the removed file is open", availBefore, av)
	}
	return s, a, b, dir, fh, sidB, data
}

// gone checks that the space of the 2 MiB file came back and that its
// handle is stale.
func gone(t *testing.T, s *holdServer, a *tclient, dir []byte, fh []byte, usedBefore, availBefore uint64) {
	t.Helper()
	const fileSpace = 2<<20 - 64<<10 // 2 MiB of data, whatever the block size
	if u := s.used(t); u+fileSpace > usedBefore {
		t.Fatalf("usage %d after the last open ended, %d before: the space did not come back", u, usedBefore)
	}
	if av := a.spaceAvail(dir); av < availBefore+fileSpace {
		t.Fatalf("space_avail %d after the last open ended, %d before", av, availBefore)
	}
	if st := a.do(putfh(fh), getattr(bits(AttrSize))).status; st != ErrStale {
		t.Fatalf("the removed file's handle after its last open: %d, want STALE", st)
	}
}

func removeV4(s *holdServer, a *tclient, dir []byte) { a.must(putfh(dir), remove("f")) }

func TestWireRemovedWhileOpen(t *testing.T) {
	cases := []struct {
		name   string
		remove func(s *holdServer, a *tclient, dir []byte)
	}{
		{"REMOVE", removeV4},
		{"RENAME over", func(s *holdServer, a *tclient, dir []byte) {
			sid, fh, _ := a.openFlags(dir, openArgs{access: ShareAccessBoth, owner: "oa", create: true, how: createGuarded, name: "g"})
			a.must(putfh(fh), closeOp(sid))
			a.must(putfh(dir), savefh(), rename("g", "f"))
		}},
		{"v3 REMOVE", func(s *holdServer, a *tclient, dir []byte) {
			v3, err := nfsclient.Dial(context.Background(), s.addr)
			if err != nil {
				a.t.Fatal(err)
			}
			defer v3.Close()
			if err := v3.Remove(context.Background(), vfs.Handle(dir[1:]), "f"); err != nil {
				a.t.Fatalf("v3 REMOVE: %v", err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, a, b, dir, fh, sidB, _ := holdCase(t, c.remove)
			used, avail := s.used(t), a.spaceAvail(dir)
			b.must(putfh(fh), closeOp(sidB))
			gone(t, s, a, dir, fh, used, avail)
		})
	}
}

// Every open of B's holds the file: it goes with the last one.
func TestWireRemovedWhileOpenTwice(t *testing.T) {
	s, a, b, dir, fh, sidB, data := holdCase(t, removeV4)
	// A second open-owner of B opens the removed file by its handle.
	p := b.must(putfh(fh), openOp(openArgs{access: ShareAccessRead, owner: "ob2", claim: claimFH}))
	p.ok(OpPutFH)
	sid2 := decodeStateid(p.ok(OpOpen))
	used, avail := s.used(t), a.spaceAvail(dir)
	b.must(putfh(fh), closeOp(sidB))
	if got, st := b.readAll(fh, sid2, len(data)); st != OK || !bytes.Equal(got, data) {
		t.Fatalf("READ through the open left: status %d", st)
	}
	b.must(putfh(fh), closeOp(sid2))
	gone(t, s, a, dir, fh, used, avail)
}

// A client that dies holding a removed file open gives its space back
// once its lease runs out, though nobody opens anything to conflict.
func TestWireRemovedWhileOpenLease(t *testing.T) {
	s, a, b, dir, fh, _, _ := holdCase(t, removeV4)
	used, avail := s.used(t), a.spaceAvail(dir)
	s.clk.advance(29 * time.Second)
	a.must() // A renews; B is silent but within its lease
	if u := s.used(t); u != used {
		t.Fatalf("usage %d within B's lease, %d before", u, used)
	}
	// Past B's lease, and a sweep interval (a quarter lease) since the
	// last sweep: A's next request has the sweep find B.
	s.clk.advance(8 * time.Second)
	a.must()
	gone(t, s, a, dir, fh, used, avail)
	if st := b.raw(b.seqOp()).status; st != ErrBadSession {
		t.Fatalf("B after its lease: %d, want BADSESSION", st)
	}
}

// DESTROY_CLIENTID frees a removed file its client held.
func TestWireRemovedWhileOpenDestroyClient(t *testing.T) {
	s, a, b, dir, fh, _, _ := holdCase(t, removeV4)
	used, avail := s.used(t), a.spaceAvail(dir)
	b.raw(mkop(OpDestroySession, func(w *xdr.Writer) { w.Fixed(b.sess[:]) }))
	if p := b.raw(mkop(OpDestroyClientID, func(w *xdr.Writer) { w.Uint64(b.clientID) })); p.status != OK {
		t.Fatalf("DESTROY_CLIENTID: %d", p.status)
	}
	gone(t, s, a, dir, fh, used, avail)
}

// A server restart (clean: usage saved and reloaded) while B holds a
// removed file gives its space back, and the tree and usage agree.
func TestWireRemovedWhileOpenRestart(t *testing.T) {
	s, _, _, _, _, _, _ := holdCase(t, removeV4)
	used := s.used(t)
	s.restart(t)
	u, err := s.fs.Usage("/vol")
	if err != nil {
		t.Fatal(err)
	}
	if u.Bytes+2<<20-64<<10 > used || u.Inodes != 1 {
		t.Fatalf("usage after a restart %+v, %d bytes before: the removed file is still counted", u, used)
	}
}

// An open reclaimed after a restart holds its file as a new one does.
func TestReclaimedOpenHoldsFile(t *testing.T) {
	e, clk := newGraceEnv(t, t.TempDir())
	a, b := e.client(), e.client()
	a.connect("a")
	b.connect("b")
	root := a.volRoot()
	sid, fh, _ := b.open(root, openArgs{access: ShareAccessBoth, owner: "ob", create: true, how: createUnchecked, name: "f"})
	b.must(putfh(fh), writeOp(sid, 0, []byte("reclaimed and removed")))
	// Closed, so the first handler's hold is not left on the FS both
	// share (a real restart ends every hold with the process).
	b.must(putfh(fh), closeOp(sid))

	e.restart(clk, logr.Discard())
	a.connect("a")
	b.connect("b")
	p := b.must(putfh(fh), openOp(openArgs{access: ShareAccessBoth, owner: "ob", claim: claimPrevious}))
	p.ok(OpPutFH)
	r := p.ok(OpOpen)
	sid = decodeStateid(r)
	skipChangeInfo(r)
	if flags := r.Uint32(); flags&openResultPreserveUnlinked != 0 {
		t.Fatalf("reclaimed OPEN rflags %#x with PRESERVE_UNLINKED", flags)
	}
	a.must(reclaimCompleteOp())
	b.must(reclaimCompleteOp())
	a.must(putfh(root), remove("f"))
	if got, st := b.readAll(fh, sid, 100); st != OK || string(got) != "reclaimed and removed" {
		t.Fatalf("READ of the removed file through the reclaimed open: %d %q", st, got)
	}
	b.must(putfh(fh), closeOp(sid))
	if st := b.do(putfh(fh), getattr(bits(AttrSize))).status; st != ErrStale {
		t.Fatalf("removed file after its reclaimed open closed: %d, want STALE", st)
	}
}

// The sweep that ends a silent client holding a removed file drops its
// client record too, as any lease expiry does: it has nothing to reclaim.
func TestHoldSweepDropsRecord(t *testing.T) {
	dir := t.TempDir()
	e, clk := newGraceEnv(t, dir)
	a, b := e.client(), e.client()
	a.connect("a")
	b.connect("b")
	root := a.volRoot()
	_, fh, _ := b.open(root, openArgs{access: ShareAccessRead, owner: "ob", create: true, how: createUnchecked, name: "f"})
	a.must(putfh(root), remove("f"))
	clk.advance(testLease + testLease/4 + time.Second)
	a.must()
	if st := a.do(putfh(fh), getattr(bits(AttrSize))).status; st != ErrStale {
		t.Fatalf("removed file after its holder's lease: %d, want STALE", st)
	}
	if got := records(t, dir); !slices.Equal(got, []string{recordName("a")}) {
		t.Fatalf("records after b's lease ran out: %v, want a's", got)
	}
}
