package rpc

import (
	"bytes"
	"context"
	"testing"

	"github.com/go-logr/logr"
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
