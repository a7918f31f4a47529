package localfs

import (
	"context"
	"math"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

var _ vfs.FileReader = (*FS)(nil)

// ReadFile implements vfs.FileReader: the checks of Read, then a duplicate
// of the node's I/O descriptor instead of the data, so the RPC layer can
// read the range when it writes the reply. The duplicate is the caller's, so the fd cache may
// close or evict the node meanwhile without the number being reused under
// the caller for another file.
func (f *FS) ReadFile(ctx context.Context, c vfs.Cred, h vfs.Handle, off uint64, count uint32) (int, int, bool, *vfs.Attr, error) {
	n, err := f.resolve(ctx, h, vfs.GrantReadOnly)
	if err != nil {
		return -1, 0, false, nil, err
	}
	defer f.cache.release(n)
	if err := checkData(n); err != nil {
		return -1, 0, false, postAttr(n), err
	}
	fd, err := f.ioFd(n)
	if err != nil {
		return -1, 0, false, postAttr(n), f.stale(n, err)
	}
	var st unix.Stat_t
	if err := statNode(n, &st); err != nil {
		return -1, 0, false, nil, f.stale(n, err)
	}
	c = n.exp.cred(c)
	if err := mayRead(&c, &st); err != nil {
		return -1, 0, false, attrPtr(n.exp, &st), err
	}
	size := uint64(max(st.Size, 0))
	var cnt int
	if off < size && off <= math.MaxInt64 {
		cnt = int(min(uint64(count), size-off))
	}
	eof := off+uint64(cnt) >= size
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, 0, false, attrPtr(n.exp, &st), err
	}
	return dup, cnt, eof, attrPtr(n.exp, &st), nil
}
