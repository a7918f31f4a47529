package driver

import (
	"context"
	"hash/fnv"
	"slices"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hangar-csi/hangar/pkg/csicommon"
	"github.com/hangar-csi/hangar/pkg/logging"
)

// The per-node volume limit. NFS itself sets none worth advertising: a
// node's mounts of one server share a connection, and each volume costs the
// node one superblock and its page cache. The limit is an administrator's
// policy (--max-volumes-per-node, default 0: none), e.g. to spread volumes
// over nodes: the node plugin reports it in NodeGetInfo, Kubernetes'
// scheduler places pods by it, and the controller refuses a publication
// past it.

// checkNodeLimit counts the volumes published to node on every storage
// server (their access lists) and refuses a new publication of vid past the
// limit with RESOURCE_EXHAUSTED. It holds the node's lock until unlock is
// called, after the publication, so concurrent publishes to one node cannot
// both take the last place. A server that does not answer is left out of
// the count: the scheduler enforces the limit first, this is the backstop.
func (c *Controller) checkNodeLimit(ctx context.Context, vid, node string) (unlock func(), err error) {
	h := fnv.New32a()
	h.Write([]byte(node))
	mu := &c.nodeLocks[h.Sum32()%uint32(len(c.nodeLocks))]
	mu.Lock()
	var n int64
	for _, b := range c.servers {
		tok := ""
		for {
			resp, err := b.ctrl.ListVolumes(ctx, &csi.ListVolumesRequest{StartingToken: tok})
			if err != nil {
				logging.FromContext(ctx).Info("volumes on a storage server left out of the node's volume count", "server", b.name, "node", node, "error", status.Convert(b.err("ListVolumes", err)).Message())
				break
			}
			for _, e := range resp.Entries {
				if slices.Contains(e.GetStatus().GetPublishedNodeIds(), node) {
					if csicommon.VolumeID(b.name, e.GetVolume().GetVolumeId()) == vid {
						return mu.Unlock, nil // a retry: it has its place
					}
					n++
				}
			}
			if tok = resp.NextToken; tok == "" {
				break
			}
		}
	}
	if n >= c.MaxVolumesPerNode {
		mu.Unlock()
		return nil, status.Errorf(codes.ResourceExhausted, "node %s already has %d volumes published, its limit (--max-volumes-per-node %d); unpublish one or schedule the pod elsewhere", node, n, c.MaxVolumesPerNode)
	}
	return mu.Unlock, nil
}
