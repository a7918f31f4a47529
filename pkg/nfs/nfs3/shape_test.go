package nfs3

import (
	"testing"

	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
	"github.com/hangar-csi/hangar/pkg/vfs"
)

// TestReplyShapes decodes one successful reply of every procedure with the
// RFC 1813 layout and requires it to consume the reply exactly.
func TestReplyShapes(t *testing.T) {
	e := newEnv(t)
	f := e.create(e.root, "f")
	e.write(f, 0, []byte("content"))
	var zero vfs.Verifier
	postOp := func(r *xdr.Reader) {
		if DecodePostOpAttr(r) == nil {
			t.Error("post_op_attr absent")
		}
	}
	wcc := func(r *xdr.Reader) {
		w := DecodeWcc(r)
		if w.Before == nil || w.After == nil {
			t.Error("wcc_data incomplete")
		}
	}
	newObj := func(r *xdr.Reader) {
		if len(DecodePostOpFH(r)) == 0 {
			t.Error("no handle")
		}
		postOp(r)
		wcc(r)
	}
	slink := func() vfs.Handle {
		r := e.ok(ProcSymlink, enc(func(w *xdr.Writer) {
			dirop(e.root, "sl")(w)
			EncodeSattr(w, &vfs.SetAttr{})
			w.String("tgt")
		}))
		h := append(vfs.Handle(nil), DecodePostOpFH(r)...)
		postOp(r)
		wcc(r)
		return h
	}()
	e.ok(ProcMkdir, enc(func(w *xdr.Writer) { dirop(e.root, "d")(w); EncodeSattr(w, &vfs.SetAttr{}) }))
	e.create(e.root, "gone")
	cases := []struct {
		proc   uint32
		args   []byte
		decode func(r *xdr.Reader)
	}{
		{ProcGetAttr, enc(func(w *xdr.Writer) { w.Opaque(f) }), func(r *xdr.Reader) { DecodeFattr(r) }},
		{ProcSetAttr, enc(func(w *xdr.Writer) { w.Opaque(f); EncodeSattr(w, &vfs.SetAttr{}); w.Uint32(0) }), wcc},
		{ProcLookup, enc(dirop(e.root, "f")), func(r *xdr.Reader) { r.Opaque(64); postOp(r); postOp(r) }},
		{ProcAccess, enc(func(w *xdr.Writer) { w.Opaque(f); w.Uint32(1) }), func(r *xdr.Reader) { postOp(r); r.Uint32() }},
		{ProcReadlink, enc(func(w *xdr.Writer) { w.Opaque(slink) }), func(r *xdr.Reader) {
			postOp(r)
			if s := r.String(MaxPath); s != "tgt" {
				t.Errorf("READLINK %q", s)
			}
		}},
		{ProcRead, readArgs(f, 0, 100), func(r *xdr.Reader) { postOp(r); r.Uint32(); r.Bool(); r.Opaque(100) }},
		{ProcWrite, enc(func(w *xdr.Writer) {
			w.Opaque(f)
			w.Uint64(0)
			w.Uint32(1)
			w.Uint32(0)
			w.Opaque([]byte("C"))
		}), func(r *xdr.Reader) { wcc(r); r.Uint32(); r.Uint32(); r.Fixed(8) }},
		{ProcCreate, enc(func(w *xdr.Writer) { dirop(e.root, "c")(w); w.Uint32(0); EncodeSattr(w, &vfs.SetAttr{}) }), newObj},
		{ProcMkdir, enc(func(w *xdr.Writer) { dirop(e.root, "m")(w); EncodeSattr(w, &vfs.SetAttr{}) }), newObj},
		{ProcMknod, enc(func(w *xdr.Writer) {
			dirop(e.root, "p")(w)
			w.Uint32(uint32(vfs.TypeFIFO))
			EncodeSattr(w, &vfs.SetAttr{})
		}), newObj},
		{ProcRemove, enc(dirop(e.root, "gone")), wcc},
		{ProcRmdir, enc(dirop(e.root, "d")), wcc},
		{ProcRename, enc(func(w *xdr.Writer) { dirop(e.root, "c")(w); dirop(e.root, "c2")(w) }), func(r *xdr.Reader) { wcc(r); wcc(r) }},
		{ProcLink, enc(func(w *xdr.Writer) { w.Opaque(f); dirop(e.root, "hard")(w) }), func(r *xdr.Reader) { postOp(r); wcc(r) }},
		{ProcReadDir, enc(func(w *xdr.Writer) { w.Opaque(e.root); w.Uint64(0); w.Fixed(zero[:]); w.Uint32(8192) }), func(r *xdr.Reader) {
			postOp(r)
			r.Fixed(8)
			for r.Bool() {
				r.Uint64()
				r.String(MaxName)
				r.Uint64()
			}
			if !r.Bool() {
				t.Error("READDIR: no eof")
			}
		}},
		{ProcReadDirPlus, enc(func(w *xdr.Writer) {
			w.Opaque(e.root)
			w.Uint64(0)
			w.Fixed(zero[:])
			w.Uint32(8192)
			w.Uint32(8192)
		}), func(r *xdr.Reader) {
			postOp(r)
			r.Fixed(8)
			for r.Bool() {
				r.Uint64()
				r.String(MaxName)
				r.Uint64()
				postOp(r)
				if len(DecodePostOpFH(r)) == 0 {
					t.Error("READDIRPLUS entry without handle")
				}
			}
			if !r.Bool() {
				t.Error("READDIRPLUS: no eof")
			}
		}},
		{ProcCommit, enc(func(w *xdr.Writer) { w.Opaque(f); w.Uint64(0); w.Uint32(0) }), func(r *xdr.Reader) { wcc(r); r.Fixed(8) }},
	}
	for _, c := range cases {
		r := e.ok(c.proc, c.args)
		c.decode(r)
		if r.Err() != nil || len(r.Remaining()) != 0 {
			t.Errorf("%s: %v, %d bytes left over", ProcName(c.proc), r.Err(), len(r.Remaining()))
		}
	}
}
