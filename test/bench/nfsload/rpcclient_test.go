package main

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// TestClientMatchesRepliesByXID answers a batch of pipelined calls in reverse
// order, each reply split over two record fragments, and checks every caller
// gets its own reply.
func TestClientMatchesRepliesByXID(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const depth = 8
	go func() {
		nc, err := l.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		var calls [][]byte
		for len(calls) < depth {
			var mark [4]byte
			if _, err := io.ReadFull(nc, mark[:]); err != nil {
				return
			}
			rec := make([]byte, binary.BigEndian.Uint32(mark[:])&0x7fffffff)
			if _, err := io.ReadFull(nc, rec); err != nil {
				return
			}
			calls = append(calls, rec)
		}
		for i := len(calls) - 1; i >= 0; i-- {
			xid := binary.BigEndian.Uint32(calls[i])
			proc := binary.BigEndian.Uint32(calls[i][20:])
			// xid, REPLY, MSG_ACCEPTED, AUTH_NONE verifier, SUCCESS, result = proc*10
			body := binary.BigEndian.AppendUint32(nil, xid)
			for _, v := range []uint32{1, 0, 0, 0, 0, proc * 10} {
				body = binary.BigEndian.AppendUint32(body, v)
			}
			var out []byte
			out = binary.BigEndian.AppendUint32(out, 10) // first fragment, not last
			out = append(out, body[:10]...)
			out = binary.BigEndian.AppendUint32(out, 0x80000000|uint32(len(body)-10))
			out = append(out, body[10:]...)
			if _, err := nc.Write(out); err != nil {
				return
			}
		}
		io.Copy(io.Discard, nc)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := dialRPC(ctx, l.Addr().String(), 1, depth)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var wg sync.WaitGroup
	for i, c := range cl.callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := c.begin(progNFS, 3, uint32(100+i))
			w.Uint32(uint32(i))
			r, err := c.do(ctx)
			if err != nil {
				t.Errorf("caller %d: %v", i, err)
				return
			}
			if got := r.Uint32(); got != uint32(100+i)*10 || r.Err() != nil {
				t.Errorf("caller %d got result %d (%v), want %d", i, got, r.Err(), (100+i)*10)
			}
		}()
	}
	wg.Wait()
}
