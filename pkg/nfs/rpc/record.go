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
	r   io.Reader
	max int
	hdr [4]byte
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
		if _, err := io.ReadFull(rr.r, rr.hdr[:]); err != nil {
			if err == io.EOF && !first {
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
				if buf == nil {
					buf = getBuf(want)
				} else {
					buf = growBuf(buf, want-len(buf))
				}
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
