package vfstest

import (
	"testing"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

func TestMemFS(t *testing.T) {
	TestFS(t, func(t *testing.T) Env {
		fs := NewMemFS()
		root := fs.AddExport("/vol")
		return Env{FS: fs, Root: root, Devices: true, Path: "/vol", Policy: func(t *testing.T, p vfs.Policy) {
			if err := fs.SetPolicy("/vol", p); err != nil {
				t.Fatal(err)
			}
		}, Limit: func(t *testing.T, bytes, inodes uint64) {
			b, i, err := fs.Usage("/vol")
			if err != nil {
				t.Fatal(err)
			}
			if err := fs.SetLimits("/vol", b+bytes, i+inodes); err != nil {
				t.Fatal(err)
			}
		}}
	})
}
