package rpc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
)

func TestRecordReassembly(t *testing.T) {
	msg := bytes.Repeat([]byte("0123456789abcdef"), 10000) // 160 KB, spans size classes
	in := append(frame(msg, 1, 0, 70000, 5), frame([]byte("next"))...)
	rr := recordReader{r: bytes.NewReader(in), max: 1 << 20}
	got, err := rr.next()
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("first record: %d bytes, %v", len(got), err)
	}
	putBuf(got)
	got, err = rr.next()
	if err != nil || string(got) != "next" {
		t.Fatalf("second record: %q, %v", got, err)
	}
	if _, err := rr.next(); err != io.EOF {
		t.Fatalf("at end: %v, want io.EOF", err)
	}
}

func TestRecordTooLarge(t *testing.T) {
	for _, in := range [][]byte{
		words(0x7FFFFFFF),                        // one non-final fragment claiming 2 GiB
		words(0xFFFFFFFF),                        // same, final
		append(words(100), make([]byte, 100)...), // fragments adding up past the limit
	} {
		// The claimed body never arrives: the reader must refuse on the
		// header alone, without allocating the claimed size.
		in = append(in, words(lastFrag|100)...)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		rr := recordReader{r: bytes.NewReader(in), max: 150}
		_, err := rr.next()
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrRecordTooLarge) {
			t.Errorf("header %x: err = %v, want ErrRecordTooLarge", in[:4], err)
		}
		if d := after.TotalAlloc - before.TotalAlloc; d > 256<<10 {
			t.Errorf("header %x: allocated %d bytes", in[:4], d)
		}
	}
}

func TestRecordGrowsAsBytesArrive(t *testing.T) {
	// A record claiming 1 MiB whose body stops after a few bytes must not
	// make the reader set aside 1 MiB.
	in := append(words(lastFrag|1<<20), make([]byte, 10)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rr := recordReader{r: bytes.NewReader(in), max: DefaultMaxRecordSize}
	_, err := rr.next()
	runtime.ReadMemStats(&after)
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 256<<10 {
		t.Errorf("allocated %d bytes for 10 bytes of data", d)
	}
}

func TestRecordTruncated(t *testing.T) {
	for _, in := range [][]byte{
		words(5)[:2],                 // cut inside the first header
		words(5, 1),                  // non-final fragment, then EOF inside the body
		append(words(4), 1, 2, 3, 4), // non-final fragment, then EOF
		append(append(words(4), 1, 2, 3, 4), 0, 0),  // ... then half a header
		append(words(lastFrag|8), 1, 2, 3, 4, 5, 6), // final fragment cut short
	} {
		rr := recordReader{r: bytes.NewReader(in), max: 100}
		if _, err := rr.next(); err != io.ErrUnexpectedEOF {
			t.Errorf("%x: err = %v, want io.ErrUnexpectedEOF", in, err)
		}
	}
}

// refRecords is a straightforward reference decoder for the fuzzer.
func refRecords(in []byte, max int) (recs [][]byte, ok bool) {
	var cur []byte
	for len(in) > 0 {
		if len(in) < 4 {
			return recs, false
		}
		h := binary.BigEndian.Uint32(in)
		n := int(h &^ lastFrag)
		in = in[4:]
		if len(cur)+n > max || n > len(in) {
			return recs, false
		}
		cur = append(cur, in[:n]...)
		in = in[n:]
		if h&lastFrag != 0 {
			recs = append(recs, append([]byte{}, cur...))
			cur = nil
		} else if len(in) == 0 {
			return recs, false
		}
	}
	return recs, true
}

func FuzzRecordReader(f *testing.F) {
	f.Add(frame([]byte("hello, world")))
	f.Add(frame(bytes.Repeat([]byte{7}, 300), 1, 0, 17))
	f.Add(append(frame([]byte("ab")), frame([]byte("cdef"), 2)...))
	f.Add(words(0x7FFFFFFF))
	f.Add(words(0x80000000))
	f.Add(append(words(3), 1, 2, 3))
	const max = 4096
	f.Fuzz(func(t *testing.T, in []byte) {
		want, wantOK := refRecords(in, max)
		rr := recordReader{r: bytes.NewReader(in), max: max}
		for i := 0; ; i++ {
			rec, err := rr.next()
			if err != nil {
				if i != len(want) {
					t.Fatalf("stopped after %d records with %v, reference decoded %d", i, err, len(want))
				}
				if wantOK != (err == io.EOF) {
					t.Fatalf("end: %v, reference ok=%v", err, wantOK)
				}
				return
			}
			if i >= len(want) || !bytes.Equal(rec, want[i]) {
				t.Fatalf("record %d differs from reference", i)
			}
			if len(rec) > max {
				t.Fatalf("record of %d bytes over limit", len(rec))
			}
			putBuf(rec)
		}
	})
}
