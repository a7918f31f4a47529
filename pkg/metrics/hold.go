package metrics

import (
	"context"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

var _ vfs.Holder = (*NFS)(nil)

// Hold forwards vfs.Holder: without it, a server with metrics on would
// never keep a removed file for its NFSv4 opener. Holds are not counted;
// they are part of OPEN, which is.
func (m *NFS) Hold(ctx context.Context, h vfs.Handle) (vfs.Hold, error) {
	hd, ok := m.fs.(vfs.Holder)
	if !ok {
		return nil, vfs.ErrNotSupp
	}
	return hd.Hold(ctx, h)
}
