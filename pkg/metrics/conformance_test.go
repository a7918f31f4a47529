package metrics

import (
	"reflect"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hangar-csi/hangar/pkg/vfs"
	"github.com/hangar-csi/hangar/pkg/vfs/vfstest"
)

// TestConformance holds the counting wrapper to the vfs contract: it is
// what a server with metrics on serves, so an optional interface it did
// not forward (Holder, Sparse) would silently turn a feature off there.
func TestConformance(t *testing.T) {
	mem := reflect.TypeFor[*vfstest.MemFS]()
	wrapper := reflect.TypeFor[*NFS]()
	for _, iface := range []reflect.Type{reflect.TypeFor[vfs.Holder](), reflect.TypeFor[vfs.Sparse](), reflect.TypeFor[vfs.FileReader]()} {
		if mem.Implements(iface) && !wrapper.Implements(iface) {
			t.Errorf("the metrics wrapper hides %v", iface)
		}
	}
	vfstest.TestFS(t, func(t *testing.T) vfstest.Env {
		mem := vfstest.NewMemFS()
		root := mem.AddExport("/vol")
		fs := NewNFS(mem, oneVolume("vol"), prometheus.NewRegistry())
		return vfstest.Env{FS: fs, Root: root, Devices: true, Path: "/vol", Policy: func(t *testing.T, p vfs.Policy) {
			if err := mem.SetPolicy("/vol", p); err != nil {
				t.Fatal(err)
			}
		}, Limit: func(t *testing.T, bytes, inodes uint64) {
			b, i, err := mem.Usage("/vol")
			if err != nil {
				t.Fatal(err)
			}
			if err := mem.SetLimits("/vol", b+bytes, i+inodes); err != nil {
				t.Fatal(err)
			}
		}}
	})
}
