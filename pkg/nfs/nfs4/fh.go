package nfs4

import (
	"bytes"
	"errors"
	"hash/fnv"
	"path"
	"slices"
	"strings"
	"syscall"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

// Filehandles are a kind byte and a payload: a vfs handle for objects in
// a volume, or the path of a directory of the pseudo-filesystem that joins
// the exported volumes under one root (RFC 8881 section 7). Both persist
// across restarts.
const (
	fhPseudo = 1
	fhVol    = 2
)

// pseudoFSID is the fsid of the pseudo-filesystem. Volumes have {FSID, 0}.
var pseudoFSID = [2]uint64{0, 1}

func validFH(fh []byte) bool {
	if len(fh) < 2 {
		return false
	}
	switch fh[0] {
	case fhPseudo:
		return fh[1] == '/'
	case fhVol:
		return len(fh)-1 <= vfs.MaxHandleSize
	}
	return false
}

func (f *fhBuf) setPseudo(p string) bool {
	if len(p) > MaxFHSize-1 {
		return false
	}
	f.b[0] = fhPseudo
	f.n = 1 + copy(f.b[1:], p)
	return true
}

func isPseudo(fh []byte) bool { return fh[0] == fhPseudo }

// vol returns the vfs handle of a volume filehandle.
func vol(fh []byte) vfs.Handle { return vfs.Handle(fh[1:]) }

// visible lists the export paths this client may mount (the client is in
// ctx): the pseudo root shows a client only those.
func (h *Handler) visible(x *compound) []string {
	var out []string
	for _, e := range h.fs.Exports(x.ctx) {
		out = append(out, path.Clean(e.Path))
	}
	slices.Sort(out)
	return out
}

func childPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// children lists the names in pseudo directory dir (sorted, unique), and
// reports whether dir exists at all.
func children(exports []string, dir string) ([]string, bool) {
	prefix := dir
	if dir != "/" {
		prefix += "/"
	}
	var names []string
	found := dir == "/"
	for _, e := range exports {
		if e == dir {
			return nil, false // an export, not a pseudo directory
		}
		if rest, ok := strings.CutPrefix(e, prefix); ok && rest != "" {
			found = true
			name, _, _ := strings.Cut(rest, "/")
			if len(names) == 0 || names[len(names)-1] != name {
				names = append(names, name)
			}
		}
	}
	return names, found
}

func pseudoFileID(p string) uint64 {
	f := fnv.New64a()
	f.Write([]byte(p))
	return f.Sum64() | 1
}

func pseudoChange(exports []string) uint64 {
	f := fnv.New64a()
	for _, e := range exports {
		f.Write([]byte(e))
		f.Write([]byte{0})
	}
	return f.Sum64()
}

func pseudoAttrs(p string, exports []string, s *attrs) {
	s.a = vfs.Attr{Type: vfs.TypeDirectory, Mode: 0o555, Nlink: 2, FileID: pseudoFileID(p),
		Atime: pseudoTime, Mtime: pseudoTime, Ctime: pseudoTime}
	s.fsid = pseudoFSID
	s.change = pseudoChange(exports)
	s.mountedOn = s.a.FileID
}

// rootExport reports whether the server exports "/" (one directory): then
// the pseudo root is that volume's root.
func (h *Handler) rootExport(x *compound) bool {
	for _, e := range h.fs.Exports(x.ctx) {
		if path.Clean(e.Path) == "/" {
			return true
		}
	}
	return false
}

// pseudoLookup resolves name in pseudo directory dir into out: the root of
// a volume, or another pseudo directory.
func (h *Handler) pseudoLookup(x *compound, dir, name string, out *fhBuf) uint32 {
	c := childPath(dir, name)
	// Mount decides directly (without listing every export) for the usual
	// case, a volume; one this client may not mount does not exist for it.
	root, err := h.fs.Mount(x.ctx, c)
	switch {
	case err == nil:
		out.setVol(root)
		return OK
	case errors.Is(err, vfs.ErrNotAllowed):
		return ErrNoEnt
	case !errors.Is(err, vfs.ErrNoExport):
		return h.status(err)
	}
	if _, ok := children(h.visible(x), c); ok && out.setPseudo(c) {
		return OK
	}
	return ErrNoEnt
}

// nameStatus checks a component4 that names an object.
func nameStatus(name []byte) uint32 {
	switch {
	case len(name) == 0:
		return ErrInval
	case len(name) > MaxName:
		return ErrNameTooLong
	case bytes.IndexByte(name, '/') >= 0 || bytes.IndexByte(name, 0) >= 0:
		return ErrBadChar
	case string(name) == "." || string(name) == "..":
		return ErrBadName
	}
	return OK
}

// lookupName resolves name in the current directory into out.
func (h *Handler) lookupName(x *compound, name []byte, out *fhBuf) uint32 {
	if x.cur.empty() {
		return ErrNoFileHandle
	}
	if st := nameStatus(name); st != OK {
		return st
	}
	cur := x.cur.bytes()
	if isPseudo(cur) {
		return h.pseudoLookup(x, string(cur[1:]), string(name), out)
	}
	fh, a, _, err := h.fs.Lookup(x.ctx, x.cred, vol(cur), string(name))
	if err != nil {
		return h.notDir(x, cur, err)
	}
	out.setVol(fh)
	x.setCurAttr(&a)
	return OK
}

// notDir refines ENOTDIR for an operation that needed a directory: NFSv4
// has a status of its own for a symlink there.
func (h *Handler) notDir(x *compound, fh []byte, err error) uint32 {
	if errors.Is(err, syscall.ENOTDIR) && !isPseudo(fh) {
		if a, err2 := h.fs.GetAttr(x.ctx, vol(fh)); err2 == nil && a.Type == vfs.TypeSymlink {
			return ErrSymlink
		}
	}
	return h.status(err)
}

func (h *Handler) putRootFH(x *compound) uint32 {
	x.hasCurSID = false
	if h.rootExport(x) {
		root, err := h.fs.Mount(x.ctx, "/")
		if err != nil {
			return h.failErr(x, err)
		}
		x.cur.setVol(root)
		return fail(x.w, OK)
	}
	x.cur.setPseudo("/")
	return fail(x.w, OK)
}

func (h *Handler) putFH(x *compound) uint32 {
	fh := x.r.Opaque(MaxFHSize)
	if x.bad() {
		return fail(x.w, ErrBadXDR)
	}
	if !validFH(fh) {
		return fail(x.w, ErrBadHandle)
	}
	x.cur.set(fh)
	x.hasCurSID = false
	return fail(x.w, OK)
}

func (h *Handler) getFH(x *compound) uint32 {
	if x.cur.empty() {
		return fail(x.w, ErrNoFileHandle)
	}
	x.w.Uint32(OK)
	x.w.Opaque(x.cur.bytes())
	return OK
}

func (h *Handler) saveFH(x *compound) uint32 {
	if x.cur.empty() {
		return fail(x.w, ErrNoFileHandle)
	}
	x.saved = x.cur
	x.savedSID, x.hasSavedSID = x.curSID, x.hasCurSID
	return fail(x.w, OK)
}

func (h *Handler) restoreFH(x *compound) uint32 {
	if x.saved.empty() {
		return fail(x.w, ErrRestoreFH)
	}
	x.cur = x.saved
	x.curSID, x.hasCurSID = x.savedSID, x.hasSavedSID
	return fail(x.w, OK)
}

func (h *Handler) lookup(x *compound) uint32 {
	name := x.r.Opaque(MaxPath)
	if x.bad() {
		return fail(x.w, ErrBadXDR)
	}
	var out fhBuf
	if st := h.lookupName(x, name, &out); st != OK {
		return fail(x.w, st)
	}
	x.cur = out
	x.hasCurSID = false
	return fail(x.w, OK)
}

func (h *Handler) lookupp(x *compound) uint32 {
	if x.cur.empty() {
		return fail(x.w, ErrNoFileHandle)
	}
	cur := x.cur.bytes()
	if isPseudo(cur) {
		p := string(cur[1:])
		if p == "/" {
			return fail(x.w, ErrNoEnt)
		}
		x.cur.setPseudo(path.Dir(p))
		x.hasCurSID = false
		return fail(x.w, OK)
	}
	vh := vol(cur)
	up, _, _, err := h.fs.Lookup(x.ctx, x.cred, vh, "..")
	if err != nil {
		return fail(x.w, h.notDir(x, cur, err))
	}
	if !bytes.Equal(up, vh) {
		x.cur.setVol(up)
		x.hasCurSID = false
		return fail(x.w, OK)
	}
	// The root of a volume: its parent is the pseudo directory holding it.
	for _, e := range h.visible(x) {
		root, err := h.fs.Mount(x.ctx, e)
		if err != nil || !bytes.Equal(root, vh) {
			continue
		}
		if e == "/" || !x.cur.setPseudo(path.Dir(e)) {
			return fail(x.w, ErrNoEnt)
		}
		x.hasCurSID = false
		return fail(x.w, OK)
	}
	return fail(x.w, ErrNoEnt)
}

// fillAttrs loads the attributes of fh that req needs into s.
func (h *Handler) fillAttrs(x *compound, fh []byte, req bitmap, s *attrs) uint32 {
	*s = attrs{fh: fh, lease: uint32(h.o.LeaseTime.Seconds())}
	if isPseudo(fh) {
		exports := h.visible(x)
		p := string(fh[1:])
		if _, ok := children(exports, p); !ok {
			return ErrStale
		}
		pseudoAttrs(p, exports, s)
		return OK
	}
	a, err := h.fs.GetAttr(x.ctx, vol(fh))
	if err != nil {
		return h.status(err)
	}
	return h.fillVolAttrs(x, fh, &a, req, s)
}

// fillVolAttrs is fillAttrs for the volume object fh whose attributes
// are a.
func (h *Handler) fillVolAttrs(x *compound, fh []byte, a *vfs.Attr, req bitmap, s *attrs) uint32 {
	*s = attrs{fh: fh}
	h.volAttrs(a, s)
	vh := vol(fh)
	if !req.and(statAttrs).empty() {
		st, _, err := h.fs.FSStat(x.ctx, vh)
		if err != nil {
			return h.status(err)
		}
		s.st = st
	}
	return OK
}

func (h *Handler) volAttrs(a *vfs.Attr, s *attrs) {
	s.a = *a
	s.fsid = [2]uint64{a.FSID, 0}
	s.change = changeOf(a.Ctime)
	s.mountedOn = a.FileID
	s.lease = uint32(h.o.LeaseTime.Seconds())
}

func (h *Handler) getattr(x *compound) uint32 {
	req, _, ok := decodeBitmap(&x.r)
	if !ok || x.bad() {
		return fail(x.w, ErrBadXDR)
	}
	if x.cur.empty() {
		return fail(x.w, ErrNoFileHandle)
	}
	var s attrs
	var st uint32
	if x.hasCurAttr {
		st = h.fillVolAttrs(x, x.cur.bytes(), &x.curAttr, req, &s)
	} else {
		st = h.fillAttrs(x, x.cur.bytes(), req, &s)
	}
	if st != OK {
		return fail(x.w, st)
	}
	x.w.Uint32(OK)
	encodeFattr(x.w, req, &s)
	return OK
}

// setCurAttr records a the current file's attributes for a GETATTR
// that follows. An object with no link left is not recorded: GETATTR
// then asks the FS, which knows whether it is still held or stale.
func (x *compound) setCurAttr(a *vfs.Attr) {
	if a != nil && a.Nlink > 0 {
		x.curAttr, x.hasCurAttr = *a, true
	}
}

func (h *Handler) verify(x *compound, negate bool) uint32 {
	if x.cur.empty() {
		return fail(x.w, ErrNoFileHandle)
	}
	var s attrs
	st := verifyAttrs(&x.r, func(req bitmap) (*attrs, uint32) {
		return &s, h.fillAttrs(x, x.cur.bytes(), req, &s)
	})
	if negate {
		switch st {
		case OK:
			st = ErrSame
		case ErrNotSame:
			st = OK
		}
	}
	return fail(x.w, st)
}

func (h *Handler) setattr(x *compound) uint32 {
	sid := decodeStateid(&x.r)
	var s setAttrs
	st := decodeSetAttrs(&x.r, &s)
	if st == OK {
		st = h.doSetattr(x, sid, &s)
	}
	x.w.Uint32(st)
	if st == OK {
		encodeBitmap(x.w, s.set)
	} else {
		encodeBitmap(x.w, bitmap{})
	}
	return st
}

func (h *Handler) doSetattr(x *compound, sid stateid, s *setAttrs) uint32 {
	if x.cur.empty() {
		return ErrNoFileHandle
	}
	cur := x.cur.bytes()
	if isPseudo(cur) {
		return ErrROFS
	}
	if s.sa.Size != nil {
		// A size change is a write: it needs a stateid that may write.
		if _, st := h.checkStateid(x, sid, ShareAccessWrite); st != OK {
			return st
		}
	}
	if s.set.empty() {
		return OK
	}
	wcc, err := h.fs.SetAttr(x.ctx, x.cred, vol(cur), s.sa, nil)
	if err != nil {
		return h.status(err)
	}
	x.setCurAttr(wcc.After)
	return OK
}

func (h *Handler) access(x *compound) uint32 {
	want := x.r.Uint32()
	if x.bad() {
		return fail(x.w, ErrBadXDR)
	}
	if x.cur.empty() {
		return fail(x.w, ErrNoFileHandle)
	}
	want &= allAccess
	var granted uint32
	cur := x.cur.bytes()
	if isPseudo(cur) {
		granted = vfs.AccessRead | vfs.AccessLookup | vfs.AccessExecute
	} else if x.hasCurAccess {
		granted = x.curAccess // from the OPEN just before
	} else {
		g, a, err := h.fs.Access(x.ctx, x.cred, vol(cur), want)
		if err != nil {
			return h.failErr(x, err)
		}
		granted = g
		if !x.hasCurAttr {
			x.setCurAttr(&a) // fresh: for a GETATTR after
		}
	}
	x.w.Uint32(OK)
	x.w.Uint32(want) // supported: every bit this server knows
	x.w.Uint32(granted & want)
	return OK
}

func (h *Handler) readlink(x *compound) uint32 {
	if x.cur.empty() {
		return fail(x.w, ErrNoFileHandle)
	}
	cur := x.cur.bytes()
	if isPseudo(cur) {
		return fail(x.w, ErrInval)
	}
	target, _, err := h.fs.Readlink(x.ctx, x.cred, vol(cur))
	if err != nil {
		return h.failErr(x, err)
	}
	x.w.Uint32(OK)
	x.w.String(target)
	return OK
}
