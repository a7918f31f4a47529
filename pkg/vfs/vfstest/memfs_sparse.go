package vfstest

import (
	"context"
	"math"
	"syscall"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

// MemFS's holes: byte ranges of a file that Deallocate punched. They read
// as zeros (data holds zeros there) and use no space, so Used is the size
// less the holes, as st_blocks is on a disk. Writes and Allocate fill them.

var _ vfs.Sparse = (*MemFS)(nil)

type span struct{ off, end uint64 }

// holeBytes counts the bytes of [off, end) in holes.
func (n *node) holeBytes(off, end uint64) uint64 {
	var b uint64
	for _, h := range n.holes {
		if lo, hi := max(h.off, off), min(h.end, end); lo < hi {
			b += hi - lo
		}
	}
	return b
}

// allocBytes is what making [off, end) data allocates: its holes and the
// growth of the file (which MemFS fills densely, gap included).
func (n *node) allocBytes(off, end uint64) uint64 {
	size := uint64(len(n.data))
	b := n.holeBytes(off, end)
	if end > size {
		b += end - size
	}
	return b
}

// fill turns [off, end) into data.
func (n *node) fill(off, end uint64) {
	var out []span
	for _, h := range n.holes {
		if h.off < off {
			out = append(out, span{h.off, min(h.end, off)})
		}
		if h.end > end {
			out = append(out, span{max(h.off, end), h.end})
		}
	}
	n.holes = out
}

// punch turns [off, end) into a hole, merging it with its neighbours.
func (n *node) punch(off, end uint64) {
	n.fill(off, end)
	var out []span
	added := false
	for _, h := range n.holes {
		switch {
		case h.end < off:
			out = append(out, h)
		case h.off > end:
			if !added {
				out, added = append(out, span{off, end}), true
			}
			out = append(out, h)
		default: // touching: merge
			off, end = min(off, h.off), max(end, h.end)
		}
	}
	if !added {
		out = append(out, span{off, end})
	}
	n.holes = out
	clear(n.data[off:end])
}

// resized drops the holes past the end of data and sets Size and Used.
func (n *node) resized() {
	size := uint64(len(n.data))
	n.fill(size, math.MaxUint64)
	n.attr.Size = size
	n.attr.Used = size - n.holeBytes(0, size)
}

// sparseNode resolves h for an Allocate, Deallocate or Seek.
func (f *MemFS) sparseNode(ctx context.Context, op string, h vfs.Handle, need vfs.Grant) (*node, error) {
	if err := f.fault(op); err != nil {
		return nil, err
	}
	n, err := f.get(ctx, h, need)
	if err != nil {
		return nil, err
	}
	switch {
	case n.dir != nil:
		return n, syscall.EISDIR
	case n.attr.Type != vfs.TypeRegular:
		return n, syscall.EINVAL
	}
	return n, nil
}

// checkRange applies the kernel's fallocate rules for off and length.
func (f *MemFS) checkRange(off, length uint64) error {
	if length == 0 || off > math.MaxInt64 || length > math.MaxInt64 {
		return syscall.EINVAL
	}
	if length > math.MaxInt64-off {
		return syscall.EFBIG
	}
	return nil
}

// Allocate implements vfs.Sparse.
func (f *MemFS) Allocate(ctx context.Context, c vfs.Cred, h vfs.Handle, off, length uint64) (vfs.Wcc, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.sparseNode(ctx, "Allocate", h, vfs.GrantReadWrite)
	if n == nil {
		return vfs.Wcc{}, err
	}
	wcc := vfs.Wcc{Before: n.pre()}
	if err == nil {
		err = f.checkRange(off, length)
	}
	end := off + length
	if err == nil && end > f.MaxFileSize {
		err = syscall.EFBIG
	}
	if err == nil {
		err = f.reserve(n.fsid, n.allocBytes(off, end), 0)
	}
	if err != nil {
		wcc.After = n.attrCopy()
		return wcc, err
	}
	if end > uint64(len(n.data)) {
		n.data = append(n.data, make([]byte, end-uint64(len(n.data)))...)
	}
	n.fill(off, end)
	n.resized()
	f.touch(n)
	wcc.After = n.attrCopy()
	return wcc, nil
}

// Deallocate implements vfs.Sparse.
func (f *MemFS) Deallocate(ctx context.Context, c vfs.Cred, h vfs.Handle, off, length uint64) (vfs.Wcc, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.sparseNode(ctx, "Deallocate", h, vfs.GrantReadWrite)
	if n == nil {
		return vfs.Wcc{}, err
	}
	wcc := vfs.Wcc{Before: n.pre()}
	if err == nil {
		err = f.checkRange(off, length)
	}
	if err != nil {
		wcc.After = n.attrCopy()
		return wcc, err
	}
	if size := uint64(len(n.data)); off < size {
		n.punch(off, min(off+length, size))
		n.resized()
		f.touch(n)
	}
	wcc.After = n.attrCopy()
	return wcc, nil
}

// Seek implements vfs.Sparse.
func (f *MemFS) Seek(ctx context.Context, c vfs.Cred, h vfs.Handle, off uint64, hole bool) (uint64, *vfs.Attr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.sparseNode(ctx, "Seek", h, vfs.GrantReadOnly)
	if n == nil {
		return 0, nil, err
	}
	a := n.attrCopy()
	if err != nil {
		return 0, a, err
	}
	size := uint64(len(n.data))
	if off >= size {
		return 0, a, syscall.ENXIO
	}
	pos := off
	for _, s := range n.holes { // sorted
		if s.end <= pos {
			continue
		}
		if hole {
			return max(s.off, pos), a, nil
		}
		if s.off > pos {
			return pos, a, nil // pos is data
		}
		pos = s.end
	}
	switch {
	case hole:
		return size, a, nil // the implicit hole at the end
	case pos >= size:
		return 0, a, syscall.ENXIO
	}
	return pos, a, nil
}
