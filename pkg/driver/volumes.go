package driver

import (
	"context"
	"sync"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hangar-csi/hangar/pkg/csicommon"
)

// The controller serves the storage servers' Volumes service too (see
// csicommon.RegisterVolumes), with CSI volume IDs: by name it asks every
// server, by ID it routes.

// GetVolumeByName finds the volume called name on whichever server has it.
func (c *Controller) GetVolumeByName(ctx context.Context, name string) (*csi.Volume, error) {
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "volume name is required")
	}
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	type answer struct {
		v   *csi.Volume
		err error
	}
	answers := make([]answer, len(c.servers))
	var wg sync.WaitGroup
	for i, b := range c.servers {
		wg.Go(func() {
			v, err := csicommon.GetVolumeByName(ctx, b.conn, name)
			if err == nil {
				v = b.globalize(v)
			} else if status.Code(err) != codes.NotFound {
				err = b.err("looking up volume name", err)
			}
			answers[i] = answer{v, err}
		})
	}
	wg.Wait()
	var failed error
	for _, a := range answers {
		if a.err == nil {
			return a.v, nil
		}
		if status.Code(a.err) != codes.NotFound {
			failed = a.err
		}
	}
	if failed != nil {
		// The volume may be on the server that did not answer.
		return nil, failed
	}
	return nil, status.Errorf(codes.NotFound, "no volume named %q", name)
}

// GetVolumeUsage asks the volume's storage server for its live usage.
func (c *Controller) GetVolumeUsage(ctx context.Context, vid string) (*csi.NodeGetVolumeStatsResponse, error) {
	if vid == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	}
	b, local, reason := c.route(vid)
	if b == nil {
		return nil, status.Errorf(codes.NotFound, "volume %q not found: %s", vid, reason)
	}
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	u, err := csicommon.GetVolumeUsage(ctx, b.conn, local)
	if err != nil {
		return nil, b.err("GetVolumeUsage", err)
	}
	return u, nil
}
