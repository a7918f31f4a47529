package driver

import (
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hangar-csi/hangar/pkg/csicommon"
)

// MountOptions are the NFS mount options for a server listening on port:
// NFSv3 and MOUNT over TCP on the one port, no NLM (Hangar has no lock
// manager; locks stay local to the client), and nodev: volumes may hold
// device nodes (a root filesystem unpacked onto a shared volume), but a pod
// must never reach the node's devices through one that another client made.
func MountOptions(port string) []string {
	return []string{"vers=3", "proto=tcp", "port=" + port, "mountport=" + port, "mountproto=tcp", "nolock", "nodev"}
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

// nfsTarget finds where a volume is served: the volume context the
// controller returned, with the export derived from the ID if absent.
func nfsTarget(volumeID string, vctx map[string]string) (addr, export string, err error) {
	addr = vctx[csicommon.ContextAddress]
	if addr == "" {
		return "", "", status.Errorf(codes.InvalidArgument, "volume context of %s lacks %q: was the volume created by %s?", volumeID, csicommon.ContextAddress, csicommon.DriverName)
	}
	export = vctx[csicommon.ContextExport]
	if export == "" {
		_, id, err := csicommon.ParseVolumeID(volumeID)
		if err != nil {
			return "", "", status.Errorf(codes.InvalidArgument, "volume context of %s lacks %q and the ID does not name an export: %v", volumeID, csicommon.ContextExport, err)
		}
		export = csicommon.ExportPath(id)
	}
	return addr, export, nil
}
