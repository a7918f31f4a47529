package localfs

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

// fstat works on O_PATH fds and reports the object the fd refers to,
// which for an O_PATH|O_NOFOLLOW fd of a symlink is the symlink. (Same as
// fstatat(fd, "", AT_EMPTY_PATH), without allocating the empty path.)
func fstat(fd int, st *unix.Stat_t) error {
	return unix.Fstat(fd, st)
}

// statNode stats n and reports a removed object as stale unless it is held
// (hold.go): an fd keeps an unlinked inode alive, but NFS clients must see
// it gone.
func statNode(n *node, st *unix.Stat_t) error {
	if err := fstat(n.fd, st); err != nil {
		return err
	}
	if st.Nlink == 0 && !n.exp.pinned(n.key) {
		return vfs.ErrStale
	}
	return nil
}

func fileType(mode uint32) vfs.FileType {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return vfs.TypeRegular
	case unix.S_IFDIR:
		return vfs.TypeDirectory
	case unix.S_IFBLK:
		return vfs.TypeBlock
	case unix.S_IFCHR:
		return vfs.TypeChar
	case unix.S_IFLNK:
		return vfs.TypeSymlink
	case unix.S_IFSOCK:
		return vfs.TypeSocket
	case unix.S_IFIFO:
		return vfs.TypeFIFO
	}
	return 0
}

func tsTime(ts unix.Timespec) time.Time { return time.Unix(ts.Sec, ts.Nsec) }

func toAttr(e *export, st *unix.Stat_t) vfs.Attr {
	return vfs.Attr{
		Type:      fileType(st.Mode),
		Mode:      st.Mode & 0o7777,
		Nlink:     uint32(st.Nlink),
		UID:       st.Uid,
		GID:       st.Gid,
		Size:      uint64(st.Size),
		Used:      uint64(st.Blocks) * 512,
		RdevMajor: unix.Major(st.Rdev),
		RdevMinor: unix.Minor(st.Rdev),
		FSID:      e.fsid,
		FileID:    st.Ino,
		Atime:     tsTime(st.Atim),
		Mtime:     tsTime(st.Mtim),
		Ctime:     tsTime(st.Ctim),
	}
}

func attrPtr(e *export, st *unix.Stat_t) *vfs.Attr {
	a := toAttr(e, st)
	return &a
}

func wccAttr(st *unix.Stat_t) *vfs.WccAttr {
	return &vfs.WccAttr{Size: uint64(st.Size), Mtime: tsTime(st.Mtim), Ctime: tsTime(st.Ctim)}
}

// postAttr stats n for post-operation attributes; nil if that fails.
func postAttr(n *node) *vfs.Attr {
	var st unix.Stat_t
	if fstat(n.fd, &st) != nil {
		return nil
	}
	return attrPtr(n.exp, &st)
}

func timespec(t time.Time) unix.Timespec {
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}

// Name checks. Every name a client sends is used as exactly one path
// component relative to a directory fd.

const maxName = 255

// checkName validates a name for lookup: "." and ".." are allowed and
// handled by the caller.
func checkName(name string) error {
	switch {
	case name == "":
		return unix.EINVAL
	case len(name) > maxName:
		return unix.ENAMETOOLONG
	}
	for i := 0; i < len(name); i++ {
		if name[i] == '/' || name[i] == 0 {
			return unix.EACCES
		}
	}
	return nil
}

func isDot(name string) bool { return name == "." || name == ".." }

// checkNewName validates the name of an object to create.
func checkNewName(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if isDot(name) {
		return unix.EEXIST
	}
	return nil
}

// checkOldName validates the name of an entry to remove or rename.
func checkOldName(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if isDot(name) {
		return unix.EINVAL
	}
	return nil
}

// resolveBeneath is how every client-supplied name is opened: one component
// that must stay beneath the directory, crossing no symlink and no mount.
var resolveBeneath = uint64(unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_XDEV)

// openChild opens name in dirfd. With O_PATH|O_NOFOLLOW a final symlink is
// opened itself rather than followed.
func openChild(dirfd int, name string, flags int, mode uint32) (int, error) {
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_NOFOLLOW | unix.O_CLOEXEC),
		Mode:    uint64(mode),
		Resolve: resolveBeneath,
	}
	for try := 0; ; try++ {
		fd, err := openat2Name(dirfd, name, &how)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN && try < 64:
			// openat2 returns EAGAIN with RESOLVE_BENEATH when a concurrent
			// rename may have raced the lookup; retrying is the documented
			// answer.
			continue
		case err == unix.EXDEV:
			// A mount point: not part of the volume.
			return -1, unix.EACCES
		}
		return fd, err
	}
}
