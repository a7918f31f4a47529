package nfs4

import (
	"math"
	"strconv"
	"time"

	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
	"github.com/hangar-csi/hangar/pkg/vfs"
)

// bitmap is a bitmap4 of attribute numbers below 96, which covers every
// attribute this server knows. Longer bitmaps decode with the extra bits
// dropped (a server ignores attributes it does not know).
type bitmap [3]uint32

func (b bitmap) has(n int) bool { return n < 96 && b[n/32]&(1<<(n%32)) != 0 }
func (b *bitmap) set(n int)     { b[n/32] |= 1 << (n % 32) }
func (b bitmap) and(o bitmap) bitmap {
	return bitmap{b[0] & o[0], b[1] & o[1], b[2] & o[2]}
}
func (b bitmap) andNot(o bitmap) bitmap {
	return bitmap{b[0] &^ o[0], b[1] &^ o[1], b[2] &^ o[2]}
}
func (b bitmap) empty() bool { return b[0]|b[1]|b[2] == 0 }

func bits(ns ...int) bitmap {
	var b bitmap
	for _, n := range ns {
		b.set(n)
	}
	return b
}

// decodeBitmap reads a bitmap4. ok is false if it has more than
// maxBitmap words (BADXDR); extra reports bits set beyond the ones this
// server can represent (96 and up): GETATTR ignores those, VERIFY and
// SETATTR refuse them.
func decodeBitmap(r *xdr.Reader) (b bitmap, extra, ok bool) {
	n := r.Uint32()
	if n > maxBitmap {
		return b, false, false
	}
	for i := range n {
		v := r.Uint32()
		if i < 3 {
			b[i] = v
		} else if v != 0 {
			extra = true
		}
	}
	return b, extra, r.Err() == nil
}

// encodeBitmap writes b without trailing zero words.
func encodeBitmap(w *xdr.Writer, b bitmap) {
	n := 3
	for n > 0 && b[n-1] == 0 {
		n--
	}
	w.Uint32(uint32(n))
	for i := range n {
		w.Uint32(b[i])
	}
}

// stateid is a stateid4.
type stateid struct {
	seq   uint32
	other [otherLen]byte
}

func decodeStateid(r *xdr.Reader) stateid {
	var s stateid
	s.seq = r.Uint32()
	copy(s.other[:], r.Fixed(otherLen))
	return s
}

func encodeStateid(w *xdr.Writer, s stateid) {
	w.Uint32(s.seq)
	w.Fixed(s.other[:])
}

// Special stateids (RFC 8881 section 8.2.3).
var (
	anonStateid    = stateid{}
	bypassStateid  = stateid{seq: math.MaxUint32, other: [otherLen]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	currentStateid = stateid{seq: 1}
	invalidStateid = stateid{seq: math.MaxUint32}
)

func (s stateid) special() bool { return s == anonStateid || s == bypassStateid }

// nfstime4 is signed seconds and nanoseconds.
func encodeTime(w *xdr.Writer, t time.Time) {
	if t.IsZero() {
		w.Uint64(0)
		w.Uint32(0)
		return
	}
	w.Uint64(uint64(t.Unix()))
	w.Uint32(uint32(t.Nanosecond()))
}

// decodeTime reads an nfstime4; ok is false for nanoseconds out of range.
func decodeTime(r *xdr.Reader) (time.Time, bool) {
	s := int64(r.Uint64())
	ns := r.Uint32()
	if ns >= 1e9 {
		return time.Time{}, false
	}
	return time.Unix(s, int64(ns)), true
}

// changeOf derives the change attribute from the ctime, as servers without
// a change counter do: every modification moves ctime forward in
// nanoseconds.
func changeOf(ctime time.Time) uint64 {
	if ctime.IsZero() {
		return 0
	}
	return uint64(ctime.UnixNano())
}

func encodeChangeInfo(w *xdr.Writer, wcc *vfs.Wcc) {
	w.Bool(wcc.Atomic && wcc.Before != nil && wcc.After != nil)
	var before, after uint64
	if wcc.Before != nil {
		before = changeOf(wcc.Before.Ctime)
	}
	if wcc.After != nil {
		after = changeOf(wcc.After.Ctime)
	}
	w.Uint64(before)
	w.Uint64(after)
}

// Owners travel as numeric strings, which is what the Linux client sends
// and expects with AUTH_SYS (its idmapper is off for AUTH_SYS mounts).
func ownerString(id uint32) string { return strconv.FormatUint(uint64(id), 10) }

func parseOwner(b []byte) (uint32, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	if v > math.MaxUint32 {
		return 0, false
	}
	return uint32(v), true
}
