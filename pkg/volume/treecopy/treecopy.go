// Package treecopy copies a volume's directory tree for snapshots, restores
// and clones. On file systems that share extents (XFS with reflink, btrfs)
// every regular file is cloned with FICLONE, so the copy takes no data
// blocks until one side changes; elsewhere (ext4, tmpfs) the data is copied,
// holes kept.
//
// The source tree is written by NFS clients, so it is hostile: the walk
// never follows a symlink (every name is opened relative to its directory's
// fd with O_NOFOLLOW, and a file is checked to still be the one stat'ed
// after it is opened), never crosses into another mount, and never opens
// devices or FIFOs. Directories, regular files, symlinks, device nodes,
// FIFOs and sockets are copied with their modes, owners and times; hard
// links stay hard links. Extended attributes are not copied (Hangar's NFSv3
// server never sets any).
package treecopy

import (
	"errors"
	"fmt"
	"os"
	"path"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Stats describes a finished copy.
type Stats struct {
	Dirs, Files, Others int64 // directories, regular files, everything else
	Bytes               int64 // regular file data (apparent sizes)
	Cloned              int64 // regular files cloned by FICLONE
	Copied              int64 // regular files whose data was copied
	Skipped             int64 // mount points left out
}

// Options tune a copy.
type Options struct {
	// Progress, if set, is advanced by the bytes of file data copied (not
	// cloned) as the copy goes, for a caller reporting on a long copy.
	Progress *atomic.Int64
	// NoClone disables FICLONE (tests of the copy path).
	NoClone bool
	// Cancel, if set, stops the copy with ErrCanceled once it is true.
	Cancel *atomic.Bool
}

// ErrCanceled is returned by a copy stopped through Options.Cancel.
var ErrCanceled = errors.New("treecopy: canceled")

// Copy copies the tree at src into dst, which must not exist; its parent
// must. src is trusted as a path (it comes from the operator), everything
// under it is not.
func Copy(src, dst string, o Options) (Stats, error) {
	c := &copier{o: o, links: map[uint64]string{}}
	sfd, err := unix.Open(src, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return c.st, fmt.Errorf("treecopy: opening source %s: %w", src, err)
	}
	defer unix.Close(sfd)
	var st unix.Stat_t
	if err := unix.Fstat(sfd, &st); err != nil {
		return c.st, fmt.Errorf("treecopy: %s: %w", src, err)
	}
	c.dev = st.Dev
	if err := unix.Mkdir(dst, 0o700); err != nil {
		return c.st, fmt.Errorf("treecopy: creating %s: %w", dst, err)
	}
	dfd, err := unix.Open(dst, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return c.st, fmt.Errorf("treecopy: opening %s: %w", dst, err)
	}
	defer unix.Close(dfd)
	c.dstRoot = dfd
	if err := c.dir(sfd, dfd, "."); err != nil {
		return c.st, err
	}
	if err := setAttrs(dfd, "", &st, unix.AT_EMPTY_PATH); err != nil {
		return c.st, fmt.Errorf("treecopy: attributes of %s: %w", dst, err)
	}
	c.st.Dirs++
	return c.st, nil
}

type copier struct {
	o       Options
	st      Stats
	dev     uint64
	dstRoot int
	// links maps the inode of a multiply-linked source file to the path
	// (relative to dstRoot) of its first copy.
	links map[uint64]string
}

// dir copies the entries of directory sfd into dfd; rel is dfd's path
// relative to the destination root.
func (c *copier) dir(sfd, dfd int, rel string) error {
	names, err := readNames(sfd)
	if err != nil {
		return fmt.Errorf("treecopy: reading %s: %w", rel, err)
	}
	for _, name := range names {
		if c.o.Cancel != nil && c.o.Cancel.Load() {
			return ErrCanceled
		}
		if err := c.entry(sfd, dfd, rel, name); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // removed meanwhile (copies without a hold)
			}
			return err
		}
	}
	return nil
}

func (c *copier) entry(sfd, dfd int, rel, name string) error {
	p := path.Join(rel, name)
	var st unix.Stat_t
	if err := unix.Fstatat(sfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("treecopy: stat %s: %w", p, err)
	}
	if st.Dev != c.dev {
		c.st.Skipped++ // a mount inside the volume is not part of it
		return nil
	}
	typ := st.Mode & unix.S_IFMT
	if typ != unix.S_IFDIR && st.Nlink > 1 {
		if first, ok := c.links[st.Ino]; ok {
			if err := unix.Linkat(c.dstRoot, first, dfd, name, 0); err != nil {
				return fmt.Errorf("treecopy: linking %s to %s: %w", p, first, err)
			}
			return nil
		}
		defer func() { c.links[st.Ino] = p }()
	}
	switch typ {
	case unix.S_IFDIR:
		return c.subdir(sfd, dfd, p, name, &st)
	case unix.S_IFREG:
		return c.file(sfd, dfd, p, name, &st)
	case unix.S_IFLNK:
		target, err := readlinkat(sfd, name)
		if err != nil {
			return fmt.Errorf("treecopy: readlink %s: %w", p, err)
		}
		if err := unix.Symlinkat(target, dfd, name); err != nil {
			return fmt.Errorf("treecopy: symlink %s: %w", p, err)
		}
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
		if err := unix.Mknodat(dfd, name, typ|0o600, int(st.Rdev)); err != nil {
			return fmt.Errorf("treecopy: mknod %s: %w", p, err)
		}
	default:
		return fmt.Errorf("treecopy: %s has unknown type %#o", p, typ)
	}
	c.st.Others++
	if err := setAttrs(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("treecopy: attributes of %s: %w", p, err)
	}
	return nil
}

// openSame opens name in sfd without following a symlink and checks it is
// still the object stat'ed as st (a client may have swapped it).
func openSame(sfd int, name string, flags int, st *unix.Stat_t) (int, error) {
	fd, err := unix.Openat(sfd, name, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return -1, err
	}
	var now unix.Stat_t
	if err := unix.Fstat(fd, &now); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if now.Ino != st.Ino || now.Dev != st.Dev || now.Mode&unix.S_IFMT != st.Mode&unix.S_IFMT {
		unix.Close(fd)
		return -1, unix.ENOENT // replaced: treat like removed
	}
	return fd, nil
}

func (c *copier) subdir(sfd, dfd int, p, name string, st *unix.Stat_t) error {
	child, err := openSame(sfd, name, unix.O_RDONLY|unix.O_DIRECTORY, st)
	if err != nil {
		return fmt.Errorf("treecopy: opening %s: %w", p, err)
	}
	defer unix.Close(child)
	if err := unix.Mkdirat(dfd, name, 0o700); err != nil {
		return fmt.Errorf("treecopy: mkdir %s: %w", p, err)
	}
	dchild, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("treecopy: opening copy of %s: %w", p, err)
	}
	defer unix.Close(dchild)
	if err := c.dir(child, dchild, p); err != nil {
		return err
	}
	// After the contents, so their creation does not move the times.
	if err := setAttrs(dchild, "", st, unix.AT_EMPTY_PATH); err != nil {
		return fmt.Errorf("treecopy: attributes of %s: %w", p, err)
	}
	c.st.Dirs++
	return nil
}

func (c *copier) file(sfd, dfd int, p, name string, st *unix.Stat_t) error {
	in, err := openSame(sfd, name, unix.O_RDONLY|unix.O_NOATIME, st)
	if err == unix.EPERM {
		in, err = openSame(sfd, name, unix.O_RDONLY, st)
	}
	if err != nil {
		return fmt.Errorf("treecopy: opening %s: %w", p, err)
	}
	defer unix.Close(in)
	out, err := unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("treecopy: creating copy of %s: %w", p, err)
	}
	defer unix.Close(out)
	var now unix.Stat_t
	if err := unix.Fstat(in, &now); err != nil {
		return fmt.Errorf("treecopy: %s: %w", p, err)
	}
	cloned := false
	if !c.o.NoClone {
		switch err := unix.IoctlFileClone(out, in); err {
		case nil:
			cloned = true
		case unix.EOPNOTSUPP, unix.EXDEV, unix.EINVAL, unix.ENOTTY, unix.ENOSYS:
			// No shared extents here: copy this file's data.
		default:
			return fmt.Errorf("treecopy: cloning %s: %w", p, err)
		}
	}
	if cloned {
		c.st.Cloned++
	} else {
		if err := copyData(out, in, now.Size, c.o.Progress, c.o.Cancel); err != nil {
			return fmt.Errorf("treecopy: copying %s: %w", p, err)
		}
		c.st.Copied++
	}
	c.st.Files++
	c.st.Bytes += now.Size
	if err := setAttrs(out, "", &now, unix.AT_EMPTY_PATH); err != nil {
		return fmt.Errorf("treecopy: attributes of %s: %w", p, err)
	}
	return nil
}

// copyData copies size bytes from in to out, leaving holes as holes.
func copyData(out, in int, size int64, progress *atomic.Int64, cancel *atomic.Bool) error {
	if err := unix.Ftruncate(out, size); err != nil {
		return err
	}
	for off := int64(0); off < size; {
		if cancel != nil && cancel.Load() {
			return ErrCanceled
		}
		data, err := unix.Seek(in, off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			return nil // only a hole is left
		}
		if err != nil {
			return err
		}
		hole, err := unix.Seek(in, data, unix.SEEK_HOLE)
		if err != nil {
			return err
		}
		hole = min(hole, size, data+1<<30) // a GiB at a time, to notice cancel
		if err := copyRange(out, in, data, hole-data, progress); err != nil {
			return err
		}
		off = hole
	}
	return nil
}

func copyRange(out, in int, off, n int64, progress *atomic.Int64) error {
	roff, woff := off, off
	for n > 0 {
		k, err := unix.CopyFileRange(in, &roff, out, &woff, int(min(n, 1<<30)), 0)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EXDEV || err == unix.EINVAL || err == unix.ENOSYS || err == unix.EOPNOTSUPP {
			return copyRead(out, in, roff, n, progress)
		}
		if err != nil {
			return err
		}
		if k == 0 {
			return nil // the file shrank
		}
		n -= int64(k)
		if progress != nil {
			progress.Add(int64(k))
		}
	}
	return nil
}

func copyRead(out, in int, off, n int64, progress *atomic.Int64) error {
	buf := make([]byte, 1<<20)
	for n > 0 {
		k, err := unix.Pread(in, buf[:min(n, int64(len(buf)))], off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if k == 0 {
			return nil
		}
		if _, err := unix.Pwrite(out, buf[:k], off); err != nil {
			return err
		}
		off += int64(k)
		n -= int64(k)
		if progress != nil {
			progress.Add(int64(k))
		}
	}
	return nil
}

// setAttrs gives (dirfd, name) the owner, mode and times of st. Owner
// first: chown clears set-id bits.
func setAttrs(dirfd int, name string, st *unix.Stat_t, flags int) error {
	if err := unix.Fchownat(dirfd, name, int(st.Uid), int(st.Gid), flags); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK { // symlinks have no mode of their own
		if name == "" {
			if err := unix.Fchmod(dirfd, st.Mode&0o7777); err != nil {
				return err
			}
		} else if err := unix.Fchmodat(dirfd, name, st.Mode&0o7777, 0); err != nil {
			return err
		}
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if name == "" {
		return unix.UtimesNanoAt(dirfd, "", ts, unix.AT_EMPTY_PATH)
	}
	return unix.UtimesNanoAt(dirfd, name, ts, flags)
}

func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// readNames lists directory fd (without "." and ".."), leaving fd open.
func readNames(fd int) ([]string, error) {
	dup, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dup), "dir")
	defer f.Close()
	return f.Readdirnames(-1)
}
