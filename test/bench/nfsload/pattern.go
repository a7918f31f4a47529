package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
)

const (
	pageSize = 4096
	baseSize = 1 << 20
)

// pattern is the content of every file the load generator writes: a 1 MiB
// random block repeated, with each 4 KiB page stamped with its own file
// offset, so a page read from the wrong place, a stale page or a torn one is
// caught by a plain comparison and no expected copy is ever built.
type pattern struct {
	base  []byte
	magic uint64
}

func newPattern(seed uint64) *pattern {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	p := &pattern{base: make([]byte, baseSize), magic: rng.Uint64()}
	for i := 0; i < baseSize; i += 8 {
		binary.LittleEndian.PutUint64(p.base[i:], rng.Uint64())
	}
	return p
}

// fill writes the pattern for [off, off+len(buf)); off and len(buf) are
// multiples of pageSize.
func (p *pattern) fill(buf []byte, off uint64) {
	for i := 0; i < len(buf); i += pageSize {
		po := off + uint64(i)
		copy(buf[i:i+pageSize], p.base[po%baseSize:])
		binary.BigEndian.PutUint64(buf[i:], po^p.magic)
	}
}

// verifyError means the server returned data the load generator did not
// write: the one failure that makes a run fail whatever else happened.
type verifyError struct{ msg string }

func (e *verifyError) Error() string { return "VERIFY: " + e.msg }

// check compares buf with the pattern at off.
func (p *pattern) check(buf []byte, off uint64) error {
	if off%pageSize != 0 {
		return &verifyError{fmt.Sprintf("unaligned check at %d", off)}
	}
	for i := 0; i < len(buf); i += pageSize {
		po := off + uint64(i)
		end := min(i+pageSize, len(buf))
		pg := buf[i:end]
		want := p.base[po%baseSize:][:len(pg)]
		var hdr [8]byte
		binary.BigEndian.PutUint64(hdr[:], po^p.magic)
		n := min(8, len(pg))
		if !bytes.Equal(pg[:n], hdr[:n]) || !bytes.Equal(pg[n:], want[n:]) {
			got := uint64(0)
			if len(pg) >= 8 {
				got = binary.BigEndian.Uint64(pg) ^ p.magic
			}
			return &verifyError{fmt.Sprintf("page at offset %d differs (its stamp says offset %d)", po, got)}
		}
	}
	return nil
}
