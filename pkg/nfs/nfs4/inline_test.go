package nfs4

import (
	"testing"

	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
	"github.com/hangar-csi/hangar/pkg/vfs"
)

// Only COMPOUNDs of everyday ops that never wait for a flush may run on
// the connection's reader.
func TestInline(t *testing.T) {
	type op func(w *xdr.Writer)
	seq := func(w *xdr.Writer) { w.Uint32(OpSequence); w.Fixed(make([]byte, 32)) }
	putfh := func(w *xdr.Writer) { w.Uint32(OpPutFH); w.Opaque(make([]byte, 40)) }
	getattr := func(w *xdr.Writer) { w.Uint32(OpGetAttr); w.Uint32(2); w.Uint32(1); w.Uint32(2) }
	lookup := func(w *xdr.Writer) { w.Uint32(OpLookup); w.Opaque(make([]byte, 200)) }
	write := func(stable vfs.Stable) op {
		return func(w *xdr.Writer) {
			w.Uint32(OpWrite)
			w.Fixed(make([]byte, 16))
			w.Uint64(0)
			w.Uint32(uint32(stable))
			w.Opaque(make([]byte, 4096))
		}
	}
	commit := func(w *xdr.Writer) { w.Uint32(OpCommit); w.Uint64(0); w.Uint32(0) }
	open := func(w *xdr.Writer) { w.Uint32(OpOpen); w.Fixed(make([]byte, 64)) }
	compound := func(ops ...op) []byte {
		w := xdr.NewWriter(nil)
		w.Opaque([]byte("tag"))
		w.Uint32(1)
		w.Uint32(uint32(len(ops)))
		for _, o := range ops {
			o(w)
		}
		return w.Bytes()
	}
	h := &Handler{}
	for _, c := range []struct {
		name string
		proc uint32
		args []byte
		want bool
	}{
		{"null", ProcNull, nil, true},
		{"getattr", ProcCompound, compound(seq, putfh, getattr), true},
		{"lookup", ProcCompound, compound(seq, putfh, lookup, getattr), true},
		{"unstable write", ProcCompound, compound(seq, putfh, write(vfs.Unstable), getattr), false}, // may wait for a frozen volume
		{"file_sync write", ProcCompound, compound(seq, putfh, write(vfs.FileSync), getattr), false},
		{"commit", ProcCompound, compound(seq, putfh, commit), false},
		{"commit after getattr", ProcCompound, compound(seq, putfh, getattr, commit), false},
		{"open", ProcCompound, compound(seq, putfh, open), false},
		{"truncated", ProcCompound, compound(seq, putfh, getattr)[:50], false},
		{"no args", ProcCompound, nil, false},
		{"more ops than sent", ProcCompound, func() []byte { b := compound(seq); b[15] = 3; return b }(), false},
		{"unknown proc", 7, nil, false},
	} {
		if got := h.Inline(c.proc, c.args); got != c.want {
			t.Errorf("%s: Inline = %v, want %v", c.name, got, c.want)
		}
	}
}
