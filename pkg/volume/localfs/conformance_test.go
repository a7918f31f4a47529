package localfs

import (
	"testing"

	"github.com/hangar-csi/hangar/pkg/vfs"
	"github.com/hangar-csi/hangar/pkg/vfs/vfstest"
)

// TestConformance runs the vfs contract suite on every backend: localfs is
// the reference the in-memory double is checked against.
func TestConformance(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			vfstest.TestFS(t, func(t *testing.T) vfstest.Env {
				env := newEnvIn(t, b.dir(t), Options{})
				return vfstest.Env{FS: env.fs, Root: env.root, Devices: true, Path: "/vol", Policy: func(t *testing.T, p vfs.Policy) {
					if err := env.fs.SetPolicy("/vol", p); err != nil {
						t.Fatal(err)
					}
				}, Limit: func(t *testing.T, bytes, inodes uint64) {
					u := env.usage(t)
					if err := env.fs.SetLimits("/vol", u.Bytes+bytes, u.Inodes+inodes); err != nil {
						t.Fatal(err)
					}
				}}
			})
		})
	}
}
