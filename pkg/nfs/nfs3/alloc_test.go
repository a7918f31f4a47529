package nfs3

import (
	"context"
	"runtime"
	"testing"

	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
)

// A 1 MiB READ must go from the filesystem straight into the reply buffer:
// the handler itself allocates (close to) nothing.
func TestReadDoesNotCopy(t *testing.T) {
	e := newEnv(t)
	f := e.create(e.root, "big")
	data := make([]byte, 1<<20)
	e.write(f, 0, data)
	c := &rpc.Call{Prog: Program, Vers: Version, Proc: ProcRead, Cred: e.cred, Args: readArgs(f, 0, 1<<20)}
	buf := make([]byte, 0, 1<<20+4096)
	var w xdr.Writer
	ctx := context.Background()
	serve := func() {
		w.Reset(buf)
		if st := e.h.Serve(ctx, c, &w); st != rpc.Success || w.Len() < 1<<20 {
			t.Fatalf("READ: %d, %d bytes", st, w.Len())
		}
	}
	serve()
	const runs = 50
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		serve()
	}
	runtime.ReadMemStats(&after)
	perOp := (after.TotalAlloc - before.TotalAlloc) / runs
	allocs := (after.Mallocs - before.Mallocs) / runs
	t.Logf("1 MiB READ: %d bytes, %d allocations per call (memfs included)", perOp, allocs)
	if perOp >= 64<<10 {
		t.Errorf("1 MiB READ allocates %d bytes per call", perOp)
	}
	if &w.Bytes()[0] != &buf[:1][0] {
		t.Error("reply did not stay in the caller's buffer")
	}
}

func BenchmarkGetAttr(b *testing.B) {
	e := newEnv(b)
	f := e.create(e.root, "f")
	c := &rpc.Call{Prog: Program, Vers: Version, Proc: ProcGetAttr, Cred: e.cred, Args: enc(func(w *xdr.Writer) { w.Opaque(f) })}
	buf := make([]byte, 0, 512)
	var w xdr.Writer
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		w.Reset(buf)
		e.h.Serve(ctx, c, &w)
	}
}

func BenchmarkRead1MiB(b *testing.B) {
	e := newEnv(b)
	f := e.create(e.root, "big")
	e.write(f, 0, make([]byte, 1<<20))
	c := &rpc.Call{Prog: Program, Vers: Version, Proc: ProcRead, Cred: e.cred, Args: readArgs(f, 0, 1<<20)}
	buf := make([]byte, 0, 1<<20+4096)
	var w xdr.Writer
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(1 << 20)
	for b.Loop() {
		w.Reset(buf)
		e.h.Serve(ctx, c, &w)
	}
}
