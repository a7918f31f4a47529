// Package allinone runs the CSI sanity suite against the "hangar run"
// topology: one storage server, and Identity, Controller and Node on one
// socket.
package allinone

import (
	"testing"

	"github.com/hangar-csi/hangar/test/sanity"
)

func TestSanityAllInOne(t *testing.T) {
	sanity.Run(t, sanity.Options{Servers: []string{"local"}, AllInOne: true})
}
