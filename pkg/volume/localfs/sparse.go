package localfs

import (
	"context"
	"math"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

// ALLOCATE, DEALLOCATE and SEEK (vfs.Sparse): fallocate and lseek on the
// file, with the quota kept as exact as for WRITE.

var _ vfs.Sparse = (*FS)(nil)

// checkRange applies the kernel's fallocate range rules (off and length
// are loff_t there).
func checkRange(off, length uint64) error {
	if length == 0 || off > math.MaxInt64 || length > math.MaxInt64 {
		return unix.EINVAL
	}
	if length > math.MaxInt64-off {
		return unix.EFBIG
	}
	return nil
}

// Allocate implements vfs.Sparse: fallocate mode 0, charged to the quota
// before anything is allocated.
func (f *FS) Allocate(ctx context.Context, c vfs.Cred, h vfs.Handle, off, length uint64) (vfs.Wcc, error) {
	// The estimate comes from the stat below: hold off truncations and
	// punched holes until the allocation is settled (see Write).
	return f.fallocate(ctx, c, h, off, length, 0, func(n *node) func() {
		n.acct.resize.RLock()
		return n.acct.resize.RUnlock
	})
}

// Deallocate implements vfs.Sparse: a punched hole, its blocks given back
// to the quota.
func (f *FS) Deallocate(ctx context.Context, c vfs.Cred, h vfs.Handle, off, length uint64) (vfs.Wcc, error) {
	// Freeing blocks under a WRITE that estimated them allocated would
	// let it allocate them again unreserved: wait for it, as truncation does.
	return f.fallocate(ctx, c, h, off, length, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, func(n *node) func() {
		n.acct.resize.Lock()
		return n.acct.resize.Unlock
	})
}

func (f *FS) fallocate(ctx context.Context, c vfs.Cred, h vfs.Handle, off, length uint64, mode uint32, lock func(*node) func()) (vfs.Wcc, error) {
	n, err := f.resolve(ctx, h, vfs.GrantReadWrite)
	if err != nil {
		return vfs.Wcc{}, err
	}
	defer f.cache.release(n)
	defer lock(n)()
	var st unix.Stat_t
	if err := statNode(n, &st); err != nil {
		return vfs.Wcc{}, f.stale(n, err)
	}
	wcc := vfs.Wcc{Before: wccAttr(&st)}
	fail := func(err error) (vfs.Wcc, error) {
		wcc.After = postAttr(n)
		return wcc, f.stale(n, err)
	}
	if err := checkData(n); err != nil {
		return fail(err)
	}
	if err := checkRange(off, length); err != nil {
		return fail(err)
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
	if mode == 0 {
		// What a write of the range may allocate is what fallocate may.
		q := &n.exp.q
		est, err := q.reserveWrite(fd, &st, off, length)
		if err != nil {
			return fail(err)
		}
		defer q.unreserve(est, 0)
	}
	if m, kill := killPrivs(&c, st.Mode); kill {
		if err := chmodFd(n.fd, m); err != nil {
			return fail(err)
		}
	}
	for {
		err = unix.Fallocate(fd, mode, int64(off), int64(length))
		if err != unix.EINTR {
			break
		}
	}
	if err == nil && !n.exp.inMemory {
		// No stable_how here: the reply promises what is on disk.
		err = fsync(fd)
	}
	// A failed fallocate may still have allocated part of the range.
	var ast unix.Stat_t
	if serr := f.settle(n, &ast); serr == nil {
		wcc.After = attrPtr(n.exp, &ast)
	}
	if err == unix.EOPNOTSUPP {
		err = unix.ENOTSUP
	}
	if err != nil {
		return wcc, f.stale(n, err)
	}
	return wcc, nil
}

// Seek implements vfs.Sparse with lseek SEEK_DATA / SEEK_HOLE.
func (f *FS) Seek(ctx context.Context, c vfs.Cred, h vfs.Handle, off uint64, hole bool) (uint64, *vfs.Attr, error) {
	n, err := f.resolve(ctx, h, vfs.GrantReadOnly)
	if err != nil {
		return 0, nil, err
	}
	defer f.cache.release(n)
	var st unix.Stat_t
	if err := statNode(n, &st); err != nil {
		return 0, nil, f.stale(n, err)
	}
	a := attrPtr(n.exp, &st)
	if err := checkData(n); err != nil {
		return 0, a, err
	}
	c = n.exp.cred(c)
	if err := mayRead(&c, &st); err != nil {
		return 0, a, err
	}
	if off >= uint64(st.Size) {
		return 0, a, unix.ENXIO
	}
	fd, err := f.ioFd(n)
	if err != nil {
		return 0, a, f.stale(n, err)
	}
	whence := unix.SEEK_DATA
	if hole {
		whence = unix.SEEK_HOLE
	}
	pos, err := unix.Seek(fd, int64(off), whence)
	if err != nil {
		return 0, a, err
	}
	return uint64(pos), a, nil
}

// Allocate and Deallocate change the volume, so they take its hold, as
// WRITE does (a snapshot must not see half of one). Seek, a read, is
// promoted from FS.
func (f holding) Allocate(ctx context.Context, c vfs.Cred, h vfs.Handle, off, length uint64) (vfs.Wcc, error) {
	release, err := f.hold(h)
	if err != nil {
		return vfs.Wcc{}, err
	}
	defer release()
	return f.FS.Allocate(ctx, c, h, off, length)
}

func (f holding) Deallocate(ctx context.Context, c vfs.Cred, h vfs.Handle, off, length uint64) (vfs.Wcc, error) {
	release, err := f.hold(h)
	if err != nil {
		return vfs.Wcc{}, err
	}
	defer release()
	return f.FS.Deallocate(ctx, c, h, off, length)
}
