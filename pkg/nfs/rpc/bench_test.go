package rpc

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
)

// benchServer serves a GETATTR-like proc 1, a READ-like proc 2 that
// reserves the requested count in the reply, and a WRITE-like proc 3.
func benchServer(b *testing.B) *Client {
	h := HandlerFunc(func(ctx context.Context, c *Call, w *xdr.Writer) AcceptStat {
		switch c.Proc {
		case 1:
			return getattrHandler(ctx, c, w)
		case 2:
			var r xdr.Reader
			r.Reset(c.Args)
			n := r.Uint32()
			w.Uint32(0)
			w.Uint32(n)
			w.Reserve(int(n))
			return Success
		case 3:
			var r xdr.Reader
			r.Reset(c.Args)
			data := r.Opaque(1 << 20)
			w.Uint32(uint32(len(data)))
			return Success
		}
		return ProcUnavail
	})
	_, addr := startServer(b, Options{Log: logr.Discard()}, func(s *Server) { s.Register(100003, 3, h, nil) })
	cl, err := Dial(context.Background(), addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cl.Close() })
	return cl
}

func BenchmarkGetattrParallel(b *testing.B) {
	cl := benchServer(b)
	fh := bytes.Repeat([]byte{1}, 40)
	cred := Cred{Flavor: AuthSys, Machine: "bench", UID: 1, GID: 1}
	b.ReportAllocs()
	b.SetParallelism(16) // many calls outstanding on one connection
	b.RunParallel(func(pb *testing.PB) {
		args := func(w *xdr.Writer) { w.Opaque(fh) }
		for pb.Next() {
			if err := cl.CallInto(context.Background(), 100003, 3, 1, cred, args, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkRead1MiB(b *testing.B) {
	cl := benchServer(b)
	b.ReportAllocs()
	b.SetBytes(1 << 20)
	b.SetParallelism(2)
	b.RunParallel(func(pb *testing.PB) {
		args := func(w *xdr.Writer) { w.Uint32(1 << 20) }
		for pb.Next() {
			if err := cl.CallInto(context.Background(), 100003, 3, 2, Cred{}, args, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkWrite1MiB(b *testing.B) {
	cl := benchServer(b)
	data := make([]byte, 1<<20)
	b.ReportAllocs()
	b.SetBytes(1 << 20)
	b.SetParallelism(2)
	b.RunParallel(func(pb *testing.PB) {
		args := func(w *xdr.Writer) { w.Opaque(data) }
		for pb.Next() {
			if err := cl.CallInto(context.Background(), 100003, 3, 3, Cred{}, args, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// serialHandler answers proc 0 (NULL, quick: Inline) and proc 1, a small
// change that is not quick and goes through the duplicate request cache,
// like an NFS SETATTR or CREATE.
type serialHandler struct{ HandlerFunc }

func (serialHandler) Inline(proc uint32, _ []byte) bool { return proc == 0 }

// BenchmarkSerial is a client with one call outstanding at a time, as the
// kernel client is for untar, rm -r or fs_mark: each call is sent once the
// previous reply is in. Run it with -cpu 1,2. ctxsw/op counts the context
// switches of the whole process (client included) per call.
func BenchmarkSerial(b *testing.B) {
	for _, bc := range []struct {
		name string
		proc uint32
	}{{"null", 0}, {"change", 1}} {
		b.Run(bc.name, func(b *testing.B) {
			h := serialHandler{getattrHandler}
			_, addr := startServer(b, Options{Log: logr.Discard()}, func(s *Server) {
				s.Register(testProg, testVers, h, func(proc uint32) bool { return proc == 0 })
			})
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			args := xdr.NewWriter(nil)
			args.Opaque(bytes.Repeat([]byte{1}, 32))
			cred := authSysBody("bench", 1, 1)
			var msgs [][]byte
			for i := range 256 {
				msgs = append(msgs, frame(callMsg(uint32(i), 2, testProg, testVers, bc.proc, AuthSys, cred, args.Bytes())))
			}
			buf := make([]byte, 4096)
			call := func(i int) {
				if _, err := c.Write(msgs[i%len(msgs)]); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf[:4]); err != nil {
					b.Fatal(err)
				}
				n := int(binary.BigEndian.Uint32(buf) &^ lastFrag)
				if _, err := io.ReadFull(c, buf[:n]); err != nil {
					b.Fatal(err)
				}
			}
			for i := range 300 { // past the DRC's entries of earlier runs
				call(i)
			}
			var ru0, ru1 unix.Rusage
			unix.Getrusage(unix.RUSAGE_SELF, &ru0)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				call(i)
			}
			b.StopTimer()
			unix.Getrusage(unix.RUSAGE_SELF, &ru1)
			sw := ru1.Nvcsw + ru1.Nivcsw - ru0.Nvcsw - ru0.Nivcsw
			b.ReportMetric(float64(sw)/float64(b.N), "ctxsw/op")
		})
	}
}
