package rpc

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
)

// Deadlines in these tests only turn a hang into a failure; nothing is
// asserted about speed.
const failAfter = 20 * time.Second

const (
	testProg = 400000
	testVers = 1
)

func testLogger() funcr.Options { return funcr.Options{Verbosity: 1} }

// startServer serves s on a loopback port and closes it at the end.
func startServer(t testing.TB, o Options, register func(*Server)) (*Server, string) {
	t.Helper()
	if o.Log.GetSink() == nil {
		o.Log = funcr.New(func(prefix, args string) { t.Log(prefix, args) }, testLogger())
	}
	s := NewServer(o)
	if register != nil {
		register(s)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v", err)
			}
		case <-time.After(failAfter):
			t.Errorf("Serve did not return after Close")
		}
	})
	return s, l.Addr().String()
}

func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(failAfter))
	return c
}

// callMsg builds a call message (without record mark).
func callMsg(xid, rpcvers, prog, vers, proc, credFlavor uint32, credBody, args []byte) []byte {
	w := xdr.NewWriter(nil)
	w.Uint32(xid)
	w.Uint32(MsgCall)
	w.Uint32(rpcvers)
	w.Uint32(prog)
	w.Uint32(vers)
	w.Uint32(proc)
	w.Uint32(credFlavor)
	w.Opaque(credBody)
	w.Uint32(AuthNone)
	w.Uint32(0)
	w.Fixed(args)
	return w.Bytes()
}

func authSysBody(machine string, uid, gid uint32, gids ...uint32) []byte {
	w := xdr.NewWriter(nil)
	w.Uint32(12345) // stamp
	w.String(machine)
	w.Uint32(uid)
	w.Uint32(gid)
	w.Uint32(uint32(len(gids)))
	for _, g := range gids {
		w.Uint32(g)
	}
	return w.Bytes()
}

// frame record-marks msg, split into fragments of the given sizes (the
// rest goes into a final fragment).
func frame(msg []byte, frags ...int) []byte {
	var out []byte
	for _, n := range frags {
		out = binary.BigEndian.AppendUint32(out, uint32(n))
		out = append(out, msg[:n]...)
		msg = msg[n:]
	}
	out = binary.BigEndian.AppendUint32(out, lastFrag|uint32(len(msg)))
	return append(out, msg...)
}

func writeAll(t *testing.T, c net.Conn, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// readReply reads one single-fragment reply record.
func readReply(t *testing.T, c net.Conn) []byte {
	t.Helper()
	b, err := readReplyErr(c)
	if err != nil {
		t.Fatalf("reading reply: %v", err)
	}
	return b
}

func readReplyErr(c net.Conn) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return nil, err
	}
	h := binary.BigEndian.Uint32(hdr[:])
	if h&lastFrag == 0 {
		return nil, errors.New("server sent a non-final fragment")
	}
	b := make([]byte, h&^lastFrag)
	if _, err := io.ReadFull(c, b); err != nil {
		return nil, err
	}
	return b, nil
}

// expectClosed checks that the server closes c.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(failAfter))
	var b [64]byte
	for {
		_, err := c.Read(b[:])
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open after %v", failAfter)
		}
		return // EOF or reset
	}
}

func words(v ...uint32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.BigEndian.AppendUint32(b, x)
	}
	return b
}

// waitFor polls cond until it holds, failing the test after failAfter.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(failAfter)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// echo returns its arguments as results.
var echo = HandlerFunc(func(_ context.Context, c *Call, w *xdr.Writer) AcceptStat {
	w.Fixed(c.Args)
	return Success
})
