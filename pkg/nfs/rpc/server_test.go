package rpc

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
)

func TestMultiFragmentCall(t *testing.T) {
	_, addr := startServer(t, Options{}, func(s *Server) { s.Register(testProg, testVers, echo, nil) })
	c := dialRaw(t, addr)
	args := bytes.Repeat([]byte("abcd"), 1000)
	msg := callMsg(77, 2, testProg, testVers, 1, AuthNone, nil, args)
	// Split inside the xid, inside the header, with an empty fragment.
	writeAll(t, c, frame(msg, 2, 13, 0, 30))
	got := readReply(t, c)
	want := append(words(77, MsgReply, MsgAccepted, AuthNone, 0, uint32(Success)), args...)
	if !bytes.Equal(got, want) {
		t.Fatalf("reply differs: got %d bytes, want %d", len(got), len(want))
	}
}

func TestOversizedRecordClosesConn(t *testing.T) {
	s, addr := startServer(t, Options{}, func(s *Server) { s.Register(testProg, testVers, echo, nil) })
	for _, hdr := range []uint32{0x7FFFFFFF, 0xFFFFFFFF, lastFrag | DefaultMaxRecordSize + 1} {
		c := dialRaw(t, addr)
		writeAll(t, c, words(hdr))
		writeAll(t, c, make([]byte, 1000))
		expectClosed(t, c)
	}
	waitFor(t, "connections to close", func() bool { return s.numConns() == 0 })
}

func TestFragmentThenEOF(t *testing.T) {
	s, addr := startServer(t, Options{}, func(s *Server) { s.Register(testProg, testVers, echo, nil) })
	c := dialRaw(t, addr)
	msg := callMsg(1, 2, testProg, testVers, 0, AuthNone, nil, nil)
	writeAll(t, c, words(uint32(len(msg))))
	writeAll(t, c, msg) // a complete but non-final fragment
	c.(*net.TCPConn).CloseWrite()
	expectClosed(t, c)
	// The server side is gone too: no leaked conn or goroutine.
	waitFor(t, "server to drop the connection", func() bool { return s.numConns() == 0 })
}

func TestRejectionsByteExact(t *testing.T) {
	procs := HandlerFunc(func(_ context.Context, c *Call, w *xdr.Writer) AcceptStat {
		w.Uint32(0xbadbad) // must be discarded for every non-SUCCESS status
		switch c.Proc {
		case 1:
			return ProcUnavail
		case 2:
			return GarbageArgs
		case 3:
			return SystemErr
		}
		return Success
	})
	_, addr := startServer(t, Options{}, func(s *Server) {
		s.Register(testProg, 2, procs, nil)
		s.Register(testProg, 4, procs, nil)
	})
	long := strings.Repeat("m", 256)
	gids17 := make([]uint32, 17)
	for _, tc := range []struct {
		name string
		msg  []byte
		want []byte
	}{
		{"rpc mismatch", callMsg(1, 3, testProg, 2, 0, AuthNone, nil, nil),
			words(1, MsgReply, MsgDenied, RPCMismatch, 2, 2)},
		{"prog unavail", callMsg(2, 2, testProg+1, 2, 0, AuthNone, nil, nil),
			words(2, MsgReply, MsgAccepted, AuthNone, 0, uint32(ProgUnavail))},
		{"prog mismatch", callMsg(3, 2, testProg, 3, 0, AuthNone, nil, nil),
			words(3, MsgReply, MsgAccepted, AuthNone, 0, uint32(ProgMismatch), 2, 4)},
		{"proc unavail", callMsg(4, 2, testProg, 4, 1, AuthNone, nil, nil),
			words(4, MsgReply, MsgAccepted, AuthNone, 0, uint32(ProcUnavail))},
		{"garbage args", callMsg(5, 2, testProg, 2, 2, AuthNone, nil, nil),
			words(5, MsgReply, MsgAccepted, AuthNone, 0, uint32(GarbageArgs))},
		{"system err", callMsg(6, 2, testProg, 2, 3, AuthNone, nil, nil),
			words(6, MsgReply, MsgAccepted, AuthNone, 0, uint32(SystemErr))},
		{"success", callMsg(7, 2, testProg, 2, 0, AuthNone, nil, nil),
			words(7, MsgReply, MsgAccepted, AuthNone, 0, uint32(Success), 0xbadbad)},
		{"bad cred: 17 gids", callMsg(8, 2, testProg, 2, 0, AuthSys, authSysBody("h", 1, 1, gids17...), nil),
			words(8, MsgReply, MsgDenied, AuthError, AuthBadCred)},
		{"bad cred: long machine", callMsg(9, 2, testProg, 2, 0, AuthSys, authSysBody(long, 1, 1), nil),
			words(9, MsgReply, MsgDenied, AuthError, AuthBadCred)},
		{"bad cred: truncated body", callMsg(10, 2, testProg, 2, 0, AuthSys, authSysBody("h", 1, 1, 5)[:16], nil),
			words(10, MsgReply, MsgDenied, AuthError, AuthBadCred)},
		{"bad cred: trailing bytes", callMsg(11, 2, testProg, 2, 0, AuthSys, append(authSysBody("h", 1, 1), 0, 0, 0, 0), nil),
			words(11, MsgReply, MsgDenied, AuthError, AuthBadCred)},
		{"bad cred: body over 400", callMsg(12, 2, testProg, 2, 0, AuthNone, make([]byte, 404), nil),
			words(12, MsgReply, MsgDenied, AuthError, AuthBadCred)},
		{"bad cred: cut short", words(13, MsgCall, 2, testProg, 2, 0, AuthSys, 20, 0),
			words(13, MsgReply, MsgDenied, AuthError, AuthBadCred)},
		{"too weak: RPCSEC_GSS", callMsg(14, 2, testProg, 2, 0, 6, make([]byte, 8), nil),
			words(14, MsgReply, MsgDenied, AuthError, AuthTooWeak)},
		{"too weak: AUTH_SHORT", callMsg(15, 2, testProg, 2, 0, AuthShort, make([]byte, 8), nil),
			words(15, MsgReply, MsgDenied, AuthError, AuthTooWeak)},
		{"bad verifier", words(16, MsgCall, 2, testProg, 2, 0, AuthNone, 0, AuthNone),
			words(16, MsgReply, MsgDenied, AuthError, AuthBadVerf)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			writeAll(t, c, frame(tc.msg))
			if got := readReply(t, c); !bytes.Equal(got, tc.want) {
				t.Errorf("reply\n got %x\nwant %x", got, tc.want)
			}
			// The connection stays usable.
			writeAll(t, c, frame(callMsg(99, 2, testProg, 2, 0, AuthNone, nil, nil)))
			if got := readReply(t, c); binary.BigEndian.Uint32(got) != 99 {
				t.Errorf("follow-up call failed: %x", got)
			}
		})
	}
}

func TestNonCallsDropped(t *testing.T) {
	_, addr := startServer(t, Options{}, func(s *Server) { s.Register(testProg, testVers, echo, nil) })
	c := dialRaw(t, addr)
	writeAll(t, c, frame(nil))                            // empty record
	writeAll(t, c, frame(words(5, MsgReply, 0, 0, 0, 0))) // a reply sent to the server
	writeAll(t, c, frame(words(6, MsgCall, 2, testProg))) // header cut before vers
	writeAll(t, c, frame(callMsg(7, 2, testProg, testVers, 0, AuthNone, nil, nil)))
	if got := readReply(t, c); binary.BigEndian.Uint32(got) != 7 {
		t.Fatalf("first reply is for xid %d, want 7", binary.BigEndian.Uint32(got))
	}
}

func TestAuthSysCred(t *testing.T) {
	creds := make(chan Cred, 2)
	h := HandlerFunc(func(_ context.Context, c *Call, w *xdr.Writer) AcceptStat {
		creds <- c.Cred
		return Success
	})
	_, addr := startServer(t, Options{}, func(s *Server) { s.Register(testProg, testVers, h, nil) })
	c := dialRaw(t, addr)
	writeAll(t, c, frame(callMsg(1, 2, testProg, testVers, 0, AuthSys, authSysBody("node-7", 1000, 2000, 3, 4, 5), nil)))
	readReply(t, c)
	got := <-creds
	want := Cred{Flavor: AuthSys, Machine: "node-7", UID: 1000, GID: 2000, GIDs: []uint32{3, 4, 5}}
	if got.Flavor != want.Flavor || got.Machine != want.Machine || got.UID != want.UID || got.GID != want.GID || !slices.Equal(got.GIDs, want.GIDs) {
		t.Errorf("AUTH_SYS cred = %+v, want %+v", got, want)
	}
	writeAll(t, c, frame(callMsg(2, 2, testProg, testVers, 0, AuthNone, nil, nil)))
	readReply(t, c)
	if got := <-creds; got.Flavor != AuthNone || got.UID != 65534 || got.GID != 65534 || len(got.GIDs) != 0 {
		t.Errorf("AUTH_NONE cred = %+v", got)
	}

	// Through the client too.
	cl, err := Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Call(context.Background(), testProg, testVers, 0, want, nil); err != nil {
		t.Fatal(err)
	}
	if got := <-creds; got.Machine != want.Machine || got.UID != want.UID || !slices.Equal(got.GIDs, want.GIDs) {
		t.Errorf("client AUTH_SYS cred = %+v", got)
	}
}

// barrier blocks handlers until n are inside at once.
type barrier struct {
	n        int32
	deadline time.Time
	inside   atomic.Int32
	all      chan struct{}
	timeout  atomic.Bool
}

func newBarrier(n int) *barrier {
	return &barrier{n: int32(n), all: make(chan struct{}), deadline: time.Now().Add(failAfter)}
}

func (b *barrier) wait() {
	if b.inside.Add(1) == b.n {
		close(b.all)
	}
	select {
	case <-b.all:
	case <-time.After(time.Until(b.deadline)):
		b.timeout.Store(true)
	}
}

func TestConcurrentCallsOneConn(t *testing.T) {
	const n = 32
	b := newBarrier(n)
	// After the barrier, handler i answers only once the test has received
	// the reply of call i+1, so replies must come back in reverse order.
	var turns [n + 1]chan struct{}
	for i := range turns {
		turns[i] = make(chan struct{})
	}
	h := HandlerFunc(func(ctx context.Context, c *Call, w *xdr.Writer) AcceptStat {
		i := binary.BigEndian.Uint32(c.Args)
		b.wait()
		select {
		case <-turns[i+1]:
		case <-ctx.Done():
			return SystemErr
		}
		w.Uint32(i * 10)
		return Success
	})
	_, addr := startServer(t, Options{}, func(s *Server) { s.Register(testProg, testVers, h, nil) })
	c := dialRaw(t, addr)
	var out []byte
	for i := range n {
		out = append(out, frame(callMsg(uint32(1000+i), 2, testProg, testVers, 1, AuthNone, nil, words(uint32(i))))...)
	}
	writeAll(t, c, out) // all 32 calls at once on one connection
	close(turns[n])
	for i := n - 1; i >= 0; i-- {
		r := readReply(t, c)
		if b.timeout.Load() {
			t.Fatalf("barrier timed out: the %d calls were not all in the handler at once", n)
		}
		xid := binary.BigEndian.Uint32(r)
		if xid != uint32(1000+i) {
			t.Fatalf("reply for xid %d, want %d", xid, 1000+i)
		}
		if res := binary.BigEndian.Uint32(r[24:]); res != uint32(i*10) {
			t.Errorf("xid %d got result %d", xid, res)
		}
		close(turns[i])
	}
}

func TestClientPipelines(t *testing.T) {
	const n = 32
	b := newBarrier(n)
	h := HandlerFunc(func(_ context.Context, c *Call, w *xdr.Writer) AcceptStat {
		b.wait()
		w.Fixed(c.Args)
		return Success
	})
	_, addr := startServer(t, Options{}, func(s *Server) { s.Register(testProg, testVers, h, nil) })
	cl, err := Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := cl.Call(context.Background(), testProg, testVers, 1, Cred{}, words(uint32(i)))
			if err == nil && !bytes.Equal(res, words(uint32(i))) {
				err = errors.New("result of another call")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if b.timeout.Load() {
		t.Fatalf("barrier timed out: the %d client calls were not all outstanding at once", n)
	}
}

func TestDuplicateRequestCache(t *testing.T) {
	var count [3]atomic.Int32
	entered := make(chan struct{}, 10)
	release := make(chan struct{})
	h := HandlerFunc(func(ctx context.Context, c *Call, w *xdr.Writer) AcceptStat {
		n := count[c.Proc].Add(1)
		if c.Proc == 1 {
			entered <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
				return SystemErr
			}
		}
		w.Uint32(uint32(n))
		w.Fixed(c.Args)
		return Success
	})
	_, addr := startServer(t, Options{}, func(s *Server) {
		s.Register(testProg, testVers, h, func(proc uint32) bool { return proc != 1 })
	})
	c := dialRaw(t, addr)
	call := frame(callMsg(7, 2, testProg, testVers, 1, AuthNone, nil, words(42)))
	ping := func(xid uint32) {
		t.Helper()
		writeAll(t, c, frame(callMsg(xid, 2, testProg, testVers, 0, AuthNone, nil, nil)))
		if got := readReply(t, c); binary.BigEndian.Uint32(got) != xid {
			t.Fatalf("expected reply to xid %d, got xid %d", xid, binary.BigEndian.Uint32(got))
		}
	}

	writeAll(t, c, call)
	<-entered
	writeAll(t, c, call) // retransmission while the original runs
	ping(100)            // records are handled in order: the duplicate has been seen
	if n := count[1].Load(); n != 1 {
		t.Fatalf("in-progress duplicate executed: count %d", n)
	}
	close(release)
	first := readReply(t, c)
	if binary.BigEndian.Uint32(first) != 7 {
		t.Fatalf("reply for xid %d, want 7", binary.BigEndian.Uint32(first))
	}
	ping(101) // no second reply to the dropped duplicate is queued before this one

	writeAll(t, c, call) // retransmission after completion
	if again := readReply(t, c); !bytes.Equal(again, first) {
		t.Errorf("replayed reply\n got %x\nwant %x", again, first)
	}
	if n := count[1].Load(); n != 1 {
		t.Errorf("completed duplicate re-executed: count %d", n)
	}

	// Same xid, different arguments: a new call, not a retransmission.
	writeAll(t, c, frame(callMsg(7, 2, testProg, testVers, 1, AuthNone, nil, words(43))))
	<-entered
	if got := readReply(t, c); binary.BigEndian.Uint32(got[24:]) != 2 {
		t.Errorf("call with new args not executed: %x", got)
	}

	// An idempotent procedure is simply executed again.
	idem := frame(callMsg(8, 2, testProg, testVers, 2, AuthNone, nil, nil))
	writeAll(t, c, idem)
	readReply(t, c)
	writeAll(t, c, idem)
	readReply(t, c)
	if n := count[2].Load(); n != 2 {
		t.Errorf("idempotent procedure ran %d times, want 2", n)
	}
}

func TestHandlerPanic(t *testing.T) {
	h := HandlerFunc(func(_ context.Context, c *Call, w *xdr.Writer) AcceptStat {
		if c.Proc == 1 {
			w.Uint32(1)
			panic("boom")
		}
		return Success
	})
	_, addr := startServer(t, Options{}, func(s *Server) { s.Register(testProg, testVers, h, nil) })
	cl, err := Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	_, err = cl.Call(context.Background(), testProg, testVers, 1, Cred{}, nil)
	var ae *AcceptError
	if !errors.As(err, &ae) || ae.Stat != SystemErr {
		t.Fatalf("panicking handler: err = %v, want SYSTEM_ERR", err)
	}
	if _, err := cl.Call(context.Background(), testProg, testVers, 0, Cred{}, nil); err != nil {
		t.Fatalf("server unusable after a panic: %v", err)
	}
}

func TestMaxConns(t *testing.T) {
	// At the limit, a new connection closes the least recently active
	// idle one; with every connection busy, it is refused.
	release := make(chan struct{})
	h := HandlerFunc(func(ctx context.Context, c *Call, w *xdr.Writer) AcceptStat {
		if c.Proc == 1 {
			<-release
		}
		return Success
	})
	s, addr := startServer(t, Options{MaxConns: 2}, func(s *Server) { s.Register(testProg, testVers, h, nil) })
	idle := func() bool {
		for _, n := range connsBusy(s) {
			if n != 0 {
				return false
			}
		}
		return true
	}
	call := func(c net.Conn, proc uint32) {
		t.Helper()
		writeAll(t, c, frame(callMsg(proc, 2, testProg, testVers, proc, AuthNone, nil, nil)))
	}
	c1, c2 := dialRaw(t, addr), dialRaw(t, addr)
	call(c1, 0)
	readReply(t, c1)
	call(c2, 0)
	readReply(t, c2)
	waitFor(t, "the replies to be released", idle)
	c3 := dialRaw(t, addr)
	expectClosed(t, c1)
	call(c3, 0)
	readReply(t, c3)
	call(c2, 1)
	call(c3, 1)
	waitFor(t, "both calls to be read", func() bool {
		b := connsBusy(s)
		return len(b) == 2 && b[0] == 1 && b[1] == 1
	})
	c4 := dialRaw(t, addr)
	expectClosed(t, c4)
	close(release)
	readReply(t, c2)
	readReply(t, c3)
}

// TestMaxConnsPerAddr: one address at its limit only ever closes its own
// idle connections, never another address's.
func TestMaxConnsPerAddr(t *testing.T) {
	s, addr := startServer(t, Options{MaxConns: 10, MaxConnsPerAddr: 2}, func(s *Server) { s.Register(testProg, testVers, echo, nil) })
	dialFrom := func(ip string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(failAfter))
		writeAll(t, c, frame(callMsg(1, 2, testProg, testVers, 0, AuthNone, nil, nil)))
		readReply(t, c)
		waitFor(t, "the reply to be released", func() bool {
			for _, n := range connsBusy(s) {
				if n != 0 {
					return false
				}
			}
			return true
		})
		return c
	}
	other := dialFrom("127.0.0.3")
	var mine []net.Conn
	for range 5 {
		mine = append(mine, dialFrom("127.0.0.2"))
	}
	for _, c := range mine[:3] {
		expectClosed(t, c)
	}
	waitFor(t, "the evicted connections to go", func() bool { return s.numConns() == 3 })
	writeAll(t, other, frame(callMsg(2, 2, testProg, testVers, 0, AuthNone, nil, nil)))
	readReply(t, other)
}

func TestCloseWithOpenConns(t *testing.T) {
	inside := make(chan struct{})
	h := HandlerFunc(func(ctx context.Context, c *Call, w *xdr.Writer) AcceptStat {
		close(inside)
		<-ctx.Done() // only returns because Close cancels it
		return SystemErr
	})
	s, addr := startServer(t, Options{}, func(s *Server) { s.Register(testProg, testVers, h, nil) })
	idle := dialRaw(t, addr)
	busy := dialRaw(t, addr)
	writeAll(t, busy, frame(callMsg(1, 2, testProg, testVers, 0, AuthNone, nil, nil)))
	<-inside
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(failAfter):
		t.Fatal("Close did not return")
	}
	expectClosed(t, idle)
	expectClosed(t, busy)
	if n := s.numConns(); n != 0 {
		t.Errorf("%d connections left after Close", n)
	}
}

func TestIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	release := make(chan struct{})
	h := HandlerFunc(func(ctx context.Context, c *Call, w *xdr.Writer) AcceptStat {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return Success
	})
	s, addr := startServer(t, Options{IdleTimeout: idle}, func(s *Server) { s.Register(testProg, testVers, h, nil) })
	c := dialRaw(t, addr)
	expectClosed(t, c)

	// A connection waiting on a slow call is not idle.
	c = dialRaw(t, addr)
	writeAll(t, c, frame(callMsg(1, 2, testProg, testVers, 0, AuthNone, nil, nil)))
	time.Sleep(3 * idle)
	close(release)
	if got := readReply(t, c); binary.BigEndian.Uint32(got) != 1 {
		t.Fatalf("bad reply %x", got)
	}
	expectClosed(t, c)
	waitFor(t, "connections to close", func() bool { return s.numConns() == 0 })
}

func TestClientErrors(t *testing.T) {
	block := make(chan struct{})
	h := HandlerFunc(func(ctx context.Context, c *Call, w *xdr.Writer) AcceptStat {
		if c.Proc == 1 {
			select {
			case <-block:
			case <-ctx.Done():
			}
		}
		return Success
	})
	_, addr := startServer(t, Options{}, func(s *Server) { s.Register(testProg, 3, h, nil) })
	cl, err := Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var ae *AcceptError
	if _, err := cl.Call(ctx, testProg+1, 3, 0, Cred{}, nil); !errors.As(err, &ae) || ae.Stat != ProgUnavail {
		t.Errorf("unknown program: %v", err)
	}
	if _, err := cl.Call(ctx, testProg, 4, 0, Cred{}, nil); !errors.As(err, &ae) || ae.Stat != ProgMismatch || ae.Low != 3 || ae.High != 3 {
		t.Errorf("unknown version: %v", err)
	}
	var re *RejectError
	bad := Cred{Flavor: AuthSys, Machine: "x", GIDs: make([]uint32, 17)}
	if _, err := cl.Call(ctx, testProg, 3, 0, bad, nil); err == nil {
		t.Errorf("client sent an AUTH_SYS cred with 17 groups")
	} else if errors.As(err, &re) {
		t.Errorf("oversized cred was sent: %v", err)
	}

	// Cancelling a call removes it; the late reply is discarded.
	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := cl.Call(cctx, testProg, 3, 1, Cred{}, nil)
		errc <- err
	}()
	waitFor(t, "the call to be pending", func() bool {
		cl.mu.Lock()
		defer cl.mu.Unlock()
		return len(cl.pending) == 1
	})
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled call: %v", err)
	}
	cl.mu.Lock()
	n := len(cl.pending)
	cl.mu.Unlock()
	if n != 0 {
		t.Errorf("%d calls still pending after cancel", n)
	}
	close(block)
	if _, err := cl.Call(ctx, testProg, 3, 0, Cred{}, nil); err != nil {
		t.Errorf("call after cancel: %v", err)
	}

	cl.Close()
	if _, err := cl.Call(ctx, testProg, 3, 0, Cred{}, nil); !errors.Is(err, ErrClientClosed) {
		t.Errorf("call on closed client: %v", err)
	}
}

func TestClientRejectError(t *testing.T) {
	// A server that denies everything with RPC_MISMATCH and then AUTH_TOOWEAK.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		rr := recordReader{r: c, max: 1 << 16}
		for i := 0; ; i++ {
			rec, err := rr.next()
			if err != nil {
				return
			}
			xid := binary.BigEndian.Uint32(rec)
			reply := words(xid, MsgReply, MsgDenied, RPCMismatch, 2, 2)
			if i > 0 {
				reply = words(xid, MsgReply, MsgDenied, AuthError, AuthTooWeak)
			}
			c.Write(frame(reply))
		}
	}()
	cl, err := Dial(context.Background(), l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var re *RejectError
	if _, err := cl.Call(context.Background(), 1, 1, 0, Cred{}, nil); !errors.As(err, &re) || re.Stat != RPCMismatch || re.Low != 2 || re.High != 2 {
		t.Errorf("got %v, want RPC_MISMATCH 2-2", err)
	}
	if _, err := cl.Call(context.Background(), 1, 1, 0, Cred{}, nil); !errors.As(err, &re) || re.Stat != AuthError || re.AuthStat != AuthTooWeak {
		t.Errorf("got %v, want AUTH_TOOWEAK", err)
	}
}

func TestBigCallAndReply(t *testing.T) {
	// A 1 MiB WRITE-sized call and a 1 MiB READ-sized reply written in place.
	h := HandlerFunc(func(_ context.Context, c *Call, w *xdr.Writer) AcceptStat {
		var r xdr.Reader
		r.Reset(c.Args)
		data := r.Opaque(1 << 20)
		if r.Err() != nil {
			return GarbageArgs
		}
		w.Uint32(uint32(len(data)))
		buf := w.Reserve(len(data))
		for i := range buf {
			buf[i] = data[len(data)-1-i]
		}
		return Success
	})
	_, addr := startServer(t, Options{}, func(s *Server) { s.Register(testProg, testVers, h, nil) })
	cl, err := Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	err = cl.CallInto(context.Background(), testProg, testVers, 1, Cred{},
		func(w *xdr.Writer) { w.Opaque(data) },
		func(r *xdr.Reader) error {
			n := r.Uint32()
			got := r.Fixed(int(n))
			if r.Err() != nil || n != 1<<20 {
				return errors.New("short result")
			}
			for i := range got {
				if got[i] != data[len(data)-1-i] {
					return errors.New("result data differs")
				}
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
}

func TestManyCallsManyGoroutines(t *testing.T) {
	// Echo calls of mixed sizes from many goroutines over two clients; every
	// result must be the caller's own arguments.
	_, addr := startServer(t, Options{MaxInFlightPerConn: 8}, func(s *Server) {
		s.Register(testProg, testVers, echo, func(proc uint32) bool { return proc != 2 })
	})
	var clients [2]*Client
	for i := range clients {
		cl, err := Dial(context.Background(), addr)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		clients[i] = cl
	}
	const goroutines, calls = 16, 150
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := clients[g%len(clients)]
			for i := range calls {
				size := 4 * ((g*131 + i*17) % 3000)
				args := bytes.Repeat(words(uint32(g<<16|i)), size/4+1)
				res, err := cl.Call(context.Background(), testProg, testVers, uint32(1+i%2), Cred{}, args)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(res, args) {
					errs <- errors.New("got the result of another call")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestInFlightBounds(t *testing.T) {
	for _, tc := range []struct {
		name  string
		o     Options
		conns int
		bound int32
	}{
		{"per connection", Options{MaxInFlightPerConn: 3}, 1, 3},
		{"global", Options{MaxInFlight: 2}, 3, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var inside, peak atomic.Int32
			h := HandlerFunc(func(_ context.Context, c *Call, w *xdr.Writer) AcceptStat {
				n := inside.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				time.Sleep(time.Millisecond) // give other calls a chance to pile in
				inside.Add(-1)
				return Success
			})
			_, addr := startServer(t, tc.o, func(s *Server) { s.Register(testProg, testVers, h, nil) })
			const calls = 20
			var out []byte
			for i := range calls {
				out = append(out, frame(callMsg(uint32(i), 2, testProg, testVers, 1, AuthNone, nil, nil))...)
			}
			var wg sync.WaitGroup
			for range tc.conns {
				c := dialRaw(t, addr)
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := c.Write(out); err != nil {
						t.Error(err)
						return
					}
					for range calls {
						if _, err := readReplyErr(c); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			if p := peak.Load(); p > tc.bound {
				t.Errorf("%d calls in handlers at once, bound %d", p, tc.bound)
			}
		})
	}
}

func TestIdleConnHoldsNoGlobalSlot(t *testing.T) {
	// With one server-wide slot, a connection waiting for its next call
	// must not keep it from another connection.
	s, addr := startServer(t, Options{MaxInFlight: 1}, func(s *Server) { s.Register(testProg, testVers, echo, nil) })
	a, b := dialRaw(t, addr), dialRaw(t, addr)
	for i, c := range []net.Conn{a, b, a, b} {
		writeAll(t, c, frame(callMsg(uint32(i), 2, testProg, testVers, 0, AuthNone, nil, nil)))
		if got := readReply(t, c); binary.BigEndian.Uint32(got) != uint32(i) {
			t.Fatalf("call %d: bad reply %x", i, got)
		}
		waitFor(t, "the server-wide slot to be free", func() bool { return len(s.global) == 0 })
	}
}

func TestClientConnectionLost(t *testing.T) {
	inside := make(chan struct{})
	h := HandlerFunc(func(ctx context.Context, c *Call, w *xdr.Writer) AcceptStat {
		close(inside)
		<-ctx.Done()
		return SystemErr
	})
	s, addr := startServer(t, Options{}, func(s *Server) { s.Register(testProg, testVers, h, nil) })
	cl, err := Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	errc := make(chan error, 1)
	go func() {
		_, err := cl.Call(context.Background(), testProg, testVers, 0, Cred{}, nil)
		errc <- err
	}()
	<-inside
	s.Close()
	select {
	case err := <-errc:
		var ae *AcceptError
		if err == nil || errors.As(err, &ae) && ae.Stat != SystemErr {
			t.Errorf("call on a lost connection: %v", err)
		}
	case <-time.After(failAfter):
		t.Fatal("call hangs after the server went away")
	}
	if _, err := cl.Call(context.Background(), testProg, testVers, 0, Cred{}, nil); err == nil {
		t.Error("call on a dead client succeeded")
	}
}

// inliner is a handler whose proc 1 calls are quick (rpc.Inliner).
type inliner struct{ HandlerFunc }

func (inliner) Inline(proc uint32, _ []byte) bool { return proc == 1 }

// A call its handler does not call quick does not hold up the calls after
// it, even when it is alone on the connection (and so runs on the reader
// goroutine): they are read and served meanwhile. Here the slow call
// (proc 2) finishes only once a quick call sent after it has run.
func TestSlowCallNotInlined(t *testing.T) {
	entered, quickRan := make(chan struct{}), make(chan struct{})
	h := inliner{func(ctx context.Context, c *Call, w *xdr.Writer) AcceptStat {
		if c.Proc == 2 {
			close(entered)
			select {
			case <-quickRan:
			case <-ctx.Done():
				return SystemErr
			}
		} else {
			close(quickRan)
		}
		w.Uint32(c.Proc)
		return Success
	}}
	_, addr := startServer(t, Options{}, func(s *Server) { s.Register(testProg, testVers, h, nil) })
	c := dialRaw(t, addr)
	writeAll(t, c, frame(callMsg(7, 2, testProg, testVers, 2, AuthNone, nil, nil)))
	<-entered
	writeAll(t, c, frame(callMsg(8, 2, testProg, testVers, 1, AuthNone, nil, nil)))
	// Either reply may come first: the slow call's is queued as soon as the
	// quick one has let it go.
	want := map[uint32]uint32{7: 2, 8: 1} // xid: proc
	for range 2 {
		r := readReply(t, c)
		xid := binary.BigEndian.Uint32(r)
		proc, ok := want[xid]
		if !ok {
			t.Fatalf("reply for xid %d, want one of %v", xid, want)
		}
		if res := binary.BigEndian.Uint32(r[24:]); res != proc {
			t.Errorf("xid %d: result %d, want %d", xid, res, proc)
		}
		delete(want, xid)
	}
}

// A call that is not quick, alone on its connection, runs on the reader
// goroutine; when it waits, another goroutine takes over reading, so the
// calls after it are still served. Here each slow call (proc 2) finishes
// only once the call sent after it (proc 1, not quick either) has run,
// many times over on one connection, so that reading is handed over again
// and again; no goroutine is left behind.
func TestSlowLoneCallHandsOverReading(t *testing.T) {
	type turn struct{ entered, ran chan struct{} }
	var cur atomic.Pointer[turn]
	h := HandlerFunc(func(ctx context.Context, c *Call, w *xdr.Writer) AcceptStat {
		tn := cur.Load()
		if c.Proc == 2 {
			close(tn.entered)
			select {
			case <-tn.ran:
			case <-ctx.Done():
				return SystemErr
			}
		} else {
			close(tn.ran)
		}
		w.Uint32(c.Proc)
		return Success
	})
	s, addr := startServer(t, Options{}, func(s *Server) { s.Register(testProg, testVers, h, nil) })
	before := runtime.NumGoroutine()
	c := dialRaw(t, addr)
	for i := range uint32(50) {
		tn := &turn{make(chan struct{}), make(chan struct{})}
		cur.Store(tn)
		writeAll(t, c, frame(callMsg(2*i, 2, testProg, testVers, 2, AuthNone, nil, nil)))
		<-tn.entered // alone: run by the reader
		writeAll(t, c, frame(callMsg(2*i+1, 2, testProg, testVers, 1, AuthNone, nil, nil)))
		// Either reply may come first: the slow call's is queued as soon
		// as the other call has let it go.
		want := map[uint32]uint32{2 * i: 2, 2*i + 1: 1} // xid: proc
		for range 2 {
			r := readReply(t, c)
			xid := binary.BigEndian.Uint32(r)
			proc, ok := want[xid]
			if !ok {
				t.Fatalf("reply for xid %d, want one of %v", xid, want)
			}
			if res := binary.BigEndian.Uint32(r[24:]); res != proc {
				t.Errorf("xid %d: result %d, want %d", xid, res, proc)
			}
			delete(want, xid)
		}
	}
	c.Close()
	waitFor(t, "the connection to close", func() bool { return s.numConns() == 0 })
	// Workers kept for the next calls are the server's, not the connection's.
	waitFor(t, "the connection's goroutines to end", func() bool { return runtime.NumGoroutine() <= before+int(s.nidle.Load()) })
}

// Calls run on workers that stay for later calls, at most maxIdleWorkers
// of them idle after a burst; closing the server ends them all.
func TestWorkersBoundedAndEndWithServer(t *testing.T) {
	release := make(chan struct{})
	var entered atomic.Int32
	h := HandlerFunc(func(ctx context.Context, c *Call, w *xdr.Writer) AcceptStat {
		entered.Add(1)
		<-release
		w.Uint32(c.Proc)
		return Success
	})
	before := runtime.NumGoroutine()
	s, addr := startServer(t, Options{MaxInFlightPerConn: 64}, func(s *Server) { s.Register(testProg, testVers, h, nil) })
	const conns, perConn = 4, 60
	cs := make([]net.Conn, conns)
	for i := range cs {
		cs[i] = dialRaw(t, addr)
		var b []byte
		for j := range uint32(perConn) {
			b = append(b, frame(callMsg(j, 2, testProg, testVers, 1, AuthNone, nil, nil))...)
		}
		writeAll(t, cs[i], b)
	}
	waitFor(t, "every call to be in its handler", func() bool { return entered.Load() == conns*perConn })
	close(release)
	for _, c := range cs {
		for range perConn {
			readReply(t, c)
		}
	}
	waitFor(t, "the workers to go idle", func() bool { return s.nidle.Load() == maxIdleWorkers })
	// Reused: another burst starts no goroutine beyond the idle workers.
	n := runtime.NumGoroutine()
	for j := range uint32(perConn) {
		writeAll(t, cs[0], frame(callMsg(100+j, 2, testProg, testVers, 1, AuthNone, nil, nil)))
	}
	for range perConn {
		readReply(t, cs[0])
	}
	if g := runtime.NumGoroutine(); g > n {
		t.Errorf("%d goroutines after a burst idle workers could serve, %d before", g, n)
	}
	for _, c := range cs {
		c.Close()
	}
	s.Close()
	waitFor(t, "every goroutine to end", func() bool { return runtime.NumGoroutine() <= before })
}
