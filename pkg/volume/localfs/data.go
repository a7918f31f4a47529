package localfs

import (
	"context"
	"math"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

// The data operations: READ, WRITE and COMMIT of regular files.

// Read reads into buf from off.
func (f *FS) Read(ctx context.Context, c vfs.Cred, h vfs.Handle, off uint64, buf []byte) (int, bool, *vfs.Attr, error) {
	n, err := f.resolve(ctx, h, vfs.GrantReadOnly)
	if err != nil {
		return 0, false, nil, err
	}
	defer f.cache.release(n)
	if err := checkData(n); err != nil {
		return 0, false, postAttr(n), err
	}
	fd, err := f.ioFd(n)
	if err != nil {
		return 0, false, postAttr(n), f.stale(n, err)
	}
	total := 0
	if off <= math.MaxInt64 {
		if rest := uint64(math.MaxInt64) - off; uint64(len(buf)) > rest {
			buf = buf[:rest]
		}
		for total < len(buf) {
			m, err := unix.Pread(fd, buf[total:], int64(off)+int64(total))
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return 0, false, postAttr(n), err
			}
			if m == 0 {
				break
			}
			total += m
		}
	}
	var st unix.Stat_t
	if err := statNode(n, &st); err != nil {
		return 0, false, nil, f.stale(n, err)
	}
	// The permission check uses the attributes READ returns anyway, which
	// saves a stat on the hot path; denied data never leaves buf.
	c = n.exp.cred(c)
	if err := mayRead(&c, &st); err != nil {
		clear(buf[:total])
		return 0, false, attrPtr(n.exp, &st), err
	}
	eof := off+uint64(total) >= uint64(st.Size)
	return total, eof, attrPtr(n.exp, &st), nil
}

// checkData refuses data operations on anything but a regular file.
func checkData(n *node) error {
	switch n.typ {
	case unix.S_IFREG:
		return nil
	case unix.S_IFDIR:
		return unix.EISDIR
	}
	return unix.EINVAL
}

// Write writes data at off and makes it as durable as stable asks.
func (f *FS) Write(ctx context.Context, c vfs.Cred, h vfs.Handle, off uint64, data []byte, stable vfs.Stable) (int, vfs.Stable, vfs.Wcc, error) {
	n, err := f.resolve(ctx, h, vfs.GrantReadWrite)
	if err != nil {
		return 0, 0, vfs.Wcc{}, err
	}
	defer f.cache.release(n)
	// The allocation estimate below comes from this stat: no truncation
	// may free blocks it counts as allocated until the write is settled.
	n.acct.resize.RLock()
	defer n.acct.resize.RUnlock()
	var st unix.Stat_t
	if err := statNode(n, &st); err != nil {
		return 0, 0, vfs.Wcc{}, f.stale(n, err)
	}
	wcc := vfs.Wcc{Before: wccAttr(&st)}
	fail := func(err error) (int, vfs.Stable, vfs.Wcc, error) {
		wcc.After = postAttr(n)
		return 0, 0, wcc, f.stale(n, err)
	}
	if err := checkData(n); err != nil {
		return fail(err)
	}
	if off > math.MaxInt64 || uint64(len(data)) > math.MaxInt64-off {
		return fail(unix.EFBIG)
	}
	fd, err := f.ioFd(n)
	if err != nil {
		return fail(err)
	}
	if n.ioErr != nil {
		return fail(n.ioErr)
	}
	c = n.exp.cred(c)
	if err := mayWrite(&c, &st); err != nil {
		return fail(err)
	}
	// Reserve what the write may allocate before writing anything: a
	// write past the limit fails whole, never partially.
	q := &n.exp.q
	est, err := q.reserveWrite(fd, &st, off, uint64(len(data)))
	if err != nil {
		return fail(err)
	}
	defer q.unreserve(est, 0)
	if m, kill := killPrivs(&c, st.Mode); kill {
		if err := unix.Fchmod(fd, m); err != nil {
			return fail(err)
		}
	}
	total := 0
	for total < len(data) {
		m, err := unix.Pwrite(fd, data[total:], int64(off)+int64(total))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if total == 0 {
				f.settleQuiet(n)
				return fail(err)
			}
			// Report the part that made it, as pwrite would; the client
			// resends the rest and then sees the error.
			break
		}
		if m == 0 {
			return fail(unix.EIO)
		}
		total += m
	}
	committed := vfs.Unstable
	switch {
	case n.exp.inMemory:
		// Already as durable as this file system gets (fsync is a no-op),
		// so say so: the client then needs no COMMIT.
		committed = vfs.FileSync
	case stable == vfs.Unstable:
	case stable == vfs.DataSync:
		err = unix.Fdatasync(fd)
		committed = vfs.DataSync
	default: // FileSync, or anything stronger we do not know
		err = fsync(fd)
		committed = vfs.FileSync
	}
	var ast unix.Stat_t
	if serr := f.settle(n, &ast); serr == nil {
		wcc.After = attrPtr(n.exp, &ast)
	}
	if err != nil {
		return 0, 0, wcc, f.stale(n, err)
	}
	return total, committed, wcc, nil
}

// Commit makes h's data durable.
func (f *FS) Commit(ctx context.Context, c vfs.Cred, h vfs.Handle, off uint64, count uint32) (vfs.Wcc, error) {
	n, st, err := f.resolveStat(ctx, h, vfs.GrantReadOnly)
	if err != nil {
		return vfs.Wcc{}, err
	}
	defer f.cache.release(n)
	wcc := vfs.Wcc{Before: wccAttr(&st)}
	if err := checkData(n); err != nil {
		wcc.After = attrPtr(n.exp, &st)
		return wcc, err
	}
	if n.exp.inMemory {
		// Nothing to write back (see Write), so nothing changes either.
		wcc.After = attrPtr(n.exp, &st)
		return wcc, nil
	}
	fd, err := f.ioFd(n)
	if err == nil {
		err = fsync(fd)
	}
	// Writeback may have allocated extent tree blocks.
	var ast unix.Stat_t
	if f.settle(n, &ast) == nil {
		wcc.After = attrPtr(n.exp, &ast)
	}
	return wcc, err
}
