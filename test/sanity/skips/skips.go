// Package skips is the one list of csi-sanity specs Hangar's sanity runs
// (test/sanity and the VM suite's guest run) may skip: any other skipped
// spec fails the run, so a capability that silently stops being advertised
// is caught.
//
// Every entry is owned by the snapshot work of issue 12 (snapshots,
// cloning, group snapshots), developed on another branch; once it is merged
// the list should be empty.
package skips

import "strings"

// Allowed are fragments of spec text (ginkgo's full text: containers and
// spec joined by spaces); a skipped spec whose text contains one is allowed.
var Allowed = []string{
	"CreateSnapshot [Controller Server]",
	"DeleteSnapshot [Controller Server]",
	"ListSnapshots [Controller Server]",
	"GetSnapshot [Controller Server]",
	"CreateVolume should create volume from an existing source snapshot",
	"CreateVolume should fail when the volume source snapshot is not found",
	"CreateVolume should create volume from an existing source volume",
	"CreateVolume should fail when the volume source volume is not found",
	"GroupController Service",
}

// IsAllowed reports whether skipping the spec with this text is allowed.
func IsAllowed(text string) bool {
	text = strings.Join(strings.Fields(text), " ")
	for _, a := range Allowed {
		if strings.Contains(text, a) {
			return true
		}
	}
	return false
}
