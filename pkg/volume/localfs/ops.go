package localfs

import (
	"context"
	"math"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

// stale drops n from the cache when err says its object is gone, so the
// cached fds stop pinning a deleted inode.
func (f *FS) stale(n *node, err error) error {
	if err == vfs.ErrStale {
		f.cache.forget(n)
	}
	return err
}

// GetAttr returns h's attributes.
func (f *FS) GetAttr(ctx context.Context, h vfs.Handle) (vfs.Attr, error) {
	n, st, err := f.resolveStat(ctx, h, vfs.GrantReadOnly)
	if err != nil {
		return vfs.Attr{}, err
	}
	defer f.cache.release(n)
	return toAttr(n.exp, &st), nil
}

// SetAttr changes h's attributes if guard (when set) equals its ctime.
func (f *FS) SetAttr(ctx context.Context, c vfs.Cred, h vfs.Handle, sa vfs.SetAttr, guard *time.Time) (vfs.Wcc, error) {
	n, st, err := f.resolveStat(ctx, h, vfs.GrantReadWrite)
	if err != nil {
		return vfs.Wcc{}, err
	}
	defer f.cache.release(n)
	wcc := vfs.Wcc{Before: wccAttr(&st)}
	if guard != nil && !tsTime(st.Ctim).Equal(*guard) {
		wcc.After = attrPtr(n.exp, &st)
		return wcc, vfs.ErrNotSync
	}
	c = n.exp.cred(c)
	if err := checkSetAttr(&c, &sa, &st); err != nil {
		wcc.After = attrPtr(n.exp, &st)
		return wcc, err
	}
	if sa.Size != nil && *sa.Size > uint64(st.Size) {
		// Growing a file makes a hole, which allocates nothing; but a file
		// larger than the whole volume could never be filled.
		if u := n.exp.q.usage(); u.MaxBytes > 0 && *sa.Size > u.MaxBytes {
			wcc.After = attrPtr(n.exp, &st)
			return wcc, unix.EDQUOT
		}
	}
	if n.typ == unix.S_IFDIR {
		// With its entries locked, as every change to a directory (see
		// dirAround).
		lk := n.exp.lockEntries(n.ino, n.ino)
		err = f.apply(n, &sa, &st)
		lk.unlock()
	} else {
		err = f.apply(n, &sa, &st)
	}
	if sa.Size != nil {
		// Settling stats n: those are the post-operation attributes.
		var post unix.Stat_t
		if f.settle(n, &post) == nil {
			wcc.After = attrPtr(n.exp, &post)
		}
		return wcc, err
	}
	wcc.After = postAttr(n)
	return wcc, err
}

// apply carries out sa on n, whose current attributes are st. It checks
// everything it can before changing anything.
func (f *FS) apply(n *node, sa *vfs.SetAttr, st *unix.Stat_t) error {
	if sa.Size != nil {
		switch {
		case n.typ == unix.S_IFDIR:
			return unix.EISDIR
		case n.typ != unix.S_IFREG:
			return unix.EINVAL
		case *sa.Size > math.MaxInt64:
			return unix.EFBIG
		}
	}
	if sa.Mode != nil && n.typ == unix.S_IFLNK && *sa.Mode&0o7777 != st.Mode&0o7777 {
		// Linux has no symlink permissions; chmod would follow the link.
		return vfs.ErrNotSupp
	}
	// Ownership first: chown clears setuid/setgid, so a mode given in the
	// same request must be applied after it.
	if sa.UID != nil || sa.GID != nil {
		uid, gid := -1, -1
		if sa.UID != nil {
			uid = int(*sa.UID)
		}
		if sa.GID != nil {
			gid = int(*sa.GID)
		}
		if err := unix.Fchownat(n.fd, "", uid, gid, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	if sa.Size != nil {
		fd, err := f.ioFd(n)
		if err != nil {
			return err
		}
		if n.ioErr != nil {
			return n.ioErr
		}
		// Waits for WRITEs in flight, whose estimates assumed the blocks
		// this may free (see Write).
		n.acct.resize.Lock()
		err = unix.Ftruncate(fd, int64(*sa.Size))
		n.acct.resize.Unlock()
		if err != nil {
			return err
		}
	}
	if sa.Mode != nil && n.typ != unix.S_IFLNK && !sameModeTimed(sa, st) {
		if err := f.chmod(n, *sa.Mode&0o7777); err != nil {
			return err
		}
	}
	if sa.Atime.How != vfs.TimeDontChange || sa.Mtime.How != vfs.TimeDontChange {
		ts := [2]unix.Timespec{setTime(sa.Atime), setTime(sa.Mtime)}
		if err := utimensFd(n.fd, &ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	return nil
}

// sameModeTimed reports whether sa's chmod can be left out: to the mode
// the object (attributes st) has, with no chown before it (which may clear
// bits), that chmod would change only the ctime, which the time change sa
// also asks for changes anyway. (Linux's NFSv3 client follows every
// exclusive CREATE, so every open(O_EXCL), with a SETATTR of the mode and
// both times.)
func sameModeTimed(sa *vfs.SetAttr, st *unix.Stat_t) bool {
	return *sa.Mode&0o7777 == st.Mode&0o7777 && sa.UID == nil && sa.GID == nil &&
		(sa.Atime.How != vfs.TimeDontChange || sa.Mtime.How != vfs.TimeDontChange)
}

// chmod changes the mode of n, not a symlink: with plain fchmod on an fd
// opened for I/O where n has one (no procfs path walk on kernels without
// fchmodat2; fchmod needs no write access).
func (f *FS) chmod(n *node, mode uint32) error {
	if n.ioOnly {
		return unix.Fchmod(n.fd, mode)
	}
	if io := n.io.Load(); io >= 0 {
		return unix.Fchmod(int(io), mode)
	}
	return chmodFd(n.fd, mode)
}

func setTime(t vfs.SetTime) unix.Timespec {
	switch t.How {
	case vfs.TimeServer:
		return unix.Timespec{Nsec: unix.UTIME_NOW}
	case vfs.TimeClient:
		return timespec(t.Time)
	}
	return unix.Timespec{Nsec: unix.UTIME_OMIT}
}

// noFchmodat2 is set once the kernel turned out to lack fchmodat2 (before
// 6.6), so that each chmod then costs one syscall, not two.
var noFchmodat2 atomic.Bool

// chmodFd changes the mode of the non-symlink fd refers to (O_PATH works).
func chmodFd(fd int, mode uint32) error {
	if !noFchmodat2.Load() {
		err := unix.Fchmodat(fd, "", mode, unix.AT_EMPTY_PATH)
		if err != unix.EOPNOTSUPP && err != unix.ENOSYS {
			return err
		}
		noFchmodat2.Store(true)
	}
	// The procfs link of our own fd names exactly this inode, and it is
	// not a symlink, so following it cannot go anywhere else.
	return unix.Fchmodat(unix.AT_FDCWD, procFdPath(fd), mode, 0)
}

func procFdPath(fd int) string {
	const prefix = "/proc/self/fd/"
	var buf [len(prefix) + 20]byte
	b := append(buf[:0], prefix...)
	b = appendUint(b, uint64(fd))
	return string(b)
}

func appendUint(b []byte, v uint64) []byte {
	var d [20]byte
	i := len(d)
	for {
		i--
		d[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(b, d[i:]...)
}

// Lookup resolves one name in dir. It never follows a symlink: looking up a
// symlink returns the symlink.
func (f *FS) Lookup(ctx context.Context, c vfs.Cred, dir vfs.Handle, name string) (vfs.Handle, vfs.Attr, *vfs.Attr, error) {
	d, dst, err := f.resolveStat(ctx, dir, vfs.GrantReadOnly)
	if err != nil {
		return nil, vfs.Attr{}, nil, err
	}
	defer f.cache.release(d)
	dirAttr := attrPtr(d.exp, &dst)
	if d.typ != unix.S_IFDIR {
		return nil, vfs.Attr{}, dirAttr, unix.ENOTDIR
	}
	if err := checkName(name); err != nil {
		return nil, vfs.Attr{}, dirAttr, err
	}
	c = d.exp.cred(c)
	if err := maySearch(&c, &dst); err != nil {
		return nil, vfs.Attr{}, dirAttr, err
	}
	if name == "." || (name == ".." && d.ino == d.exp.rootIno) {
		// The volume root is its own parent: clients never get out.
		return vfs.Handle(d.key), *dirAttr, dirAttr, nil
	}
	if name != ".." {
		var st unix.Stat_t
		lk := d.exp.lockEntries(d.ino, d.ino)
		n, err := f.cachedChild(d, name, &st)
		lk.unlock()
		if err != nil {
			return nil, vfs.Attr{}, dirAttr, err
		}
		if n != nil {
			defer f.cache.release(n)
			return vfs.Handle(n.key), toAttr(n.exp, &st), dirAttr, nil
		}
	}
	var fd int
	if name == ".." {
		// RESOLVE_BENEATH refuses "..", so open it plainly: d is not the
		// volume root, and clients cannot move directories out of a volume,
		// so d's parent is inside it. adopt still checks the device.
		fd, err = unix.Openat(d.fd, "..", unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	} else {
		fd, err = openChild(d.fd, name, unix.O_PATH, 0)
	}
	if err != nil {
		return nil, vfs.Attr{}, dirAttr, err
	}
	var st unix.Stat_t
	n, err := f.adopt(d.exp, fd, -1, &st)
	if err != nil {
		return nil, vfs.Attr{}, dirAttr, err
	}
	defer f.cache.release(n)
	return vfs.Handle(n.key), toAttr(n.exp, &st), dirAttr, nil
}

// cachedChild returns the node of name in directory d, with a reference,
// if one is open, and its attributes in st: one fstatat instead of opening
// the name, minting its handle and closing it again. The caller holds d's
// entry lock, so name still refers to the inode fstatat saw; an open node
// of that inode number pins the inode, so it is that inode. It returns nil
// (and no error) when the slow path must decide.
func (f *FS) cachedChild(d *node, name string, st *unix.Stat_t) (*node, error) {
	// One component, never followed: as safe as openChild.
	err := fstatatName(d.fd, name, st)
	if err == unix.ENOENT {
		return nil, err
	}
	if err != nil || st.Dev != d.exp.dev {
		return nil, nil // the slow path's error, or a mount point's EACCES
	}
	e := d.exp
	key := e.openKey(st.Ino)
	if key == "" {
		return nil, nil
	}
	n := f.cache.getKey(key)
	if n == nil {
		return nil, nil
	}
	if n.exp != e || n.ino != st.Ino {
		f.cache.release(n)
		return nil, nil
	}
	return n, nil
}

// Access reports which of want c may do to h by the POSIX mode bits.
func (f *FS) Access(ctx context.Context, c vfs.Cred, h vfs.Handle, want uint32) (uint32, vfs.Attr, error) {
	n, st, err := f.resolveStat(ctx, h, vfs.GrantReadOnly)
	if err != nil {
		return 0, vfs.Attr{}, err
	}
	defer f.cache.release(n)
	c = n.exp.cred(c)
	granted := accessBits(&c, &st) & want
	if n.exp.grant(ctx) == vfs.GrantReadOnly {
		granted &^= vfs.AccessModify | vfs.AccessExtend | vfs.AccessDelete
	}
	return granted, toAttr(n.exp, &st), nil
}

// Readlink returns a symlink's target verbatim.
func (f *FS) Readlink(ctx context.Context, c vfs.Cred, h vfs.Handle) (string, *vfs.Attr, error) {
	n, st, err := f.resolveStat(ctx, h, vfs.GrantReadOnly)
	if err != nil {
		return "", nil, err
	}
	defer f.cache.release(n)
	attr := attrPtr(n.exp, &st)
	if n.typ != unix.S_IFLNK {
		return "", attr, unix.EINVAL
	}
	buf := make([]byte, unix.PathMax)
	m, err := unix.Readlinkat(n.fd, "", buf)
	if err != nil {
		return "", attr, err
	}
	return string(buf[:m]), attr, nil
}

// FSStat reports the space and inodes of h's file system.
func (f *FS) FSStat(ctx context.Context, h vfs.Handle) (vfs.FSStat, *vfs.Attr, error) {
	n, st, err := f.resolveStat(ctx, h, vfs.GrantReadOnly)
	if err != nil {
		return vfs.FSStat{}, nil, err
	}
	defer f.cache.release(n)
	var s unix.Statfs_t
	if err := unix.Fstatfs(n.fd, &s); err != nil {
		return vfs.FSStat{}, attrPtr(n.exp, &st), err
	}
	return volumeStat(&s, n.exp.q.usage()), attrPtr(n.exp, &st), nil
}

// volumeStat is what FSSTAT reports for a volume with usage u on a file
// system with s: the volume's own limits and what is left of them, or the
// disk's free space (inodes) where that is smaller.
func volumeStat(s *unix.Statfs_t, u Usage) vfs.FSStat {
	bs := uint64(s.Bsize)
	fs := vfs.FSStat{
		TotalBytes: s.Blocks * bs,
		FreeBytes:  s.Bfree * bs,
		AvailBytes: s.Bavail * bs,
		TotalFiles: s.Files,
		FreeFiles:  s.Ffree,
		AvailFiles: s.Ffree,
	}
	if u.MaxBytes > 0 {
		left := u.MaxBytes - min(u.Bytes, u.MaxBytes)
		fs.TotalBytes = u.MaxBytes
		fs.FreeBytes = min(left, fs.FreeBytes)
		fs.AvailBytes = min(left, fs.AvailBytes)
	}
	if u.MaxInodes > 0 {
		left := u.MaxInodes - min(u.Inodes, u.MaxInodes)
		fs.TotalFiles = u.MaxInodes
		if s.Files == 0 {
			// No inode accounting on disk (btrfs): only the limit counts.
			fs.FreeFiles, fs.AvailFiles = left, left
		} else {
			fs.FreeFiles = min(left, fs.FreeFiles)
			fs.AvailFiles = min(left, fs.AvailFiles)
		}
	}
	return fs
}
