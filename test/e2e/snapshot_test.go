package e2e

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
)

// TestSnapshotRestore is case 8: a guest writes through the kernel NFS
// client and syncs; the host snapshots the volume; the guest changes it;
// the host restores the snapshot to a new volume, which the guest mounts
// and finds as it was at the snapshot, byte for byte (guest/snapshot.sh).
// Over NFSv3 and v4.1 (the restored volume has the source's version).
func TestSnapshotRestore(t *testing.T) {
	requireMode(t, false)
	timeCase(t)
	forEachNFSVersion(t, snapshotRestore)
}

func snapshotRestore(t *testing.T, vers string, envs map[string]string) {
	a := env(t)
	dir := logDir(t, a)
	s := startHostServer(t, a, dir)
	s.nfsVersion = vers
	ctl := startControl(t)
	v := s.createVolume(t, "e2e-snap")
	volEnv(t, envs, "VOL", v)
	g := startVM(t, a, dir, vmConfig{
		Name:   "snap",
		Script: filepath.Join(a.repo, "test/e2e/guest/snapshot.sh"),
		Files:  map[string]string{"/e2e/bin/hangar": a.hangar},
		Env:    envs,
		Ports:  []int{s.nfsPort},
		Ctl:    ctl,
	})
	go func() {
		fail := func(err error) { ctl.signal("host-failed", err.Error()) }
		if _, err := ctl.wait(t.Context(), "written", 4*time.Minute); err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		snap, err := s.ctrl.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "e2e-snap-1", SourceVolumeId: v.GetVolumeId()})
		if err != nil {
			fail(err)
			return
		}
		ctl.signal("snapshotted", "")
		if _, err := ctl.wait(t.Context(), "changed", 4*time.Minute); err != nil {
			return
		}
		r, err := s.ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{
			Name:          "e2e-snap-restored",
			CapacityRange: &csi.CapacityRange{RequiredBytes: 1 << 30},
			Parameters:    s.params(nil),
			VolumeCapabilities: []*csi.VolumeCapability{{
				AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
				AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER},
			}},
			VolumeContentSource: &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: snap.GetSnapshot().GetSnapshotId()}}},
		})
		if err != nil {
			fail(err)
			return
		}
		b, err := json.Marshal(r.GetVolume().GetVolumeContext())
		if err != nil {
			fail(err)
			return
		}
		ctl.signal("restored-ctx", string(b))
		ctl.signal("restored", r.GetVolume().GetVolumeId())
	}()
	g.mustPass(t, s.p)
	if msg, err := ctl.wait(t.Context(), "host-failed", time.Millisecond); err == nil {
		t.Errorf("host side: %s", msg)
	}
}
