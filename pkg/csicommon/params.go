package csicommon

import (
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// StorageClass parameters for a volume's capacity and identity policy.
const (
	// ParamMaxInodes is the volume's inode limit (files, directories,
	// symlinks...). Default: DefaultInodes(capacity), which grows with the
	// volume when it is expanded.
	ParamMaxInodes = "maxInodes"
	// ParamRootSquash, "true", maps uid 0 and gid 0 of every client to
	// ParamAnonUID/ParamAnonGID for this volume. Default "false".
	ParamRootSquash = "rootSquash"
	// ParamAnonUID and ParamAnonGID are the squashed identity; default
	// 65534 (nobody/nogroup).
	ParamAnonUID = "anonUID"
	ParamAnonGID = "anonGID"
)

// ParamOnDelete is the StorageClass parameter choosing what DeleteVolume
// does with a volume's data:
//
//	delete  (default) the data is removed
//	retain  the directory is kept as DATA/retained/<local-id>/
//	archive the directory is kept as DATA/archive/<pvc-namespace>_<pvc-name>_<local-id>_<UTC time>/
//
// Either way the volume stops existing (its ID, export and promised
// capacity are gone); the kept directory is the admin's to restore or
// remove, next to a copy of the volume's record (<dir>.json).
const ParamOnDelete = "onDelete"

// OnDeleteModes are the values ParamOnDelete takes.
var OnDeleteModes = []string{"delete", "retain", "archive"}

// DefaultAnonID is the default anonymous uid and gid of root squash.
const DefaultAnonID = 65534

// Inode limit defaults: one inode per bytesPerInode of capacity (as
// mkfs.ext4 does), within [minInodes, maxDefaultInodes].
const (
	bytesPerInode    = 16 << 10
	minInodes        = 4096
	maxDefaultInodes = 1 << 24
)

// VolumeParams is a volume's policy parsed from its StorageClass
// parameters.
type VolumeParams struct {
	MaxInodes        uint64 // 0: DefaultInodes of the capacity
	RootSquash       bool
	AnonUID, AnonGID uint32
}

// DefaultInodes is the inode limit of a volume of capacity bytes when the
// StorageClass sets none.
func DefaultInodes(capacity int64) uint64 {
	return uint64(min(max(capacity/bytesPerInode, minInodes), maxDefaultInodes))
}

// InodeLimit is the volume's inode limit at capacity.
func (p VolumeParams) InodeLimit(capacity int64) uint64 {
	if p.MaxInodes > 0 {
		return p.MaxInodes
	}
	return DefaultInodes(capacity)
}

// ParseVolumeParams reads the policy parameters from p (other keys are
// ignored); a bad value is an InvalidArgument error naming the parameter.
func ParseVolumeParams(p map[string]string) (VolumeParams, error) {
	vp := VolumeParams{AnonUID: DefaultAnonID, AnonGID: DefaultAnonID}
	bad := func(key, why string) (VolumeParams, error) {
		return VolumeParams{}, status.Errorf(codes.InvalidArgument, "parameter %q is %q: %s", key, p[key], why)
	}
	if v, ok := p[ParamMaxInodes]; ok {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			return bad(ParamMaxInodes, "want a positive whole number of inodes")
		}
		vp.MaxInodes = n
	}
	if v, ok := p[ParamRootSquash]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return bad(ParamRootSquash, `want "true" or "false"`)
		}
		vp.RootSquash = b
	}
	for _, id := range []struct {
		key string
		dst *uint32
	}{{ParamAnonUID, &vp.AnonUID}, {ParamAnonGID, &vp.AnonGID}} {
		if v, ok := p[id.key]; ok {
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil || n == 1<<32-1 {
				return bad(id.key, "want a numeric id from 0 to 4294967294")
			}
			*id.dst = uint32(n)
		}
	}
	return vp, nil
}
