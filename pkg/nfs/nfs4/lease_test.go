package nfs4

import (
	"math"
	"sync"
	"testing"
	"time"
)

// clock is a settable time source for leases.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// A client that stops renewing keeps its opens and locks until they stand
// in another client's way after its lease; then they are released.
func TestLeaseExpiry(t *testing.T) {
	e := newEnv(t, Options{LeaseTime: 30 * time.Second})
	clk := &clock{t: time.Unix(1e9, 0)}
	e.h.now = clk.now
	a, b := e.client(), e.client()
	a.connect("a")
	b.connect("b")
	dir := a.volRoot()
	openA, fh, _ := a.open(dir, openArgs{access: ShareAccessBoth, deny: ShareDenyWrite, owner: "oa", create: true, how: createUnchecked, name: "f"})
	if st, _, _ := a.lockResult(fh, lockNew(writeLT, 0, math.MaxUint64, openA, "la")); st != OK {
		t.Fatal(st)
	}
	// Within the lease (B renews its own with every request).
	clk.advance(29 * time.Second)
	if _, _, st := b.open(dir, openArgs{access: ShareAccessWrite, owner: "ob", name: "f"}); st != ErrShareDenied {
		t.Fatalf("open against a live client's DENY_WRITE: %d", st)
	}
	// A renews: its lease starts over.
	a.must()
	clk.advance(29 * time.Second)
	if st, _, _ := b.lockResult(fh, lockt(writeLT, 0, 1, "lb")); st != ErrDenied {
		t.Fatalf("LOCKT against a renewed client's lock: %d", st)
	}
	// A falls silent past its lease: B's conflicting requests succeed.
	clk.advance(2 * time.Second)
	if st, _, _ := b.lockResult(fh, lockt(writeLT, 0, 1, "lb")); st != OK {
		t.Fatalf("LOCKT after the holder's lease: %d", st)
	}
	openB, _, st := b.open(dir, openArgs{access: ShareAccessWrite, owner: "ob", name: "f"})
	if st != OK {
		t.Fatalf("open after the holder's lease: %d", st)
	}
	if st, _, _ := b.lockResult(fh, lockNew(writeLT, 0, 10, openB, "lb")); st != OK {
		t.Fatalf("lock after the holder's lease: %d", st)
	}
	// A's session is gone: it must start over (and finds its state lost).
	if p := a.raw(a.seqOp()); p.status != ErrBadSession {
		t.Fatalf("SEQUENCE of the expired client: %d", p.status)
	}
}

// An expired client's anonymous-stateid conflict (DENY_READ) is released
// the same way, and a client that keeps renewing never expires.
func TestLeaseRenewedBySequence(t *testing.T) {
	e := newEnv(t, Options{LeaseTime: 10 * time.Second})
	clk := &clock{t: time.Unix(1e9, 0)}
	e.h.now = clk.now
	a, b := e.client(), e.client()
	a.connect("a")
	b.connect("b")
	dir := a.volRoot()
	_, fh, _ := a.open(dir, openArgs{access: ShareAccessRead, deny: ShareDenyRead, owner: "oa", create: true, how: createUnchecked, name: "f"})
	for range 10 {
		clk.advance(9 * time.Second)
		a.must()
		if p := b.do(putfh(fh), readOp(anonStateid, 0, 1)); p.status != ErrLocked {
			t.Fatalf("READ against a renewing client's DENY_READ: %d", p.status)
		}
	}
	clk.advance(11 * time.Second)
	if p := b.do(putfh(fh), readOp(anonStateid, 0, 1)); p.status != OK {
		t.Fatalf("READ after the deny holder's lease: %d", p.status)
	}
}

// The client table is bounded: past MaxClients live clients, EXCHANGE_ID
// says DELAY; clients whose lease ran out make room.
func TestClientLimit(t *testing.T) {
	e := newEnv(t, Options{MaxClients: 2, LeaseTime: 10 * time.Second})
	clk := &clock{t: time.Unix(1e9, 0)}
	e.h.now = clk.now
	a, b, c := e.client(), e.client(), e.client()
	a.connect("a")
	b.connect("b")
	if p := c.raw(exchangeIDOp("c", [8]byte{1}, 0)); p.status != ErrDelay {
		t.Fatalf("EXCHANGE_ID past the limit: %d", p.status)
	}
	// The same client again is no new record.
	if p := a.raw(exchangeIDOp("a", [8]byte{1}, 0)); p.status != OK {
		t.Fatalf("EXCHANGE_ID of a known client at the limit: %d", p.status)
	}
	clk.advance(5 * time.Second)
	a.must()
	clk.advance(6 * time.Second) // b expired, a renewed 6s ago
	if p := c.raw(exchangeIDOp("c", [8]byte{1}, 0)); p.status != OK {
		t.Fatalf("EXCHANGE_ID once a client expired: %d", p.status)
	}
	if p := a.do(); p.status != OK {
		t.Fatalf("the live client lost its session: %d", p.status)
	}
	if p := b.raw(b.seqOp()); p.status != ErrBadSession {
		t.Fatalf("the expired client kept its session: %d", p.status)
	}
}
