package rpc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrRecordTooLarge is returned when a record's fragments add up to more
// than the allowed maximum.
var ErrRecordTooLarge = errors.New("rpc: record too large")

const lastFrag = 1 << 31

// firstChunk bounds how much is set aside for a fragment before its bytes
// arrive, so a peer that claims a big record and sends nothing pins little.
const firstChunk = 64 << 10

// recordReader reassembles RFC 5531 record-marked records (section 11).
type recordReader struct {
	r    io.Reader
	max  int
	acct recordAccount // may be nil
	hdr  [4]byte
}

// recordAccount follows the records a recordReader assembles.
type recordAccount interface {
	// begin is called when the first byte of a record has been read.
	begin()
	// grow is called before a record's buffer grows by n bytes (first:
	// its first chunk); an error abandons the record.
	grow(n int, first bool) error
}

// next reads one whole record into a pooled buffer (release with putBuf).
// It returns io.EOF only at a record boundary; a stream that ends inside a
// record gives io.ErrUnexpectedEOF. The size is checked against max before
// any fragment body is read, and the buffer grows only as data arrives.
func (rr *recordReader) next() ([]byte, error) {
	var buf []byte
	fail := func(err error) ([]byte, error) {
		if buf != nil {
			putBuf(buf)
		}
		return nil, err
	}
	for first := true; ; first = false {
		k := 0
		if first && rr.acct != nil {
			if _, err := io.ReadFull(rr.r, rr.hdr[:1]); err != nil {
				return fail(err)
			}
			rr.acct.begin()
			k = 1
		}
		if _, err := io.ReadFull(rr.r, rr.hdr[k:]); err != nil {
			if err == io.EOF && (!first || k > 0) {
				err = io.ErrUnexpectedEOF
			}
			return fail(err)
		}
		h := binary.BigEndian.Uint32(rr.hdr[:])
		n := int(h &^ lastFrag)
		if n > rr.max-len(buf) {
			return fail(fmt.Errorf("%w: %d+%d bytes, limit %d", ErrRecordTooLarge, len(buf), n, rr.max))
		}
		for n > 0 {
			if cap(buf) == len(buf) {
				want := len(buf) + min(n, firstChunk)
				if cap(buf) >= firstChunk {
					want = max(want, min(2*cap(buf), rr.max)) // big records: amortise the copies
				}
				want = bufCap(want)
				if rr.acct != nil {
					if err := rr.acct.grow(want-cap(buf), buf == nil); err != nil {
						return fail(err)
					}
				}
				nb := getBuf(want)[:len(buf)]
				copy(nb, buf)
				if buf != nil {
					putBuf(buf)
				}
				buf = nb
			}
			k := min(n, cap(buf)-len(buf))
			m, err := io.ReadFull(rr.r, buf[len(buf):len(buf)+k])
			buf = buf[:len(buf)+m]
			if err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return fail(err)
			}
			n -= k
		}
		if h&lastFrag != 0 {
			if buf == nil {
				buf = getBuf(0)
			}
			return buf, nil
		}
	}
}
