package api

import (
	"context"
	"fmt"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hangar-csi/hangar/pkg/csicommon"
	"github.com/hangar-csi/hangar/pkg/volume"
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
	// ApplyPolicy applies volume id's recorded policy (limits, root
	// squash) to its live export.
	ApplyPolicy(id string) error
}

// ControllerGetVolumeHealth reports whether the volume is exported and how
// full it is.
func (a *StorageAPI) ControllerGetVolumeHealth(ctx context.Context, req *csi.ControllerGetVolumeHealthRequest) (*csi.ControllerGetVolumeHealthResponse, error) {
	v, err := a.get(req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	return &csi.ControllerGetVolumeHealthResponse{VolumeHealth: a.health(v)}, nil
}

// ControllerListVolumeHealth pages, in ID order, through the volumes with
// an adverse condition (CSI: healthy volumes are omitted); starting_token
// is the last ID of the previous page.
func (a *StorageAPI) ControllerListVolumeHealth(ctx context.Context, req *csi.ControllerListVolumeHealthRequest) (*csi.ControllerListVolumeHealthResponse, error) {
	max := int(req.GetMaxEntries())
	if max < 0 {
		return nil, status.Error(codes.InvalidArgument, "max_entries must not be negative")
	}
	after := req.GetStartingToken()
	if after != "" && !volume.ValidID(after) {
		return nil, status.Errorf(codes.Aborted, "starting_token %q is not one this server issued; restart listing without a token", after)
	}
	resp := &csi.ControllerListVolumeHealthResponse{}
	for _, v := range a.Store.List() {
		if v.ID <= after {
			continue
		}
		h := a.health(v)
		if len(h.HealthStatuses) == 0 {
			continue
		}
		if max > 0 && len(resp.Entries) == max {
			resp.NextToken = resp.Entries[max-1].VolumeId
			break
		}
		resp.Entries = append(resp.Entries, h)
	}
	return resp, nil
}

func (a *StorageAPI) health(v volume.Volume) *csi.VolumeHealth {
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
	return h
}
