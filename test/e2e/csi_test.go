package e2e

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// TestNodePublish is case 1: `hangar node` in a guest publishes a volume
// served by `hangar server` on the host, with real kernel NFS mounts.
func TestNodePublish(t *testing.T) {
	requireMode(t, true)
	timeCase(t)
	a := env(t)
	dir := logDir(t, a)
	s := startHostServer(t, a, dir)
	v := s.createVolume(t, "e2e-node-publish")
	envs := map[string]string{}
	volEnv(t, envs, "VOL", v)
	g := startVM(t, a, dir, vmConfig{
		Name:   "node",
		Script: filepath.Join(a.repo, "test/e2e/guest/node-publish.sh"),
		Files:  map[string]string{"/e2e/bin/hangar": a.hangar},
		Env:    envs,
		Ports:  []int{s.nfsPort},
	})
	out := g.mustPass(t, s.p)
	if t.Failed() {
		return
	}
	if want, got := guestSHA(t, out, "data.bin"), hostFileSHA(t, s.data, "data.bin"); want != got {
		t.Errorf("data.bin on the host's disk: sha256 %s, guest wrote %s", got, want)
	}
}

// TestPerPodVolumes is case 3: three volumes in one guest are isolated, and
// deleting one on the server leaves the other two mounted and intact.
func TestPerPodVolumes(t *testing.T) {
	requireMode(t, false)
	timeCase(t)
	a := env(t)
	dir := logDir(t, a)
	s := startHostServer(t, a, dir)
	ctl := startControl(t)
	envs := map[string]string{}
	var ids []string
	for i := 1; i <= 3; i++ {
		v := s.createVolume(t, fmt.Sprintf("e2e-pod-%d", i))
		volEnv(t, envs, fmt.Sprintf("VOL%d", i), v)
		ids = append(ids, v.GetVolumeId())
	}
	g := startVM(t, a, dir, vmConfig{
		Name:   "pods",
		Script: filepath.Join(a.repo, "test/e2e/guest/per-pod.sh"),
		Files:  map[string]string{"/e2e/bin/hangar": a.hangar},
		Env:    envs,
		Ports:  []int{s.nfsPort},
		Ctl:    ctl,
	})
	go func() {
		// Delete volume 2 once the guest has unpublished it.
		if _, err := ctl.wait(t.Context(), "unpublished-2", 4*time.Minute); err != nil {
			return
		}
		if err := deleteVolumeErr(s, ids[1]); err != nil {
			ctl.signal("delete-failed", err.Error())
			return
		}
		ctl.signal("deleted-2", "")
	}()
	g.mustPass(t, s.p)
	if v, err := ctl.wait(t.Context(), "delete-failed", time.Millisecond); err == nil {
		t.Errorf("DeleteVolume %s: %s", ids[1], v)
	}
	have := s.listVolumes(t)
	if have[ids[1]] || !have[ids[0]] || !have[ids[2]] {
		t.Errorf("ListVolumes after deleting %s: %v", ids[1], have)
	}
}

// TestSharedRWX is case 4: two guests mount the same volume at once; a
// Lucene-style writer on one and a reader on the other check close-to-open
// consistency of appended records and renamed commit points.
func TestSharedRWX(t *testing.T) {
	requireMode(t, false)
	timeCase(t)
	a := env(t)
	dir := logDir(t, a)
	s := startHostServer(t, a, dir)
	v := s.createVolume(t, "e2e-shared")
	var guests []*vm
	for _, role := range []string{"reader", "writer"} {
		envs := map[string]string{"ROLE": role}
		volEnv(t, envs, "VOL", v)
		guests = append(guests, startVM(t, a, dir, vmConfig{
			Name:    role,
			Script:  filepath.Join(a.repo, "test/e2e/guest/rwx.sh"),
			Files:   map[string]string{"/e2e/bin/hangar": a.hangar},
			Env:     envs,
			Ports:   []int{s.nfsPort},
			Timeout: 6 * time.Minute,
		}))
	}
	for _, g := range guests {
		out := g.mustPass(t, s.p)
		for _, l := range grepLines(out, "reader: final") {
			t.Logf("%s", l)
		}
	}
}

// TestServerCrash is case 5: the host SIGKILLs `hangar server` while a
// guest streams writes onto a hard mount and restarts it on the same data
// dir and port; the guest must see neither ESTALE nor EIO and the file must
// hold exactly what the guest wrote.
func TestServerCrash(t *testing.T) { serverCrash(t, "3") }

// TestNFSv41ServerCrash is case 5 over NFSv4.1: the client re-registers
// and reclaims its open in the restarted server's grace period.
func TestNFSv41ServerCrash(t *testing.T) { serverCrash(t, "4.1") }

func serverCrash(t *testing.T, vers string) {
	requireMode(t, false)
	timeCase(t)
	a := env(t)
	dir := logDir(t, a)
	s := startHostServer(t, a, dir)
	ctl := startControl(t)
	v := s.createVolume(t, "e2e-crash")
	export := v.GetVolumeContext()["export"]
	if export == "" {
		t.Fatalf("volume context has no export: %v", v.GetVolumeContext())
	}
	const mb = 48
	g := startVM(t, a, dir, vmConfig{
		Name:   "crash",
		Script: filepath.Join(a.repo, "test/e2e/guest/crash.sh"),
		Env: map[string]string{"NFS_ADDR": fmt.Sprintf("%s:%d", guestHost, s.nfsPort), "NFS_EXPORT": export,
			"STREAM_MB": fmt.Sprint(mb), "NFS_VERS": vers},
		Ports:   []int{s.nfsPort},
		Ctl:     ctl,
		Timeout: 6 * time.Minute,
	})
	if _, err := ctl.wait(t.Context(), "streaming", 3*time.Minute); err != nil {
		g.mustPass(t)
		t.Fatalf("guest never started streaming: %v", err)
	}
	if _, err := ctl.wait(t.Context(), "written", time.Millisecond); err == nil {
		t.Fatal("the stream finished before the crash: nothing was tested")
	}
	t0 := time.Now()
	s.p.kill()
	t.Logf("server SIGKILLed mid-stream (%s)", s.p.cmd.ProcessState)
	time.Sleep(time.Second)
	s.start(t)
	t.Logf("server back after %.1fs", time.Since(t0).Seconds())
	ctl.signal("restarted", "")
	out := g.mustPass(t, s.p)
	if t.Failed() {
		return
	}
	if _, err := ctl.wait(t.Context(), "written", time.Millisecond); err != nil {
		t.Fatal("guest finished without reporting the end of the stream")
	}
	if want, got := guestSHA(t, out, "stream.bin"), hostFileSHA(t, s.data, "stream.bin"); want != got {
		t.Errorf("stream.bin on the host's disk: sha256 %s, guest wrote %s", got, want)
	}
}

// TestCSISanity is case 2: csi-sanity inside a guest against `hangar run`
// in the same guest, with real kernel mounts.
func TestCSISanity(t *testing.T) {
	requireMode(t, false)
	timeCase(t)
	a := env(t)
	sanity := csiSanity(t, a)
	dir := logDir(t, a)
	g := startVM(t, a, dir, vmConfig{
		Name:    "sanity",
		Script:  filepath.Join(a.repo, "test/e2e/guest/sanity.sh"),
		Files:   map[string]string{"/e2e/bin/hangar": a.hangar, "/e2e/bin/csi-sanity": sanity},
		MemMB:   1024,
		Timeout: 10 * time.Minute,
	})
	out := g.mustPass(t)
	for _, l := range grepLines(out, "E2E-SANITY-") {
		t.Log(l)
	}
}
