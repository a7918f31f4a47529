package csicommon

import (
	"fmt"
	"strings"

	"github.com/hangar-csi/hangar/pkg/volume"
)

// VolumeID formats the CSI volume ID of local volume id on server.
func VolumeID(server, id string) string { return server + ":" + id }

// ParseVolumeID splits a CSI volume ID into server name and local ID.
func ParseVolumeID(vid string) (server, id string, err error) {
	i := strings.LastIndexByte(vid, ':')
	if i < 0 {
		return "", "", fmt.Errorf("volume ID %q is not of the form <server>:<id>", vid)
	}
	server, id = vid[:i], vid[i+1:]
	if err := ValidServerName(server); err != nil {
		return "", "", fmt.Errorf("volume ID %q: %w", vid, err)
	}
	if !volume.ValidID(id) {
		return "", "", fmt.Errorf("volume ID %q: %q is not a volume ID (%d lowercase hex digits)", vid, id, 2*volume.IDBytes)
	}
	return server, id, nil
}

// ValidServerName checks that name can be a storage server name: 1 to 63
// characters of [a-z0-9.-], starting and ending with a letter or digit.
func ValidServerName(name string) error {
	if name == "" || len(name) > 63 {
		return fmt.Errorf("server name %q must be 1 to 63 characters", name)
	}
	for i, c := range name {
		alnum := 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
		if !alnum && !((c == '-' || c == '.') && i > 0 && i < len(name)-1) {
			return fmt.Errorf("server name %q may hold only a-z, 0-9, '-' and '.', and must start and end with a letter or digit", name)
		}
	}
	return nil
}
