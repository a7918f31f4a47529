package localfs

import (
	"context"
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

// Default modes of new objects when the client gives none. Objects are
// created with owner-only modes first and get their final mode after the
// chown to the caller.
const (
	defaultFileMode = 0o644
	defaultDirMode  = 0o755
)

// dirWcc finishes the wcc data of a directory operation.
func dirWcc(d *node, pre *unix.Stat_t) vfs.Wcc {
	return vfs.Wcc{Before: wccAttr(pre), After: postAttr(d)}
}

// syncDir makes d's entries durable, sharing fsyncs with concurrent
// operations on the same directory.
func (f *FS) syncDir(d *node) error {
	if d.exp.inMemory {
		return nil
	}
	fd, err := f.ioFd(d)
	if err != nil {
		return err
	}
	return d.dirSync.sync(fd)
}

// newOwner is who owns a new object made by c in a directory with
// attributes dst: the caller, with the directory's group if it is setgid.
func newOwner(c *vfs.Cred, dst *unix.Stat_t) (uid, gid uint32) {
	if dst.Mode&unix.S_ISGID != 0 {
		return c.UID, dst.Gid
	}
	return c.UID, c.GID
}

// checkNewOwner refuses, before anything is created, an owner in sa that c
// could not chown to: root may give any, others only themselves and their
// groups.
func checkNewOwner(c *vfs.Cred, sa *vfs.SetAttr) error {
	if err := checkOwnerIDs(sa); err != nil {
		return err
	}
	if c.UID == 0 {
		return nil
	}
	if (sa.UID != nil && *sa.UID != c.UID) || (sa.GID != nil && !inGroup(c, *sa.GID)) {
		return unix.EPERM
	}
	return nil
}

// checkNewEntry checks, before anything is created, that the caller c
// (squashed in place for d's export) may make name in directory d, whose
// attributes are dst, with the owner sa asks for.
func checkNewEntry(d *node, c *vfs.Cred, dst *unix.Stat_t, name string, sa *vfs.SetAttr) error {
	if d.typ != unix.S_IFDIR {
		return unix.ENOTDIR
	}
	if err := checkNewName(name); err != nil {
		return err
	}
	*c = d.exp.cred(*c)
	if err := mayDir(c, dst); err != nil {
		return err
	}
	return checkNewOwner(c, sa)
}

// initNew gives the new object n, whose attributes adopt left in st, its
// owner (sa's, checked by checkNewOwner, or the default) and the other
// attributes sa asks for. It reports whether it changed anything (st is
// then out of date).
func (f *FS) initNew(n *node, st *unix.Stat_t, c *vfs.Cred, dst *unix.Stat_t, sa vfs.SetAttr, defMode uint32) (bool, error) {
	uid, gid := newOwner(c, dst)
	if sa.UID != nil {
		uid = *sa.UID
	}
	if sa.GID != nil {
		gid = *sa.GID
	}
	if uid != st.Uid || gid != st.Gid || st.Mode&(unix.S_ISUID|unix.S_ISGID) != 0 {
		sa.UID, sa.GID = &uid, &gid
	} else {
		// Already owned so (a root caller): the chown would change nothing
		// on an object this new.
		sa.UID, sa.GID = nil, nil
	}
	if n.typ == unix.S_IFLNK {
		sa.Mode = nil
	} else {
		mode := defMode
		if sa.Mode != nil {
			mode = *sa.Mode & 0o7777
		}
		if n.typ == unix.S_IFDIR && dst.Mode&unix.S_ISGID != 0 {
			// As on a local file system: directories inherit setgid.
			mode |= unix.S_ISGID
		}
		if n.typ != unix.S_IFDIR && mode&unix.S_ISGID != 0 && mode&0o010 != 0 && c.UID != 0 && !inGroup(c, gid) {
			// Nor may a file be made setgid to a group its creator is
			// not in (Linux's mode_strip_sgid).
			mode &^= unix.S_ISGID
		}
		sa.Mode = &mode
		if sa.UID == nil && mode == st.Mode&0o7777 {
			// Created with its final mode (see openMode), and no chown
			// will clear setuid/setgid bits.
			sa.Mode = nil
		}
	}
	if sa.UID == nil && sa.GID == nil && sa.Mode == nil && sa.Size == nil &&
		sa.Atime.How == vfs.TimeDontChange && sa.Mtime.How == vfs.TimeDontChange {
		return false, nil
	}
	return true, f.apply(n, &sa, st)
}

// Who the server creates objects as.
var serverUID, serverGID = uint32(unix.Geteuid()), uint32(unix.Getegid())

// openMode is the mode a new file (or directory, with defMode and private
// its) is created with: its final mode when the server creating it makes
// it the owner it is to have (a root caller), so that no fchmod follows
// (the umask may still take bits, which initNew then restores); otherwise
// owner-only (private) until the chown.
func openMode(c *vfs.Cred, dst *unix.Stat_t, sa *vfs.SetAttr, defMode, private uint32) uint32 {
	uid, gid := newOwner(c, dst)
	if sa.UID != nil {
		uid = *sa.UID
	}
	if sa.GID != nil {
		gid = *sa.GID
	}
	made := serverGID
	if dst.Mode&unix.S_ISGID != 0 {
		made = dst.Gid
	}
	mode := defMode
	if sa.Mode != nil {
		mode = *sa.Mode & 0o7777
	}
	if uid != serverUID || gid != made || mode&0o7000 != 0 {
		return private
	}
	return mode
}

// finishNew makes a new object and its directory entry durable, accounts
// the directory's growth and returns the results of a creating operation.
// st is n's attributes if they are known to be current (nil: stat n).
// around is d's attributes read around the operation (see aroundChange),
// or nil.
func (f *FS) finishNew(d *node, n *node, pre, st *unix.Stat_t, around *dirAround) (vfs.Handle, *vfs.Attr, vfs.Wcc, error) {
	err := f.syncDir(d)
	if err == nil {
		err = f.syncNew(n)
	}
	var wcc vfs.Wcc
	if around != nil {
		wcc = around.wcc(d) // d was settled then
	} else {
		// One fstat of d settles it and gives its post-operation attributes.
		wcc.Before = wccAttr(pre)
		var post unix.Stat_t
		if f.settle(d, &post) == nil {
			wcc.After = attrPtr(d.exp, &post)
		}
	}
	if err != nil {
		return nil, nil, wcc, err
	}
	if st != nil {
		// fsyncs change no attribute.
		return vfs.Handle(n.key), attrPtr(n.exp, st), wcc, nil
	}
	return vfs.Handle(n.key), postAttr(n), wcc, nil
}

// syncNew makes a new (or newly linked) inode's metadata durable; it runs
// after the directory fsync. Symlinks, FIFOs and sockets cannot be opened
// for fsync; they rely on the directory fsync, as with knfsd on a
// journaling file system.
func (f *FS) syncNew(n *node) error {
	if n.exp.dirSyncEnough || n.exp.inMemory || (n.typ != unix.S_IFREG && n.typ != unix.S_IFDIR) {
		return nil
	}
	fd, err := f.ioFd(n)
	if err != nil {
		return err
	}
	return fsync(fd)
}

// dirAround is a directory's attributes read just before and just after
// a change to its entries, with them locked (lockEntries): every change
// to a directory made here locks its entries (SetAttr too), so nothing
// else came between, and the wcc data is atomic. An NFSv4 client told so
// keeps its caches of the directory; otherwise it looks up every name
// again, and asks for its access again, after each create or remove.
type dirAround struct {
	pre, post unix.Stat_t
	preOK, ok bool // pre was read; both were
}

// before reads the attributes before the change.
func (a *dirAround) before(d *node) { a.preOK = fstat(d.fd, &a.pre) == nil }

// after reads them after the change, settling d's growth.
func (f *FS) after(a *dirAround, d *node) {
	a.ok = a.preOK && f.settle(d, &a.post) == nil
}

// done is a, if both readings were made.
func (a *dirAround) done() *dirAround {
	if !a.ok {
		return nil
	}
	return a
}

func (a *dirAround) wcc(d *node) vfs.Wcc {
	return vfs.Wcc{Before: wccAttr(&a.pre), After: attrPtr(d.exp, &a.post), Atomic: true}
}

// Create makes a regular file.
func (f *FS) Create(ctx context.Context, c vfs.Cred, dir vfs.Handle, name string, how vfs.CreateHow, sa vfs.SetAttr, verf vfs.Verifier) (vfs.Handle, *vfs.Attr, vfs.Wcc, error) {
	d, dst, err := f.resolveStat(ctx, dir, vfs.GrantReadWrite)
	if err != nil {
		return nil, nil, vfs.Wcc{}, err
	}
	defer f.cache.release(d)
	fail := func(err error) (vfs.Handle, *vfs.Attr, vfs.Wcc, error) {
		return nil, nil, dirWcc(d, &dst), err
	}
	if how > vfs.CreateExclusive {
		return fail(unix.EINVAL)
	}
	if err := checkNewEntry(d, &c, &dst, name, &sa); err != nil {
		return fail(err)
	}
	q := &d.exp.q
	grow := q.entryBytes()
	if err := q.reserve(grow, 1); err != nil {
		var st unix.Stat_t
		if how != vfs.CreateGuarded && fstatatName(d.fd, name, &st) == nil {
			// An open(O_CREAT) of an existing file, or a retransmitted
			// exclusive create, needs no new inode.
			return f.createExisting(&c, d, &dst, name, how, sa, verf)
		}
		return fail(err)
	}
	defer q.unreserve(grow, 1)
	mode := openMode(&c, &dst, &sa, defaultFileMode, 0o600)
	var around dirAround
	lk := d.exp.lockEntries(d.ino, d.ino)
	around.before(d)
	fd, err := openChild(d.fd, name, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR, mode)
	if err == nil {
		f.after(&around, d)
	}
	lk.unlock()
	if err == unix.EEXIST && how != vfs.CreateGuarded {
		return f.createExisting(&c, d, &dst, name, how, sa, verf)
	}
	if err != nil {
		return fail(err)
	}
	var verfErr error
	if how == vfs.CreateExclusive {
		// Keep the verifier in the timestamps, as knfsd does, so a
		// retransmitted CREATE can be recognized. The client replaces them
		// with a SETATTR once it has the reply. Set before adopt's stat,
		// which then has the attributes to return; initNew sets the others
		// (EXCLUSIVE4_1's), which carry no times (but a size may
		// change the mtime).
		ts := [2]unix.Timespec{timespec(verfTime(verf[4:]).Time), timespec(verfTime(verf[:4]).Time)}
		verfErr = utimensFd(fd, &ts, 0)
		sa.Atime, sa.Mtime = vfs.SetTime{}, vfs.SetTime{}
		if sa.Size != nil {
			// A truncation sets the mtime: apply sets the times again
			// after it.
			sa.Atime, sa.Mtime = verfTime(verf[4:]), verfTime(verf[:4])
		}
	}
	var st unix.Stat_t
	n, err := f.adopt(d.exp, fd, fd, &st)
	if err != nil {
		return fail(err)
	}
	defer f.cache.release(n)
	f.chargeNew(n)
	if verfErr != nil {
		f.settleQuiet(d)
		return fail(verfErr)
	}
	changed, err := f.initNew(n, &st, &c, &dst, sa, defaultFileMode)
	if err != nil {
		f.settleQuiet(d)
		return fail(err)
	}
	cur := &st
	if changed {
		cur = nil
	}
	return f.finishNew(d, n, &dst, cur, around.done())
}

func verfTime(b []byte) vfs.SetTime {
	var st vfs.SetTime
	st.How = vfs.TimeClient
	st.Time = tsTime(unix.Timespec{Sec: int64(binary.BigEndian.Uint32(b))})
	return st
}

// createExisting handles UNCHECKED and EXCLUSIVE creates of a name that
// exists.
func (f *FS) createExisting(c *vfs.Cred, d *node, dst *unix.Stat_t, name string, how vfs.CreateHow, sa vfs.SetAttr, verf vfs.Verifier) (vfs.Handle, *vfs.Attr, vfs.Wcc, error) {
	fail := func(err error) (vfs.Handle, *vfs.Attr, vfs.Wcc, error) {
		return nil, nil, dirWcc(d, dst), err
	}
	// Open the existing entry O_PATH: it may be a FIFO or a device, which
	// must never be opened for I/O.
	fd, err := openChild(d.fd, name, unix.O_PATH, 0)
	if err != nil {
		if err == unix.ENOENT {
			// Removed meanwhile; the client may retry.
			err = unix.EEXIST
		}
		return fail(err)
	}
	var st unix.Stat_t
	n, err := f.adopt(d.exp, fd, -1, &st)
	if err != nil {
		return fail(err)
	}
	defer f.cache.release(n)
	if n.typ != unix.S_IFREG {
		return fail(unix.EEXIST)
	}
	switch how {
	case vfs.CreateExclusive:
		if uint32(st.Mtim.Sec) != binary.BigEndian.Uint32(verf[:4]) ||
			uint32(st.Atim.Sec) != binary.BigEndian.Uint32(verf[4:]) {
			return fail(unix.EEXIST)
		}
		// A retransmission of the create that made this file.
	case vfs.CreateUnchecked:
		// The file is not the caller's new file: only a size (truncation)
		// applies, as with knfsd.
		if sa.Size != nil {
			if err := mayWrite(c, &st); err != nil {
				return fail(err)
			}
			err := f.apply(n, &vfs.SetAttr{Size: sa.Size}, &st)
			f.settleQuiet(n)
			if err != nil {
				return fail(err)
			}
		}
	}
	return f.finishNew(d, n, dst, nil, nil)
}

// Mkdir makes a directory.
func (f *FS) Mkdir(ctx context.Context, c vfs.Cred, dir vfs.Handle, name string, sa vfs.SetAttr) (vfs.Handle, *vfs.Attr, vfs.Wcc, error) {
	return f.makeNode(ctx, c, dir, name, sa, defaultDirMode, unix.S_IFDIR, "", func(dirfd int, mode uint32) (int, error) {
		if err := unix.Mkdirat(dirfd, name, mode); err != nil {
			return -1, err
		}
		return openChild(dirfd, name, unix.O_PATH|unix.O_DIRECTORY, 0)
	})
}

// Symlink makes a symlink with target stored verbatim.
func (f *FS) Symlink(ctx context.Context, c vfs.Cred, dir vfs.Handle, name, target string, sa vfs.SetAttr) (vfs.Handle, *vfs.Attr, vfs.Wcc, error) {
	return f.makeNode(ctx, c, dir, name, sa, 0o777, unix.S_IFLNK, target, func(dirfd int, _ uint32) (int, error) {
		switch {
		case target == "":
			return -1, unix.EINVAL
		case len(target) >= unix.PathMax:
			return -1, unix.ENAMETOOLONG
		}
		if err := unix.Symlinkat(target, dirfd, name); err != nil {
			return -1, err
		}
		return openChild(dirfd, name, unix.O_PATH, 0)
	})
}

// Mknod makes a FIFO, a socket or a device node. Device nodes are stored as
// knfsd stores them: only for root callers (knfsd drops CAP_MKNOD for the
// others), and only as entries: nothing here ever opens a node that is not
// a regular file or directory for I/O (see ioFd), so a client cannot reach
// the server's devices through one.
func (f *FS) Mknod(ctx context.Context, c vfs.Cred, dir vfs.Handle, name string, t vfs.FileType, sa vfs.SetAttr, major, minor uint32) (vfs.Handle, *vfs.Attr, vfs.Wcc, error) {
	var mode uint32
	var dev uint64
	switch t {
	case vfs.TypeFIFO:
		mode = unix.S_IFIFO
	case vfs.TypeSocket:
		mode = unix.S_IFSOCK
	case vfs.TypeChar, vfs.TypeBlock:
		mode = unix.S_IFCHR
		if t == vfs.TypeBlock {
			mode = unix.S_IFBLK
		}
		// mknodat takes a 32-bit dev_t: a 12-bit major and a 20-bit minor.
		// Wider numbers would be truncated into another device.
		if major >= 1<<12 || minor >= 1<<20 {
			return f.refuse(ctx, dir, unix.EINVAL)
		}
		dev = unix.Mkdev(major, minor)
	default:
		return f.refuse(ctx, dir, vfs.ErrBadType)
	}
	return f.makeNode(ctx, c, dir, name, sa, 0o644, mode, "", func(dirfd int, _ uint32) (int, error) {
		if err := unix.Mknodat(dirfd, name, mode|0o600, int(dev)); err != nil {
			return -1, err
		}
		return openChild(dirfd, name, unix.O_PATH, 0)
	})
}

// refuse fails a creating operation on dir with err, with dir's wcc data.
func (f *FS) refuse(ctx context.Context, dir vfs.Handle, err error) (vfs.Handle, *vfs.Attr, vfs.Wcc, error) {
	d, dst, rerr := f.resolveStat(ctx, dir, vfs.GrantReadWrite)
	if rerr != nil {
		return nil, nil, vfs.Wcc{}, rerr
	}
	defer f.cache.release(d)
	return nil, nil, dirWcc(d, &dst), err
}

// makeNode runs mk, which creates name in the directory fd it is given
// (a directory with the mode given, see openMode) and returns an O_PATH fd
// of the new object, and finishes the object.
func (f *FS) makeNode(ctx context.Context, c vfs.Cred, dir vfs.Handle, name string, sa vfs.SetAttr, defMode, typ uint32, target string, mk func(dirfd int, mode uint32) (int, error)) (vfs.Handle, *vfs.Attr, vfs.Wcc, error) {
	d, dst, err := f.resolveStat(ctx, dir, vfs.GrantReadWrite)
	if err != nil {
		return nil, nil, vfs.Wcc{}, err
	}
	defer f.cache.release(d)
	fail := func(err error) (vfs.Handle, *vfs.Attr, vfs.Wcc, error) {
		return nil, nil, dirWcc(d, &dst), err
	}
	if err := checkNewEntry(d, &c, &dst, name, &sa); err != nil {
		return fail(err)
	}
	if (typ == unix.S_IFCHR || typ == unix.S_IFBLK) && c.UID != 0 {
		return fail(unix.EPERM)
	}
	q := &d.exp.q
	est := q.newObjectBytes(typ, target) + q.entryBytes()
	if err := q.reserve(est, 1); err != nil {
		return fail(err)
	}
	defer q.unreserve(est, 1)
	// mk opens the object by name after making it. With d's entries
	// locked, no REMOVE or RENAME can put another object (one owned by
	// root, say, which initNew would then give to the caller) on the name
	// in between.
	var around dirAround
	lk := d.exp.lockEntries(d.ino, d.ino)
	around.before(d)
	fd, err := mk(d.fd, openMode(&c, &dst, &sa, defMode, 0o700))
	if err == nil {
		f.after(&around, d)
	}
	lk.unlock()
	if err != nil {
		return fail(err)
	}
	var st unix.Stat_t
	n, err := f.adopt(d.exp, fd, -1, &st)
	if err != nil {
		return fail(err)
	}
	defer f.cache.release(n)
	f.chargeNew(n)
	var lkNew *entriesLock
	if n.typ == unix.S_IFDIR {
		// A change to a directory, with its entries locked (see dirAround).
		l := n.exp.lockEntries(n.ino, n.ino)
		lkNew = &l
	}
	changed, err := f.initNew(n, &st, &c, &dst, sa, defMode)
	if lkNew != nil {
		lkNew.unlock()
	}
	if err != nil {
		f.settleQuiet(d)
		return fail(err)
	}
	cur := &st
	if changed {
		cur = nil
	}
	return f.finishNew(d, n, &dst, cur, around.done())
}

// lockEntries locks the entries of the directories with inode numbers a
// and b (which may be the same), in an order every caller shares; the
// result's unlock undoes it. (A value, not a closure: that would cost an
// allocation on every operation that names an entry.)
func (e *export) lockEntries(a, b uint64) entriesLock {
	i, j := a%uint64(len(e.entries)), b%uint64(len(e.entries))
	if i > j {
		i, j = j, i
	}
	e.entries[i].Lock()
	if j != i {
		e.entries[j].Lock()
	}
	return entriesLock{e, uint8(i), uint8(j)}
}

type entriesLock struct {
	e    *export
	i, j uint8
}

func (l entriesLock) unlock() {
	if l.j != l.i {
		l.e.entries[l.j].Unlock()
	}
	l.e.entries[l.i].Unlock()
}

// Remove removes a non-directory.
func (f *FS) Remove(ctx context.Context, c vfs.Cred, dir vfs.Handle, name string) (vfs.Wcc, error) {
	return f.unlink(ctx, c, dir, name, 0)
}

// Rmdir removes an empty directory.
func (f *FS) Rmdir(ctx context.Context, c vfs.Cred, dir vfs.Handle, name string) (vfs.Wcc, error) {
	return f.unlink(ctx, c, dir, name, unix.AT_REMOVEDIR)
}

func (f *FS) unlink(ctx context.Context, c vfs.Cred, dir vfs.Handle, name string, flags int) (vfs.Wcc, error) {
	d, dst, err := f.resolveStat(ctx, dir, vfs.GrantReadWrite)
	if err != nil {
		return vfs.Wcc{}, err
	}
	defer f.cache.release(d)
	if d.typ != unix.S_IFDIR {
		return dirWcc(d, &dst), unix.ENOTDIR
	}
	if err := checkOldName(name); err != nil {
		return dirWcc(d, &dst), err
	}
	c = d.exp.cred(c)
	if err := mayDir(&c, &dst); err != nil {
		return dirWcc(d, &dst), err
	}
	var around dirAround
	lk := d.exp.lockEntries(d.ino, d.ino)
	around.before(d)
	v, err := f.holdVictim(d.exp, d.fd, name)
	if err == nil {
		err = mayUnlinkSticky(&c, &dst, &v.st)
	}
	if err == nil {
		// unlinkat acts on the final component itself and never follows it.
		err = unlinkatName(d.fd, name, flags)
		// A directory has no other link: removed, it is gone.
		v.gone = err == nil && flags&unix.AT_REMOVEDIR != 0
	}
	if err == nil {
		around.ok = around.preOK && fstat(d.fd, &around.post) == nil
	}
	lk.unlock()
	if v != nil {
		f.releaseVictim(d.exp, v)
	}
	if err != nil {
		return dirWcc(d, &dst), err
	}
	err = f.syncDir(d)
	if a := around.done(); a != nil {
		return a.wcc(d), err
	}
	return dirWcc(d, &dst), err
}

// Rename moves fromName in fromDir to toName in toDir, replacing toName.
func (f *FS) Rename(ctx context.Context, c vfs.Cred, fromDir vfs.Handle, fromName string, toDir vfs.Handle, toName string) (vfs.Wcc, vfs.Wcc, error) {
	fromD, fst, err := f.resolveStat(ctx, fromDir, vfs.GrantReadWrite)
	if err != nil {
		return vfs.Wcc{}, vfs.Wcc{}, err
	}
	defer f.cache.release(fromD)
	toD, tst, err := f.resolveStat(ctx, toDir, vfs.GrantReadWrite)
	if err != nil {
		return dirWcc(fromD, &fst), vfs.Wcc{}, err
	}
	defer f.cache.release(toD)
	// done returns the results with current wcc data, for errors too.
	done := func(err error) (vfs.Wcc, vfs.Wcc, error) {
		return dirWcc(fromD, &fst), dirWcc(toD, &tst), err
	}
	switch {
	case fromD.exp != toD.exp:
		return done(unix.EXDEV)
	case fromD.typ != unix.S_IFDIR || toD.typ != unix.S_IFDIR:
		return done(unix.ENOTDIR)
	}
	if err := checkOldName(fromName); err != nil {
		return done(err)
	}
	if err := checkOldName(toName); err != nil {
		return done(err)
	}
	c = fromD.exp.cred(c)
	if err := mayDir(&c, &fst); err != nil {
		return done(err)
	}
	if err := mayDir(&c, &tst); err != nil {
		return done(err)
	}
	lk := fromD.exp.lockEntries(fromD.ino, toD.ino)
	v, grow, err := f.renameChecked(&c, fromD, &fst, fromName, toD, &tst, toName)
	lk.unlock()
	if v != nil {
		f.releaseVictim(toD.exp, v)
	}
	if err != nil {
		toD.exp.q.unreserve(grow, 0)
		return done(err)
	}
	f.settleQuiet(toD)
	toD.exp.q.unreserve(grow, 0)
	err = f.syncDir(fromD)
	if err == nil && toD != fromD {
		err = f.syncDir(toD)
	}
	return done(err)
}

// renameChecked checks and runs a RENAME with the entries of both
// directories locked. It returns the held target, if there was one, and
// the bytes reserved for a new name in toD, which the caller unreserves
// once it has settled toD.
func (f *FS) renameChecked(c *vfs.Cred, fromD *node, fst *unix.Stat_t, fromName string, toD *node, tst *unix.Stat_t, toName string) (v *victim, grow int64, err error) {
	var sst unix.Stat_t
	if err := fstatatName(fromD.fd, fromName, &sst); err != nil {
		return nil, 0, err
	}
	if err := mayUnlinkSticky(c, fst, &sst); err != nil {
		return nil, 0, err
	}
	// The target is held even when it is another link of the source
	// (rename then does nothing): its link count after tells.
	v, err = f.holdVictim(toD.exp, toD.fd, toName)
	switch {
	case err == nil:
		if err := mayUnlinkSticky(c, tst, &v.st); err != nil {
			return v, 0, err
		}
	case err != unix.ENOENT:
		return nil, 0, err
	}
	if sst.Mode&unix.S_IFMT == unix.S_IFDIR && fromD.ino != toD.ino && !may(c, &sst, permW) {
		// Moving a directory rewrites its "..".
		return v, 0, unix.EACCES
	}
	if v == nil {
		// A new name may grow toD; a replaced one reuses its entry.
		q := &toD.exp.q
		if err := q.reserve(q.entryBytes(), 0); err != nil {
			return nil, 0, err
		}
		grow = q.entryBytes()
	}
	return v, grow, unix.Renameat(fromD.fd, fromName, toD.fd, toName)
}

// Link makes name in dir a new link to h.
func (f *FS) Link(ctx context.Context, c vfs.Cred, h vfs.Handle, dir vfs.Handle, name string) (*vfs.Attr, vfs.Wcc, error) {
	n, st, err := f.resolveStat(ctx, h, vfs.GrantReadWrite)
	if err != nil {
		return nil, vfs.Wcc{}, err
	}
	defer f.cache.release(n)
	d, dst, err := f.resolveStat(ctx, dir, vfs.GrantReadWrite)
	if err != nil {
		return attrPtr(n.exp, &st), vfs.Wcc{}, err
	}
	defer f.cache.release(d)
	// done returns the results with current wcc data, for errors too.
	done := func(err error) (*vfs.Attr, vfs.Wcc, error) {
		return postAttr(n), dirWcc(d, &dst), err
	}
	switch {
	case n.exp != d.exp:
		return done(unix.EXDEV)
	case d.typ != unix.S_IFDIR:
		return done(unix.ENOTDIR)
	case n.typ == unix.S_IFDIR:
		return done(unix.EISDIR)
	}
	if err := checkNewName(name); err != nil {
		return done(err)
	}
	c = d.exp.cred(c)
	if err := mayDir(&c, &dst); err != nil {
		return done(err)
	}
	// A link allocates no inode, but may grow the directory.
	q := &d.exp.q
	grow := q.entryBytes()
	if err := q.reserve(grow, 0); err != nil {
		return done(err)
	}
	defer q.unreserve(grow, 0)
	lk := d.exp.lockEntries(d.ino, d.ino)
	err = unix.Linkat(n.fd, "", d.fd, name, unix.AT_EMPTY_PATH)
	lk.unlock()
	if err != nil {
		return done(err)
	}
	f.settleQuiet(d)
	err = f.syncDir(d)
	if err == nil {
		// The link count lives in the inode.
		err = f.syncNew(n)
	}
	return done(err)
}
