package nfs4

import (
	"slices"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

// READDIR. Cookies 1 and 2 are reserved in NFSv4 (the Linux client uses
// them for the "." and ".." it makes up itself), so a vfs cookie c travels
// as c+2; "." and ".." from the filesystem are left out.
const cookieShift = 2

// readdirFixed is the part of READDIR4resok around the entries: the
// cookie verifier, the end-of-list marker and eof.
const readdirFixed = 8 + 4 + 4

func (h *Handler) readdir(x *compound) uint32 {
	cookie := x.r.Uint64()
	var verf vfs.Verifier
	copy(verf[:], x.r.Fixed(8))
	dircount := x.r.Uint32()
	maxcount := x.r.Uint32()
	req, _, ok := decodeBitmap(&x.r)
	if !ok || x.bad() {
		return fail(x.w, ErrBadXDR)
	}
	if x.cur.empty() {
		return fail(x.w, ErrNoFileHandle)
	}
	if cookie == 1 || cookie == 2 {
		return fail(x.w, ErrBadCookie)
	}
	limit := x.maxData(min(int(maxcount), MaxReadDir))
	if limit < readdirFixed {
		return fail(x.w, ErrTooSmall)
	}
	if err := x.rc.ReserveReply(x.ctx, limit); err != nil {
		return fail(x.w, ErrDelay) // the connection is closing
	}
	d := dirList{h: h, x: x, req: req, limit: limit, dircount: int(dircount)}
	cur := x.cur.bytes()
	if isPseudo(cur) {
		return d.pseudo(string(cur[1:]), cookie)
	}
	return d.volume(vol(cur), cookie, verf)
}

// dirList encodes a READDIR reply straight into the COMPOUND reply.
type dirList struct {
	h        *Handler
	x        *compound
	req      bitmap
	limit    int // bytes of READDIR4resok
	dircount int // bytes of cookies and names (0: no separate limit)
	okStart  int // w.Len() at the cookie verifier
	dirUsed  int
	n        int
	full     bool
	fh       fhBuf
}

func (d *dirList) begin(verf vfs.Verifier) {
	w := d.x.w
	w.Uint32(OK)
	d.okStart = w.Len()
	w.Fixed(verf[:])
}

// add encodes one entry, or reports false (writing nothing) when it does
// not fit. The first entry is exempt from dircount, so a small dircount
// cannot make a page empty.
func (d *dirList) add(cookie uint64, name string, s *attrs) bool {
	if d.full {
		return false
	}
	w := d.x.w
	dirSize := 8 + 4 + (len(name)+3)&^3
	if d.n > 0 && d.dircount > 0 && d.dirUsed+dirSize > d.dircount {
		d.full = true
		return false
	}
	off := w.Len()
	w.Uint32(1)
	w.Uint64(cookie)
	w.String(name)
	encodeFattr(w, d.req, s)
	if w.Len()-d.okStart+8 > d.limit {
		w.Truncate(off)
		d.full = true
		return false
	}
	d.dirUsed += dirSize
	d.n++
	return true
}

func (d *dirList) end(eof bool) uint32 {
	w := d.x.w
	if d.n == 0 && !eof {
		// Not one entry fits: an empty, non-final page would make the
		// client loop.
		w.Truncate(d.okStart - 4)
		return fail(w, ErrTooSmall)
	}
	w.Uint32(0)
	w.Bool(eof)
	return OK
}

func (d *dirList) volume(dir vfs.Handle, cookie uint64, verf vfs.Verifier) uint32 {
	h, x := d.h, d.x
	var vcookie uint64
	if cookie != 0 {
		vcookie = cookie - cookieShift
	}
	var st vfs.FSStat
	if !d.req.and(statAttrs).empty() {
		var err error
		if st, _, err = h.fs.FSStat(x.ctx, dir); err != nil {
			return h.failErr(x, err)
		}
	}
	start := x.w.Len()
	d.begin(verf)
	var s attrs
	emit := func(e vfs.DirEntry) bool {
		if e.Name == "." || e.Name == ".." {
			return !d.full
		}
		if e.Cookie > 1<<64-1-cookieShift {
			return false
		}
		if e.Attr == nil || len(e.Handle) == 0 {
			// The entry vanished while listed: report it only to a client
			// that asked for rdattr_error.
			if !d.req.has(AttrRdattrError) {
				return !d.full
			}
			s = attrs{rderr: ErrNoEnt, a: vfs.Attr{FileID: e.FileID}}
			return d.add(e.Cookie+cookieShift, e.Name, &s)
		}
		d.fh.setVol(e.Handle)
		h.volAttrs(e.Attr, &s)
		s.fh = d.fh.bytes()
		s.st = st
		return d.add(e.Cookie+cookieShift, e.Name, &s)
	}
	newVerf, eof, _, err := h.fs.ReadDir(x.ctx, x.cred, dir, vcookie, verf, true, emit)
	d.full = true // in case the filesystem kept emit
	if err != nil {
		x.w.Truncate(start)
		return fail(x.w, h.notDir(x, x.cur.bytes(), err))
	}
	copy(x.w.Bytes()[d.okStart:d.okStart+8], newVerf[:])
	return d.end(eof)
}

func (d *dirList) pseudo(dir string, cookie uint64) uint32 {
	h, x := d.h, d.x
	exports := h.visible(x)
	names, ok := children(exports, dir)
	if !ok {
		return fail(x.w, ErrStale)
	}
	i := 0
	if cookie != 0 {
		i = int(min(cookie-cookieShift, uint64(len(names))))
	}
	d.begin(vfs.Verifier{})
	var s attrs
	for ; i < len(names); i++ {
		c := childPath(dir, names[i])
		if _, isExport := slices.BinarySearch(exports, c); isExport {
			root, err := h.fs.Mount(x.ctx, c)
			if err != nil {
				continue // gone since listed
			}
			if st := h.fillAttrs(x, d.fh.volFrom(root), d.req, &s); st != OK {
				continue
			}
			s.mountedOn = pseudoFileID(c)
		} else {
			if !d.fh.setPseudo(c) {
				continue
			}
			s = attrs{fh: d.fh.bytes(), lease: uint32(h.o.LeaseTime.Seconds())}
			pseudoAttrs(c, exports, &s)
		}
		if !d.add(uint64(i)+cookieShift+1, names[i], &s) {
			return d.end(false)
		}
	}
	return d.end(true)
}

// volFrom sets f to the volume handle h and returns its bytes.
func (f *fhBuf) volFrom(h vfs.Handle) []byte {
	f.setVol(h)
	return f.bytes()
}
