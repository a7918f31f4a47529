package rpc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
)

// Options configure a Server. Zero values mean the defaults below.
type Options struct {
	MaxConns           int           // default 512; connections beyond it are closed at once
	MaxInFlightPerConn int           // default 64 calls being served or replied per connection
	MaxInFlight        int           // default 1024 calls in the whole server
	MaxRecordSize      int           // default DefaultMaxRecordSize; bigger records close the connection
	IdleTimeout        time.Duration // default 5m; idle connections (nothing in flight, no bytes) are closed
	Log                logr.Logger

	// MaxInFlightBytes bounds the request bytes held by calls in flight
	// across the server (default 64 MiB, never below MaxRecordSize).
	MaxInFlightBytes int

	// ConnContext, if set, derives the context of every call on a new
	// connection from ctx (as net/http's Server.ConnContext does): values
	// that belong to the connection, such as the client's address, are
	// attached once instead of per call.
	ConnContext func(ctx context.Context, c net.Conn) context.Context
}

func (o *Options) setDefaults() {
	if o.MaxConns <= 0 {
		o.MaxConns = 512
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
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 5 * time.Minute
	}
	if o.MaxInFlightBytes <= 0 {
		o.MaxInFlightBytes = 64 << 20
	}
	o.MaxInFlightBytes = max(o.MaxInFlightBytes, o.MaxRecordSize)
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

	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	wg        sync.WaitGroup // connection goroutines
}

type program struct {
	low, high uint32
	vers      map[uint32]*version
}

type version struct {
	h    Handler
	idem func(proc uint32) bool
}

// NewServer returns a server with no programs registered.
func NewServer(o Options) *Server {
	o.setDefaults()
	s := &Server{
		o:         o,
		log:       o.Log,
		drc:       newDRC(),
		global:    make(chan struct{}, o.MaxInFlight),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*conn]struct{}),
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
	p.vers[vers] = &version{h: h, idem: idempotent}
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
		if len(s.conns) >= s.o.MaxConns {
			s.mu.Unlock()
			s.log.V(1).Info("too many connections; closing new one", "remote", nc.RemoteAddr(), "max", s.o.MaxConns)
			nc.Close()
			continue
		}
		c := s.newConn(nc)
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go c.serve()
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
// starts a goroutine per call; a writer goroutine sends replies in batches.
type conn struct {
	s      *Server
	nc     net.Conn
	remote net.Addr
	addr   netip.AddrPort // DRC key part
	log    logr.Logger

	ctx    context.Context // cancelled when the connection or server closes
	cancel context.CancelFunc

	rr       recordReader
	cc       credCache     // reader goroutine only
	slots    chan struct{} // MaxInFlightPerConn
	busy     atomic.Int32  // calls dispatched whose replies are not yet written
	lastSet  time.Time     // when the read deadline was last pushed
	handlers sync.WaitGroup

	qmu   sync.Mutex
	queue []*task
	wake  chan struct{}
	wstop chan struct{} // closed when no more replies will be queued
	wdone chan struct{}

	sf sendState // writer goroutine only (after initSendfile)
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
	}
	base := s.ctx
	if s.o.ConnContext != nil {
		base = s.o.ConnContext(base, nc)
	}
	c.ctx, c.cancel = context.WithCancel(base)
	c.initSendfile()
	c.rr = recordReader{r: bufio.NewReaderSize(idleReader{c}, 64<<10), max: s.o.MaxRecordSize}
	return c
}

// abort closes the connection at once.
func (c *conn) abort() {
	c.cancel()
	c.nc.Close()
}

func (c *conn) serve() {
	defer c.s.wg.Done()
	c.log.V(1).Info("connection opened")
	go c.writeLoop()
	err := c.readLoop()
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
	delete(c.s.conns, c)
	c.s.mu.Unlock()
	c.log.V(1).Info("connection closed")
}

// idleReader reads from the connection with the idle timeout as deadline,
// but only gives up when no calls are in flight: a client waiting for slow
// replies is not idle.
type idleReader struct{ c *conn }

func (r idleReader) Read(p []byte) (int, error) {
	c := r.c
	idle := c.s.o.IdleTimeout
	for {
		// Pushing the deadline costs a timer update; do it at most every
		// idle/16, so the effective timeout is between 15/16 and 1 of idle.
		if now := time.Now(); now.Sub(c.lastSet) > idle/16 {
			c.nc.SetReadDeadline(now.Add(idle))
			c.lastSet = now
		}
		n, err := c.nc.Read(p)
		if n == 0 && err != nil && c.busy.Load() > 0 && c.ctx.Err() == nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.lastSet = time.Time{}
				continue
			}
		}
		return n, err
	}
}

// task is one call on its way through the server, pooled.
type task struct {
	call   Call
	rec    []byte // request record (pooled)
	nbytes int    // request bytes charged to the server's budget
	w      xdr.Writer
	drc    bool
	key    drcKey
}

var taskPool = sync.Pool{New: func() any {
	t := new(task)
	t.w.SetGrow(growReply)
	return t
}}

func (c *conn) readLoop() error {
	s := c.s
	for {
		// Take the connection's slot before reading: when its bound is
		// reached we stop reading and TCP pushes back on the client. The
		// server-wide slot and bytes are taken only once a record is in,
		// so that idle connections waiting for their next call hold none.
		if err := acquire(c.ctx, c.slots); err != nil {
			return err
		}
		rec, err := c.rr.next()
		if err == nil {
			if err = acquire(c.ctx, s.global); err != nil {
				putBuf(rec)
			} else if !s.bytes.acquire(c.ctx, min(len(rec), s.o.MaxInFlightBytes)) {
				<-s.global
				putBuf(rec)
				err = c.ctx.Err()
			}
		}
		if err != nil {
			<-c.slots
			return err
		}
		t := taskPool.Get().(*task)
		t.rec = rec
		t.nbytes = min(len(rec), s.o.MaxInFlightBytes)
		c.busy.Add(1)
		if h := c.prepare(t); h != nil {
			c.handlers.Add(1)
			go c.execute(t, h)
		}
	}
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
// unknown programs or versions, and duplicates. It returns the handler to
// run, or nil if t has been disposed of.
func (c *conn) prepare(t *task) Handler {
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
	return v.h
}

// execute runs the handler for t and queues the reply.
func (c *conn) execute(t *task, h Handler) {
	defer c.handlers.Done()
	st := c.invoke(t, h)
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
		case t.drc || c.sf.raw == nil:
			st = materialize(t)
		}
	}
	if st != Success {
		setStat(&t.w, st)
	}
	putBuf(t.rec)
	t.rec, t.call.Args = nil, nil
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

// send finishes t's reply record and queues it for the writer.
func (c *conn) send(t *task) {
	if f := &t.call.file; f.set {
		finishRecordTail(t.w.Bytes(), f.n+f.pad())
	} else {
		finishRecord(t.w.Bytes())
	}
	c.qmu.Lock()
	c.queue = append(c.queue, t)
	c.qmu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// release returns t's resources once its reply is written or dropped.
func (c *conn) release(t *task) {
	if t.rec != nil {
		putBuf(t.rec)
	}
	t.call.file.close()
	putBuf(t.w.Bytes())
	t.w.Reset(nil)
	c.s.bytes.release(t.nbytes)
	<-c.s.global
	<-c.slots
	c.busy.Add(-1)
	*t = task{w: t.w}
	taskPool.Put(t)
}

// writeLoop writes queued replies, all that are ready in one writev, until
// the reader and all handlers are done.
func (c *conn) writeLoop() {
	defer close(c.wdone)
	var batch, spare []*task
	var bufs, iov net.Buffers
	dead := false
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
		for {
			c.qmu.Lock()
			batch, c.queue = c.queue, spare[:0]
			c.qmu.Unlock()
			spare = batch // ours again once this batch is released
			if len(batch) == 0 {
				break
			}
			if !dead {
				c.nc.SetWriteDeadline(time.Now().Add(c.s.o.IdleTimeout))
				bufs = bufs[:0]
				var err error
				for _, t := range batch {
					bufs = append(bufs, t.w.Bytes())
					f := &t.call.file
					if !f.set {
						continue
					}
					// Headers so far, then the file data straight from
					// the page cache; its padding leads the next writev.
					err = c.sendFile(bufs, f)
					clear(bufs)
					bufs = bufs[:0]
					if err != nil {
						break
					}
					if p := f.pad(); p > 0 {
						bufs = append(bufs, zeros[:p])
					}
				}
				if err == nil && len(bufs) > 0 {
					iov = bufs
					_, err = iov.WriteTo(c.nc)
				}
				clear(bufs)
				if err != nil {
					dead = true
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
		if stopping {
			return
		}
	}
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
