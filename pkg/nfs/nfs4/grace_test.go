package nfs4

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"

	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
)

// Restart, grace and reclaim: a Handler over a MemFS is "restarted" by
// building a new one on the same FS and state directory, which is what a
// server process restart keeps.

const testLease = 30 * time.Second

// newGraceEnv is newEnv with client records in dir and a settable clock.
func newGraceEnv(t *testing.T, dir string) (*env, *clock) {
	clk := &clock{t: time.Unix(1e9, 0)}
	e := newEnv(t, Options{})
	e.h = newHandler(e.fs, logr.Discard(), Options{LeaseTime: testLease, StateDir: dir}, clk.now)
	return e, clk
}

// restart replaces the handler by a new one on the same FS, state
// directory and clock: every session, open and lock is gone.
func (e *env) restart(clk *clock, log logr.Logger) {
	e.h = newHandler(e.fs, log, e.h.o, clk.now)
}

func reclaimCompleteOp() op {
	return mkop(OpReclaimComplete, func(w *xdr.Writer) { w.Bool(false) })
}

func lockReclaim(typ uint32, off, length uint64, open stateid, owner string) op {
	return mkop(OpLock, func(w *xdr.Writer) {
		w.Uint32(typ)
		w.Bool(true)
		w.Uint64(off)
		w.Uint64(length)
		w.Bool(true)
		w.Uint32(0)
		encodeStateid(w, open)
		w.Uint32(0)
		w.Uint64(0)
		w.String(owner)
	})
}

// reclaimOpen runs PUTFH fh + OPEN CLAIM_PREVIOUS.
func (c *tclient) reclaimOpen(fh []byte, access, deny uint32, owner string) (stateid, uint32) {
	c.t.Helper()
	p := c.do(putfh(fh), openOp(openArgs{access: access, deny: deny, owner: owner, claim: claimPrevious}))
	p.ok(OpPutFH)
	if st := p.next(OpOpen); st != OK {
		return stateid{}, st
	}
	return decodeStateid(p.r), OK
}

func (c *tclient) status(ops ...op) uint32 {
	c.t.Helper()
	return c.do(ops...).status
}

// records lists the record files in dir.
func records(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// Two clients hold opens (one with DENY_WRITE) and locks; the server
// restarts. Until both reclaimed and said RECLAIM_COMPLETE, new opens,
// locks, LOCKT, REMOVE and RENAME wait with GRACE, while each client gets
// its open and lock back with CLAIM_PREVIOUS and reclaim LOCKs; the second
// RECLAIM_COMPLETE ends the grace period at once, and the reclaimed state
// then refuses the other client as before the restart.
func TestRestartReclaim(t *testing.T) {
	dir := t.TempDir()
	e, clk := newGraceEnv(t, dir)
	a, b := e.client(), e.client()
	a.connect("client-a")
	b.connect("client-b")
	root := a.volRoot()
	sa, fa, _ := a.open(root, openArgs{access: ShareAccessBoth, deny: ShareDenyWrite, owner: "oa", create: true, how: createUnchecked, name: "fa"})
	if st, _, _ := a.lockResult(fa, lockNew(writeLT, 0, 100, sa, "la")); st != OK {
		t.Fatal(st)
	}
	sb, fb, _ := b.open(root, openArgs{access: ShareAccessRead, owner: "ob", create: true, how: createUnchecked, name: "fb"})
	if st, _, _ := b.lockResult(fb, lockNew(readLT, 0, math.MaxUint64, sb, "lb")); st != OK {
		t.Fatal(st)
	}
	if got := records(t, dir); len(got) != 2 {
		t.Fatalf("records after two clients confirmed: %v", got)
	}

	e.restart(clk, logr.Discard())
	if p := a.raw(a.seqOp()); p.status != ErrBadSession {
		t.Fatalf("old session after the restart: %d", p.status)
	}
	a.connect("client-a")
	if _, _, st := a.open(root, openArgs{access: ShareAccessRead, owner: "oa2", create: true, how: createUnchecked, name: "new"}); st != ErrGrace {
		t.Fatalf("new OPEN in grace: %d", st)
	}
	if _, _, st := a.open(root, openArgs{access: ShareAccessRead, owner: "oa", name: "fa"}); st != ErrGrace {
		t.Fatalf("non-reclaim OPEN of an existing file in grace: %d", st)
	}
	if st := a.status(putfh(root), remove("fb")); st != ErrGrace {
		t.Fatalf("REMOVE in grace: %d", st)
	}
	if st := a.status(putfh(root), savefh(), rename("fb", "fc")); st != ErrGrace {
		t.Fatalf("RENAME in grace: %d", st)
	}
	if st, _, _ := a.lockResult(fb, lockt(writeLT, 0, 1, "la")); st != ErrGrace {
		t.Fatalf("LOCKT in grace: %d", st)
	}

	// A reclaims; its old stateids are not valid any more.
	if st, _, _ := a.lockResult(fa, lockReclaim(writeLT, 0, 100, sa, "la")); st != ErrBadStateID {
		t.Fatalf("reclaim LOCK under a stateid of before the restart: %d", st)
	}
	sa2, st := a.reclaimOpen(fa, ShareAccessBoth, ShareDenyWrite, "oa")
	if st != OK {
		t.Fatalf("OPEN CLAIM_PREVIOUS: %d", st)
	}
	if st, _, _ := a.lockResult(fa, lockNew(writeLT, 0, 100, sa2, "la")); st != ErrGrace {
		t.Fatalf("non-reclaim LOCK in grace: %d", st)
	}
	if st, _, _ := a.lockResult(fa, lockReclaim(writeLT, 0, 100, sa2, "la")); st != OK {
		t.Fatalf("reclaim LOCK: %d", st)
	}
	// I/O through the reclaimed open works during grace.
	if p := a.do(putfh(fa), writeOp(sa2, 0, []byte("after"))); p.status != OK {
		t.Fatalf("WRITE with the reclaimed stateid: %d", p.status)
	}
	a.must(reclaimCompleteOp())
	if _, st := a.reclaimOpen(fa, ShareAccessRead, 0, "oa3"); st != ErrNoGrace {
		t.Fatalf("reclaim after the client's RECLAIM_COMPLETE: %d", st)
	}
	// B has not reclaimed yet: the grace period goes on for everyone.
	if _, _, st := a.open(root, openArgs{access: ShareAccessRead, owner: "oa2", name: "fb"}); st != ErrGrace {
		t.Fatalf("OPEN while another client reclaims: %d", st)
	}

	b.connect("client-b")
	sb2, st := b.reclaimOpen(fb, ShareAccessRead, 0, "ob")
	if st != OK {
		t.Fatalf("B's OPEN CLAIM_PREVIOUS: %d", st)
	}
	if st, _, _ := b.lockResult(fb, lockReclaim(readLT, 0, math.MaxUint64, sb2, "lb")); st != OK {
		t.Fatalf("B's reclaim LOCK: %d", st)
	}
	b.must(reclaimCompleteOp())
	if p := b.do(reclaimCompleteOp()); p.status != ErrCompleteAlready {
		t.Fatalf("second RECLAIM_COMPLETE: %d", p.status)
	}

	// Grace is over without the clock moving: normal service, and the
	// reclaimed state stands in others' way as before the restart.
	if _, _, st := b.open(root, openArgs{access: ShareAccessWrite, owner: "ob2", name: "fa"}); st != ErrShareDenied {
		t.Fatalf("B opening for write against A's reclaimed DENY_WRITE: %d", st)
	}
	if st, _, d := b.lockResult(fa, lockt(readLT, 50, 1, "lb")); st != ErrDenied || d.owner != "la" {
		t.Fatalf("LOCKT against A's reclaimed lock: %d %+v", st, d)
	}
	sa3, _, st := a.open(root, openArgs{access: ShareAccessBoth, owner: "oa4", name: "fb"})
	if st != OK {
		t.Fatalf("OPEN after grace: %d", st)
	}
	if st, _, d := a.lockResult(fb, lockNew(writeLT, 10, 1, sa3, "la4")); st != ErrDenied || d.owner != "lb" {
		t.Fatalf("LOCK against B's reclaimed lock: %d %+v", st, d)
	}
	if _, st := b.reclaimOpen(fb, ShareAccessRead, 0, "ob"); st != ErrNoGrace {
		t.Fatalf("reclaim after grace: %d", st)
	}
	if got := records(t, dir); len(got) != 2 {
		t.Fatalf("records of the two returned clients: %v", got)
	}
}

// A client the records do not know gets RECLAIM_BAD in grace; when the
// period runs out (a recorded client never came back) the server serves
// normally, reclaims get NO_GRACE, and the absent client's record is gone.
func TestGraceUnknownClientAndTimeout(t *testing.T) {
	dir := t.TempDir()
	e, clk := newGraceEnv(t, dir)
	gone := e.client()
	gone.connect("gone")
	root := gone.volRoot()
	_, fh, _ := gone.open(root, openArgs{access: ShareAccessRead, owner: "o", create: true, how: createUnchecked, name: "f"})
	e.restart(clk, logr.Discard())

	c := e.client()
	c.connect("stranger")
	if _, st := c.reclaimOpen(fh, ShareAccessRead, 0, "o"); st != ErrReclaimBad {
		t.Fatalf("reclaim by a client without a record: %d", st)
	}
	if st, _, _ := c.lockResult(fh, lockReclaim(readLT, 0, 1, stateid{seq: 1, other: [12]byte{1}}, "l")); st != ErrReclaimBad {
		t.Fatalf("reclaim LOCK by a client without a record: %d", st)
	}
	if _, _, st := c.open(root, openArgs{access: ShareAccessRead, owner: "o", name: "f"}); st != ErrGrace {
		t.Fatalf("OPEN in grace: %d", st)
	}
	c.must(reclaimCompleteOp()) // a stranger's RECLAIM_COMPLETE ends nothing
	if _, _, st := c.open(root, openArgs{access: ShareAccessRead, owner: "o", name: "f"}); st != ErrGrace {
		t.Fatalf("OPEN in grace after a stranger's RECLAIM_COMPLETE: %d", st)
	}
	clk.advance(testLease - time.Second)
	if _, _, st := c.open(root, openArgs{access: ShareAccessRead, owner: "o", name: "f"}); st != ErrGrace {
		t.Fatalf("OPEN just before the grace period ends: %d", st)
	}
	clk.advance(time.Second)
	if _, _, st := c.open(root, openArgs{access: ShareAccessRead, owner: "o", name: "f"}); st != OK {
		t.Fatalf("OPEN after the grace period: %d", st)
	}
	if _, st := c.reclaimOpen(fh, ShareAccessRead, 0, "o"); st != ErrNoGrace {
		t.Fatalf("reclaim after the grace period: %d", st)
	}
	if got := records(t, dir); !slices.Equal(got, []string{recordName("stranger")}) {
		t.Fatalf("records after grace: %v, want only the stranger's", got)
	}
}

// Without records there is no grace period: OPEN and LOCK work at once
// after a restart, reclaims get NO_GRACE.
func TestNoRecordsNoGrace(t *testing.T) {
	e, clk := newGraceEnv(t, t.TempDir())
	e.restart(clk, logr.Discard())
	c := e.client()
	c.connect("c")
	root := c.volRoot()
	sid, fh, st := c.open(root, openArgs{access: ShareAccessBoth, owner: "o", create: true, how: createUnchecked, name: "f"})
	if st != OK {
		t.Fatalf("OPEN after a restart without records: %d", st)
	}
	if st, _, _ := c.lockResult(fh, lockNew(writeLT, 0, 1, sid, "l")); st != OK {
		t.Fatalf("LOCK: %d", st)
	}
	if _, st := c.reclaimOpen(fh, ShareAccessRead, 0, "o"); st != ErrNoGrace {
		t.Fatalf("reclaim without a grace period: %d", st)
	}
}

// DESTROY_CLIENTID removes the client's record: the next start has no one
// to wait for.
func TestRecordRemovedOnDestroyClientID(t *testing.T) {
	dir := t.TempDir()
	e, clk := newGraceEnv(t, dir)
	c := e.client()
	c.connect("c")
	if got := records(t, dir); !slices.Equal(got, []string{recordName("c")}) {
		t.Fatalf("records: %v", got)
	}
	if p := c.raw(mkop(OpDestroySession, func(w *xdr.Writer) { w.Fixed(c.sess[:]) })); p.status != OK {
		t.Fatal(p.status)
	}
	if p := c.raw(mkop(OpDestroyClientID, func(w *xdr.Writer) { w.Uint64(c.clientID) })); p.status != OK {
		t.Fatal(p.status)
	}
	if got := records(t, dir); len(got) != 0 {
		t.Fatalf("records after DESTROY_CLIENTID: %v", got)
	}
	e.restart(clk, logr.Discard())
	c.connect("c")
	if _, _, st := c.open(c.volRoot(), openArgs{access: ShareAccessRead, owner: "o", create: true, how: createUnchecked, name: "f"}); st != OK {
		t.Fatalf("OPEN after a restart: %d", st)
	}
}

// A client whose lease ran out and whose state was released loses its
// record with it; one that renews keeps it.
func TestRecordRemovedOnLeaseExpiry(t *testing.T) {
	dir := t.TempDir()
	e, clk := newGraceEnv(t, dir)
	a, b := e.client(), e.client()
	a.connect("a")
	b.connect("b")
	clk.advance(testLease - time.Second)
	b.must()
	clk.advance(2 * time.Second)
	// Any EXCHANGE_ID reaps expired clients.
	if p := e.client().raw(exchangeIDOp("c", [8]byte{1}, 0)); p.status != OK {
		t.Fatal(p.status)
	}
	if got := records(t, dir); !slices.Equal(got, []string{recordName("b")}) {
		t.Fatalf("records after a's lease ran out: %v, want b's", got)
	}
}

// A damaged record (garbage, truncated, or renamed) is logged and removed
// at start; the good one still starts a grace period for its client.
func TestCorruptRecord(t *testing.T) {
	dir := t.TempDir()
	good := encodeRecord("good")
	bad := map[string][]byte{
		recordName("garbage"):   []byte("not a record at all"),
		recordName("truncated"): encodeRecord("truncated")[:10],
		recordName("flipped"):   append(encodeRecord("flipped")[:12], 'X', 0, 0, 0, 0),
		recordName("renamed"):   encodeRecord("someone-else"),
		recordName("empty"):     nil,
	}
	for name, b := range bad {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, recordName("good")), good, 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var logged []string
	log := funcr.New(func(prefix, args string) {
		mu.Lock()
		logged = append(logged, args)
		mu.Unlock()
	}, funcr.Options{})
	e, clk := newGraceEnv(t, t.TempDir())
	e.h.o.StateDir = dir
	e.restart(clk, log)
	if got := records(t, dir); !slices.Equal(got, []string{recordName("good")}) {
		t.Fatalf("records after start: %v, want only the good one", got)
	}
	mu.Lock()
	n := 0
	for _, l := range logged {
		if strings.Contains(l, "client record unreadable") {
			n++
		}
	}
	mu.Unlock()
	if n != len(bad) {
		t.Fatalf("%d bad records logged, want %d: %q", n, len(bad), logged)
	}
	g := e.client()
	g.connect("good")
	if _, _, st := g.open(g.volRoot(), openArgs{access: ShareAccessRead, owner: "o", create: true, how: createUnchecked, name: "f"}); st != ErrGrace {
		t.Fatalf("OPEN while the good record's client may reclaim: %d", st)
	}
	g.must(reclaimCompleteOp())
	if _, _, st := g.open(g.volRoot(), openArgs{access: ShareAccessRead, owner: "o", create: true, how: createUnchecked, name: "f"}); st != OK {
		t.Fatalf("OPEN once the only recorded client completed: %d", st)
	}
}

// A state directory that cannot be used (a file in its place) is logged;
// the server serves without records.
func TestStateDirUnusable(t *testing.T) {
	p := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var logged []string
	log := funcr.New(func(_, args string) { logged = append(logged, args) }, funcr.Options{})
	e, clk := newGraceEnv(t, t.TempDir())
	e.h.o.StateDir = p
	e.restart(clk, log)
	if len(logged) != 1 || !strings.Contains(logged[0], "client records unavailable") {
		t.Fatalf("log: %q", logged)
	}
	c := e.client()
	c.connect("c")
	if _, _, st := c.open(c.volRoot(), openArgs{access: ShareAccessRead, owner: "o", create: true, how: createUnchecked, name: "f"}); st != OK {
		t.Fatalf("OPEN: %d", st)
	}
}

// Over TCP on localfs: a client holding an open and a lock sees the server
// stop and start again on the same directories and port; its old session
// is refused, it registers again, reclaims both (the handle survived), and
// its RECLAIM_COMPLETE ends the grace period: another client is refused
// the lock and can open and write files again.
func TestWireRestartReclaim(t *testing.T) {
	base, state := t.TempDir(), t.TempDir()
	o := Options{StateDir: state}
	s, stop := startWireOn(t, base, "127.0.0.1:0", o)
	a := s.dial(t)
	a.connect("wire-a")
	root := a.volRoot()
	sid, fh, st := a.open(root, openArgs{access: ShareAccessBoth, owner: "oa", create: true, how: createUnchecked, name: "held"})
	if st != OK {
		t.Fatal(st)
	}
	if st, _, _ := a.lockResult(fh, lockNew(writeLT, 0, math.MaxUint64, sid, "la")); st != OK {
		t.Fatal(st)
	}
	stop()

	s, _ = startWireOn(t, base, s.addr, o)
	a = s.dial(t)
	if p := a.raw(a.seqOp()); p.status != ErrBadSession {
		t.Fatalf("old session after the restart: %d", p.status)
	}
	a.connect("wire-a")
	b := s.dial(t)
	b.connect("wire-b")
	if _, _, st := b.open(root, openArgs{access: ShareAccessBoth, owner: "ob", create: true, how: createUnchecked, name: "other"}); st != ErrGrace {
		t.Fatalf("new OPEN in grace: %d", st)
	}
	sid, st = a.reclaimOpen(fh, ShareAccessBoth, 0, "oa")
	if st != OK {
		t.Fatalf("OPEN CLAIM_PREVIOUS: %d", st)
	}
	if st, _, _ := a.lockResult(fh, lockReclaim(writeLT, 0, math.MaxUint64, sid, "la")); st != OK {
		t.Fatalf("reclaim LOCK: %d", st)
	}
	a.must(reclaimCompleteOp())
	if p := a.do(putfh(fh), writeOp(sid, 0, []byte("resumed"))); p.status != OK {
		t.Fatalf("WRITE through the reclaimed open: %d", p.status)
	}
	sb, _, st := b.open(root, openArgs{access: ShareAccessBoth, owner: "ob", name: "held"})
	if st != OK {
		t.Fatalf("OPEN after grace: %d", st)
	}
	if st, _, d := b.lockResult(fh, lockNew(writeLT, 0, 1, sb, "lb")); st != ErrDenied || d.owner != "la" {
		t.Fatalf("LOCK against the reclaimed lock: %d %+v", st, d)
	}
	if got, err := os.ReadFile(filepath.Join(s.dir, "held")); err != nil || string(got) != "resumed" {
		t.Fatalf("file on disk: %q %v", got, err)
	}
}

// A record file is read at start from disk: whatever bytes it holds give
// an owner that encodes back to the same bytes, or an error, never a
// panic.
func FuzzClientRecord(f *testing.F) {
	f.Add(encodeRecord("Linux NFSv4.1 node-a"))
	f.Add(encodeRecord("x")[:9])
	f.Add([]byte("HCR1\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		owner, err := decodeRecord(b)
		if err == nil && string(encodeRecord(owner)) != string(b) {
			t.Fatalf("%q decodes to owner %q, which encodes differently", b, owner)
		}
	})
}
