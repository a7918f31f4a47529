package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
)

// Case 6 expectations; the guest gets them through its environment, so a
// wrong one fails on both sides.
const (
	quotaCapacity = 8 << 20  // the first volume's capacity
	quotaExpanded = 32 << 20 // ... after ControllerExpandVolume
	quotaBigMB    = 16       // the write that does not fit before the expansion
	quotaMsg      = "Disk quota exceeded"
	quotaU1       = 1000 // member of quotaGroup (supplementary)
	quotaU2       = 2000 // not a member
	quotaGroup    = 3000
	quotaAnon     = 65534 // root squash's default anonUID/anonGID
	quotaInodes   = 10    // maxInodes of the third volume (its root is one)
)

// TestQuotaIdentity is case 6: capacity, online expansion, the inode
// limit, ownership, setgid directories, permission checks, root squash and
// turning it off on the mounted volume (ControllerModifyVolume) as the
// Linux NFS client sees them, and on the server's disk. One guest, ~15 s: part of
// the quick subset. Over NFSv3 and v4.1.
func TestQuotaIdentity(t *testing.T) {
	requireMode(t, true)
	timeCase(t)
	forEachNFSVersion(t, quotaIdentity)
}

func quotaIdentity(t *testing.T, vers string, envs map[string]string) {
	a := env(t)
	dir := logDir(t, a)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	s := startHostServer(t, a, dir, "--metrics-listen", metricsAddr)
	s.nfsVersion = vers
	if err := waitTCP(metricsAddr, 10*time.Second, s.p.alive); err != nil {
		t.Fatalf("metrics endpoint: %v", err)
	}
	ctl := startControl(t)
	v := createSizedVolume(t, s, "e2e-quota", quotaCapacity, nil)
	sq := createSizedVolume(t, s, "e2e-squash", quotaCapacity, map[string]string{"rootSquash": "true"})
	for k, v := range map[string]string{
		"WANT_KIB":     fmt.Sprint(quotaCapacity >> 10),
		"EXPANDED_KIB": fmt.Sprint(quotaExpanded >> 10),
		"BIG_MB":       fmt.Sprint(quotaBigMB),
		"QUOTA_MSG":    quotaMsg,
		"U1":           fmt.Sprint(quotaU1),
		"U2":           fmt.Sprint(quotaU2),
		"SHARED_GID":   fmt.Sprint(quotaGroup),
		"ANON_ID":      fmt.Sprint(quotaAnon),
		"MAX_INODES":   fmt.Sprint(quotaInodes),
	} {
		envs[k] = v
	}
	volEnv(t, envs, "VOL", v)
	volEnv(t, envs, "SQ", sq)
	in := createSizedVolume(t, s, "e2e-inodes", quotaCapacity, map[string]string{"maxInodes": fmt.Sprint(quotaInodes)})
	volEnv(t, envs, "IN", in)
	g := startVM(t, a, dir, vmConfig{
		Name:   "quota",
		Script: filepath.Join(a.repo, "test/e2e/guest/quota.sh"),
		Files:  map[string]string{"/e2e/bin/hangar": a.hangar},
		Env:    envs,
		Ports:  []int{s.nfsPort},
		Ctl:    ctl,
	})

	// Once the guest has hit the quota: the server's own count must not
	// exceed the capacity; then expand the volume while it is mounted.
	id := v.GetVolumeId()
	ctx, cancel := context.WithCancel(t.Context())
	expanded := make(chan struct{})
	go func() {
		defer close(expanded)
		guestUsed, err := ctl.wait(ctx, "full", 4*time.Minute)
		if err != nil {
			return
		}
		used, capacity, err := volumeMetrics(metricsAddr, id)
		if err != nil {
			t.Errorf("metrics after the quota was hit: %v", err)
		} else {
			t.Logf("server usage after the failed write: %d of %d bytes (guest df: %s KiB used)", used, capacity, guestUsed)
			logSparse(t, filepath.Join(s.data, "volumes", id, "big"))
			if capacity != quotaCapacity {
				t.Errorf("hangar_volume_capacity_bytes = %d, want %d", capacity, quotaCapacity)
			}
			if used > quotaCapacity {
				t.Errorf("hangar_volume_used_bytes = %d after the failed write: over the capacity %d", used, quotaCapacity)
			}
		}
		cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
		defer ccancel()
		resp, err := s.ctrl.ControllerExpandVolume(cctx, &csi.ControllerExpandVolumeRequest{
			VolumeId: id, CapacityRange: &csi.CapacityRange{RequiredBytes: quotaExpanded}})
		if err != nil {
			ctl.signal("expanded", err.Error())
			return
		}
		if resp.GetCapacityBytes() != quotaExpanded || resp.GetNodeExpansionRequired() {
			t.Errorf("ControllerExpandVolume: capacity %d, node expansion required %v; want %d, false",
				resp.GetCapacityBytes(), resp.GetNodeExpansionRequired(), quotaExpanded)
		}
		ctl.signal("expanded", "ok")
	}()
	// Once the guest has checked root squash: turn it off on the mounted
	// volume.
	modified := make(chan struct{})
	go func() {
		defer close(modified)
		if _, err := ctl.wait(ctx, "squashed", 4*time.Minute); err != nil {
			return
		}
		cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
		defer ccancel()
		_, err := s.ctrl.ControllerModifyVolume(cctx, &csi.ControllerModifyVolumeRequest{
			VolumeId: sq.GetVolumeId(), MutableParameters: map[string]string{"rootSquash": "false"}})
		if err != nil {
			ctl.signal("modified", err.Error())
			return
		}
		ctl.signal("modified", "ok")
	}()
	out := g.mustPass(t, s.p)
	cancel()
	<-expanded
	<-modified
	if g.wait() < 0 {
		return // the guest never finished: the host's view means nothing
	}

	if used, capacity, err := volumeMetrics(metricsAddr, id); err != nil {
		t.Errorf("metrics at the end: %v", err)
	} else {
		if capacity != quotaExpanded {
			t.Errorf("hangar_volume_capacity_bytes after the expansion = %d, want %d", capacity, quotaExpanded)
		}
		if used > capacity || used < quotaBigMB<<20 {
			t.Errorf("hangar_volume_used_bytes at the end = %d, want between %d (big) and the capacity %d", used, quotaBigMB<<20, capacity)
		}
	}

	// The server's disk: what the guest saw must be what is stored.
	vdir := filepath.Join(s.data, "volumes", id)
	if want, got := guestSHA(t, out, "small"), hostFileSHA(t, vdir, "small"); want != got {
		t.Errorf("small on the host's disk: sha256 %s, guest wrote %s", got, want)
	}
	if fi, err := os.Stat(filepath.Join(vdir, "big")); err != nil {
		t.Error(err)
	} else if fi.Size() != quotaBigMB<<20 {
		t.Errorf("big on the host's disk: %d bytes, want %d", fi.Size(), quotaBigMB<<20)
	}
	type owner struct {
		path     string
		uid, gid uint32
		setgid   bool
	}
	for _, o := range []owner{
		{"by-u1", quotaU1, quotaU1, false},
		{"shared", 0, quotaGroup, true},
		{"shared/f", quotaU1, quotaGroup, false},
		{"shared/sub", quotaU1, quotaGroup, true},
		{"shared/sub/g", quotaU1, quotaGroup, false},
		{"shared/sub/deeper", quotaU1, quotaGroup, true},
	} {
		checkOwner(t, vdir, o.path, o.uid, o.gid, o.setgid)
	}
	if _, err := os.Lstat(filepath.Join(vdir, "shared/by-u2")); !os.IsNotExist(err) {
		t.Errorf("shared/by-u2 on the host's disk: %v (uid %d had no write permission)", err, quotaU2)
	}
	sqdir := filepath.Join(s.data, "volumes", sq.GetVolumeId())
	checkOwner(t, sqdir, "by-root", quotaAnon, quotaAnon, false)
	checkOwner(t, sqdir, "dir-by-root", quotaAnon, quotaAnon, false)
	checkOwner(t, sqdir, "by-root-after-modify", 0, 0, false)
	indir := filepath.Join(s.data, "volumes", in.GetVolumeId())
	if ents, err := os.ReadDir(indir); err != nil {
		t.Error(err)
	} else if len(ents) != quotaInodes-1 {
		t.Errorf("host: the maxInodes=%d volume holds %d entries, want %d (its root is the %dth inode)", quotaInodes, len(ents), quotaInodes-1, quotaInodes)
	}
	if t.Failed() {
		logTree(t, vdir)
		logTree(t, sqdir)
	}
}

// createSizedVolume creates a volume of capacity bytes with StorageClass
// parameters params through the server's management API.
func createSizedVolume(t *testing.T, s *hostServer, name string, capacity int64, params map[string]string) *csi.Volume {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	resp, err := s.ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{
		Name:          name,
		CapacityRange: &csi.CapacityRange{RequiredBytes: capacity},
		Parameters:    s.params(params),
		VolumeCapabilities: []*csi.VolumeCapability{{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER},
		}},
	})
	if err != nil {
		t.Fatalf("CreateVolume %s: %v", name, err)
	}
	v := resp.GetVolume()
	if v.GetCapacityBytes() != capacity {
		t.Fatalf("CreateVolume %s: capacity %d, want %d", name, v.GetCapacityBytes(), capacity)
	}
	t.Logf("volume %s: id=%s capacity=%d params=%v context=%v", name, v.GetVolumeId(), v.GetCapacityBytes(), params, v.GetVolumeContext())
	return v
}

// checkOwner checks the uid, gid and setgid bit of root/rel on the host.
func checkOwner(t *testing.T, root, rel string, uid, gid uint32, setgid bool) {
	t.Helper()
	fi, err := os.Lstat(filepath.Join(root, rel))
	if err != nil {
		t.Errorf("host: %v", err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != uid || st.Gid != gid {
		t.Errorf("host: %s is owned %d:%d, want %d:%d", rel, st.Uid, st.Gid, uid, gid)
	}
	if got := fi.Mode()&fs.ModeSetgid != 0; got != setgid {
		t.Errorf("host: %s has mode %v: setgid %v, want %v", rel, fi.Mode(), got, setgid)
	}
}

func logTree(t *testing.T, root string) {
	var b strings.Builder
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			st := fi.Sys().(*syscall.Stat_t)
			fmt.Fprintf(&b, "  %v %d:%d %9d %s\n", fi.Mode(), st.Uid, st.Gid, fi.Size(), p)
		}
		return nil
	})
	t.Logf("host tree %s:\n%s", root, b.String())
}

// logSparse logs the size, allocation and data extents of path.
// Informational: the kernel's WRITEs reach the server out of order, so a
// file whose writes hit the quota may hold data past a refused range.
func logSparse(t *testing.T, path string) {
	f, err := os.Open(path)
	if err != nil {
		t.Log(err)
		return
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Log(err)
		return
	}
	const seekData, seekHole = 3, 4 // SEEK_DATA, SEEK_HOLE (Linux)
	var extents []string
	for off := int64(0); off < st.Size && len(extents) < 8; {
		data, err := syscall.Seek(int(f.Fd()), off, seekData)
		if err != nil {
			break // ENXIO: no data after off
		}
		hole, err := syscall.Seek(int(f.Fd()), data, seekHole)
		if err != nil {
			break
		}
		extents = append(extents, fmt.Sprintf("[%d,%d)", data, hole))
		off = hole
	}
	t.Logf("host: %s: size %d, %d bytes allocated, data at %s", filepath.Base(path), st.Size, st.Blocks*512, strings.Join(extents, " "))
}

// volumeMetrics scrapes the server's hangar_volume_used_bytes and
// hangar_volume_capacity_bytes of volume id.
func volumeMetrics(addr, id string) (used, capacity int64, err error) {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	label := fmt.Sprintf(`{volume=%q} `, id)
	found := map[string]int64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), label)
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return 0, 0, fmt.Errorf("metric %s: %v", sc.Text(), err)
		}
		found[name] = int64(f)
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	for _, n := range []string{"hangar_volume_used_bytes", "hangar_volume_capacity_bytes"} {
		if _, ok := found[n]; !ok {
			return 0, 0, fmt.Errorf("no %s{volume=%q} in /metrics", n, id)
		}
	}
	return found["hangar_volume_used_bytes"], found["hangar_volume_capacity_bytes"], nil
}
