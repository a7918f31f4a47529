package xdr

import (
	"bytes"
	"errors"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	w := NewWriter(nil)
	w.Uint32(0xdeadbeef)
	w.Int32(-2)
	w.Uint64(1<<40 + 5)
	w.Bool(true)
	w.Bool(false)
	w.Fixed([]byte{1, 2, 3})
	w.Opaque([]byte{4, 5, 6, 7, 8})
	w.String("hello")
	w.Opaque(nil)

	want := []byte{
		0xde, 0xad, 0xbe, 0xef,
		0xff, 0xff, 0xff, 0xfe,
		0, 0, 1, 0, 0, 0, 0, 5,
		0, 0, 0, 1,
		0, 0, 0, 0,
		1, 2, 3, 0,
		0, 0, 0, 5, 4, 5, 6, 7, 8, 0, 0, 0,
		0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o', 0, 0, 0,
		0, 0, 0, 0,
	}
	if !bytes.Equal(w.Bytes(), want) {
		t.Fatalf("encoding:\n got %x\nwant %x", w.Bytes(), want)
	}

	r := NewReader(w.Bytes())
	if v := r.Uint32(); v != 0xdeadbeef {
		t.Errorf("Uint32 = %#x", v)
	}
	if v := r.Int32(); v != -2 {
		t.Errorf("Int32 = %d", v)
	}
	if v := r.Uint64(); v != 1<<40+5 {
		t.Errorf("Uint64 = %d", v)
	}
	if !r.Bool() || r.Bool() {
		t.Errorf("Bool round trip failed")
	}
	if v := r.Fixed(3); !bytes.Equal(v, []byte{1, 2, 3}) {
		t.Errorf("Fixed = %x", v)
	}
	if v := r.Opaque(5); !bytes.Equal(v, []byte{4, 5, 6, 7, 8}) {
		t.Errorf("Opaque = %x", v)
	}
	if v := r.String(5); v != "hello" {
		t.Errorf("String = %q", v)
	}
	if v := r.Opaque(0); len(v) != 0 {
		t.Errorf("empty Opaque = %x", v)
	}
	if r.Err() != nil || len(r.Remaining()) != 0 || r.Offset() != len(want) {
		t.Fatalf("err %v, %d bytes left, offset %d", r.Err(), len(r.Remaining()), r.Offset())
	}
}

func TestShort(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		read func(r *Reader)
	}{
		{"uint32", []byte{0, 0, 1}, func(r *Reader) { r.Uint32() }},
		{"uint64", []byte{0, 0, 0, 0, 1}, func(r *Reader) { r.Uint64() }},
		{"opaque body", []byte{0, 0, 0, 8, 1, 2, 3, 4}, func(r *Reader) { r.Opaque(100) }},
		{"opaque padding", []byte{0, 0, 0, 1, 9}, func(r *Reader) { r.Opaque(100) }},
		{"fixed padding", []byte{1, 2, 3}, func(r *Reader) { r.Fixed(3) }},
	} {
		r := NewReader(tc.in)
		tc.read(r)
		if !errors.Is(r.Err(), ErrShort) {
			t.Errorf("%s: err = %v, want ErrShort", tc.name, r.Err())
		}
		// The error sticks and later reads return zero values.
		if v := r.Uint32(); v != 0 || !errors.Is(r.Err(), ErrShort) {
			t.Errorf("%s: read after error = %d, %v", tc.name, v, r.Err())
		}
	}
}

func TestTooLongBeforeAllocation(t *testing.T) {
	// A length of 0xFFFFFFF0 with no data behind it must fail on the limit,
	// without allocating or slicing anything of that size.
	in := []byte{0xff, 0xff, 0xff, 0xf0}
	allocs := testing.AllocsPerRun(100, func() {
		r := NewReader(in)
		if b := r.Opaque(64); b != nil || !errors.Is(r.Err(), ErrTooLong) {
			t.Fatalf("Opaque = %v, %v; want nil, ErrTooLong", b, r.Err())
		}
	})
	if allocs != 0 {
		t.Errorf("hostile length allocated %v times", allocs)
	}
	r := NewReader([]byte{0, 0, 0, 5, 'a', 'b', 'c', 'd', 'e', 0, 0, 0})
	if s := r.String(4); s != "" || !errors.Is(r.Err(), ErrTooLong) {
		t.Errorf("String over limit = %q, %v", s, r.Err())
	}
}

func TestBoolRange(t *testing.T) {
	r := NewReader([]byte{0, 0, 0, 2})
	r.Bool()
	if r.Err() == nil {
		t.Fatal("bool 2 accepted")
	}
}

func TestPaddingZeroed(t *testing.T) {
	// Writers reuse buffers: padding must be written as zeros, not left
	// over from earlier contents.
	buf := bytes.Repeat([]byte{0xaa}, 64)
	w := NewWriter(buf)
	w.Opaque([]byte{1})
	w.String("ab")
	res := w.Reserve(5)
	copy(res, "12345")
	want := []byte{0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 2, 'a', 'b', 0, 0, '1', '2', '3', '4', '5', 0, 0, 0}
	if !bytes.Equal(w.Bytes(), want) {
		t.Fatalf("got %x\nwant %x", w.Bytes(), want)
	}
	// Non-zero padding on input is tolerated (RFC 4506 says it is zero,
	// but a reader has nothing to gain from rejecting it).
	r := NewReader([]byte{0, 0, 0, 1, 7, 9, 9, 9})
	if b := r.Opaque(4); !bytes.Equal(b, []byte{7}) || r.Err() != nil {
		t.Errorf("Opaque = %x, %v", b, r.Err())
	}
}

func TestReserveInPlace(t *testing.T) {
	buf := make([]byte, 0, 1<<20+64)
	w := NewWriter(buf)
	w.Uint32(1)
	data := w.Reserve(1 << 20)
	if &data[0] != &buf[:5][4] {
		t.Fatal("Reserve did not hand out the writer's own buffer")
	}
	data[0], data[len(data)-1] = 'x', 'y'
	if w.Len() != 4+1<<20 {
		t.Fatalf("Len = %d", w.Len())
	}
	w.PatchUint32(0, 42)
	r := NewReader(w.Bytes())
	if r.Uint32() != 42 {
		t.Fatal("PatchUint32 lost")
	}
	if b := r.Fixed(1 << 20); b[0] != 'x' || b[len(b)-1] != 'y' {
		t.Fatal("reserved data lost")
	}

	// Reserve beyond capacity grows, keeping what was written.
	w = NewWriter(make([]byte, 0, 8))
	w.Uint32(7)
	copy(w.Reserve(10), "abcdefghij")
	if w.Len() != 16 || !bytes.Equal(w.Bytes(), []byte{0, 0, 0, 7, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 0, 0}) {
		t.Fatalf("after growth: %x", w.Bytes())
	}
	w.Truncate(4)
	if w.Len() != 4 {
		t.Fatalf("Truncate: Len = %d", w.Len())
	}
}

func TestGrowFunc(t *testing.T) {
	var calls int
	w := NewWriter(make([]byte, 0, 4))
	w.SetGrow(func(b []byte, n int) []byte {
		calls++
		nb := make([]byte, len(b), len(b)+n+100)
		copy(nb, b)
		return nb
	})
	w.Uint32(1) // fits
	if calls != 0 {
		t.Fatalf("grow called with room to spare")
	}
	w.Uint64(2)
	w.Opaque([]byte("abc"))
	w.String("de")
	copy(w.Reserve(3), "xyz")
	if calls != 1 {
		t.Errorf("grow called %d times, want 1", calls)
	}
	r := NewReader(w.Bytes())
	if r.Uint32() != 1 || r.Uint64() != 2 || string(r.Opaque(3)) != "abc" || r.String(2) != "de" || string(r.Fixed(3)) != "xyz" || r.Err() != nil {
		t.Fatalf("decode after growth failed: %x", w.Bytes())
	}
	// Every append path goes through the hook, so an owner of pooled
	// buffers never loses its buffer to append's own reallocation.
	w = NewWriter(make([]byte, 0))
	w.SetGrow(func(b []byte, n int) []byte {
		nb := make([]byte, len(b), len(b)+n)
		copy(nb, b)
		return nb
	})
	w.Uint32(1)
	w.Int32(2)
	w.Uint64(3)
	w.Bool(true)
	w.Fixed([]byte{1})
	w.Opaque([]byte{1, 2})
	w.String("s")
	w.Reserve(1)
	if cap(w.Bytes()) != len(w.Bytes()) {
		t.Errorf("append grew on its own: len %d cap %d", len(w.Bytes()), cap(w.Bytes()))
	}
}
