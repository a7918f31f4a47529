package csicommon

import (
	"fmt"

	"github.com/container-storage-interface/spec/lib/go/csi"
)

// Volume health. CSI 1.13 replaced the alpha VolumeCondition (and the
// VOLUME_CONDITION capabilities) with the ControllerGetVolumeHealth and
// NodeGetVolumeHealth RPCs; Hangar reports through those.

// FullPercent is the usage (bytes or inodes) from which a volume is
// reported DEGRADED.
const FullPercent = 95

// Health reasons (CamelCase, for machines).
const (
	ReasonServerUnreachable = "StorageServerUnreachable"
	ReasonExportMissing     = "ExportMissing"
	ReasonNearlyFull        = "NearlyFull"
	ReasonNearlyOutOfInodes = "NearlyOutOfInodes"
	ReasonMountUnresponsive = "MountUnresponsive"
	// The storage server's own disk under the volume, whatever the
	// volume's quota says.
	ReasonBackingDiskFull     = "BackingDiskFull"
	ReasonBackingDiskReadOnly = "BackingDiskReadOnly"
)

// VolumeUsage is a volume's live usage and limits (0 = unlimited).
type VolumeUsage struct {
	Bytes, Inodes       uint64
	MaxBytes, MaxInodes uint64
}

// UsageHealth lists the health problems usage u shows.
func UsageHealth(u VolumeUsage) []*csi.VolumeHealth_VolumeHealthEntry {
	var out []*csi.VolumeHealth_VolumeHealthEntry
	if u.MaxBytes > 0 && u.Bytes*100 >= u.MaxBytes*FullPercent {
		out = append(out, &csi.VolumeHealth_VolumeHealthEntry{
			Status: csi.VolumeHealthErrorType_DEGRADED,
			Reason: ReasonNearlyFull,
			Message: fmt.Sprintf("volume is %d%% full (%s of %s used); expand the PersistentVolumeClaim or delete data, writes fail with \"Disk quota exceeded\" at 100%% (or \"No space left on device\" if the storage server's disk fills first)",
				u.Bytes*100/u.MaxBytes, FormatBytes(int64(u.Bytes)), FormatBytes(int64(u.MaxBytes))),
		})
	}
	if u.MaxInodes > 0 && u.Inodes*100 >= u.MaxInodes*FullPercent {
		out = append(out, &csi.VolumeHealth_VolumeHealthEntry{
			Status: csi.VolumeHealthErrorType_DEGRADED,
			Reason: ReasonNearlyOutOfInodes,
			Message: fmt.Sprintf("volume uses %d of its %d inodes; delete files or raise the StorageClass parameter %q",
				u.Inodes, u.MaxInodes, ParamMaxInodes),
		})
	}
	return out
}
