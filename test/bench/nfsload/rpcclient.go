package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
)

// This is a deliberately minimal pipelined ONC RPC client. Each worker owns
// one slot of one connection for the whole phase, so a call needs no map, no
// channel allocation and no per-call buffer: the steady state allocates
// nothing, which keeps the load generator off the CPU it shares with the
// server and lets in-process allocation sampling attribute allocations to the
// server. The xid's low byte is the slot index.

const maxSlots = 256

// rpcConn is one TCP connection with up to maxSlots outstanding calls.
type rpcConn struct {
	nc    net.Conn
	wmu   sync.Mutex
	slots []*caller
	dead  chan struct{}
	err   atomic.Pointer[error]
}

// caller is a worker's handle on one slot of a connection.
type caller struct {
	cn   *rpcConn
	idx  uint32
	seq  uint32
	xid  atomic.Uint32
	cred []byte
	w    xdr.Writer
	r    xdr.Reader
	buf  []byte // request record
	resp []byte // reply body, filled by the reader goroutine
	done chan struct{}
}

// rpcClient is a set of connections and their callers.
type rpcClient struct {
	conns   []*rpcConn
	callers []*caller
}

// authSys encodes an AUTH_SYS credential for uid/gid 0.
func authSys() []byte {
	var body xdr.Writer
	body.Uint32(0) // stamp
	body.String("nfsload")
	body.Uint32(0) // uid
	body.Uint32(0) // gid
	body.Uint32(0) // no supplementary gids
	var w xdr.Writer
	w.Uint32(1) // AUTH_SYS
	w.Opaque(body.Bytes())
	w.Uint32(0) // verifier AUTH_NONE
	w.Uint32(0)
	return w.Bytes()
}

// dialRPC opens nconns connections with depth callers each. Callers are
// interleaved across connections so that the first k callers use k
// different connections.
func dialRPC(ctx context.Context, addr string, nconns, depth int) (*rpcClient, error) {
	if depth < 1 || depth > maxSlots || nconns < 1 {
		return nil, fmt.Errorf("bad connection shape %d×%d", nconns, depth)
	}
	cred := authSys()
	c := &rpcClient{}
	var d net.Dialer
	for i := 0; i < nconns; i++ {
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("dial %s: %w", addr, err)
		}
		cn := &rpcConn{nc: nc, dead: make(chan struct{})}
		for j := 0; j < depth; j++ {
			cn.slots = append(cn.slots, &caller{cn: cn, idx: uint32(j), cred: cred, done: make(chan struct{}, 1)})
		}
		c.conns = append(c.conns, cn)
		go cn.readLoop()
	}
	for j := 0; j < depth; j++ {
		for _, cn := range c.conns {
			c.callers = append(c.callers, cn.slots[j])
		}
	}
	return c, nil
}

func (c *rpcClient) Close() {
	for _, cn := range c.conns {
		cn.nc.Close()
	}
}

func (cn *rpcConn) fail(err error) {
	if cn.err.CompareAndSwap(nil, &err) {
		close(cn.dead)
		cn.nc.Close()
	}
}

func (cn *rpcConn) readLoop() {
	br := bufio.NewReaderSize(cn.nc, 256<<10)
	var hdr [4]byte
	var discard []byte
	for {
		// First fragment: its first 4 bytes are the xid, which names the slot.
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			cn.fail(fmt.Errorf("read record mark: %w", err))
			return
		}
		mark := binary.BigEndian.Uint32(hdr[:])
		last, n := mark&0x80000000 != 0, int(mark&0x7fffffff)
		if n < 4 {
			cn.fail(errors.New("short RPC record"))
			return
		}
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			cn.fail(fmt.Errorf("read xid: %w", err))
			return
		}
		xid := binary.BigEndian.Uint32(hdr[:])
		var dst *[]byte
		var s *caller
		if i := xid % maxSlots; int(i) < len(cn.slots) && cn.slots[i].xid.Load() == xid {
			s = cn.slots[i]
			dst = &s.resp
		} else {
			dst = &discard // late reply to an abandoned call
		}
		body := append((*dst)[:0], hdr[:]...)
		remaining := n - 4
		for {
			start := len(body)
			body = growLen(body, remaining)
			if _, err := io.ReadFull(br, body[start:]); err != nil {
				cn.fail(fmt.Errorf("read record: %w", err))
				return
			}
			if last {
				break
			}
			if _, err := io.ReadFull(br, hdr[:]); err != nil {
				cn.fail(fmt.Errorf("read record mark: %w", err))
				return
			}
			mark = binary.BigEndian.Uint32(hdr[:])
			last, remaining = mark&0x80000000 != 0, int(mark&0x7fffffff)
			if len(body)+remaining > 64<<20 {
				cn.fail(errors.New("RPC reply over 64 MiB"))
				return
			}
		}
		*dst = body
		if s != nil {
			s.done <- struct{}{}
		}
	}
}

// growLen extends b by n bytes, reallocating only when capacity runs out.
func growLen(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n, 2*cap(b)+n)
	copy(nb, b)
	return nb
}

// begin starts a call and returns the writer for its arguments.
func (c *caller) begin(prog, vers, proc uint32) *xdr.Writer {
	c.seq++
	xid := c.seq<<8 | c.idx
	c.xid.Store(xid)
	c.w.Reset(c.buf)
	c.w.Uint32(0) // record mark, patched in do
	c.w.Uint32(xid)
	c.w.Uint32(0) // CALL
	c.w.Uint32(2) // RPC version
	c.w.Uint32(prog)
	c.w.Uint32(vers)
	c.w.Uint32(proc)
	c.w.Fixed(c.cred)
	return &c.w
}

// do sends the call built since begin, waits for its reply and returns a
// reader positioned at the procedure's results.
func (c *caller) do(ctx context.Context) (*xdr.Reader, error) {
	b := c.w.Bytes()
	c.buf = b
	c.w.PatchUint32(0, 0x80000000|uint32(len(b)-4))
	c.cn.wmu.Lock()
	_, err := c.cn.nc.Write(b)
	c.cn.wmu.Unlock()
	if err != nil {
		c.cn.fail(err)
		return nil, fmt.Errorf("send: %w", err)
	}
	select {
	case <-c.done:
	case <-c.cn.dead:
		return nil, *c.cn.err.Load()
	case <-ctx.Done():
		c.xid.Store(0)
		return nil, ctx.Err()
	}
	c.r.Reset(c.resp)
	r := &c.r
	_ = r.Uint32() // xid, matched by the reader
	if mt := r.Uint32(); mt != 1 {
		return nil, fmt.Errorf("rpc: message type %d, want REPLY", mt)
	}
	if rs := r.Uint32(); rs != 0 {
		return nil, fmt.Errorf("rpc: call denied (reject_stat %d)", r.Uint32())
	}
	r.Uint32()       // verifier flavor
	r.Opaque(400)    // verifier body
	st := r.Uint32() // accept_stat
	if r.Err() != nil {
		return nil, fmt.Errorf("rpc: bad reply header: %w", r.Err())
	}
	if st != 0 {
		return nil, fmt.Errorf("rpc: accept_stat %d", st)
	}
	return r, nil
}
