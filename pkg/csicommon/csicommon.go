// Package csicommon is what Hangar's controller, node plugin and storage
// servers agree on: the driver name, the volume and node ID formats, the
// volume context keys, StorageClass parameters, which requests are valid,
// how health is judged, and the one gRPC method storage servers add to the
// CSI Controller service (GetVolumeByName).
//
// Volume IDs. A CSI volume ID is "<server>:<local-id>": the name of the
// storage server holding the volume (as given to the controller's --servers
// flag) and the server's own 16-hex-digit volume ID. The controller keeps no
// state of its own; it routes every call by this prefix. Server names are
// lowercase DNS labels ([a-z0-9-], also dots), so the last colon separates
// the two parts.
//
// Volume context. Volumes carry the keys ContextServer, ContextAddress
// (the NFS server's host:port to mount) and ContextExport (the export
// path), which the node plugin uses to mount without asking anyone, and
// ContextName, the volume's name, for people, and ContextNFSVersion when the
// StorageClass chose an NFS version.
package csicommon

import (
	"fmt"
	"strconv"
)

// DriverName is the CSI driver name.
const DriverName = "nfs.hangar.dev"

// Volume context keys. ContextName is the volume's name (from
// CreateVolume), for people; the others are how the node mounts it.
const (
	ContextName    = "name"
	ContextServer  = "server"
	ContextAddress = "nfsAddress"
	ContextExport  = "export"
	// ContextNFSVersion is the StorageClass's ParamNFSVersion, present
	// only if it set one: the node's default applies otherwise.
	ContextNFSVersion = ParamNFSVersion
)

// ManifestServer is the GetPluginInfo manifest key holding a storage
// server's name.
const ManifestServer = "hangar.dev/server"

// Version is the driver version reported by GetPluginInfo; set by the
// command at link time or startup.
var Version = "dev"

// ExportPath is the NFS export path of local volume id.
func ExportPath(id string) string { return "/" + id }

// FormatBytes renders n with a binary unit for humans.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + "B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
