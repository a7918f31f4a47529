// Package xdr is a hand-written XDR (RFC 4506) codec over byte slices.
//
// It exists so that the hot paths of the NFS server never reflect and never
// allocate per field: a Reader walks a request in place (opaque values alias
// the request buffer), and a Writer appends to a caller-owned buffer that the
// RPC layer pools.
package xdr

import (
	"encoding/binary"
	"errors"
)

// ErrShort is returned when a value runs past the end of the input.
var ErrShort = errors.New("xdr: input too short")

// ErrTooLong is returned when a variable-length value exceeds its limit.
var ErrTooLong = errors.New("xdr: value longer than allowed")

// Reader decodes XDR values from a byte slice. The first error sticks: later
// reads return zero values, so decoders can read a whole structure and check
// Err once.
type Reader struct {
	buf []byte
	off int
	err error
}

// NewReader returns a Reader over b.
func NewReader(b []byte) *Reader { return &Reader{buf: b} }

// Reset makes r read b from the start.
func (r *Reader) Reset(b []byte) { *r = Reader{buf: b} }

// Err returns the first error met.
func (r *Reader) Err() error { return r.err }

// Remaining returns the unread bytes.
func (r *Reader) Remaining() []byte { return r.buf[r.off:] }

// Offset returns how many bytes were consumed.
func (r *Reader) Offset() int { return r.off }

func (r *Reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.buf)-r.off < n {
		r.err = ErrShort
		return nil
	}
	b := r.buf[r.off : r.off+n]
	r.off += n
	return b
}

// Uint32 reads an unsigned int.
func (r *Reader) Uint32() uint32 {
	b := r.take(4)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

// Int32 reads a signed int.
func (r *Reader) Int32() int32 { return int32(r.Uint32()) }

// Uint64 reads an unsigned hyper.
func (r *Reader) Uint64() uint64 {
	b := r.take(8)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// Bool reads a bool; any value other than 0 or 1 is an error.
func (r *Reader) Bool() bool {
	v := r.Uint32()
	if v > 1 && r.err == nil {
		r.err = errors.New("xdr: bool out of range")
	}
	return v == 1
}

// Fixed reads n bytes of fixed-length opaque data plus padding. The result
// aliases the input.
func (r *Reader) Fixed(n int) []byte {
	b := r.take(pad(n))
	if b == nil {
		return nil
	}
	return b[:n]
}

// Opaque reads variable-length opaque data of at most max bytes. The length is
// checked before anything is allocated or sliced, so a hostile length cannot
// make the caller allocate. The result aliases the input.
func (r *Reader) Opaque(max int) []byte {
	n := r.Uint32()
	if r.err != nil {
		return nil
	}
	if uint64(n) > uint64(max) {
		r.err = ErrTooLong
		return nil
	}
	return r.Fixed(int(n))
}

// String reads a string of at most max bytes. It copies, since strings
// outlive the request buffer.
func (r *Reader) String(max int) string { return string(r.Opaque(max)) }

// Writer appends XDR values to a buffer.
type Writer struct {
	buf  []byte
	grow GrowFunc
}

// GrowFunc returns a buffer that holds b's contents (len(b) bytes) and has
// room for at least n more. It lets an owner of pooled buffers swap in a
// bigger pooled buffer instead of letting append allocate one.
type GrowFunc func(b []byte, n int) []byte

// SetGrow makes w call f whenever it needs more capacity. Nil restores the
// default (allocate, doubling). As with append, slices obtained earlier
// from Reserve or Bytes stop aliasing w's buffer once it grows: keep
// offsets, not slices, across writes.
func (w *Writer) SetGrow(f GrowFunc) { w.grow = f }

// ensure makes room for n more bytes.
func (w *Writer) ensure(n int) {
	if cap(w.buf)-len(w.buf) < n {
		w.more(n)
	}
}

func (w *Writer) more(n int) {
	if w.grow != nil {
		w.buf = w.grow(w.buf, n)
		return
	}
	nb := make([]byte, len(w.buf), 2*cap(w.buf)+n)
	copy(nb, w.buf)
	w.buf = nb
}

// NewWriter returns a Writer appending to b[:0].
func NewWriter(b []byte) *Writer { return &Writer{buf: b[:0]} }

// Reset makes w append to b[:0].
func (w *Writer) Reset(b []byte) { w.buf = b[:0] }

// Bytes returns everything written.
func (w *Writer) Bytes() []byte { return w.buf }

// Len returns the number of bytes written.
func (w *Writer) Len() int { return len(w.buf) }

// Truncate discards everything after the first n bytes.
func (w *Writer) Truncate(n int) { w.buf = w.buf[:n] }

// Uint32 writes an unsigned int.
func (w *Writer) Uint32(v uint32) {
	w.ensure(4)
	w.buf = binary.BigEndian.AppendUint32(w.buf, v)
}

// Int32 writes a signed int.
func (w *Writer) Int32(v int32) { w.Uint32(uint32(v)) }

// Uint64 writes an unsigned hyper.
func (w *Writer) Uint64(v uint64) {
	w.ensure(8)
	w.buf = binary.BigEndian.AppendUint64(w.buf, v)
}

// Bool writes a bool.
func (w *Writer) Bool(v bool) {
	if v {
		w.Uint32(1)
	} else {
		w.Uint32(0)
	}
}

// Fixed writes fixed-length opaque data plus padding.
func (w *Writer) Fixed(b []byte) {
	w.ensure(pad(len(b)))
	w.buf = append(w.buf, b...)
	w.buf = append(w.buf, zeros[:pad(len(b))-len(b)]...)
}

// Opaque writes variable-length opaque data.
func (w *Writer) Opaque(b []byte) {
	w.Uint32(uint32(len(b)))
	w.Fixed(b)
}

// String writes a string.
func (w *Writer) String(s string) {
	w.Uint32(uint32(len(s)))
	w.ensure(pad(len(s)))
	w.buf = append(w.buf, s...)
	w.buf = append(w.buf, zeros[:pad(len(s))-len(s)]...)
}

// Reserve appends room for n bytes of opaque data (with its padding zeroed)
// and returns the n-byte slice for the caller to fill in place. This is how a
// READ reply gets file data without a second copy: read straight into it.
func (w *Writer) Reserve(n int) []byte {
	start := len(w.buf)
	need := pad(n)
	w.ensure(need)
	w.buf = w.buf[:start+need]
	clear(w.buf[start+n : start+need])
	return w.buf[start : start+n]
}

// PatchUint32 overwrites the 4 bytes at off, for lengths known only later.
func (w *Writer) PatchUint32(off int, v uint32) {
	binary.BigEndian.PutUint32(w.buf[off:off+4], v)
}

var zeros [4]byte

func pad(n int) int { return (n + 3) &^ 3 }
