package metrics

import (
	"context"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

var _ vfs.Sparse = (*NFS)(nil)

// The vfs.Sparse methods forward to the wrapped FS, so counting does not
// hide them from NFSv4.2; ErrNotSupp when it has none (NOTSUPP on the wire).

func (m *NFS) Allocate(ctx context.Context, cr vfs.Cred, h vfs.Handle, off, length uint64) (vfs.Wcc, error) {
	s, ok := m.fs.(vfs.Sparse)
	if !ok {
		return vfs.Wcc{}, vfs.ErrNotSupp
	}
	c := m.begin(h, opAllocate)
	w, err := s.Allocate(ctx, cr, h, off, length)
	m.end(c, err)
	return w, err
}

func (m *NFS) Deallocate(ctx context.Context, cr vfs.Cred, h vfs.Handle, off, length uint64) (vfs.Wcc, error) {
	s, ok := m.fs.(vfs.Sparse)
	if !ok {
		return vfs.Wcc{}, vfs.ErrNotSupp
	}
	c := m.begin(h, opDeallocate)
	w, err := s.Deallocate(ctx, cr, h, off, length)
	m.end(c, err)
	return w, err
}

func (m *NFS) Seek(ctx context.Context, cr vfs.Cred, h vfs.Handle, off uint64, hole bool) (uint64, *vfs.Attr, error) {
	s, ok := m.fs.(vfs.Sparse)
	if !ok {
		return 0, nil, vfs.ErrNotSupp
	}
	c := m.begin(h, opSeek)
	pos, a, err := s.Seek(ctx, cr, h, off, hole)
	m.end(c, err)
	return pos, a, err
}
