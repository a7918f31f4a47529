package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNFSv41RoundTrip mounts `hangar nfs` with the kernel's NFSv4 client
// (vers=4.1, and 4.2, on the one port, no MOUNT protocol), round-trips
// files, directories, links and modes, and logs which operations the
// kernel sent.
func TestNFSv41RoundTrip(t *testing.T) {
	requireMode(t, true)
	timeCase(t)
	a := env(t)
	for _, vers := range []string{"4.1", "4.2"} {
		t.Run(vers, func(t *testing.T) {
			dir := logDir(t, a)
			export := t.TempDir()
			port := freePort(t)
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			srv := startProc(t, dir, "hangar-nfs", a.hangar, "nfs", "--root", export, "--listen", addr, "-v", "2")
			if err := waitTCP(addr, 20*time.Second, srv.alive); err != nil {
				t.Fatal(err)
			}
			g := startVM(t, a, dir, vmConfig{
				Name:    "nfs4",
				Script:  filepath.Join(a.repo, "test/e2e/guest/nfs4.sh"),
				Env:     map[string]string{"NFS_ADDR": fmt.Sprintf("%s:%d", guestHost, port), "VERS": vers},
				Ports:   []int{port},
				Timeout: 5 * time.Minute,
			})
			g.mustPass(t, srv)
		})
	}
}

// TestNFSv41Server mounts volumes of `hangar server` over NFSv4.1 by their
// export paths and through the pseudo root, which lists them and crosses
// into them.
func TestNFSv41Server(t *testing.T) {
	requireMode(t, true)
	timeCase(t)
	a := env(t)
	dir := logDir(t, a)
	s := startHostServer(t, a, dir, "-v", "2")
	va, vb := s.createVolume(t, "v4-a"), s.createVolume(t, "v4-b")
	g := startVM(t, a, dir, vmConfig{
		Name:   "nfs4srv",
		Script: filepath.Join(a.repo, "test/e2e/guest/nfs4-server.sh"),
		Env: map[string]string{
			"NFS_ADDR": va.GetVolumeContext()["nfsAddress"],
			"EXPORT_A": va.GetVolumeContext()["export"],
			"EXPORT_B": vb.GetVolumeContext()["export"],
		},
		Ports:   []int{s.nfsPort},
		Timeout: 5 * time.Minute,
	})
	g.mustPass(t, s.p)
	if t.Failed() {
		return
	}
	// The note written through the pseudo root is on the host's disk.
	if got, want := hostFileSHA(t, s.data, "note"), sha256.Sum256([]byte("via-root\n")); got != hex.EncodeToString(want[:]) {
		t.Fatalf("note on the host: sha %s", got)
	}
}

// TestNFSv41Locks runs two guests on one volume over NFSv4.1: a POSIX lock
// held on one refuses the other's, shows as held there, and the other's
// blocking lock is granted once the holder releases it.
func TestNFSv41Locks(t *testing.T) {
	requireMode(t, true)
	timeCase(t)
	s, _, guests := twoGuests(t, "lock", 5*time.Minute, "-v", "2")
	for _, g := range guests {
		g.mustPass(t, s.p)
	}
}

// TestNFSv41LockHolderDies: a guest dies holding a POSIX lock; the other
// guest's blocking lock is granted once the dead client's lease (90s) has
// run out, and the wait is logged.
func TestNFSv41LockHolderDies(t *testing.T) {
	requireMode(t, false)
	timeCase(t)
	s, _, guests := twoGuests(t, "lockdeath", 6*time.Minute, "-v", "2")
	for _, g := range guests {
		g.mustPass(t, s.p)
	}
}

// TestNFSv41ServerRestartLocks: `kill -9` of the server while two guests
// hold opens and POSIX locks (A on x.bin, B on y.bin, both open with data
// written). After a restart on the same data dir and port every lock is
// still held by its owner (the other guest is refused), each guest writes
// on through its descriptor, the files hold what was written, and the
// grace period ended because both clients reclaimed, not by running out.
// The pause (restart until both guests' writes completed) is printed.
func TestNFSv41ServerRestartLocks(t *testing.T) {
	requireMode(t, false)
	timeCase(t)
	s, ctl, guests := twoGuests(t, "restart", 8*time.Minute, "-v", "1")
	for _, ev := range []string{"a-tried", "b-tried"} {
		if _, err := ctl.wait(t.Context(), ev, 5*time.Minute); err != nil {
			for _, g := range guests {
				g.mustPass(t)
			}
			t.Fatalf("guests never got their locks: %v", err)
		}
	}
	s.p.kill()
	t.Logf("server SIGKILLed while both guests hold opens and locks (%s)", s.p.cmd.ProcessState)
	s.start(t)
	t0 := time.Now()
	ctl.signal("restarted", "")
	for _, ev := range []string{"a-wrote", "b-wrote"} {
		if _, err := ctl.wait(t.Context(), ev, 5*time.Minute); err != nil {
			for _, g := range guests {
				g.mustPass(t, s.p)
			}
			t.Fatalf("no write after the restart: %v", err)
		}
	}
	pause := time.Since(t0)
	t.Logf("NFS4-RESTART pause=%s", pause.Round(10*time.Millisecond))
	outs := make([]string, len(guests))
	for i, g := range guests {
		outs[i] = g.mustPass(t, s.p) // logs each guest's restart-write time
	}
	if t.Failed() {
		return
	}
	for i, name := range []string{"x.bin", "y.bin"} {
		if want, got := guestSHA(t, outs[i], name), hostFileSHA(t, s.data, name); want != got {
			t.Errorf("%s on the host's disk: sha256 %s, guest read %s", name, got, want)
		}
	}
	log, err := os.ReadFile(filepath.Join(s.logDir, fmt.Sprintf("hangar-server.%d.log", s.starts)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "every known client has reclaimed") {
		t.Errorf("the restarted server's grace period did not end by both clients' RECLAIM_COMPLETE; its log:\n%s", log)
	}
}

// TestNFSv42Sparse is case 14: over vers=4.2 the kernel's fallocate, punch
// hole and SEEK_DATA/SEEK_HOLE reach the server as ALLOCATE, DEALLOCATE
// and SEEK, and the volume's quota and df follow them.
func TestNFSv42Sparse(t *testing.T) {
	requireMode(t, false)
	timeCase(t)
	a := env(t)
	dir := logDir(t, a)
	s := startHostServer(t, a, dir, "-v", "2")
	v := s.createVolume(t, "v42-sparse")
	g := startVM(t, a, dir, vmConfig{
		Name:   "nfs42",
		Script: filepath.Join(a.repo, "test/e2e/guest/nfs42-sparse.sh"),
		Env: map[string]string{
			"NFS_ADDR": v.GetVolumeContext()["nfsAddress"],
			"EXPORT":   v.GetVolumeContext()["export"],
		},
		Ports:   []int{s.nfsPort},
		Timeout: 5 * time.Minute,
	})
	g.mustPass(t, s.p)
}

// TestNFSv41Unlinked is case 15: a file removed on guest A while guest B has it open
// reads the same bytes on B (checksum, page cache dropped) and takes
// writes until B closes it; only then does df on A show the space back.
func TestNFSv41Unlinked(t *testing.T) {
	requireMode(t, false)
	timeCase(t)
	s, _, guests := twoGuests(t, "unlinked", 5*time.Minute, "-v", "2")
	for _, g := range guests {
		g.mustPass(t, s.p)
	}
}

// twoGuests starts a host server (with the flags extra), a control channel
// and guests a and b, which mount one new volume v4-<name> and run
// test/e2e/guest/nfs4-<name>.sh.
func twoGuests(t *testing.T, name string, timeout time.Duration, extra ...string) (*hostServer, *control, []*vm) {
	t.Helper()
	a := env(t)
	dir := logDir(t, a)
	s := startHostServer(t, a, dir, extra...)
	ctl := startControl(t)
	v := s.createVolume(t, "v4-"+name)
	var guests []*vm
	for _, role := range []string{"a", "b"} {
		guests = append(guests, startVM(t, a, dir, vmConfig{
			Name:   name + "-" + role,
			Script: filepath.Join(a.repo, "test/e2e/guest/nfs4-"+name+".sh"),
			Env: map[string]string{"ROLE": role, "NFS_ADDR": v.GetVolumeContext()["nfsAddress"],
				"EXPORT": v.GetVolumeContext()["export"]},
			Ports:   []int{s.nfsPort},
			Ctl:     ctl,
			Timeout: timeout,
		}))
	}
	return s, ctl, guests
}
