package api

import (
	"context"
	"fmt"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/hangar-csi/hangar/pkg/csicommon"
)

// Quota is a storage server's live view of its volumes' capacity; pkg/server
// implements it over the NFS server's file system.
type Quota interface {
	// SetCapacity applies volume id's new capacity to its live export.
	SetCapacity(id string, capacity int64) error
	// Usage reports volume id's usage, or an error when it is not exported.
	Usage(id string) (csicommon.VolumeUsage, error)
	// Available is what new volumes and expansions may still be promised.
	Available() (int64, error)
}

// ControllerGetVolumeHealth reports whether the volume is exported and how
// full it is.
func (a *StorageAPI) ControllerGetVolumeHealth(ctx context.Context, req *csi.ControllerGetVolumeHealthRequest) (*csi.ControllerGetVolumeHealthResponse, error) {
	v, err := a.get(req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	h := &csi.VolumeHealth{VolumeId: v.ID}
	if a.Quota != nil {
		u, err := a.Quota.Usage(v.ID)
		if err != nil {
			h.HealthStatuses = append(h.HealthStatuses, &csi.VolumeHealth_VolumeHealthEntry{
				Status:  csi.VolumeHealthErrorType_INACCESSIBLE,
				Reason:  csicommon.ReasonExportMissing,
				Message: fmt.Sprintf("storage server %s does not export volume %s (%v); restart the storage server and check its log", a.Name, v.ID, err),
			})
		} else {
			h.HealthStatuses = csicommon.UsageHealth(u)
		}
	}
	return &csi.ControllerGetVolumeHealthResponse{VolumeHealth: h}, nil
}
