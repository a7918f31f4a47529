package nfs4

import (
	"context"
	"errors"
	"syscall"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

// The NFSv4.2 operations the Linux client uses on files with holes (RFC
// 7862 sections 15.1, 15.4, 15.11): ALLOCATE (fallocate), DEALLOCATE
// (punch a hole) and SEEK (lseek SEEK_DATA / SEEK_HOLE). They exist in
// minor version 2 only (in 4.1 their numbers are OP_ILLEGAL), and over an
// FS that is no vfs.Sparse, or a disk that cannot, they are NOTSUPP: the
// client then stops sending them.

// Seek targets (data_content4).
const (
	contentData = 0
	contentHole = 1
)

func (h *Handler) allocate(x *compound) uint32 {
	return h.fallocate(x, vfs.Sparse.Allocate)
}

func (h *Handler) deallocate(x *compound) uint32 {
	return h.fallocate(x, vfs.Sparse.Deallocate)
}

// fallocate serves ALLOCATE and DEALLOCATE, which share their arguments
// (stateid, offset, length) and their one-status result. Both change the
// file, so the stateid is checked as for WRITE.
func (h *Handler) fallocate(x *compound, do func(vfs.Sparse, context.Context, vfs.Cred, vfs.Handle, uint64, uint64) (vfs.Wcc, error)) uint32 {
	sid := decodeStateid(&x.r)
	off := x.r.Uint64()
	length := x.r.Uint64()
	if x.bad() {
		return fail(x.w, ErrBadXDR)
	}
	sp, ok := h.fs.(vfs.Sparse)
	if !ok {
		return fail(x.w, ErrNotSupp)
	}
	vh, st := h.checkStateid(x, sid, ShareAccessWrite)
	if st != OK {
		return fail(x.w, st)
	}
	if _, err := do(sp, x.ctx, x.cred, vh, off, length); err != nil {
		return h.failErr(x, err)
	}
	return fail(x.w, OK)
}

func (h *Handler) seek(x *compound) uint32 {
	sid := decodeStateid(&x.r)
	off := x.r.Uint64()
	what := x.r.Uint32()
	if x.bad() {
		return fail(x.w, ErrBadXDR)
	}
	sp, ok := h.fs.(vfs.Sparse)
	if !ok {
		return fail(x.w, ErrNotSupp)
	}
	if what != contentData && what != contentHole {
		return fail(x.w, ErrUnionNotSupp)
	}
	vh, st := h.checkStateid(x, sid, ShareAccessRead)
	if st != OK {
		return fail(x.w, st)
	}
	pos, a, err := sp.Seek(x.ctx, x.cred, vh, off, what == contentHole)
	eof := false
	switch {
	case errors.Is(err, syscall.ENXIO) && a != nil && off < a.Size:
		// No data after off: found nothing before the end of file, which
		// is NFS4_OK with sr_eof (RFC 7862 section 15.11.3); NXIO is for
		// an offset past the end.
		pos, eof = a.Size, true
	case err != nil:
		return h.failErr(x, err)
	case a != nil && pos >= a.Size:
		eof = true // the hole at the end of file
	}
	w := x.w
	w.Uint32(OK)
	w.Bool(eof)
	w.Uint64(pos)
	return OK
}
