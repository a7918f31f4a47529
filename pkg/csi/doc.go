// Package csi implements Hangar's CSI services: Identity, the stateless
// Controller that routes calls to storage servers, and the Node plugin that
// mounts volumes over NFS.
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
// path), which the node plugin uses to mount without asking anyone.
package csi

// DriverName is the CSI driver name.
const DriverName = "nfs.hangar.dev"

// Volume context keys.
const (
	ContextServer  = "server"
	ContextAddress = "nfsAddress"
	ContextExport  = "export"
)

// Version is the driver version reported by GetPluginInfo; set by the
// command at link time or startup.
var Version = "dev"
