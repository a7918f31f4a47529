package nfs4

import (
	"math"

	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
)

// Byte-range locks: LOCK, LOCKT, LOCKU (RFC 8881 sections 18.10-18.12).
// Locks are advisory, as POSIX locks are: READ and WRITE do not check them.
// Blocking lock types are served as non-blocking ones (the client polls);
// no CB_NOTIFY_LOCK is sent.

// nfs_lock_type4.
const (
	readLT   = 1
	writeLT  = 2
	readwLT  = 3
	writewLT = 4
)

// lockRange turns a lock type, offset and length into a LockRange,
// or the status that refuses them.
func lockRange(typ uint32, off, length uint64) (LockRange, uint32) {
	var r LockRange
	switch typ {
	case readLT, readwLT:
		r.Type = ReadLock
	case writeLT, writewLT:
		r.Type = WriteLock
	default:
		return r, ErrInval
	}
	return r, rangeOf(&r, off, length)
}

// rangeOf sets r's bounds from an offset and a length (all ones: to the
// end of the file).
func rangeOf(r *LockRange, off, length uint64) uint32 {
	switch {
	case length == 0:
		return ErrInval
	case length == math.MaxUint64:
		r.Start, r.End = off, math.MaxUint64
	case length-1 > math.MaxUint64-off:
		return ErrInval // past the largest offset
	default:
		r.Start, r.End = off, off+length-1
	}
	return OK
}

func encodeDenied(w *xdr.Writer, d *LockDenied) {
	w.Uint64(d.Range.Start)
	if d.Range.End == math.MaxUint64 {
		w.Uint64(math.MaxUint64)
	} else {
		w.Uint64(d.Range.End - d.Range.Start + 1)
	}
	if d.Range.Type == WriteLock {
		w.Uint32(writeLT)
	} else {
		w.Uint32(readLT)
	}
	w.Uint64(d.ClientID)
	w.String(d.Owner)
}

func (h *Handler) lock(x *compound) uint32 {
	r := &x.r
	typ := r.Uint32()
	reclaim := r.Bool()
	off := r.Uint64()
	length := r.Uint64()
	req := LockRequest{}
	req.NewOwner = r.Bool()
	if req.NewOwner {
		r.Uint32() // open seqid: unused in NFSv4.1
		req.Open = decodeStateid(r)
		r.Uint32() // lock seqid
		r.Uint64() // clientid: the session's
		req.Owner = r.Opaque(maxOpaque)
	} else {
		req.LockSID = decodeStateid(r)
		r.Uint32() // lock seqid
	}
	if x.bad() {
		return fail(x.w, ErrBadXDR)
	}
	vh, st := x.curVol(ErrIsDir)
	if st != OK {
		return fail(x.w, st)
	}
	if st := h.lockGrace(x, reclaim); st != OK {
		return fail(x.w, st)
	}
	if req.Range, st = lockRange(typ, off, length); st != OK {
		return fail(x.w, st)
	}
	if req.NewOwner {
		req.Open, st = x.resolve(req.Open)
	} else {
		req.LockSID, st = x.resolve(req.LockSID)
	}
	if st != OK {
		return fail(x.w, st)
	}
	req.File = string(vh)
	sid, denied, st := h.states.Lock(x.clientID(), &req)
	if st == ErrDenied && h.reapExpired() {
		sid, denied, st = h.states.Lock(x.clientID(), &req)
	}
	x.w.Uint32(st)
	switch st {
	case OK:
		encodeStateid(x.w, sid)
		x.curSID, x.hasCurSID = sid, true
	case ErrDenied:
		encodeDenied(x.w, denied)
	}
	return st
}

func (h *Handler) lockt(x *compound) uint32 {
	r := &x.r
	typ := r.Uint32()
	off := r.Uint64()
	length := r.Uint64()
	r.Uint64() // clientid: the session's
	owner := r.Opaque(maxOpaque)
	if x.bad() {
		return fail(x.w, ErrBadXDR)
	}
	vh, st := x.curVol(ErrIsDir)
	if st != OK {
		return fail(x.w, st)
	}
	lr, st := lockRange(typ, off, length)
	if st != OK {
		return fail(x.w, st)
	}
	if st := h.graceStatus(); st != OK {
		return fail(x.w, st) // the holder may not have reclaimed yet
	}
	denied, st := h.states.LockTest(x.clientID(), owner, string(vh), lr)
	if st == ErrDenied && h.reapExpired() {
		denied, st = h.states.LockTest(x.clientID(), owner, string(vh), lr)
	}
	x.w.Uint32(st)
	if st == ErrDenied {
		encodeDenied(x.w, denied)
	}
	return st
}

func (h *Handler) locku(x *compound) uint32 {
	r := &x.r
	typ := r.Uint32()
	r.Uint32() // seqid
	sid := decodeStateid(r)
	off := r.Uint64()
	length := r.Uint64()
	if x.bad() {
		return fail(x.w, ErrBadXDR)
	}
	vh, st := x.curVol(ErrIsDir)
	if st != OK {
		return fail(x.w, st)
	}
	lr, st := lockRange(typ, off, length)
	if st != OK {
		return fail(x.w, st)
	}
	if sid, st = x.resolve(sid); st != OK {
		return fail(x.w, st)
	}
	nsid, st := h.states.Unlock(x.clientID(), sid, string(vh), lr)
	if st != OK {
		return fail(x.w, st)
	}
	x.w.Uint32(OK)
	encodeStateid(x.w, nsid)
	x.curSID, x.hasCurSID = nsid, true
	return OK
}
