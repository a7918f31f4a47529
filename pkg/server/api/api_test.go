package api

import (
	"fmt"
	"sync"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"

	"github.com/hangar-csi/hangar/pkg/vfs"
	"github.com/hangar-csi/hangar/pkg/volume"
)

type fakeExports struct {
	mu    sync.Mutex
	paths map[string]string
}

func (f *fakeExports) AddExport(path, dir, id string, _ vfs.Policy) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paths[path] = dir
	return nil
}

func (f *fakeExports) RemoveExport(path string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.paths[path]; !ok {
		return fmt.Errorf("no export %s", path)
	}
	delete(f.paths, path)
	return nil
}

// newTestAPI returns a storage API over a real store in a temporary
// directory, with fake exports.
func newTestAPI(t *testing.T, name string) *StorageAPI {
	t.Helper()
	st, err := volume.Open(t.TempDir(), logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &StorageAPI{Store: st, Exports: &fakeExports{paths: map[string]string{}}, Name: name, NFSAddr: "127.0.0.1:2049", Log: logr.Discard()}
}

func createReq(name string, size int64) *csi.CreateVolumeRequest {
	return &csi.CreateVolumeRequest{
		Name:          name,
		CapacityRange: &csi.CapacityRange{RequiredBytes: size},
		VolumeCapabilities: []*csi.VolumeCapability{{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER},
		}},
	}
}
