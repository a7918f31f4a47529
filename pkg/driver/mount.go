package driver

import (
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hangar-csi/hangar/pkg/csicommon"
)

// MountOptions are the NFS mount options of NFS version vers (one of
// csicommon.NFSVersions) for a server listening on port. NFSv4.x needs
// the one port only: opens, locks and leases are in-band. NFSv3 reaches
// MOUNT on the same port and goes without NLM (nolock: Hangar has no lock
// manager, so no rpcbind or statd is needed; locks stay local to the
// client). Both get nodev: volumes may hold device nodes (a root
// filesystem unpacked onto a shared volume), but a pod must never reach the
// node's devices through one that another client made.
func MountOptions(vers, port string) []string {
	if vers == "3" {
		return []string{"vers=3", "proto=tcp", "port=" + port, "mountport=" + port, "mountproto=tcp", "nolock", "nodev"}
	}
	return []string{"vers=" + vers, "proto=tcp", "port=" + port, "nodev"}
}

// MountSource is the "host:/export" device string for mount(8).
func MountSource(addr, export string) (source, port string, err error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", "", fmt.Errorf("NFS address %q: %w", addr, err)
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + export, port, nil
}

// nfsTarget finds where and how a volume is served: the volume context the
// controller returned, with the export derived from the ID if absent and
// the default NFS version if the StorageClass chose none. A context made
// by hand (a static PV) is checked as a StorageClass would be.
func nfsTarget(volumeID string, vctx map[string]string) (addr, export, vers string, err error) {
	addr = vctx[csicommon.ContextAddress]
	if addr == "" {
		return "", "", "", status.Errorf(codes.InvalidArgument, "volume context of %s lacks %q: was the volume created by %s?", volumeID, csicommon.ContextAddress, csicommon.DriverName)
	}
	export = vctx[csicommon.ContextExport]
	if export == "" {
		_, id, err := csicommon.ParseVolumeID(volumeID)
		if err != nil {
			return "", "", "", status.Errorf(codes.InvalidArgument, "volume context of %s lacks %q and the ID does not name an export: %v", volumeID, csicommon.ContextExport, err)
		}
		export = csicommon.ExportPath(id)
	}
	vers, ok := vctx[csicommon.ContextNFSVersion]
	if !ok {
		vers = csicommon.DefaultNFSVersion
	}
	if err := csicommon.CheckNFSVersion("volume context of "+volumeID+": key", vers); err != nil {
		return "", "", "", err
	}
	return addr, export, vers, nil
}
