package nfs4

import (
	"math"
	"slices"
	"testing"

	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
)

func lockNew(typ uint32, off, length uint64, open stateid, owner string) op {
	return mkop(OpLock, func(w *xdr.Writer) {
		w.Uint32(typ)
		w.Bool(false)
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

func lockExist(typ uint32, off, length uint64, sid stateid) op {
	return mkop(OpLock, func(w *xdr.Writer) {
		w.Uint32(typ)
		w.Bool(false)
		w.Uint64(off)
		w.Uint64(length)
		w.Bool(false)
		encodeStateid(w, sid)
		w.Uint32(0)
	})
}

func lockt(typ uint32, off, length uint64, owner string) op {
	return mkop(OpLockT, func(w *xdr.Writer) {
		w.Uint32(typ)
		w.Uint64(off)
		w.Uint64(length)
		w.Uint64(0)
		w.String(owner)
	})
}

func locku(off, length uint64, sid stateid) op {
	return mkop(OpLockU, func(w *xdr.Writer) {
		w.Uint32(writeLT)
		w.Uint32(0)
		encodeStateid(w, sid)
		w.Uint64(off)
		w.Uint64(length)
	})
}

type denial struct {
	off, length uint64
	typ         uint32
	client      uint64
	owner       string
}

// lockResult runs a LOCK/LOCKT/LOCKU on fh and returns its status, the
// stateid (OK) or the denial (DENIED).
func (c *tclient) lockResult(fh []byte, o op) (uint32, stateid, denial) {
	c.t.Helper()
	p := c.do(putfh(fh), o)
	p.ok(OpPutFH)
	st := p.next(o.num)
	var sid stateid
	var d denial
	switch {
	case st == OK && o.num != OpLockT:
		sid = decodeStateid(p.r)
	case st == ErrDenied:
		d = denial{p.r.Uint64(), p.r.Uint64(), p.r.Uint32(), p.r.Uint64(), p.r.String(maxOpaque)}
	}
	if p.r.Err() != nil {
		c.t.Fatalf("%s result: %v", OpName(o.num), p.r.Err())
	}
	return st, sid, d
}

func TestByteRangeLocks(t *testing.T) {
	e := newEnv(t, Options{})
	a, b := e.client(), e.client()
	a.connect("a")
	b.connect("b")
	dir := a.volRoot()
	openA, fh, _ := a.open(dir, openArgs{access: ShareAccessBoth, owner: "oa", create: true, how: createUnchecked, name: "f"})
	openB, _, _ := b.open(dir, openArgs{access: ShareAccessBoth, owner: "ob", name: "f"})
	openR, _, _ := b.open(dir, openArgs{access: ShareAccessRead, owner: "or", name: "f"})

	// A write-locks [0, 99].
	st, la, _ := a.lockResult(fh, lockNew(writeLT, 0, 100, openA, "la"))
	if st != OK || la.seq != 1 {
		t.Fatalf("LOCK: %d %+v", st, la)
	}
	// B is refused and told who holds it.
	st, _, d := b.lockResult(fh, lockNew(readLT, 50, 11, openB, "lb"))
	if st != ErrDenied || d != (denial{0, 100, writeLT, a.clientID, "la"}) {
		t.Fatalf("conflicting LOCK: %d %+v", st, d)
	}
	if st, _, d := b.lockResult(fh, lockt(writeLT, 99, 1, "lb")); st != ErrDenied || d.off != 0 {
		t.Fatalf("LOCKT at 99: %d %+v", st, d)
	}
	if st, _, _ := b.lockResult(fh, lockt(writeLT, 100, 100, "lb")); st != OK {
		t.Fatalf("LOCKT at 100: %d", st)
	}
	// A tests its own lock: no conflict with itself.
	if st, _, _ := a.lockResult(fh, lockt(writeLT, 0, 10, "la")); st != OK {
		t.Fatalf("LOCKT of the owner's own lock: %d", st)
	}
	// A unlocks the middle: [0,39] and [60,99] remain.
	st, la2, _ := a.lockResult(fh, locku(40, 20, la))
	if st != OK || la2.seq != 2 || la2.other != la.other {
		t.Fatalf("LOCKU: %d %+v", st, la2)
	}
	st, lb, _ := b.lockResult(fh, lockNew(readLT, 40, 20, openB, "lb"))
	if st != OK {
		t.Fatalf("LOCK of the unlocked middle: %d", st)
	}
	if st, _, d := b.lockResult(fh, lockExist(readLT, 39, 2, lb)); st != ErrDenied || d.off != 0 || d.length != 40 {
		t.Fatalf("LOCK across the split: %d %+v", st, d)
	}
	// The old lock seqid is old.
	if st, _, _ := a.lockResult(fh, lockExist(writeLT, 0, 1, la)); st != ErrOldStateID {
		t.Fatalf("LOCK with an old seqid: %d", st)
	}
	// A downgrades its whole range to read, which B's read lock shares,
	// and cannot upgrade a byte B holds.
	st, la3, _ := a.lockResult(fh, lockExist(readLT, 0, 100, la2))
	if st != OK {
		t.Fatalf("downgrade to read: %d", st)
	}
	if st, _, d := a.lockResult(fh, lockExist(writeLT, 45, 1, la3)); st != ErrDenied || d.client != b.clientID || d.owner != "lb" {
		t.Fatalf("upgrade over B's read lock: %d %+v", st, d)
	}
	// To the end of the file.
	if st, lbw, _ := b.lockResult(fh, lockNew(writeLT, 1000, math.MaxUint64, openB, "lb2")); st != OK {
		t.Fatalf("lock to EOF: %d", st)
	} else if st, _, d := a.lockResult(fh, lockt(readLT, 1<<62, 1, "la")); st != ErrDenied || d.length != math.MaxUint64 || d.off != 1000 {
		t.Fatalf("LOCKT past a lock to EOF: %d %+v", st, d)
	} else if st, _, _ := b.lockResult(fh, locku(1000, math.MaxUint64, lbw)); st != OK {
		t.Fatalf("LOCKU to EOF: %d", st)
	}
	// Bad ranges, modes and claims.
	for _, tc := range []struct {
		name string
		o    op
		want uint32
	}{
		{"length 0", lockNew(writeLT, 0, 0, openB, "x"), ErrInval},
		{"past the largest offset", lockNew(writeLT, math.MaxUint64, 2, openB, "x"), ErrInval},
		{"lock type 5", lockNew(5, 0, 1, openB, "x"), ErrInval},
		{"write lock under a read-only open", lockNew(writeLT, 500, 1, openR, "x"), ErrOpenMode},
		{"unknown open", lockNew(writeLT, 500, 1, stateid{seq: 1, other: [12]byte{9}}, "x"), ErrBadStateID},
		{"A's open from B", lockNew(writeLT, 500, 1, openA, "x"), ErrBadStateID},
		{"LOCKU of an open stateid", locku(0, 1, openB), ErrBadStateID},
	} {
		if st, _, _ := b.lockResult(fh, tc.o); st != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, st, tc.want)
		}
	}
	p := b.do(putfh(fh), mkop(OpLock, func(w *xdr.Writer) {
		w.Uint32(writeLT)
		w.Bool(true)
		w.Uint64(0)
		w.Uint64(1)
		w.Bool(false)
		encodeStateid(w, lb)
		w.Uint32(0)
	}))
	if p.status != ErrNoGrace {
		t.Errorf("reclaim LOCK: %d", p.status)
	}
	// A lock stateid carries I/O.
	if p := b.do(putfh(fh), writeOp(stateid{other: lb.other}, 0, []byte("x"))); p.status != OK {
		t.Errorf("WRITE with a lock stateid: %d", p.status)
	}
	// FREE_STATEID frees a lock stateid only once it holds nothing.
	free := func(c *tclient, sid stateid) uint32 {
		return c.do(mkop(OpFreeStateID, func(w *xdr.Writer) { encodeStateid(w, stateid{other: sid.other}) })).status
	}
	if st := free(b, lb); st != ErrLocksHeld {
		t.Errorf("FREE_STATEID of a lock stateid with locks: %d", st)
	}
	if st, _, _ := b.lockResult(fh, locku(0, math.MaxUint64, stateid{other: lb.other})); st != OK {
		t.Fatal(st)
	}
	if st := free(b, lb); st != OK {
		t.Errorf("FREE_STATEID of an empty lock stateid: %d", st)
	}
	if st := free(b, lb); st != ErrBadStateID {
		t.Errorf("second FREE_STATEID: %d", st)
	}
	// CLOSE releases the locks taken under the open.
	if st, _, _ := b.lockResult(fh, lockt(writeLT, 0, 100, "lb")); st != ErrDenied {
		t.Fatal("A's locks vanished early")
	}
	a.must(putfh(fh), closeOp(stateid{other: openA.other}))
	if st, _, _ := b.lockResult(fh, lockt(writeLT, 0, 100, "lb")); st != OK {
		t.Fatalf("LOCKT after A's CLOSE: %d", st)
	}
	if st, _, _ := a.lockResult(fh, lockExist(writeLT, 0, 1, la3)); st != ErrBadStateID {
		t.Fatalf("lock stateid after CLOSE: %d", st)
	}
}

// A client's locks go with the client.
func TestLocksDroppedWithClient(t *testing.T) {
	e := newEnv(t, Options{})
	a, b := e.client(), e.client()
	a.connect("a")
	b.connect("b")
	dir := a.volRoot()
	openA, fh, _ := a.open(dir, openArgs{access: ShareAccessBoth, owner: "oa", create: true, how: createUnchecked, name: "f"})
	if st, _, _ := a.lockResult(fh, lockNew(writeLT, 0, math.MaxUint64, openA, "la")); st != OK {
		t.Fatal(st)
	}
	if st, _, _ := b.lockResult(fh, lockt(writeLT, 0, 1, "lb")); st != ErrDenied {
		t.Fatal(st)
	}
	a.raw(mkop(OpDestroySession, func(w *xdr.Writer) { w.Fixed(a.sess[:]) }))
	if p := a.raw(mkop(OpDestroyClientID, func(w *xdr.Writer) { w.Uint64(a.clientID) })); p.status != OK {
		t.Fatal(p.status)
	}
	if st, _, _ := b.lockResult(fh, lockt(writeLT, 0, 1, "lb")); st != OK {
		t.Fatalf("LOCKT after the holder's DESTROY_CLIENTID: %d", st)
	}
}

func TestSetRange(t *testing.T) {
	const max = math.MaxUint64
	w, r := uint32(WriteLock), uint32(ReadLock)
	for _, tc := range []struct {
		name string
		in   []LockRange
		set  LockRange
		want []LockRange
	}{
		{"insert", nil, LockRange{5, 9, w}, []LockRange{{5, 9, w}}},
		{"merge adjacent", []LockRange{{0, 4, w}}, LockRange{5, 9, w}, []LockRange{{0, 9, w}}},
		{"no merge across types", []LockRange{{0, 4, r}}, LockRange{5, 9, w}, []LockRange{{0, 4, r}, {5, 9, w}}},
		{"split by unlock", []LockRange{{0, 99, w}}, LockRange{40, 59, 0}, []LockRange{{0, 39, w}, {60, 99, w}}},
		{"split by type", []LockRange{{0, 99, w}}, LockRange{40, 59, r}, []LockRange{{0, 39, w}, {40, 59, r}, {60, 99, w}}},
		{"cover several", []LockRange{{0, 9, w}, {20, 29, r}, {40, 49, w}}, LockRange{5, 44, r}, []LockRange{{0, 4, w}, {5, 44, r}, {45, 49, w}}},
		{"to EOF", []LockRange{{10, max, w}}, LockRange{0, 9, w}, []LockRange{{0, max, w}}},
		{"unlock to EOF", []LockRange{{0, max, w}}, LockRange{100, max, 0}, []LockRange{{0, 99, w}}},
		{"unlock all", []LockRange{{0, 9, w}, {20, max, r}}, LockRange{0, max, 0}, []LockRange{}},
		{"from 0", []LockRange{{0, 9, w}}, LockRange{0, 0, 0}, []LockRange{{1, 9, w}}},
	} {
		if got := setRange(tc.in, tc.set); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
