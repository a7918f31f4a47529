package csicommon

import (
	"slices"
	"strconv"
	"strings"

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

// ParamNFSVersion is the StorageClass parameter choosing the NFS version
// the node plugin mounts the volume with: "3", "4.1" (DefaultNFSVersion)
// or "4.2". It travels to the node in the volume context under the same
// key (ContextNFSVersion). NFSv4.x has opens, byte-range locks and leases
// in-band on the one port; v3 is mounted nolock (Hangar runs no lock
// manager), so its locks are local to each node.
const ParamNFSVersion = "nfsVersion"

// NFSVersions are the values ParamNFSVersion takes.
var NFSVersions = []string{"3", "4.1", "4.2"}

// DefaultNFSVersion is the version of volumes whose StorageClass names
// none (and of volumes made before the parameter existed).
const DefaultNFSVersion = "4.1"

// CheckNFSVersion refuses an NFS version Hangar does not mount, naming
// where it came from (a parameter or the volume context) and ParamNFSVersion.
func CheckNFSVersion(where, v string) error {
	if slices.Contains(NFSVersions, v) {
		return nil
	}
	return status.Errorf(codes.InvalidArgument, "%s %q is %q; want one of %s", where, ParamNFSVersion, v, strings.Join(quoteAll(NFSVersions), ", "))
}

// Kubernetes object names external-provisioner passes (with
// --extra-create-metadata). onDelete=archive puts the PVC's in a directory
// name, so they are checked to be what Kubernetes allows (DNS-1123), which
// keeps "/" and ".." out.
const (
	ParamPVName       = "csi.storage.k8s.io/pv/name"
	ParamPVCName      = "csi.storage.k8s.io/pvc/name"
	ParamPVCNamespace = "csi.storage.k8s.io/pvc/namespace"
)

// ValidDNSLabel reports whether s is a DNS-1123 label, as Kubernetes
// namespace names are: 1 to 63 of [a-z0-9-], starting and ending
// alphanumeric.
func ValidDNSLabel(s string) bool { return len(s) <= 63 && dnsPart(s) }

// ValidDNSSubdomain reports whether s is a DNS-1123 subdomain, as most
// Kubernetes object names (PVs, PVCs) are: at most 253 characters of
// dot-separated parts like labels.
func ValidDNSSubdomain(s string) bool {
	if len(s) > 253 {
		return false
	}
	for _, part := range strings.Split(s, ".") {
		if !dnsPart(part) {
			return false
		}
	}
	return true
}

// dnsPart: non-empty [a-z0-9-], starting and ending alphanumeric.
func dnsPart(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
		if !alnum && (c != '-' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}

func validKubernetesNames(p map[string]string) error {
	for _, k := range []struct {
		key   string
		valid func(string) bool
		what  string
	}{
		{ParamPVCNamespace, ValidDNSLabel, "a Kubernetes namespace name (DNS-1123 label: 1-63 of a-z, 0-9, '-')"},
		{ParamPVCName, ValidDNSSubdomain, "a Kubernetes object name (DNS-1123 subdomain: a-z, 0-9, '-', '.', at most 253)"},
		{ParamPVName, ValidDNSSubdomain, "a Kubernetes object name (DNS-1123 subdomain: a-z, 0-9, '-', '.', at most 253)"},
	} {
		if v, ok := p[k.key]; ok && !k.valid(v) {
			return status.Errorf(codes.InvalidArgument, "parameter %q is %q: want %s", k.key, v, k.what)
		}
	}
	return nil
}

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
		// At most 2^63-1: the export keeps limits as int64, where a larger
		// number would wrap to "no limit".
		n, err := strconv.ParseUint(v, 10, 63)
		if err != nil || n == 0 {
			return bad(ParamMaxInodes, "want a positive whole number of inodes, at most 9223372036854775807")
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
