package server

import (
	"context"
	"fmt"

	"github.com/hangar-csi/hangar/pkg/nfs/nfsclient"
)

// ProbeNFS checks that the NFS server at addr serves export: it mounts the
// export and reads the attributes of its root, as a client's first steps
// would. The node plugin runs it before every mount (driver.ProbeFunc).
func ProbeNFS(ctx context.Context, addr, export string) error {
	c, err := nfsclient.Dial(ctx, addr)
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer c.Close()
	h, err := c.Mount(ctx, export)
	if err != nil {
		return fmt.Errorf("MOUNT %s: %w", export, err)
	}
	if _, err := c.GetAttr(ctx, h); err != nil {
		return fmt.Errorf("GETATTR of %s root: %w", export, err)
	}
	return nil
}
