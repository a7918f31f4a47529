package rpc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
)

// Options configure a Server. Zero values mean the defaults below.
type Options struct {
	// MaxConns bounds open connections (default 4096, or half the
	// process's descriptor limit if lower). A connection beyond it closes
	// the least recently active one with no call in flight, whose client
	// reconnects when it needs to; with none such, it is refused.
	MaxConns int
	// MaxConnsPerAddr bounds the connections from one client IP address
	// (default 64) in the same way, so that one host cannot take them all.
	// A Linux client uses one connection per server for all its mounts.
	MaxConnsPerAddr int
	// MaxInFlightPerConn bounds the calls of a connection being served or
	// waiting for their replies to be written (default 64).
	MaxInFlightPerConn int
	// MaxInFlight bounds the calls in handlers in the whole server
	// (default 1024). A call holds its slot only while its handler runs.
	MaxInFlight   int
	MaxRecordSize int // default DefaultMaxRecordSize; bigger records close the connection
	// MaxReplyBacklog bounds the memory a connection's replies hold while
	// queued, unwritten (default 1 MiB): beyond it none of its calls are
	// read until its client reads, so a client that does not read its
	// replies is pushed back on, alone. Attached file data does not count:
	// it is read only as it is written.
	MaxReplyBacklog int
	IdleTimeout     time.Duration // default 5m; idle connections (nothing in flight, no bytes) are closed
	// RecordTimeout is how long a record may take to arrive once its
	// first byte has (default 30s); a connection that trickles one in is
	// closed.
	RecordTimeout time.Duration
	// WriteTimeout closes a connection that has taken no reply bytes for
	// this long while some wait (default 30s).
	WriteTimeout time.Duration
	Log          logr.Logger

	// MaxInFlightBytes bounds the request bytes held by calls in flight
	// and by records still arriving, across the server (default 64 MiB,
	// never below MaxRecordSize). A record's buffer grows as its bytes
	// arrive, charged as it grows; past its first 64 KiB it waits for room.
	MaxInFlightBytes int

	// ConnContext, if set, derives the context of every call on a new
	// connection from ctx (as net/http's Server.ConnContext does): values
	// that belong to the connection, such as the client's address, are
	// attached once instead of per call.
	ConnContext func(ctx context.Context, c net.Conn) context.Context
}

func (o *Options) setDefaults() {
	if o.MaxConns <= 0 {
		o.MaxConns = 4096
		var lim unix.Rlimit
		if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil && lim.Cur < 2*4096 {
			o.MaxConns = max(int(lim.Cur/2), 16)
		}
	}
	if o.MaxConnsPerAddr <= 0 {
		o.MaxConnsPerAddr = 64
	}
	if o.MaxInFlightPerConn <= 0 {
		o.MaxInFlightPerConn = 64
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 1024
	}
	if o.MaxRecordSize <= 0 {
		o.MaxRecordSize = DefaultMaxRecordSize
	}
	if o.MaxReplyBacklog <= 0 {
		o.MaxReplyBacklog = 1 << 20
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 5 * time.Minute
	}
	if o.RecordTimeout <= 0 {
		o.RecordTimeout = 30 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.MaxInFlightBytes <= 0 {
		o.MaxInFlightBytes = 64 << 20
	}
	o.MaxInFlightBytes = max(o.MaxInFlightBytes, bufCap(o.MaxRecordSize)) // a record always fits
	if o.Log.GetSink() == nil {
		o.Log = logr.Discard()
	}
}

// Server is an ONC RPC server over TCP. Calls on one connection are served
// concurrently; their replies are written as they complete.
type Server struct {
	o     Options
	log   logr.Logger
	progs atomic.Pointer[map[uint32]*program]
	regMu sync.Mutex
	drc   *drc

	global chan struct{} // MaxInFlight slots
	bytes  budget

	work  chan job     // to an idle worker
	nidle atomic.Int32 // workers waiting on work

	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	addrs     map[netip.Addr]int // connections per client address
	wg        sync.WaitGroup     // connection goroutines
}

type program struct {
	low, high uint32
	vers      map[uint32]*version
}

type version struct {
	h      Handler
	idem   func(proc uint32) bool
	inline Inliner // h's, or nil
}

// Inliner is implemented by a Handler whose calls may be known to be quick:
// Inline reports whether the call of proc with args is (it never waits for
// a disk flush or for another call).
//
// A call that finds its connection otherwise idle (no other call in flight,
// no bytes after it) runs on the connection's reader goroutine, which saves
// a hand-off to a worker and a read that finds nothing per call for a
// client that waits for each reply. A quick call just runs;
// a call arriving meanwhile is read when it returns. Any other call runs
// watched: if it has not returned within inlineGrace (twice that at
// most), another goroutine takes over reading the connection, so a call
// that waits (a frozen volume, an fsync, a lock) holds up the calls behind
// it for no longer.
type Inliner interface {
	Inline(proc uint32, args []byte) bool
}

// NewServer returns a server with no programs registered.
func NewServer(o Options) *Server {
	o.setDefaults()
	s := &Server{
		o:         o,
		log:       o.Log,
		drc:       newDRC(),
		global:    make(chan struct{}, o.MaxInFlight),
		work:      make(chan job),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*conn]struct{}),
		addrs:     make(map[netip.Addr]int),
	}
	s.bytes.avail = o.MaxInFlightBytes
	s.ctx, s.cancel = context.WithCancel(context.Background())
	m := make(map[uint32]*program)
	s.progs.Store(&m)
	return s
}

// Register serves program prog, version vers with h. Procedures for which
// idempotent returns false (all of them if it is nil) go through the
// duplicate request cache, so a retransmission is answered from the cache
// instead of being executed again. Registering the same pair again replaces
// it. Register may be called while serving.
func (s *Server) Register(prog, vers uint32, h Handler, idempotent func(proc uint32) bool) {
	s.regMu.Lock()
	defer s.regMu.Unlock()
	old := *s.progs.Load()
	m := make(map[uint32]*program, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	p := &program{low: vers, high: vers, vers: map[uint32]*version{}}
	if o := old[prog]; o != nil {
		for k, v := range o.vers {
			p.vers[k] = v
		}
		p.low, p.high = min(o.low, vers), max(o.high, vers)
	}
	v := &version{h: h, idem: idempotent}
	v.inline, _ = h.(Inliner)
	p.vers[vers] = v
	m[prog] = p
	s.progs.Store(&m)
}

// ErrServerClosed is returned by Serve when called after Close.
var ErrServerClosed = errors.New("rpc: server closed")

// Serve accepts connections on l until Close, then returns nil. It closes l
// on return. Serve may run on several listeners at once.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()

	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.isClosed() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("rpc: accept: %w", err)
			}
			// Most likely out of file descriptors: wait, do not spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Error(err, "accept failed; retrying", "in", backoff)
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
				return nil
			}
			continue
		}
		backoff = 0
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return nil
		}
		c := s.newConn(nc)
		if !s.admit(c) {
			s.mu.Unlock()
			s.log.V(1).Info("too many connections, none idle; closing new one", "remote", nc.RemoteAddr(), "max", s.o.MaxConns, "maxPerAddr", s.o.MaxConnsPerAddr)
			c.cancel()
			nc.Close()
			continue
		}
		s.conns[c] = struct{}{}
		if c.ip.IsValid() {
			s.addrs[c.ip]++
		}
		s.wg.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

// admit makes room for c within the connection limits, closing the least
// recently active connection without calls in flight (from c's address if
// that address is at its limit) if need be. It reports false if there is
// no room to be made. Called with s.mu held.
func (s *Server) admit(c *conn) bool {
	if c.ip.IsValid() && s.addrs[c.ip] >= s.o.MaxConnsPerAddr {
		return s.evictIdle(c.ip)
	}
	if len(s.conns) >= s.o.MaxConns {
		return s.evictIdle(netip.Addr{})
	}
	return true
}

// evictIdle closes the least recently active connection (from ip, if
// valid) that has no call in flight. Called with s.mu held.
func (s *Server) evictIdle(ip netip.Addr) bool {
	var victim *conn
	for c := range s.conns {
		if c.busy.Load() != 0 || ip.IsValid() && c.ip != ip {
			continue
		}
		if victim == nil || c.lastActive.Load() < victim.lastActive.Load() {
			victim = c
		}
	}
	if victim == nil {
		return false
	}
	victim.log.V(1).Info("closing the least recently active idle connection to admit a new one", "lastActive", time.Unix(0, victim.lastActive.Load()))
	s.forget(victim)
	victim.abort()
	return true
}

// forget stops counting c against the limits. Called with s.mu held.
func (s *Server) forget(c *conn) {
	if _, ok := s.conns[c]; !ok {
		return
	}
	delete(s.conns, c)
	if c.ip.IsValid() {
		if s.addrs[c.ip]--; s.addrs[c.ip] <= 0 {
			delete(s.addrs, c.ip)
		}
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close stops all listeners, closes all connections, cancels the contexts
// of calls in flight and waits for their handlers to return.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	ls := make([]net.Listener, 0, len(s.listeners))
	for l := range s.listeners {
		ls = append(ls, l)
	}
	cs := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	s.mu.Unlock()

	s.cancel()
	for _, l := range ls {
		l.Close()
	}
	for _, c := range cs {
		c.abort()
	}
	s.wg.Wait()
	return nil
}

// conn is one client connection: a reader goroutine parses records and
// hands each call to a worker (see dispatch), or runs it itself when it is
// alone (see Inliner); a writer goroutine sends replies in batches, or the
// goroutine that finished the only call in flight writes its reply itself.
type conn struct {
	s      *Server
	nc     net.Conn
	remote net.Addr
	addr   netip.AddrPort // DRC key part
	ip     netip.Addr     // for the per-address limit; zero if not IP
	log    logr.Logger

	lastActive atomic.Int64 // UnixNano of the last call's first byte, or of the connection

	ctx    context.Context // cancelled when the connection or server closes
	cancel context.CancelFunc

	rr recordReader
	br *bufio.Reader // rr's buffer
	cc credCache     // reader goroutine only

	// While the reader goroutine runs a call itself (see runWatched),
	// watched is that run's number, else 0: whoever swaps it to 0 first,
	// the reader when the call returns or the watchdog, reads next.
	watched  atomic.Uint64
	runs     uint64        // reader goroutine only: the last run's number
	watchdog *time.Timer   // fires takeOver
	armed    atomic.Bool   // the watchdog is pending
	seen     atomic.Uint64 // the run in progress when the watchdog last fired
	slots    chan struct{} // MaxInFlightPerConn
	busy     atomic.Int32  // calls dispatched whose replies are not yet written
	handlers sync.WaitGroup

	// Reader goroutine only.
	lastSet  time.Time // when the idle read deadline was last pushed
	recDue   time.Time // when the record being read must be whole; zero between records
	recArmed bool      // the read deadline is recDue
	charged  int       // budget bytes charged for the record being read

	unsent  atomic.Int64 // reply bytes queued and not yet written, or reserved
	drained signal       // unsent went down

	qmu   sync.Mutex
	queue []*task
	wake  chan struct{}
	wstop chan struct{} // closed when no more replies will be queued
	wdone chan struct{}

	// Held by whoever writes replies: the writer goroutine, or a handler
	// writing its own reply (see send). It guards the rest.
	wmu sync.Mutex
	// The writev being built and the file data buffers it holds.
	out    net.Buffers
	iov    net.Buffers // what of out is still to write (a field: WriteTo would move a local to the heap)
	held   [][]byte
	outLen int
	wdead  bool      // a write failed: replies are dropped
	wSet   time.Time // when the write deadline was last pushed
	spare  []*task
}

func (s *Server) newConn(nc net.Conn) *conn {
	c := &conn{
		s:      s,
		nc:     nc,
		remote: nc.RemoteAddr(),
		log:    s.log.WithValues("remote", nc.RemoteAddr()),
		slots:  make(chan struct{}, s.o.MaxInFlightPerConn),
		wake:   make(chan struct{}, 1),
		wstop:  make(chan struct{}),
		wdone:  make(chan struct{}),
	}
	if ta, ok := c.remote.(*net.TCPAddr); ok {
		c.addr = ta.AddrPort()
		c.ip = c.addr.Addr().Unmap()
	}
	c.lastActive.Store(time.Now().UnixNano())
	base := s.ctx
	if s.o.ConnContext != nil {
		base = s.o.ConnContext(base, nc)
	}
	c.ctx, c.cancel = context.WithCancel(base)
	// Made here, before any reader can fire it, so every reader sees it.
	c.watchdog = time.AfterFunc(time.Hour, c.takeOver)
	c.watchdog.Stop()
	c.br = bufio.NewReaderSize(idleReader{c}, 64<<10)
	c.rr = recordReader{r: c.br, max: s.o.MaxRecordSize, acct: c}
	return c
}

// abort closes the connection at once.
func (c *conn) abort() {
	c.cancel()
	c.nc.Close()
}

func (c *conn) serve() {
	c.log.V(1).Info("connection opened")
	go c.writeLoop()
	c.read()
}

// read reads and dispatches calls until the connection ends, then closes
// it once its calls are done; unless it hands reading over to another
// goroutine, which does all that instead.
func (c *conn) read() {
	err := c.readLoop()
	if err == errHandedOver {
		return
	}
	defer c.s.wg.Done()
	c.watchdog.Stop()
	switch {
	case err == io.EOF:
		// Orderly end: let calls in flight finish and their replies go out.
	case c.ctx.Err() != nil:
		// Server closing or writer failed.
	default:
		c.log.V(1).Info("closing connection", "reason", err.Error())
		c.abort()
	}
	c.handlers.Wait()
	close(c.wstop)
	<-c.wdone
	c.abort()
	c.s.mu.Lock()
	c.s.forget(c)
	c.s.mu.Unlock()
	c.log.V(1).Info("connection closed")
}

// idleReader reads from the connection with the idle timeout as deadline,
// but only gives up when no calls are in flight: a client waiting for slow
// replies is not idle. Inside a record the deadline is the record's.
type idleReader struct{ c *conn }

var errRecordTimeout = errors.New("rpc: record not received in time")

func (r idleReader) Read(p []byte) (int, error) {
	c := r.c
	idle := c.s.o.IdleTimeout
	for {
		if !c.recDue.IsZero() {
			if !c.recArmed {
				c.nc.SetReadDeadline(c.recDue)
				c.recArmed, c.lastSet = true, time.Time{}
			}
		} else if now := time.Now(); now.Sub(c.lastSet) > idle/16 {
			// Pushing the deadline costs a timer update; do it at most
			// every idle/16, so the effective timeout is between 15/16
			// and 1 of idle.
			c.nc.SetReadDeadline(now.Add(idle))
			c.lastSet = now
		}
		n, err := c.nc.Read(p)
		if n == 0 && err != nil && c.ctx.Err() == nil && errors.Is(err, os.ErrDeadlineExceeded) {
			if !c.recDue.IsZero() {
				return 0, fmt.Errorf("%w: %v after its first byte", errRecordTimeout, c.s.o.RecordTimeout)
			}
			if c.busy.Load() > 0 {
				c.lastSet = time.Time{}
				continue
			}
		}
		return n, err
	}
}

// begin implements recordAccount: a record has started; it must be whole
// within RecordTimeout.
func (c *conn) begin() {
	now := time.Now()
	c.recDue, c.recArmed = now.Add(c.s.o.RecordTimeout), false
	c.lastActive.Store(now.UnixNano())
}

// grow implements recordAccount: the record's buffer grows by n bytes,
// charged to the server's budget. A record's first chunk is charged without
// waiting, so that small calls always get through; the rest waits for room
// until the record's deadline.
func (c *conn) grow(n int, first bool) error {
	b := &c.s.bytes
	if first {
		b.take(n)
	} else if !b.tryAcquire(n) {
		ctx, cancel := context.WithDeadline(c.ctx, c.recDue)
		ok := b.acquire(ctx, n)
		cancel()
		if !ok {
			return fmt.Errorf("%w: no room in the in-flight budget", errRecordTimeout)
		}
	}
	c.charged += n
	return nil
}

// task is one call on its way through the server, pooled.
type task struct {
	call    Call
	rec     []byte // request record (pooled)
	nbytes  int    // request bytes charged to the server's budget
	running bool   // holds a server-wide slot, rec and nbytes
	unsent  int64  // reply bytes counted in the connection's backlog
	w       xdr.Writer
	drc     bool
	key     drcKey
}

var taskPool = sync.Pool{New: func() any {
	t := new(task)
	t.w.SetGrow(growReply)
	return t
}}

func (c *conn) readLoop() error {
	s := c.s
	for {
		// Take the connection's slot before reading, and read nothing
		// while its client leaves too many reply bytes unread: at either
		// bound we stop reading and TCP pushes back on the client. The
		// server-wide slot is taken only once a record is in, so that
		// connections waiting for their next call hold none.
		if err := acquire(c.ctx, c.slots); err != nil {
			return err
		}
		if err := c.waitBacklog(); err != nil {
			<-c.slots
			return err
		}
		rec, err := c.rr.next()
		c.recDue, c.recArmed = time.Time{}, false
		charged := c.charged
		c.charged = 0
		if err == nil {
			if err = acquire(c.ctx, s.global); err != nil {
				putBuf(rec)
			}
		}
		if err != nil {
			s.bytes.release(charged)
			<-c.slots
			return err
		}
		t := taskPool.Get().(*task)
		t.rec, t.nbytes, t.running = rec, charged, true
		c.busy.Add(1)
		if v := c.prepare(t); v != nil {
			c.handlers.Add(1)
			switch {
			case c.busy.Load() != 1 || c.br.Buffered() != 0:
				s.dispatch(job{c, t, v.h})
			case v.inline != nil && v.inline.Inline(t.call.Proc, t.call.Args):
				// The only call in flight, none behind it, and quick.
				c.execute(t, v.h)
			case len(t.rec) > inlineMaxRecord:
				// A big record was read past the buffer, so the bytes after
				// it are not known, and a client sending big calls (a
				// stream of WRITEs) usually has more on the way.
				s.dispatch(job{c, t, v.h})
			default:
				if !c.runWatched(t, v.h) {
					return errHandedOver
				}
			}
		}
	}
}

// job is a call for a worker to run.
type job struct {
	c *conn
	t *task
	h Handler
}

// maxIdleWorkers bounds the workers kept waiting for calls.
const maxIdleWorkers = 128

// dispatch runs j on a worker: an idle one if there is one, else a new one.
// Workers outlive their calls because a call started on a new goroutine
// first grows its small stack to what serving takes, copying it each time;
// that was a fifth of the server's CPU in a GETATTR storm.
func (s *Server) dispatch(j job) {
	select {
	case s.work <- j:
	default:
		go s.worker(j)
	}
}

// worker runs j, then the calls dispatched to it while it is idle, until
// the server closes or enough other workers are idle.
func (s *Server) worker(j job) {
	for {
		j.c.execute(j.t, j.h)
		j = job{} // an idle worker keeps no connection alive
		if s.nidle.Add(1) > maxIdleWorkers {
			s.nidle.Add(-1)
			return
		}
		select {
		case j = <-s.work:
			s.nidle.Add(-1)
		case <-s.ctx.Done():
			s.nidle.Add(-1)
			return
		}
	}
}

// inlineGrace is how long a call run on the reader goroutine may hold up
// the reading of the calls after it.
const inlineGrace = time.Millisecond

// inlineMaxRecord bounds the records of calls that are not quick run on
// the reader goroutine: smaller ones come through its buffer, whole.
const inlineMaxRecord = 32 << 10

var errHandedOver = errors.New("rpc: reading handed over")

// runWatched runs t on the reader goroutine, with the watchdog armed to
// take over reading if t takes longer than inlineGrace (at most twice
// that). It reports whether the caller is still the reader.
//
// The watchdog stays armed across calls instead of being reset and stopped
// around each: resetting a timer to the earliest deadline wakes another
// thread to wait for it, which cost more than the calls themselves on a
// slow CPU.
func (c *conn) runWatched(t *task, h Handler) bool {
	c.runs++
	run := c.runs
	c.watched.Store(run)
	// After the store: a watchdog that disarms itself and then finds no run
	// leaves the arming to us (see takeOver).
	if !c.armed.Load() && c.armed.CompareAndSwap(false, true) {
		c.watchdog.Reset(inlineGrace)
	}
	c.execute(t, h)
	return c.watched.CompareAndSwap(run, 0)
}

// takeOver is the watchdog, firing every inlineGrace while the reader
// goroutine runs calls itself. A run it finds in progress a second time in
// a row is slow: this goroutine becomes the reader. It stays disarmed when
// no run is in progress, until the next run arms it.
func (c *conn) takeOver() {
	c.armed.Store(false)
	run := c.watched.Load()
	if run == 0 {
		return
	}
	if c.seen.Swap(run) != run {
		if c.armed.CompareAndSwap(false, true) {
			c.watchdog.Reset(inlineGrace)
		}
		return
	}
	if c.watched.CompareAndSwap(run, 0) {
		c.log.V(2).Info("a call run by the reader is slow; another goroutine reads")
		c.read()
	}
}

// waitBacklog waits until the connection's unwritten replies are below
// MaxReplyBacklog.
func (c *conn) waitBacklog() error {
	limit := int64(c.s.o.MaxReplyBacklog)
	for c.unsent.Load() >= limit {
		w := c.drained.wait() // then check again: a broadcast may have come between
		if c.unsent.Load() < limit {
			return nil
		}
		select {
		case <-w:
		case <-c.ctx.Done():
			return c.ctx.Err()
		}
	}
	return nil
}

// ReserveReply is for a handler about to write a reply of up to n bytes (a
// directory listing, say), before it takes any lock: it waits until the
// connection's backlog of unwritten replies has room for them, and counts
// them in it until the reply is written. So a client that does not read
// its replies cannot make the server build more than MaxReplyBacklog of
// them. A reservation on a connection with no backlog never waits. The
// call gives up its server-wide slot while it waits. The error is ctx's.
func (c *Call) ReserveReply(ctx context.Context, n int) error {
	cn := c.conn
	if cn == nil || n <= 0 {
		return nil
	}
	limit := int64(cn.s.o.MaxReplyBacklog)
	n = bufCap(n + replyHdrLen) // what the reply's buffer will hold
	var w <-chan struct{}       // taken only when there is no room: it costs an allocation
	for {
		cur := cn.unsent.Load()
		if cur == 0 || cur+int64(n) <= limit {
			if !cn.unsent.CompareAndSwap(cur, cur+int64(n)) {
				continue
			}
			c.reserved += int64(n)
			if c.slotless {
				if err := acquire(ctx, cn.s.global); err != nil {
					return err
				}
				c.slotless = false
			}
			return nil
		}
		if w == nil {
			w = cn.drained.wait() // then check again: a broadcast may have come between
			continue
		}
		if !c.slotless {
			<-cn.s.global
			c.slotless = true
		}
		select {
		case <-w:
			w = nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// signal wakes every waiter when something changed.
type signal struct {
	mu      sync.Mutex
	ch      chan struct{}
	waiting atomic.Bool // ch is set: broadcast has someone to wake
}

// wait returns a channel closed at the next broadcast; get it before
// checking the condition waited for.
func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
		s.waiting.Store(true)
	}
	return s.ch
}

func (s *signal) broadcast() {
	if !s.waiting.Load() {
		return
	}
	s.mu.Lock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
		s.waiting.Store(false)
	}
	s.mu.Unlock()
}

func acquire(ctx context.Context, sem chan struct{}) error {
	select {
	case sem <- struct{}{}:
		return nil
	default:
	}
	select {
	case sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// prepare parses t's call and answers what needs no handler: rejections,
// unknown programs or versions, and duplicates. It returns the version
// whose handler is to run, or nil if t has been disposed of.
func (c *conn) prepare(t *task) *version {
	s := c.s
	t.w.Reset(getBuf(0))
	if res := parseCall(t.rec, &t.call, &c.cc); res != parseOK {
		if res == parseDrop {
			c.log.V(1).Info("dropping malformed message", "len", len(t.rec))
			c.release(t)
			return nil
		}
		c.log.V(1).Info("rejecting call", "xid", t.call.XID, "reason", res.String())
		writeDenied(&t.w, t.call.XID, res)
		c.send(t)
		return nil
	}
	t.call.Remote = c.remote
	t.call.conn = c
	p := (*s.progs.Load())[t.call.Prog]
	if p == nil {
		startAccepted(&t.w, t.call.XID)
		setStat(&t.w, ProgUnavail)
		c.send(t)
		return nil
	}
	v := p.vers[t.call.Vers]
	if v == nil {
		startAccepted(&t.w, t.call.XID)
		setStat(&t.w, ProgMismatch)
		t.w.Uint32(p.low)
		t.w.Uint32(p.high)
		c.send(t)
		return nil
	}
	if v.idem == nil || !v.idem(t.call.Proc) {
		t.key = makeDRCKey(c.addr, &t.call)
		switch s.drc.begin(t.key, &t.w) {
		case drcInProgress:
			c.release(t)
			return nil
		case drcReplay:
			c.send(t)
			return nil
		}
		t.drc = true
	}
	startAccepted(&t.w, t.call.XID)
	return v
}

// execute runs the handler for t and queues the reply.
func (c *conn) execute(t *task, h Handler) {
	defer c.handlers.Done()
	st := c.invoke(t, h)
	c.endCall(t)
	if st > SystemErr || st == ProgMismatch {
		// Not a status a handler can send bare (PROG_MISMATCH needs
		// mismatch_info, which only the server knows).
		c.log.V(1).Info("handler returned an invalid status", "stat", st, "prog", t.call.Prog, "proc", t.call.Proc)
		st = SystemErr
	}
	if t.call.file.set {
		switch {
		case st != Success:
			t.call.file.close()
		case t.drc:
			st = materialize(t)
		}
	}
	if st != Success {
		setStat(&t.w, st)
	}
	if t.drc {
		finishRecord(t.w.Bytes())
		c.s.drc.finish(t.key, t.w.Bytes(), st != SystemErr)
	}
	c.send(t)
}

func (c *conn) invoke(t *task, h Handler) (st AcceptStat) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error(fmt.Errorf("panic: %v", r), "RPC handler panicked",
				"prog", t.call.Prog, "vers", t.call.Vers, "proc", t.call.Proc, "stack", string(debug.Stack()))
			st = SystemErr
		}
	}()
	return h.Serve(c.ctx, &t.call, &t.w)
}

// endCall frees what t held while it was served: its request, its bytes
// of the budget and its server-wide slot.
func (c *conn) endCall(t *task) {
	if !t.running {
		return
	}
	t.running = false
	putBuf(t.rec)
	t.rec, t.call.Args = nil, nil
	c.s.bytes.release(t.nbytes)
	t.nbytes = 0
	if !t.call.slotless {
		<-c.s.global
	}
}

// send finishes t's reply record and queues it for the writer.
func (c *conn) send(t *task) {
	c.endCall(t)
	// The memory the reply holds until written; attached file data is read
	// only as it is written.
	t.unsent = int64(cap(t.w.Bytes()))
	if f := &t.call.file; f.set {
		finishRecordTail(t.w.Bytes(), f.n+f.pad())
	} else {
		finishRecord(t.w.Bytes())
	}
	c.unsent.Add(t.unsent - t.call.reserved)
	c.qmu.Lock()
	c.queue = append(c.queue, t)
	c.qmu.Unlock()
	// The only call in flight (a client waiting for each reply before its
	// next call) writes its reply itself: handing it to the writer
	// goroutine would cost a wakeup and a context switch per call, and
	// there is nothing to batch it with.
	if c.busy.Load() == 1 && c.wmu.TryLock() {
		c.writeQueued()
		c.wmu.Unlock()
		return
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// release returns t's resources once its reply is written or dropped.
func (c *conn) release(t *task) {
	c.endCall(t)
	t.call.file.close()
	putBuf(t.w.Bytes())
	t.w.Reset(nil)
	if t.unsent != 0 {
		c.unsent.Add(-t.unsent)
		c.drained.broadcast()
	}
	<-c.slots
	c.busy.Add(-1)
	*t = task{w: t.w}
	taskPool.Put(t)
}

// writeLoop writes queued replies, all that are ready in one writev, until
// the reader and all handlers are done.
func (c *conn) writeLoop() {
	defer close(c.wdone)
	for {
		stopping := false
		select {
		case <-c.wake:
		case <-c.wstop:
			stopping = true
		}
		if c.smallPending() {
			// Let handlers about to finish queue their replies too: one
			// writev for several small replies saves syscalls and TCP
			// segments (and the client's wakeups) when many calls are in
			// flight. Big replies go at once; they are worth a syscall.
			runtime.Gosched()
		}
		c.wmu.Lock()
		c.writeQueued()
		c.wmu.Unlock()
		if stopping {
			return
		}
	}
}

// writeQueued writes and releases the queued replies until none is left.
// The caller holds wmu.
func (c *conn) writeQueued() {
	for {
		c.qmu.Lock()
		batch := c.queue
		c.queue = c.spare[:0]
		c.qmu.Unlock()
		c.spare = batch // ours again once this batch is released
		if len(batch) == 0 {
			return
		}
		if !c.wdead {
			if err := c.writeBatch(batch); err != nil {
				c.wdead = true
				if c.ctx.Err() == nil {
					c.log.V(1).Info("write failed; closing connection", "err", err.Error())
				}
				c.abort()
			}
		}
		for _, t := range batch {
			c.release(t)
		}
		clear(batch)
	}
}

// fileFlush bounds the file data read into buffers before it is written.
const fileFlush = 1 << 20

// writeBatch writes batch's replies, with their file data read into
// buffers, in as few writevs as that bound allows.
func (c *conn) writeBatch(batch []*task) error {
	var err error
	for _, t := range batch {
		f := &t.call.file
		if !f.set {
			c.out = append(c.out, t.w.Bytes())
			continue
		}
		// The file first: what it holds may change the reply.
		data := readTail(t)
		c.out = append(c.out, t.w.Bytes())
		if data == nil {
			continue
		}
		c.held = append(c.held, data)
		c.out = append(c.out, data)
		if p := f.pad(); p > 0 {
			c.out = append(c.out, zeros[:p])
		}
		if c.outLen += len(data); c.outLen >= fileFlush {
			if err = c.flush(); err != nil {
				break
			}
		}
	}
	if err == nil {
		err = c.flush()
	}
	clear(c.out)
	c.out = c.out[:0]
	c.putHeld()
	return err
}

// flush writes c.out. It gives up when the client has taken no bytes for
// WriteTimeout: a client that does not read its replies is closed then,
// one that reads slowly is not.
func (c *conn) flush() error {
	c.iov = c.out
	wt := c.s.o.WriteTimeout
	for len(c.iov) > 0 {
		if now := time.Now(); now.Sub(c.wSet) > wt/16 {
			// As the read deadline: pushed at most every WriteTimeout/16
			// (a timer update per reply otherwise), so a client gets
			// between 15/16 and all of it.
			c.nc.SetWriteDeadline(now.Add(wt))
			c.wSet = now
		}
		n, err := c.iov.WriteTo(c.nc)
		if err != nil {
			if n > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
				c.wSet = time.Time{} // it took bytes: a new full timeout
				continue
			}
			return err
		}
	}
	clear(c.out)
	c.out = c.out[:0]
	c.putHeld()
	return nil
}

func (c *conn) putHeld() {
	for _, b := range c.held {
		putBuf(b)
	}
	clear(c.held)
	c.held = c.held[:0]
	c.outLen = 0
}

// smallPending reports whether the next reply to write is small and other
// calls are still being served, so that waiting a moment could batch them.
func (c *conn) smallPending() bool {
	if c.busy.Load() < 2 {
		return false
	}
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if len(c.queue) == 0 || int(c.busy.Load()) <= len(c.queue) {
		return false // nothing queued, or every call's reply is queued already
	}
	t := c.queue[0]
	return !t.call.file.set && len(t.w.Bytes()) < 16<<10
}

// budget is a counting semaphore over bytes.
type budget struct {
	mu    sync.Mutex
	avail int
	wait  chan struct{} // closed on release
}

func (b *budget) acquire(ctx context.Context, n int) bool {
	for {
		b.mu.Lock()
		if b.avail >= n {
			b.avail -= n
			b.mu.Unlock()
			return true
		}
		if b.wait == nil {
			b.wait = make(chan struct{})
		}
		w := b.wait
		b.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return false
		}
	}
}

// take takes n bytes without waiting, even if that overdraws the budget.
func (b *budget) take(n int) {
	b.mu.Lock()
	b.avail -= n
	b.mu.Unlock()
}

// tryAcquire takes n bytes if they are available.
func (b *budget) tryAcquire(n int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.avail < n {
		return false
	}
	b.avail -= n
	return true
}

func (b *budget) release(n int) {
	b.mu.Lock()
	b.avail += n
	if b.wait != nil {
		close(b.wait)
		b.wait = nil
	}
	b.mu.Unlock()
}

// numConns returns the number of open connections (for tests).
func (s *Server) numConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
