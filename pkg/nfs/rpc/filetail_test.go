package rpc

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
)

// plainListener hides the TCP connections' descriptors, so the server
// takes its copying path instead of sendfile.
type plainListener struct{ net.Listener }

type plainConn struct{ net.Conn }

func (l plainListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return plainConn{c}, nil
}

// fileHandler answers each call (args: offset, count) with a 4-byte
// prefix and count bytes of path from offset attached with AttachFile.
// Procedures from 1000 on also put count and the data's XDR length before
// the data, and say how to shorten the reply.
func fileHandler(t *testing.T, path string) HandlerFunc {
	return func(ctx context.Context, c *Call, w *xdr.Writer) AcceptStat {
		r := xdr.NewReader(c.Args)
		off, n := r.Uint64(), r.Uint32()
		f, err := os.Open(path)
		if err != nil {
			t.Error(err)
			return SystemErr
		}
		fd, err := dupFd(f)
		f.Close() // the server must own a descriptor of its own
		if err != nil {
			t.Error(err)
			return SystemErr
		}
		w.Uint32(0xabcdef01)
		if c.Proc >= 1000 {
			w.Uint32(n)
			w.Uint32(n)
			c.AttachFile(fd, int64(off), int(n), func(reply []byte, got int) {
				binary.BigEndian.PutUint32(reply[len(reply)-8:], uint32(got))
			})
			return Success
		}
		c.AttachFile(fd, int64(off), int(n), nil)
		return Success
	}
}

func TestAttachFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "data")
	data := make([]byte, 300<<10+3)
	for i := range data {
		data[i] = byte(i*7 + i>>9)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	modes := []struct {
		name  string
		plain bool // under a net.Conn wrapper
		drc   bool // through the duplicate request cache: read into the reply
	}{{"tcp", false, false}, {"wrapped", true, false}, {"drc", false, true}}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			s := NewServer(Options{})
			idem := func(uint32) bool { return true }
			if m.drc {
				idem = nil
			}
			s.Register(testProg, testVers, fileHandler(t, path), idem)
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var sl net.Listener = l
			if m.plain {
				sl = plainListener{l}
			}
			go s.Serve(sl)
			defer s.Close()
			cl, err := Dial(context.Background(), l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			cases := []struct{ off, n int }{
				{0, 0}, {0, 1}, {0, 2}, {0, 3}, {0, 4}, {5, 5}, {1, 64 << 10},
				{100, 256<<10 + 1}, {len(data) - 7, 7}, {len(data) - 1, 1}, {0, len(data)},
			}
			for i, tc := range cases {
				var a xdr.Writer
				a.Uint64(uint64(tc.off))
				a.Uint32(uint32(tc.n))
				res, err := cl.Call(context.Background(), testProg, testVers, uint32(i), Cred{}, a.Bytes())
				if err != nil {
					t.Fatalf("off %d n %d: %v", tc.off, tc.n, err)
				}
				want := []byte{0xab, 0xcd, 0xef, 0x01}
				want = append(want, data[tc.off:tc.off+tc.n]...)
				for len(want)%4 != 0 {
					want = append(want, 0)
				}
				if !bytes.Equal(res, want) {
					t.Fatalf("off %d n %d: got %d bytes, want %d (or contents differ)", tc.off, tc.n, len(res), len(want))
				}
			}
			// More than the file holds: a reply that does not say what the
			// handler promised must never go out.
			var a xdr.Writer
			a.Uint64(uint64(len(data) - 10))
			a.Uint32(20)
			_, err = cl.Call(context.Background(), testProg, testVers, 99, Cred{}, a.Bytes())
			var ae *AcceptError
			if !errors.As(err, &ae) || ae.Stat != SystemErr {
				t.Fatalf("short file: got %v, want SYSTEM_ERR", err)
			}
			// With a ShortFunc, the bytes the file holds.
			res, err := cl.Call(context.Background(), testProg, testVers, 1000, Cred{}, a.Bytes())
			want := append([]byte{0xab, 0xcd, 0xef, 0x01}, words(10, 10)...)
			want = append(want, data[len(data)-10:]...)
			want = append(want, 0, 0)
			if err != nil || !bytes.Equal(res, want) {
				t.Fatalf("short file with ShortFunc: got %x, %v; want %x", res, err, want)
			}
		})
	}
}

// TestAttachFileNoLeak checks that attached descriptors are closed whether
// the reply is sent or discarded (the handler returning an error).
func TestAttachFileNoLeak(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(path, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := openFds(t)
	const calls = 200
	fh := fileHandler(t, path)
	_, addr := startServer(t, Options{}, func(s *Server) {
		s.Register(testProg, testVers, HandlerFunc(func(ctx context.Context, c *Call, w *xdr.Writer) AcceptStat {
			st := fh(ctx, c, w)
			if c.Proc%2 == 1 {
				return GarbageArgs // attached file discarded
			}
			return st
		}), func(uint32) bool { return true })
	})
	cl, err := Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := range calls {
		var a xdr.Writer
		a.Uint64(1)
		a.Uint32(8)
		res, err := cl.Call(context.Background(), testProg, testVers, uint32(i), Cred{}, a.Bytes())
		if i%2 == 1 {
			var ae *AcceptError
			if !errors.As(err, &ae) || ae.Stat != GarbageArgs {
				t.Fatalf("call %d: got %v, want GARBAGE_ARGS", i, err)
			}
			continue
		}
		if err != nil || string(res[4:]) != "12345678" {
			t.Fatalf("call %d: %q, %v", i, res, err)
		}
	}
	if after := openFds(t); after > before+calls/4 {
		t.Fatalf("%d descriptors open after %d calls, %d before: attached files leak", after, calls, before)
	}
}

func openFds(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestAttachFileReadError: a file that cannot be read when the reply is
// written (here a directory) gives SYSTEM_ERR; the connection, which all
// of a client's mounts share, stays up.
func TestAttachFileReadError(t *testing.T) {
	dir := t.TempDir()
	_, addr := startServer(t, Options{}, func(s *Server) {
		s.Register(testProg, testVers, HandlerFunc(func(ctx context.Context, c *Call, w *xdr.Writer) AcceptStat {
			if c.Proc == 0 {
				return Success
			}
			f, err := os.Open(dir)
			if err != nil {
				t.Error(err)
				return SystemErr
			}
			defer f.Close()
			fd, err := dupFd(f)
			if err != nil {
				t.Error(err)
				return SystemErr
			}
			w.Uint32(10)
			c.AttachFile(fd, 0, 10, func([]byte, int) {})
			return Success
		}), func(uint32) bool { return true })
	})
	cl, err := Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	_, err = cl.Call(context.Background(), testProg, testVers, 1, Cred{}, nil)
	var ae *AcceptError
	if !errors.As(err, &ae) || ae.Stat != SystemErr {
		t.Fatalf("unreadable file: got %v, want SYSTEM_ERR", err)
	}
	if _, err := cl.Call(context.Background(), testProg, testVers, 0, Cred{}, nil); err != nil {
		t.Fatalf("connection unusable after an unreadable file: %v", err)
	}
}
