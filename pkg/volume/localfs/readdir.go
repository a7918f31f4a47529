package localfs

import (
	"bytes"
	"context"
	"encoding/binary"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

var direntBufs = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// ReadDir lists dir from cookie. Cookies are the kernel's directory offsets
// (d_off), which ext4 (hashes) and tmpfs (stable per-entry offsets) keep
// valid while the directory changes, so the verifier is always zero.
func (f *FS) ReadDir(ctx context.Context, c vfs.Cred, dir vfs.Handle, cookie uint64, verf vfs.Verifier, plus bool, emit func(vfs.DirEntry) bool) (vfs.Verifier, bool, *vfs.Attr, error) {
	var zero vfs.Verifier
	d, dst, err := f.resolveStat(ctx, dir, vfs.GrantReadOnly)
	if err != nil {
		return zero, false, nil, err
	}
	defer f.cache.release(d)
	dirAttr := attrPtr(d.exp, &dst)
	if d.typ != unix.S_IFDIR {
		return zero, false, dirAttr, unix.ENOTDIR
	}
	if cookie > 1<<63-1 {
		return zero, false, dirAttr, vfs.ErrBadCookie
	}
	c = d.exp.cred(c)
	if !may(&c, &dst, permR) {
		return zero, false, dirAttr, unix.EACCES
	}
	if plus && !may(&c, &dst, permX) {
		// Names only: handles would let the caller reach entries that
		// LOOKUP refuses without search permission.
		plus = false
	}
	// A private fd per call: the seek position must not be shared with
	// concurrent listings.
	fd, err := unix.Openat(d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return zero, false, dirAttr, err
	}
	defer unix.Close(fd)
	if cookie != 0 {
		if _, err := unix.Seek(fd, int64(cookie), 0); err != nil {
			return zero, false, dirAttr, vfs.ErrBadCookie
		}
	}
	bp := direntBufs.Get().(*[]byte)
	defer direntBufs.Put(bp)
	buf := *bp
	isRoot := d.ino == d.exp.rootIno
	var arena plusArena
	for {
		if err := ctx.Err(); err != nil {
			return zero, false, dirAttr, err
		}
		m, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return zero, false, dirAttr, err
		}
		if m == 0 {
			return zero, true, dirAttr, nil
		}
		// One string for the whole batch: entry names are substrings of
		// it rather than an allocation each.
		names := string(buf[:m])
		for pos := 0; pos < m; {
			b := buf[pos:m]
			// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				return zero, false, dirAttr, unix.EIO
			}
			name := b[19:reclen]
			i := bytes.IndexByte(name, 0)
			if i < 0 {
				return zero, false, dirAttr, unix.EIO
			}
			ent := vfs.DirEntry{
				FileID: binary.NativeEndian.Uint64(b[0:8]),
				Name:   names[pos+19 : pos+19+i],
				Cookie: binary.NativeEndian.Uint64(b[8:16]),
			}
			cname := nameAt(&b[19]) // NUL-terminated
			pos += reclen
			if ent.Name == ".." && isRoot {
				// The root is its own parent; don't reveal what is above.
				ent.FileID = d.ino
			}
			if plus {
				f.plusAttrs(d, &dst, isRoot, &ent, cname, &arena)
			}
			if !emit(ent) {
				return zero, false, dirAttr, nil
			}
		}
	}
}

// plusAttrs fills in the handle and attributes of ent, an entry of d, when
// they can be had consistently. An entry that vanished or was replaced
// meanwhile gets neither.
func (f *FS) plusAttrs(d *node, dst *unix.Stat_t, isRoot bool, ent *vfs.DirEntry, cname nameAt, arena *plusArena) {
	if ent.Name == "." || (ent.Name == ".." && isRoot) {
		ent.Handle = vfs.Handle(d.key)
		ent.Attr = arena.attr(d.exp, dst)
		return
	}
	if ent.Name != ".." && f.plusCached(d, ent, cname, arena) {
		return
	}
	// Handle first, then attributes: if the stat still shows the inode that
	// getdents listed, the handle taken before it names that inode too
	// (barring inode number reuse within this window).
	var kh kernelHandle
	if err := nameToHandleAt(d.fd, cname, &kh, 0); err != nil {
		return
	}
	var st unix.Stat_t
	if err := fstatatNoFollow(d.fd, cname, &st); err != nil {
		return
	}
	if st.Dev != d.exp.dev || (ent.Name != ".." && st.Ino != ent.FileID) {
		return
	}
	h, err := arena.handle(f.keys, d.exp.tag, kh.typ, kh.fh[:min(kh.bytes, uint32(len(kh.fh)))])
	if err != nil {
		return
	}
	ent.Handle = h
	ent.Attr = arena.attr(d.exp, &st)
}

// plusCached fills in ent like plusAttrs when the inode getdents listed
// has an open node, whose handle it takes: one fstatat per entry instead
// of also name_to_handle_at and a MAC (after an untar, or for a tar or an
// rm -r of files recently used, most entries have one). It reports false
// when plusAttrs must do it.
func (f *FS) plusCached(d *node, ent *vfs.DirEntry, cname nameAt, arena *plusArena) bool {
	e := d.exp
	key := e.openKey(ent.FileID)
	if key == "" {
		return false
	}
	var st unix.Stat_t
	if err := fstatatNoFollow(d.fd, cname, &st); err != nil {
		return true // vanished: neither handle nor attributes
	}
	if st.Dev != e.dev || st.Ino != ent.FileID {
		return false
	}
	// Still open after the stat means open throughout, so the inode number
	// was not reused: the stat is of the inode key names.
	if e.openKey(ent.FileID) != key {
		return false
	}
	ent.Handle = arena.copyHandle(key)
	ent.Attr = arena.attr(e, &st)
	return true
}

// openKey is the handle of inode ino if it has an open node (the state
// keeps the inode alive while it exists), or "".
func (e *export) openKey(ino uint64) string {
	e.inodesMu.Lock()
	defer e.inodesMu.Unlock()
	if a := e.inodes[ino]; a != nil {
		return a.key
	}
	return ""
}
