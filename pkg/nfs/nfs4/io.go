package nfs4

import (
	"encoding/binary"
	"errors"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
	"github.com/hangar-csi/hangar/pkg/vfs"
)

// Opens, I/O and directory changes (RFC 8881 section 18).

// curVol returns the current filehandle if it names an object in a volume,
// or the status for its absence (pseudoStatus for the pseudo-filesystem).
func (x *compound) curVol(pseudoStatus uint32) (vfs.Handle, uint32) {
	if x.cur.empty() {
		return nil, ErrNoFileHandle
	}
	cur := x.cur.bytes()
	if isPseudo(cur) {
		return nil, pseudoStatus
	}
	return vol(cur), OK
}

// checkStateid validates sid for I/O of kind want on the current file and
// returns that file.
func (h *Handler) checkStateid(x *compound, sid stateid, want uint32) (vfs.Handle, uint32) {
	vh, st := x.curVol(ErrIsDir)
	if st != OK {
		return nil, st
	}
	if sid == currentStateid {
		if !x.hasCurSID {
			return nil, ErrBadStateID
		}
		sid = x.curSID
	}
	st = h.states.Check(x.clientID(), sid, vh, want)
	if st == ErrLocked && h.reapExpired() {
		st = h.states.Check(x.clientID(), sid, vh, want)
	}
	return vh, st
}

// resolve replaces the current-stateid special value by the current
// stateid (RFC 8881 section 16.2.3.1.2).
func (x *compound) resolve(sid stateid) (stateid, uint32) {
	if sid != currentStateid {
		return sid, OK
	}
	if !x.hasCurSID {
		return sid, ErrBadStateID
	}
	return x.curSID, OK
}

// maxData bounds the data of a READ or READDIR reply by the session's
// maximum response size, less room for the other results of the COMPOUND.
func (x *compound) maxData(limit int) int {
	if x.sess != nil {
		limit = min(limit, int(x.sess.fore.maxResp)-replyOverhead)
	}
	return max(limit, 0)
}

const replyOverhead = 1024

func (h *Handler) open(x *compound) uint32 {
	r := &x.r
	r.Uint32() // seqid: unused in NFSv4.1
	access := r.Uint32()
	deny := r.Uint32()
	r.Uint64() // clientid: the session says who the client is
	owner := r.Opaque(maxOpaque)
	create := false
	var how uint32
	sa := &x.openSA
	*sa = setAttrs{}
	var verf vfs.Verifier
	switch r.Uint32() {
	case 0: // OPEN4_NOCREATE
	case 1: // OPEN4_CREATE
		create = true
		how = r.Uint32()
		switch how {
		case createUnchecked, createGuarded:
			if st := decodeSetAttrs(r, sa); st != OK {
				return fail(x.w, st)
			}
		case createExclusive:
			copy(verf[:], r.Fixed(8))
		case createExclusive1:
			copy(verf[:], r.Fixed(8))
			if st := decodeSetAttrs(r, sa); st != OK {
				return fail(x.w, st)
			}
		default:
			return fail(x.w, ErrBadXDR)
		}
	default:
		return fail(x.w, ErrBadXDR)
	}
	claim := r.Uint32()
	var name []byte
	switch claim {
	case claimNull, claimDelegatePrev:
		name = r.Opaque(MaxPath)
	case claimPrevious:
		r.Uint32()
	case claimDelegateCur:
		decodeStateid(r)
		name = r.Opaque(MaxPath)
	case claimFH, claimDelegPrevFH:
	case claimDelegCurFH:
		decodeStateid(r)
	default:
		return fail(x.w, ErrBadXDR)
	}
	if x.bad() {
		return fail(x.w, ErrBadXDR)
	}
	acc := access & 0xff // the rest are delegation wishes, never granted
	if acc == 0 || acc > ShareAccessBoth || deny > ShareDenyBoth {
		return fail(x.w, ErrInval)
	}
	if x.cur.empty() {
		return fail(x.w, ErrNoFileHandle)
	}
	switch claim {
	case claimNull, claimFH:
		if st := h.graceStatus(); st != OK {
			return fail(x.w, st)
		}
	case claimPrevious:
		return h.openReclaim(x, owner, acc, deny)
	default:
		return fail(x.w, ErrNotSupp) // no delegations are granted
	}
	fh := &x.openFH
	fh.clear()
	var (
		a       vfs.Attr
		dirWcc  vfs.Wcc
		created bool
		attrset bitmap
		trunc   bool // an existing file opened with UNCHECKED and a size
	)
	cur := x.cur.bytes()
	if claim == claimFH {
		if create {
			return fail(x.w, ErrInval)
		}
		if isPseudo(cur) {
			return fail(x.w, ErrIsDir)
		}
		*fh = x.cur
		var err error
		if a, err = h.fs.GetAttr(x.ctx, vol(cur)); err != nil {
			return h.failErr(x, err)
		}
	} else {
		if st := nameStatus(name); st != OK {
			return fail(x.w, st)
		}
		if isPseudo(cur) {
			if create {
				return fail(x.w, ErrROFS)
			}
			if st := h.pseudoLookup(x, string(cur[1:]), string(name), fh); st != OK {
				return fail(x.w, st)
			}
			return fail(x.w, ErrIsDir) // a volume root or pseudo directory
		}
		dir := vol(cur)
		var st uint32
		if !create || how == createUnchecked {
			// UNCHECKED opens what is there or creates it: a create first,
			// as an untar's files are new, then a LOOKUP if it failed (the
			// name exists, or the caller may not create but may open).
			// The create is guarded so that "created", which skips the
			// permission check, is never true of a file someone else made
			// meanwhile.
			for try := 0; ; try++ {
				if create {
					st = h.openCreate(x, dir, name, vfs.CreateGuarded, sa, verf, fh, &a, &dirWcc)
					if st == OK {
						created, attrset = true, sa.set
						break
					}
				}
				nh, na, dirAttr, err := h.fs.Lookup(x.ctx, x.cred, dir, string(name))
				if err == nil {
					st = OK
					fh.setVol(nh)
					a = na
					dirWcc = unchanged(dirAttr)
					if create && sa.sa.Size != nil {
						trunc = true
						attrset = bits(AttrSize)
					}
					break
				}
				if !create || !errors.Is(err, syscall.ENOENT) {
					return fail(x.w, h.notDir(x, cur, err))
				}
				if st != ErrExist || try > 0 {
					break // the create's error; or removed again since
				}
				// Removed between the create and the LOOKUP: once more.
			}
		} else {
			switch how {
			case createGuarded:
				st = h.openCreate(x, dir, name, vfs.CreateGuarded, sa, verf, fh, &a, &dirWcc)
			case createExclusive:
				st = h.openCreate(x, dir, name, vfs.CreateExclusive, &setAttrs{}, verf, fh, &a, &dirWcc)
			case createExclusive1:
				if !sa.set.andNot(exclCreatAttrs).empty() {
					return fail(x.w, ErrInval)
				}
				st = h.openCreate(x, dir, name, vfs.CreateExclusive, sa, verf, fh, &a, &dirWcc)
			}
			created, attrset = true, sa.set
		}
		if st != OK {
			return fail(x.w, st)
		}
	}
	if st := openableType(a.Type); st != OK {
		return fail(x.w, st)
	}
	vh := vol(fh.bytes())
	var granted uint32
	if !created {
		// The creator of a file may open it whatever its mode says; anyone
		// else needs the permissions.
		var st uint32
		if granted, st = h.openAccess(x, vh, acc); st != OK {
			return fail(x.w, st)
		}
	}
	sid, st := h.states.Open(x.clientID(), owner, string(vh), acc, deny)
	if st == ErrShareDenied && h.reapExpired() {
		sid, st = h.states.Open(x.clientID(), owner, string(vh), acc, deny)
	}
	if st != OK {
		return fail(x.w, st)
	}
	if trunc {
		// Truncate only once the share reservation is held, so that an
		// open denied by another's DENY_WRITE changes nothing.
		if _, err := h.fs.SetAttr(x.ctx, x.cred, vh, vfs.SetAttr{Size: sa.sa.Size}, nil); err != nil {
			h.states.Close(x.clientID(), sid, vh)
			return h.failErr(x, err)
		}
	}
	flags := uint32(openResultLockTypePOSIX) // byte-range locks have POSIX semantics
	h.holdOpen(x, sid, vh)                   // never PRESERVE_UNLINKED: see hold.go
	encodeOpenOK(x.w, sid, &dirWcc, flags, attrset)
	x.cur = *fh
	x.curSID, x.hasCurSID = sid, true
	x.curAccess, x.hasCurAccess = granted, !created && !trunc
	if !trunc {
		x.setCurAttr(&a) // nothing changed the file since
	}
	return OK
}

// openableType is OPEN's answer for a file of type t: only regular files
// open.
func openableType(t vfs.FileType) uint32 {
	switch t {
	case vfs.TypeRegular:
		return OK
	case vfs.TypeDirectory:
		return ErrIsDir
	case vfs.TypeSymlink:
		return ErrSymlink
	default:
		return ErrWrongType
	}
}

// openAccess checks that the caller may open vh for the share access acc.
// Execute counts as read so that binaries with mode 0111 can be run. It
// returns every access bit the caller has, for an ACCESS that follows.
func (h *Handler) openAccess(x *compound, vh vfs.Handle, acc uint32) (uint32, uint32) {
	granted, _, err := h.fs.Access(x.ctx, x.cred, vh, allAccess)
	if err != nil {
		return 0, h.status(err)
	}
	if acc&ShareAccessRead != 0 && granted&(vfs.AccessRead|vfs.AccessExecute) == 0 ||
		acc&ShareAccessWrite != 0 && granted&vfs.AccessModify == 0 {
		return 0, ErrAccess
	}
	return granted, OK
}

// allAccess is every ACCESS bit this server knows.
const allAccess = vfs.AccessRead | vfs.AccessLookup | vfs.AccessModify | vfs.AccessExtend | vfs.AccessDelete | vfs.AccessExecute

// encodeOpenOK writes an OPEN4resok.
func encodeOpenOK(w *xdr.Writer, sid stateid, dirWcc *vfs.Wcc, flags uint32, attrset bitmap) {
	w.Uint32(OK)
	encodeStateid(w, sid)
	encodeChangeInfo(w, dirWcc)
	w.Uint32(flags)
	encodeBitmap(w, attrset)
	w.Uint32(0) // OPEN_DELEGATE_NONE
}

// unchanged is the change_info of a directory an operation did not change.
func unchanged(dirAttr *vfs.Attr) vfs.Wcc {
	if dirAttr == nil {
		return vfs.Wcc{}
	}
	// One reading serves as both: atomic, as nothing changed.
	return vfs.Wcc{Before: &vfs.WccAttr{Size: dirAttr.Size, Mtime: dirAttr.Mtime, Ctime: dirAttr.Ctime}, After: dirAttr, Atomic: true}
}

func (h *Handler) openCreate(x *compound, dir vfs.Handle, name []byte, how vfs.CreateHow, sa *setAttrs, verf vfs.Verifier,
	fh *fhBuf, a *vfs.Attr, dirWcc *vfs.Wcc) uint32 {
	nh, na, wcc, err := h.fs.Create(x.ctx, x.cred, dir, string(name), how, sa.sa, verf)
	if err != nil {
		return h.notDir(x, x.cur.bytes(), err)
	}
	fh.setVol(nh)
	*dirWcc = wcc
	if na != nil {
		*a = *na
		return OK
	}
	got, err := h.fs.GetAttr(x.ctx, nh)
	if err != nil {
		return h.status(err)
	}
	*a = got
	return OK
}

func (h *Handler) close(x *compound) uint32 {
	x.r.Uint32() // seqid
	sid := decodeStateid(&x.r)
	if x.bad() {
		return fail(x.w, ErrBadXDR)
	}
	vh, st := x.curVol(ErrBadStateID)
	if st != OK {
		return fail(x.w, st)
	}
	if sid, st = x.resolve(sid); st != OK {
		return fail(x.w, st)
	}
	if st := h.states.Close(x.clientID(), sid, vh); st != OK {
		return fail(x.w, st)
	}
	x.w.Uint32(OK)
	encodeStateid(x.w, invalidStateid) // RFC 8881 section 18.2.4
	return OK
}

func (h *Handler) openDowngrade(x *compound) uint32 {
	sid := decodeStateid(&x.r)
	x.r.Uint32() // seqid
	access := x.r.Uint32()
	deny := x.r.Uint32()
	if x.bad() {
		return fail(x.w, ErrBadXDR)
	}
	vh, st := x.curVol(ErrBadStateID)
	if st != OK {
		return fail(x.w, st)
	}
	if sid, st = x.resolve(sid); st != OK {
		return fail(x.w, st)
	}
	nsid, st := h.states.Downgrade(x.clientID(), sid, string(vh), access&0xff, deny)
	if st != OK {
		return fail(x.w, st)
	}
	x.w.Uint32(OK)
	encodeStateid(x.w, nsid)
	x.curSID, x.hasCurSID = nsid, true
	return OK
}

func (h *Handler) testStateID(x *compound) uint32 {
	n := x.r.Uint32()
	if x.bad() || n > maxTestIDs || uint64(len(x.r.Remaining())) < uint64(n)*16 {
		return fail(x.w, ErrBadXDR)
	}
	x.w.Uint32(OK)
	x.w.Uint32(n)
	for range n {
		x.w.Uint32(h.states.Test(x.clientID(), decodeStateid(&x.r)))
	}
	return OK
}

func (h *Handler) freeStateID(x *compound) uint32 {
	sid := decodeStateid(&x.r)
	if x.bad() {
		return fail(x.w, ErrBadXDR)
	}
	if sid, st := x.resolve(sid); st != OK {
		return fail(x.w, st)
	} else {
		return fail(x.w, h.states.Free(x.clientID(), sid))
	}
}

func (h *Handler) read(x *compound) uint32 {
	sid := decodeStateid(&x.r)
	off := x.r.Uint64()
	count := x.r.Uint32()
	if x.bad() {
		return fail(x.w, ErrBadXDR)
	}
	vh, st := h.checkStateid(x, sid, ShareAccessRead)
	if st != OK {
		return fail(x.w, st)
	}
	n := min(int(count), x.maxData(MaxRead))
	if h.fr != nil && n >= fileReadMin && x.i == x.nops-1 {
		if st, ok := h.readFile(x, vh, off, n); ok {
			return st
		}
	}
	if err := x.rc.ReserveReply(x.ctx, n); err != nil {
		return fail(x.w, ErrDelay) // the connection is closing
	}
	w := x.w
	start := w.Len()
	w.Uint32(OK)
	w.Uint32(0) // eof
	w.Uint32(0) // data length
	dataOff := w.Len()
	buf := w.Reserve(n)
	got, eof, _, err := h.fs.Read(x.ctx, x.cred, vh, off, buf)
	if err == nil && (got < 0 || got > len(buf)) {
		h.log.Error(nil, "filesystem read returned a bad count", "n", got, "want", len(buf))
		got, eof = 0, false
	}
	if err != nil {
		w.Truncate(start)
		return h.failErr(x, err)
	}
	if eof {
		w.PatchUint32(start+4, 1)
	}
	w.PatchUint32(start+8, uint32(got))
	end := dataOff + (got+3)&^3
	clear(w.Bytes()[dataOff+got : end])
	w.Truncate(end)
	return OK
}

// fileReadMin is the smallest READ served from a file descriptor rather
// than copied into the reply (as in NFSv3).
const fileReadMin = 64 << 10

// readFile serves a READ that ends its COMPOUND by attaching the file, so
// the data goes from the page cache to the socket. It reports false,
// having written nothing, if the filesystem declines.
func (h *Handler) readFile(x *compound, vh vfs.Handle, off uint64, n int) (uint32, bool) {
	fd, got, eof, _, err := h.fr.ReadFile(x.ctx, x.cred, vh, off, uint32(n))
	if errors.Is(err, vfs.ErrNotSupp) {
		return 0, false
	}
	if err != nil {
		return h.failErr(x, err), true
	}
	if got < 0 || got > n || off > 1<<63-1 {
		h.log.Error(nil, "filesystem ReadFile returned a bad count", "n", got, "want", n)
		unix.Close(fd)
		return fail(x.w, ErrServerFault), true
	}
	w := x.w
	w.Uint32(OK)
	w.Bool(eof)
	w.Uint32(uint32(got))
	if got == 0 {
		unix.Close(fd)
		return OK, true
	}
	x.rc.AttachFile(fd, int64(off), got, shortRead)
	x.attached = true
	return OK, true
}

// shortRead fixes a READ reply whose file held only n bytes from the
// offset when they were read (it was truncated since ReadFile looked): the
// reply ends with eof and the data length (which the rpc server patches);
// the read then reached the end of the file.
func shortRead(reply []byte, n int) {
	binary.BigEndian.PutUint32(reply[len(reply)-8:], 1)
}

func (h *Handler) write(x *compound) uint32 {
	sid := decodeStateid(&x.r)
	off := x.r.Uint64()
	stable := vfs.Stable(x.r.Uint32())
	data := x.r.Opaque(MaxWrite)
	if x.bad() || stable > vfs.FileSync {
		return fail(x.w, ErrBadXDR)
	}
	vh, st := h.checkStateid(x, sid, ShareAccessWrite)
	if st != OK {
		return fail(x.w, st)
	}
	n, committed, wcc, err := h.fs.Write(x.ctx, x.cred, vh, off, data, stable)
	if err != nil {
		return h.failErr(x, err)
	}
	x.setCurAttr(wcc.After)
	w := x.w
	w.Uint32(OK)
	w.Uint32(uint32(n))
	w.Uint32(uint32(committed))
	verf := h.fs.WriteVerifier()
	w.Fixed(verf[:])
	return OK
}

func (h *Handler) commit(x *compound) uint32 {
	off := x.r.Uint64()
	count := x.r.Uint32()
	if x.bad() {
		return fail(x.w, ErrBadXDR)
	}
	vh, st := x.curVol(ErrIsDir)
	if st != OK {
		return fail(x.w, st)
	}
	if _, err := h.fs.Commit(x.ctx, x.cred, vh, off, count); err != nil {
		return h.failErr(x, err)
	}
	x.w.Uint32(OK)
	verf := h.fs.WriteVerifier()
	x.w.Fixed(verf[:])
	return OK
}

func (h *Handler) create(x *compound) uint32 {
	r := &x.r
	t := r.Uint32()
	var target []byte
	var major, minor uint32
	switch t {
	case NF4Lnk:
		target = r.Opaque(maxAttrVals)
	case NF4Blk, NF4Chr:
		major = r.Uint32()
		minor = r.Uint32()
	case NF4Sock, NF4FIFO, NF4Dir:
	default:
		return fail(x.w, ErrBadType)
	}
	name := r.Opaque(MaxPath)
	var sa setAttrs
	if st := decodeSetAttrs(r, &sa); st != OK {
		return fail(x.w, st)
	}
	if x.bad() {
		return fail(x.w, ErrBadXDR)
	}
	dir, st := x.curVol(ErrROFS)
	if st != OK {
		return fail(x.w, st)
	}
	if st := nameStatus(name); st != OK {
		return fail(x.w, st)
	}
	var (
		nh  vfs.Handle
		na  *vfs.Attr
		wcc vfs.Wcc
		err error
	)
	switch t {
	case NF4Dir:
		nh, na, wcc, err = h.fs.Mkdir(x.ctx, x.cred, dir, string(name), sa.sa)
	case NF4Lnk:
		switch {
		case len(target) == 0:
			return fail(x.w, ErrInval)
		case len(target) > MaxPath:
			return fail(x.w, ErrNameTooLong)
		}
		nh, na, wcc, err = h.fs.Symlink(x.ctx, x.cred, dir, string(name), string(target), sa.sa)
	default:
		nh, na, wcc, err = h.fs.Mknod(x.ctx, x.cred, dir, string(name), vfs.FileType(t), sa.sa, major, minor)
	}
	if err != nil {
		return fail(x.w, h.notDir(x, x.cur.bytes(), err))
	}
	w := x.w
	w.Uint32(OK)
	encodeChangeInfo(w, &wcc)
	encodeBitmap(w, sa.set)
	x.cur.setVol(nh)
	x.hasCurSID = false
	x.setCurAttr(na)
	return OK
}

func (h *Handler) remove(x *compound) uint32 {
	name := x.r.Opaque(MaxPath)
	if x.bad() {
		return fail(x.w, ErrBadXDR)
	}
	dir, st := x.curVol(ErrROFS)
	if st != OK {
		return fail(x.w, st)
	}
	if st := nameStatus(name); st != OK {
		return fail(x.w, st)
	}
	if st := h.graceStatus(); st != OK {
		return fail(x.w, st) // the file may be one a client is about to reclaim
	}
	// A file's REMOVE, then a directory's: EISDIR says which it is, with
	// no LOOKUP first.
	wcc, err := h.fs.Remove(x.ctx, x.cred, dir, string(name))
	if errors.Is(err, syscall.EISDIR) {
		wcc, err = h.fs.Rmdir(x.ctx, x.cred, dir, string(name))
	}
	if err != nil {
		return fail(x.w, h.notDir(x, x.cur.bytes(), err))
	}
	x.w.Uint32(OK)
	encodeChangeInfo(x.w, &wcc)
	x.setCurAttr(wcc.After) // the directory's, after the removal was made durable
	return OK
}

// savedVol is the saved filehandle of a two-handle operation.
func (x *compound) savedVol() (vfs.Handle, uint32) {
	if x.saved.empty() {
		return nil, ErrNoFileHandle
	}
	s := x.saved.bytes()
	if isPseudo(s) {
		return nil, ErrROFS
	}
	return vol(s), OK
}

func (h *Handler) rename(x *compound) uint32 {
	oldName := x.r.Opaque(MaxPath)
	newName := x.r.Opaque(MaxPath)
	if x.bad() {
		return fail(x.w, ErrBadXDR)
	}
	from, st := x.savedVol()
	if st != OK {
		return fail(x.w, st)
	}
	to, st := x.curVol(ErrROFS)
	if st != OK {
		return fail(x.w, st)
	}
	if st := nameStatus(oldName); st != OK {
		return fail(x.w, st)
	}
	if st := nameStatus(newName); st != OK {
		return fail(x.w, st)
	}
	if st := h.graceStatus(); st != OK {
		return fail(x.w, st) // renaming over a file a client is about to reclaim
	}
	fromWcc, toWcc, err := h.fs.Rename(x.ctx, x.cred, from, string(oldName), to, string(newName))
	if err != nil {
		return h.failErr(x, err)
	}
	x.w.Uint32(OK)
	encodeChangeInfo(x.w, &fromWcc)
	encodeChangeInfo(x.w, &toWcc)
	return OK
}

func (h *Handler) link(x *compound) uint32 {
	name := x.r.Opaque(MaxPath)
	if x.bad() {
		return fail(x.w, ErrBadXDR)
	}
	file, st := x.savedVol()
	if st != OK {
		return fail(x.w, st)
	}
	dir, st := x.curVol(ErrROFS)
	if st != OK {
		return fail(x.w, st)
	}
	if st := nameStatus(name); st != OK {
		return fail(x.w, st)
	}
	_, wcc, err := h.fs.Link(x.ctx, x.cred, file, dir, string(name))
	if err != nil {
		return h.failErr(x, err)
	}
	x.w.Uint32(OK)
	encodeChangeInfo(x.w, &wcc)
	return OK
}
