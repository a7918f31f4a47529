package nfs3

import (
	"context"
	"encoding/binary"
	"errors"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
	"github.com/hangar-csi/hangar/pkg/vfs"
)

// Anonymous identity for AUTH_NONE callers.
const (
	AnonUID = 65534
	AnonGID = 65534
)

// Handler serves NFSv3 over a vfs.FS. It is an rpc.Handler and safe for
// concurrent use; it keeps no per-call state of its own.
type Handler struct {
	fs  vfs.FS
	fr  vfs.FileReader // fs, if it hands out files for READ
	log logr.Logger
}

// NewHandler returns a Handler serving fs.
func NewHandler(fs vfs.FS, log logr.Logger) *Handler {
	fr, _ := fs.(vfs.FileReader)
	return &Handler{fs: fs, fr: fr, log: log}
}

// fileReadMin is the smallest READ served from a file descriptor rather
// than copied into the reply: below it, duplicating and closing the
// descriptor costs more than the copy it saves.
const fileReadMin = 64 << 10

// call is one request being served: its decoder, the caller's identity and
// the reply writer.
type call struct {
	ctx   context.Context
	rc    *rpc.Call
	r     xdr.Reader
	w     *xdr.Writer
	cred  vfs.Cred
	proc  uint32
	start int // w.Len() before the results, for rewriting them on error
}

// Inline implements rpc.Inliner: calls that change nothing are quick.
// Changes are not: they may wait for a frozen volume (a snapshot being
// taken) or for a directory fsync, and the node's client sends every
// volume's calls over one connection, so the calls behind them would wait
// too.
func (h *Handler) Inline(proc uint32, args []byte) bool {
	switch proc {
	case ProcNull, ProcGetAttr, ProcLookup, ProcAccess, ProcReadlink, ProcRead,
		ProcReadDir, ProcReadDirPlus, ProcFSStat, ProcFSInfo, ProcPathConf:
		return true
	}
	return false
}

// Serve implements rpc.Handler.
func (h *Handler) Serve(ctx context.Context, c *rpc.Call, w *xdr.Writer) rpc.AcceptStat {
	if c.Proc >= numProcs {
		return rpc.ProcUnavail
	}
	x := call{ctx: ctx, rc: c, w: w, proc: c.Proc, start: w.Len()}
	x.r.Reset(c.Args)
	x.cred = Cred(&c.Cred)
	switch c.Proc {
	case ProcNull:
		return rpc.Success
	case ProcGetAttr:
		return h.getattr(&x)
	case ProcSetAttr:
		return h.setattr(&x)
	case ProcLookup:
		return h.lookup(&x)
	case ProcAccess:
		return h.access(&x)
	case ProcReadlink:
		return h.readlink(&x)
	case ProcRead:
		return h.read(&x)
	case ProcWrite:
		return h.write(&x)
	case ProcCreate:
		return h.create(&x)
	case ProcMkdir:
		return h.mkdir(&x)
	case ProcSymlink:
		return h.symlink(&x)
	case ProcMknod:
		return h.mknod(&x)
	case ProcRemove, ProcRmdir:
		return h.remove(&x)
	case ProcRename:
		return h.rename(&x)
	case ProcLink:
		return h.link(&x)
	case ProcReadDir:
		return h.readdir(&x)
	case ProcReadDirPlus:
		return h.readdirplus(&x)
	case ProcFSStat:
		return h.fsstat(&x)
	case ProcFSInfo:
		return h.fsinfo(&x)
	case ProcPathConf:
		return h.pathconf(&x)
	case ProcCommit:
		return h.commit(&x)
	}
	return rpc.ProcUnavail
}

// Cred maps an RPC credential to the filesystem's: AUTH_NONE callers are
// the anonymous user. The groups slice aliases c.
func Cred(c *rpc.Cred) vfs.Cred {
	if c.Flavor == rpc.AuthNone {
		return vfs.Cred{UID: AnonUID, GID: AnonGID}
	}
	return vfs.Cred{UID: c.UID, GID: c.GID, Groups: c.GIDs}
}

// status maps err and logs the ones nobody expected.
func (h *Handler) status(x *call, err error) uint32 {
	s, ok := StatusOf(err)
	if !ok {
		h.log.Error(err, "unexpected filesystem error", "proc", ProcName(x.proc))
	}
	return s
}

func (x *call) handle() vfs.Handle {
	// nfs_fh3 is opaque<NFS3_FHSIZE>: a longer one does not decode.
	return vfs.Handle(x.r.Opaque(vfs.MaxHandleSize))
}

// dirop reads a diropargs3. The name aliases the request until checked.
func (x *call) dirop() (vfs.Handle, []byte) {
	dir := x.handle()
	name := x.r.Opaque(maxOpaque)
	return dir, name
}

// Name checks. dots is the status for "." and ".." where they cannot be
// the target of the operation (0: allowed).
func nameStatus(name []byte, dots uint32) uint32 {
	if len(name) > MaxName {
		return StatusNameTooLong
	}
	if len(name) == 0 {
		return StatusAcces
	}
	for _, c := range name {
		if c == '/' || c == 0 {
			return StatusAcces
		}
	}
	if dots != 0 && (string(name) == "." || string(name) == "..") {
		return dots
	}
	return StatusOK
}

func (x *call) bad() bool { return x.r.Err() != nil }

func (h *Handler) getattr(x *call) rpc.AcceptStat {
	fh := x.handle()
	if x.bad() {
		return rpc.GarbageArgs
	}
	a, err := h.fs.GetAttr(x.ctx, fh)
	if err != nil {
		x.w.Uint32(h.status(x, err))
		return rpc.Success
	}
	x.w.Uint32(StatusOK)
	EncodeFattr(x.w, &a)
	return rpc.Success
}

func (h *Handler) setattr(x *call) rpc.AcceptStat {
	fh := x.handle()
	var sa vfs.SetAttr
	var st SattrStorage
	serr := DecodeSattr(&x.r, &sa, &st)
	var guard *time.Time
	if x.r.Bool() {
		// Declared here: its address escapes into the FS call, so it costs
		// an allocation, which only guarded SETATTRs need.
		ctime := DecodeTime(&x.r)
		guard = &ctime
	}
	if serr != nil || x.bad() {
		return rpc.GarbageArgs
	}
	wcc, err := h.fs.SetAttr(x.ctx, x.cred, fh, sa, guard)
	x.w.Uint32(h.status(x, err))
	EncodeWcc(x.w, &wcc)
	return rpc.Success
}

func (h *Handler) lookup(x *call) rpc.AcceptStat {
	dir, name := x.dirop()
	if x.bad() {
		return rpc.GarbageArgs
	}
	if s := nameStatus(name, 0); s != StatusOK {
		x.w.Uint32(s)
		EncodePostOpAttr(x.w, nil)
		return rpc.Success
	}
	fh, a, dirAttr, err := h.fs.Lookup(x.ctx, x.cred, dir, string(name))
	if err != nil {
		x.w.Uint32(h.status(x, err))
		EncodePostOpAttr(x.w, dirAttr)
		return rpc.Success
	}
	x.w.Uint32(StatusOK)
	x.w.Opaque(fh)
	EncodePostOpAttr(x.w, &a)
	EncodePostOpAttr(x.w, dirAttr)
	return rpc.Success
}

func (h *Handler) access(x *call) rpc.AcceptStat {
	fh := x.handle()
	want := x.r.Uint32()
	if x.bad() {
		return rpc.GarbageArgs
	}
	granted, a, err := h.fs.Access(x.ctx, x.cred, fh, want)
	if err != nil {
		x.w.Uint32(h.status(x, err))
		if a.Type != 0 {
			EncodePostOpAttr(x.w, &a)
		} else {
			EncodePostOpAttr(x.w, nil)
		}
		return rpc.Success
	}
	x.w.Uint32(StatusOK)
	EncodePostOpAttr(x.w, &a)
	x.w.Uint32(granted & want)
	return rpc.Success
}

func (h *Handler) readlink(x *call) rpc.AcceptStat {
	fh := x.handle()
	if x.bad() {
		return rpc.GarbageArgs
	}
	target, a, err := h.fs.Readlink(x.ctx, x.cred, fh)
	x.w.Uint32(h.status(x, err))
	EncodePostOpAttr(x.w, a)
	if err == nil {
		x.w.String(target)
	}
	return rpc.Success
}

// postOpSlot is the size of a post_op_attr with attributes.
const postOpSlot = 4 + FattrSize

// fillPostOp completes a post_op_attr slot reserved at off (postOpSlot
// bytes, followed by the rest of the reply). Without attributes the slot
// shrinks to 4 bytes by moving the tail down in place: the caller needed the
// slot before knowing whether attributes would come (they arrive with the
// data), and a memmove inside the reply buffer is cheaper than a second
// buffer.
func fillPostOp(w *xdr.Writer, off int, a *vfs.Attr) {
	b := w.Bytes()
	if a != nil {
		w.PatchUint32(off, 1)
		PutFattr(b[off+4:off+postOpSlot], a)
		return
	}
	w.PatchUint32(off, 0)
	n := copy(b[off+4:], b[off+postOpSlot:])
	w.Truncate(off + 4 + n)
}

func (h *Handler) read(x *call) rpc.AcceptStat {
	fh := x.handle()
	off := x.r.Uint64()
	count := x.r.Uint32()
	if x.bad() {
		return rpc.GarbageArgs
	}
	if count > MaxRead {
		count = MaxRead
	}
	if h.fr != nil && count >= fileReadMin {
		if st, ok := h.readFile(x, fh, off, count); ok {
			return st
		}
	}
	if err := x.rc.ReserveReply(x.ctx, int(count)); err != nil {
		return rpc.SystemErr // the connection is closing
	}
	w := x.w
	w.Uint32(StatusOK)
	attrOff := w.Len()
	w.Reserve(postOpSlot)
	countOff := w.Len()
	w.Uint32(0) // count
	w.Uint32(0) // eof
	w.Uint32(0) // data length
	dataOff := w.Len()
	buf := w.Reserve(int(count))
	n, eof, a, err := h.fs.Read(x.ctx, x.cred, fh, off, buf)
	if err == nil && (n < 0 || n > len(buf)) {
		h.log.Error(nil, "filesystem read returned a bad count", "n", n, "want", len(buf))
		n, eof = 0, false
	}
	if err != nil {
		w.Truncate(x.start)
		w.Uint32(h.status(x, err))
		EncodePostOpAttr(w, a)
		return rpc.Success
	}
	w.PatchUint32(countOff, uint32(n))
	if eof {
		w.PatchUint32(countOff+4, 1)
	}
	w.PatchUint32(countOff+8, uint32(n))
	end := dataOff + (n+3)&^3
	clear(w.Bytes()[dataOff+n : end]) // the filesystem may have scribbled past n
	w.Truncate(end)
	fillPostOp(w, attrOff, a)
	return rpc.Success
}

// readFile serves a READ whose data the RPC layer sends from the file. It
// reports false, having written nothing, if the filesystem declines
// (vfs.ErrNotSupp) and Read must serve the call.
func (h *Handler) readFile(x *call, fh vfs.Handle, off uint64, count uint32) (rpc.AcceptStat, bool) {
	fd, n, eof, a, err := h.fr.ReadFile(x.ctx, x.cred, fh, off, count)
	if errors.Is(err, vfs.ErrNotSupp) {
		return 0, false
	}
	if err == nil && (n < 0 || n > int(count) || off > 1<<63-1) {
		h.log.Error(nil, "filesystem ReadFile returned a bad count", "n", n, "want", count)
		n, eof = 0, false
	}
	if err != nil {
		x.w.Uint32(h.status(x, err))
		EncodePostOpAttr(x.w, a)
		return rpc.Success, true
	}
	w := x.w
	w.Uint32(StatusOK)
	EncodePostOpAttr(w, a)
	w.Uint32(uint32(n))
	w.Bool(eof)
	w.Uint32(uint32(n))
	if n == 0 {
		unix.Close(fd)
		return rpc.Success, true
	}
	x.rc.AttachFile(fd, int64(off), n, shortRead)
	return rpc.Success, true
}

// shortRead fixes a READ reply whose file held only n bytes from the offset
// when they were read (it was truncated since ReadFile looked): the reply
// ends count, eof, data length; the read then reached the end of the file.
func shortRead(reply []byte, n int) {
	binary.BigEndian.PutUint32(reply[len(reply)-12:], uint32(n))
	binary.BigEndian.PutUint32(reply[len(reply)-8:], 1)
}

func (h *Handler) write(x *call) rpc.AcceptStat {
	fh := x.handle()
	off := x.r.Uint64()
	count := x.r.Uint32()
	stable := vfs.Stable(x.r.Uint32())
	data := x.r.Opaque(maxOpaque) // aliases the request: no copy
	// stable_how is an enum without default, and a count that disagrees
	// with the data is a malformed request (as Linux treats it), not an
	// I/O error.
	if x.bad() || stable > vfs.FileSync || uint64(count) != uint64(len(data)) {
		return rpc.GarbageArgs
	}
	n, committed, wcc, err := h.fs.Write(x.ctx, x.cred, fh, off, data, stable)
	x.w.Uint32(h.status(x, err))
	EncodeWcc(x.w, &wcc)
	if err == nil {
		x.w.Uint32(uint32(n))
		x.w.Uint32(uint32(committed))
		verf := h.fs.WriteVerifier()
		x.w.Fixed(verf[:])
	}
	return rpc.Success
}

// newObject encodes the CREATE/MKDIR/SYMLINK/MKNOD result.
func (h *Handler) newObject(x *call, fh vfs.Handle, a *vfs.Attr, wcc *vfs.Wcc, err error) rpc.AcceptStat {
	x.w.Uint32(h.status(x, err))
	if err == nil {
		EncodePostOpFH(x.w, fh)
		EncodePostOpAttr(x.w, a)
	}
	EncodeWcc(x.w, wcc)
	return rpc.Success
}

// refuse encodes a failure whose result is just status and an empty
// wcc_data.
func refuse(x *call, s uint32) rpc.AcceptStat {
	x.w.Uint32(s)
	x.w.Uint32(0)
	x.w.Uint32(0)
	return rpc.Success
}

func (h *Handler) create(x *call) rpc.AcceptStat {
	dir, name := x.dirop()
	how := vfs.CreateHow(x.r.Uint32())
	var sa vfs.SetAttr
	var st SattrStorage
	var verf vfs.Verifier
	switch how {
	case vfs.CreateUnchecked, vfs.CreateGuarded:
		if DecodeSattr(&x.r, &sa, &st) != nil {
			return rpc.GarbageArgs
		}
	case vfs.CreateExclusive:
		copy(verf[:], x.r.Fixed(len(verf)))
	default:
		return rpc.GarbageArgs
	}
	if x.bad() {
		return rpc.GarbageArgs
	}
	if s := nameStatus(name, StatusExist); s != StatusOK {
		return refuse(x, s)
	}
	fh, a, wcc, err := h.fs.Create(x.ctx, x.cred, dir, string(name), how, sa, verf)
	return h.newObject(x, fh, a, &wcc, err)
}

func (h *Handler) mkdir(x *call) rpc.AcceptStat {
	dir, name := x.dirop()
	var sa vfs.SetAttr
	var st SattrStorage
	if DecodeSattr(&x.r, &sa, &st) != nil || x.bad() {
		return rpc.GarbageArgs
	}
	if s := nameStatus(name, StatusExist); s != StatusOK {
		return refuse(x, s)
	}
	fh, a, wcc, err := h.fs.Mkdir(x.ctx, x.cred, dir, string(name), sa)
	return h.newObject(x, fh, a, &wcc, err)
}

func (h *Handler) symlink(x *call) rpc.AcceptStat {
	dir, name := x.dirop()
	var sa vfs.SetAttr
	var st SattrStorage
	serr := DecodeSattr(&x.r, &sa, &st)
	target := x.r.Opaque(maxOpaque)
	if serr != nil || x.bad() {
		return rpc.GarbageArgs
	}
	if s := nameStatus(name, StatusExist); s != StatusOK {
		return refuse(x, s)
	}
	if len(target) > MaxPath {
		return refuse(x, StatusNameTooLong)
	}
	fh, a, wcc, err := h.fs.Symlink(x.ctx, x.cred, dir, string(name), string(target), sa)
	return h.newObject(x, fh, a, &wcc, err)
}

func (h *Handler) mknod(x *call) rpc.AcceptStat {
	dir, name := x.dirop()
	t := vfs.FileType(x.r.Uint32())
	var sa vfs.SetAttr
	var st SattrStorage
	var major, minor uint32
	switch t {
	case vfs.TypeChar, vfs.TypeBlock:
		if DecodeSattr(&x.r, &sa, &st) != nil {
			return rpc.GarbageArgs
		}
		major = x.r.Uint32()
		minor = x.r.Uint32()
	case vfs.TypeSocket, vfs.TypeFIFO:
		if DecodeSattr(&x.r, &sa, &st) != nil {
			return rpc.GarbageArgs
		}
	}
	if x.bad() {
		return rpc.GarbageArgs
	}
	if s := nameStatus(name, StatusExist); s != StatusOK {
		return refuse(x, s)
	}
	switch t {
	case vfs.TypeSocket, vfs.TypeFIFO, vfs.TypeChar, vfs.TypeBlock:
	default:
		// RFC 1813: MKNOD of NF3REG, NF3DIR or NF3LNK is BADTYPE.
		return refuse(x, StatusBadType)
	}
	fh, a, wcc, err := h.fs.Mknod(x.ctx, x.cred, dir, string(name), t, sa, major, minor)
	return h.newObject(x, fh, a, &wcc, err)
}

func (h *Handler) remove(x *call) rpc.AcceptStat {
	dir, name := x.dirop()
	if x.bad() {
		return rpc.GarbageArgs
	}
	if s := nameStatus(name, StatusInval); s != StatusOK {
		return refuse(x, s)
	}
	var wcc vfs.Wcc
	var err error
	if x.proc == ProcRmdir {
		wcc, err = h.fs.Rmdir(x.ctx, x.cred, dir, string(name))
	} else {
		wcc, err = h.fs.Remove(x.ctx, x.cred, dir, string(name))
	}
	x.w.Uint32(h.status(x, err))
	EncodeWcc(x.w, &wcc)
	return rpc.Success
}

func (h *Handler) rename(x *call) rpc.AcceptStat {
	fromDir, fromName := x.dirop()
	toDir, toName := x.dirop()
	if x.bad() {
		return rpc.GarbageArgs
	}
	s := nameStatus(fromName, StatusInval)
	if s == StatusOK {
		s = nameStatus(toName, StatusInval)
	}
	if s != StatusOK {
		x.w.Uint32(s)
		EncodeWcc(x.w, &vfs.Wcc{})
		EncodeWcc(x.w, &vfs.Wcc{})
		return rpc.Success
	}
	fromWcc, toWcc, err := h.fs.Rename(x.ctx, x.cred, fromDir, string(fromName), toDir, string(toName))
	x.w.Uint32(h.status(x, err))
	EncodeWcc(x.w, &fromWcc)
	EncodeWcc(x.w, &toWcc)
	return rpc.Success
}

func (h *Handler) link(x *call) rpc.AcceptStat {
	fh := x.handle()
	dir, name := x.dirop()
	if x.bad() {
		return rpc.GarbageArgs
	}
	if s := nameStatus(name, StatusExist); s != StatusOK {
		x.w.Uint32(s)
		EncodePostOpAttr(x.w, nil)
		EncodeWcc(x.w, &vfs.Wcc{})
		return rpc.Success
	}
	a, wcc, err := h.fs.Link(x.ctx, x.cred, fh, dir, string(name))
	x.w.Uint32(h.status(x, err))
	EncodePostOpAttr(x.w, a)
	EncodeWcc(x.w, &wcc)
	return rpc.Success
}

// Encoded sizes of directory entries, for filling a reply exactly.
func entrySize(name string) int { return 4 + 8 + 4 + (len(name)+3)&^3 + 8 }

// dirInfoSize is the part of an entry that READDIRPLUS's dircount bounds:
// fileid, name and cookie.
func dirInfoSize(name string) int { return 8 + 4 + (len(name)+3)&^3 + 8 }

func entryPlusSize(e *vfs.DirEntry) int {
	n := entrySize(e.Name) + 4 + 4
	if e.Attr != nil {
		n += FattrSize
	}
	if len(e.Handle) > 0 {
		n += 4 + (len(e.Handle)+3)&^3
	}
	return n
}

// Fixed part of a READDIR(PLUS) reply: status, post_op_attr slot,
// cookieverf, and the trailing "no more entries" and eof words.
const dirReplyFixed = 4 + postOpSlot + 8 + 4 + 4

func (h *Handler) readdir(x *call) rpc.AcceptStat {
	dir := x.handle()
	cookie := x.r.Uint64()
	var verf vfs.Verifier
	copy(verf[:], x.r.Fixed(len(verf)))
	count := x.r.Uint32()
	if x.bad() {
		return rpc.GarbageArgs
	}
	return h.dirList(x, dir, cookie, verf, false, int(min(count, MaxReadDir)), 0)
}

func (h *Handler) readdirplus(x *call) rpc.AcceptStat {
	dir := x.handle()
	cookie := x.r.Uint64()
	var verf vfs.Verifier
	copy(verf[:], x.r.Fixed(len(verf)))
	dircount := x.r.Uint32()
	maxcount := x.r.Uint32()
	if x.bad() {
		return rpc.GarbageArgs
	}
	maxcount = min(maxcount, MaxReadDir)
	if dircount == 0 || dircount > maxcount {
		// Some clients send 0 to mean "no separate limit".
		dircount = maxcount
	}
	return h.dirList(x, dir, cookie, verf, true, int(maxcount), int(dircount))
}

// dirList serves READDIR (plus=false; count bounds the reply) and
// READDIRPLUS (count is maxcount, bounding the reply; dircount bounds the
// fileid+name+cookie bytes). Entries are encoded straight into the reply
// as the filesystem emits them; the reply counts the status word too, which
// keeps it within the limit whichever way a client reads the RFC.
func (h *Handler) dirList(x *call, dir vfs.Handle, cookie uint64, verf vfs.Verifier, plus bool, count, dircount int) rpc.AcceptStat {
	if err := x.rc.ReserveReply(x.ctx, count); err != nil {
		return rpc.SystemErr // the connection is closing
	}
	w := x.w
	w.Uint32(StatusOK)
	attrOff := w.Len()
	w.Reserve(postOpSlot)
	verfOff := w.Len()
	w.Fixed(verf[:])
	used, dirUsed, n := dirReplyFixed, 0, 0
	full := false
	emit := func(e vfs.DirEntry) bool {
		if full {
			return false
		}
		var sz int
		if plus {
			sz = entryPlusSize(&e)
			d := dirInfoSize(e.Name)
			if dirUsed+d > dircount {
				full = true
				return false
			}
			dirUsed += d
		} else {
			sz = entrySize(e.Name)
		}
		if used+sz > count {
			full = true
			return false
		}
		used += sz
		n++
		w.Uint32(1)
		w.Uint64(e.FileID)
		w.String(e.Name)
		w.Uint64(e.Cookie)
		if plus {
			EncodePostOpAttr(w, e.Attr)
			EncodePostOpFH(w, e.Handle)
		}
		return true
	}
	newVerf, eof, dirAttr, err := h.fs.ReadDir(x.ctx, x.cred, dir, cookie, verf, plus, emit)
	full = true // in case the filesystem kept a reference to emit
	if err == nil && n == 0 && !eof {
		// Not even one entry fits: an empty, non-final page would make the
		// client loop forever.
		err = errTooSmall
	}
	if err == nil && used > count {
		// Only the fixed part can overflow (count below dirReplyFixed with
		// an empty, final directory).
		err = errTooSmall
	}
	if err != nil {
		w.Truncate(x.start)
		if errors.Is(err, errTooSmall) {
			w.Uint32(StatusTooSmall)
		} else {
			w.Uint32(h.status(x, err))
		}
		EncodePostOpAttr(w, dirAttr)
		return rpc.Success
	}
	w.Uint32(0)
	w.Bool(eof)
	copy(w.Bytes()[verfOff:verfOff+8], newVerf[:])
	fillPostOp(w, attrOff, dirAttr)
	return rpc.Success
}

type tooSmall struct{}

func (tooSmall) Error() string { return "nfs3: reply too small for one entry" }

var errTooSmall error = tooSmall{}

func (h *Handler) fsstat(x *call) rpc.AcceptStat {
	fh := x.handle()
	if x.bad() {
		return rpc.GarbageArgs
	}
	st, a, err := h.fs.FSStat(x.ctx, fh)
	x.w.Uint32(h.status(x, err))
	EncodePostOpAttr(x.w, a)
	if err == nil {
		x.w.Uint64(st.TotalBytes)
		x.w.Uint64(st.FreeBytes)
		x.w.Uint64(st.AvailBytes)
		x.w.Uint64(st.TotalFiles)
		x.w.Uint64(st.FreeFiles)
		x.w.Uint64(st.AvailFiles)
		x.w.Uint32(0) // invarsec: the volume may change at any time
	}
	return rpc.Success
}

// attrOnly serves the head of FSINFO and PATHCONF: status and the object's
// attributes. It reports whether the caller should go on with the body.
func (h *Handler) attrOnly(x *call) (ok bool, st rpc.AcceptStat) {
	fh := x.handle()
	if x.bad() {
		return false, rpc.GarbageArgs
	}
	a, err := h.fs.GetAttr(x.ctx, fh)
	if err != nil {
		x.w.Uint32(h.status(x, err))
		EncodePostOpAttr(x.w, nil)
		return false, rpc.Success
	}
	x.w.Uint32(StatusOK)
	EncodePostOpAttr(x.w, &a)
	return true, rpc.Success
}

func (h *Handler) fsinfo(x *call) rpc.AcceptStat {
	ok, st := h.attrOnly(x)
	if !ok {
		return st
	}
	w := x.w
	w.Uint32(MaxRead)  // rtmax
	w.Uint32(MaxRead)  // rtpref
	w.Uint32(4096)     // rtmult
	w.Uint32(MaxWrite) // wtmax
	w.Uint32(MaxWrite) // wtpref
	w.Uint32(4096)     // wtmult
	w.Uint32(PrefDir)  // dtpref
	w.Uint64(1<<63 - 1)
	w.Uint32(0) // time_delta: nanosecond timestamps
	w.Uint32(1)
	w.Uint32(FSFLink | FSFSymlink | FSFHomogeneous | FSFCanSetTime)
	return rpc.Success
}

func (h *Handler) pathconf(x *call) rpc.AcceptStat {
	ok, st := h.attrOnly(x)
	if !ok {
		return st
	}
	w := x.w
	w.Uint32(65000)   // linkmax
	w.Uint32(MaxName) // name_max
	w.Bool(true)      // no_trunc
	w.Bool(true)      // chown_restricted
	w.Bool(false)     // case_insensitive
	w.Bool(true)      // case_preserving
	return rpc.Success
}

func (h *Handler) commit(x *call) rpc.AcceptStat {
	fh := x.handle()
	off := x.r.Uint64()
	count := x.r.Uint32()
	if x.bad() {
		return rpc.GarbageArgs
	}
	wcc, err := h.fs.Commit(x.ctx, x.cred, fh, off, count)
	x.w.Uint32(h.status(x, err))
	EncodeWcc(x.w, &wcc)
	if err == nil {
		verf := h.fs.WriteVerifier()
		x.w.Fixed(verf[:])
	}
	return rpc.Success
}
