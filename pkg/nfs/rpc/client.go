package rpc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"

	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
)

// AcceptError is returned for an accepted reply whose accept_stat is not
// SUCCESS. Low and High are set for ProgMismatch.
type AcceptError struct {
	Stat      AcceptStat
	Low, High uint32
}

func (e *AcceptError) Error() string {
	if e.Stat == ProgMismatch {
		return fmt.Sprintf("rpc: call accepted with status %s (versions %d-%d)", e.Stat, e.Low, e.High)
	}
	return fmt.Sprintf("rpc: call accepted with status %s", e.Stat)
}

// RejectError is returned for a denied reply. Stat is RPCMismatch (with
// Low and High set to the supported RPC versions) or AuthError (with
// AuthStat set).
type RejectError struct {
	Stat      uint32
	Low, High uint32
	AuthStat  uint32
}

func (e *RejectError) Error() string {
	if e.Stat == RPCMismatch {
		return fmt.Sprintf("rpc: call denied: RPC version mismatch (server supports %d-%d)", e.Low, e.High)
	}
	return fmt.Sprintf("rpc: call denied: auth error %d", e.AuthStat)
}

func (s AcceptStat) String() string {
	switch s {
	case Success:
		return "SUCCESS"
	case ProgUnavail:
		return "PROG_UNAVAIL"
	case ProgMismatch:
		return "PROG_MISMATCH"
	case ProcUnavail:
		return "PROC_UNAVAIL"
	case GarbageArgs:
		return "GARBAGE_ARGS"
	case SystemErr:
		return "SYSTEM_ERR"
	}
	return fmt.Sprintf("accept_stat(%d)", uint32(s))
}

// ErrClientClosed is returned by calls on a closed Client.
var ErrClientClosed = errors.New("rpc: client closed")

// errMalformedReply is returned for a reply that does not parse.
var errMalformedReply = errors.New("rpc: malformed reply")

// clientMaxRecord bounds reply records; a 1 MiB READ reply fits with room.
const clientMaxRecord = 4 << 20

// Client is a pipelined ONC RPC client over one TCP connection: any number
// of goroutines may call at once, each call gets its own xid, and a single
// reader goroutine hands each reply to its caller.
type Client struct {
	nc    net.Conn
	wmu   sync.Mutex // serializes request records on the wire
	xid   atomic.Uint32
	stamp uint32

	mu      sync.Mutex
	pending map[uint32]*pending
	err     error // why the connection is unusable; set once

	done chan struct{} // reader exited
}

// pending is one call in flight, pooled with its codec state so that a
// call allocates nothing of its own.
type pending struct {
	ch chan []byte // the reply record (pooled), or nil when the client failed
	w  xdr.Writer
	r  xdr.Reader
}

var pendingPool = sync.Pool{New: func() any {
	p := &pending{ch: make(chan []byte, 1)}
	p.w.SetGrow(growReply)
	return p
}}

// Dial connects to an RPC server at addr (host:port) over TCP.
func Dial(ctx context.Context, addr string) (*Client, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("rpc: dial %s: %w", addr, err)
	}
	return NewClient(nc), nil
}

// NewClient runs a Client over an established connection, which it owns.
func NewClient(nc net.Conn) *Client {
	c := &Client{
		nc:      nc,
		stamp:   rand.Uint32(),
		pending: make(map[uint32]*pending),
		done:    make(chan struct{}),
	}
	c.xid.Store(rand.Uint32())
	go c.readLoop()
	return c
}

// Close closes the connection; calls in flight fail with ErrClientClosed.
func (c *Client) Close() error {
	c.fail(ErrClientClosed)
	err := c.nc.Close()
	<-c.done
	return err
}

// fail makes the client unusable with err and wakes all pending calls.
func (c *Client) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
	for xid, p := range c.pending {
		delete(c.pending, xid)
		p.ch <- nil
	}
}

func (c *Client) readLoop() {
	defer close(c.done)
	rr := recordReader{r: bufio.NewReaderSize(c.nc, 64<<10), max: clientMaxRecord}
	for {
		rec, err := rr.next()
		if err != nil {
			c.fail(fmt.Errorf("rpc: connection lost: %w", err))
			c.nc.Close()
			return
		}
		if len(rec) < 4 {
			putBuf(rec)
			continue
		}
		xid := uint32(rec[0])<<24 | uint32(rec[1])<<16 | uint32(rec[2])<<8 | uint32(rec[3])
		c.mu.Lock()
		p := c.pending[xid]
		delete(c.pending, xid)
		c.mu.Unlock()
		if p == nil { // cancelled call, or a reply we never asked for
			putBuf(rec)
			continue
		}
		p.ch <- rec
	}
}

// Call sends a call with the XDR-encoded args and waits for its reply. On
// an accepted SUCCESS reply it returns the results, in a new slice owned by
// the caller; otherwise an *AcceptError, a *RejectError, or a transport or
// context error. Cred's Flavor selects AUTH_SYS or AUTH_NONE.
func (c *Client) Call(ctx context.Context, prog, vers, proc uint32, cred Cred, args []byte) ([]byte, error) {
	var res []byte
	err := c.CallInto(ctx, prog, vers, proc, cred,
		func(w *xdr.Writer) { w.Fixed(args) },
		func(r *xdr.Reader) error {
			res = append([]byte(nil), r.Remaining()...)
			return nil
		})
	return res, err
}

// CallInto is Call without copies: args appends the arguments to the
// request (a pooled buffer), and results decodes them from the reply in
// place. The Reader given to results aliases a pooled buffer that is
// recycled when results returns, so results must copy what it keeps.
// results is not called for failed calls, and its error is returned as is.
// Either func may be nil.
func (c *Client) CallInto(ctx context.Context, prog, vers, proc uint32, cred Cred,
	args func(*xdr.Writer), results func(*xdr.Reader) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	xid := c.xid.Add(1)
	p := pendingPool.Get().(*pending)
	defer pendingPool.Put(p)
	w := &p.w
	w.Reset(getBuf(0))
	if err := c.writeCallHeader(w, xid, prog, vers, proc, &cred); err != nil {
		putBuf(w.Bytes())
		w.Reset(nil)
		return err
	}
	if args != nil {
		args(w)
	}
	finishRecord(w.Bytes())

	c.mu.Lock()
	err := c.err
	if err == nil {
		c.pending[xid] = p
	}
	c.mu.Unlock()
	if err == nil {
		c.wmu.Lock()
		_, werr := c.nc.Write(w.Bytes())
		c.wmu.Unlock()
		if werr != nil {
			// A partial write leaves the stream unusable. fail also
			// wakes this call, below, with the error.
			c.fail(fmt.Errorf("rpc: send: %w", werr))
			c.nc.Close()
		}
	}
	putBuf(w.Bytes()) // the request is on the wire (or never will be)
	w.Reset(nil)
	if err != nil {
		return err
	}

	var rec []byte
	select {
	case rec = <-p.ch:
	case <-ctx.Done():
		c.mu.Lock()
		mine := c.pending[xid] == p
		delete(c.pending, xid)
		c.mu.Unlock()
		if !mine { // the reader already claimed it; take what it sends
			if rec := <-p.ch; rec != nil {
				putBuf(rec)
			}
		}
		return ctx.Err()
	}
	if rec == nil {
		c.mu.Lock()
		err := c.err
		c.mu.Unlock()
		return err
	}
	defer putBuf(rec)
	r := &p.r
	r.Reset(rec)
	defer r.Reset(nil)
	if err := parseReply(r); err != nil {
		return err
	}
	if results != nil {
		return results(r)
	}
	return nil
}

func (c *Client) writeCallHeader(w *xdr.Writer, xid, prog, vers, proc uint32, cred *Cred) error {
	w.Uint32(0) // record mark
	w.Uint32(xid)
	w.Uint32(MsgCall)
	w.Uint32(2)
	w.Uint32(prog)
	w.Uint32(vers)
	w.Uint32(proc)
	if cred.Flavor == AuthSys {
		if len(cred.Machine) > maxMachine || len(cred.GIDs) > maxGIDs {
			return fmt.Errorf("rpc: AUTH_SYS credential too large (machine %d bytes, %d groups)", len(cred.Machine), len(cred.GIDs))
		}
		w.Uint32(AuthSys)
		w.Uint32(uint32(4 + 4 + (len(cred.Machine)+3)&^3 + 4 + 4 + 4 + 4*len(cred.GIDs)))
		w.Uint32(c.stamp)
		w.String(cred.Machine)
		w.Uint32(cred.UID)
		w.Uint32(cred.GID)
		w.Uint32(uint32(len(cred.GIDs)))
		for _, g := range cred.GIDs {
			w.Uint32(g)
		}
	} else {
		w.Uint32(AuthNone)
		w.Uint32(0)
	}
	w.Uint32(AuthNone) // verifier
	w.Uint32(0)
	return nil
}

// parseReply reads a reply header (xid included) and leaves r at the
// results of a SUCCESS reply; otherwise it returns the typed error.
func parseReply(r *xdr.Reader) error {
	r.Uint32() // xid, matched by the reader
	mtype := r.Uint32()
	stat := r.Uint32()
	if r.Err() != nil || mtype != MsgReply {
		return errMalformedReply
	}
	switch stat {
	case MsgAccepted:
		r.Uint32()
		r.Opaque(maxAuthBody)
		st := AcceptStat(r.Uint32())
		var low, high uint32
		if st == ProgMismatch {
			low, high = r.Uint32(), r.Uint32()
		}
		if r.Err() != nil {
			return errMalformedReply
		}
		if st == Success {
			return nil
		}
		return &AcceptError{Stat: st, Low: low, High: high}
	case MsgDenied:
		e := &RejectError{Stat: r.Uint32()}
		switch e.Stat {
		case RPCMismatch:
			e.Low, e.High = r.Uint32(), r.Uint32()
		case AuthError:
			e.AuthStat = r.Uint32()
		default:
			return errMalformedReply
		}
		if r.Err() != nil {
			return errMalformedReply
		}
		return e
	}
	return errMalformedReply
}
