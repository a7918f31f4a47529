package server

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/hangar-csi/hangar/pkg/nfs/nfsclient"
)

// Creates of different volumes run concurrently now; retries of one name
// racing the create itself must still all succeed with one volume that
// stays exported (a retry's export must not make the create roll back).
func TestConcurrentRetriedCreates(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, c, stop := start(t, t.TempDir(), "127.0.0.1:0")
	defer stop()
	nc, err := nfsclient.Dial(ctx, srv.NFSListenAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for n := range 30 {
		name := fmt.Sprint("race", n)
		ids := make([]string, 6)
		var wg sync.WaitGroup
		for i := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := c.CreateVolume(ctx, &csi.CreateVolumeRequest{
					Name:          name,
					CapacityRange: &csi.CapacityRange{RequiredBytes: 1 << 20},
					VolumeCapabilities: []*csi.VolumeCapability{{
						AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
						AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER},
					}},
				})
				if err != nil {
					t.Errorf("%s, caller %d: %v", name, i, err)
					return
				}
				ids[i] = r.Volume.VolumeId
			}()
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		for i, id := range ids {
			if id != ids[0] {
				t.Fatalf("%s: caller %d got %s, caller 0 %s", name, i, id, ids[0])
			}
		}
		if _, err := c.ControllerGetVolume(ctx, &csi.ControllerGetVolumeRequest{VolumeId: ids[0]}); err != nil {
			t.Fatalf("%s: every create succeeded but the volume is gone: %v", name, err)
		}
		if _, err := nc.Mount(ctx, "/"+ids[0]); err != nil {
			t.Fatalf("%s: every create succeeded but the volume is not exported: %v", name, err)
		}
	}
}
