package driver

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	mount "k8s.io/mount-utils"
)

func TestMountArgs(t *testing.T) {
	flags, data, err := mountArgs([]string{"vers=3", "proto=tcp,port=20490", "ro", "nosuid,noatime", "hard", "defaults", "_netdev", "x-systemd.automount", "nconnect=4", "rw", "ro"})
	if err != nil {
		t.Fatal(err)
	}
	if want := uintptr(unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NOATIME); flags != want {
		t.Errorf("flags %#x, want %#x", flags, want)
	}
	if got := strings.Join(data, ","); got != "vers=3,proto=tcp,port=20490,hard,nconnect=4" {
		t.Errorf("data %q", got)
	}
	// A later option undoes an earlier one, as with mount(8).
	if flags, _, _ := mountArgs([]string{"ro", "rw", "noexec", "exec"}); flags != 0 {
		t.Errorf("ro,rw,noexec,exec gave flags %#x", flags)
	}
	if flags, _, _ := mountArgs([]string{"bind", "ro"}); flags != unix.MS_BIND|unix.MS_RDONLY {
		t.Errorf("bind,ro gave flags %#x", flags)
	}
	for _, bad := range []string{"remount", "move", "bind=x"} {
		if _, _, err := mountArgs([]string{bad}); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestKernelMounterServerAddr(t *testing.T) {
	m := &KernelMounter{Resolve: func(ctx context.Context, host string) ([]net.IPAddr, error) {
		if host == "nas.example" {
			return []net.IPAddr{{IP: net.ParseIP("10.1.2.3")}}, nil
		}
		return nil, errors.New("no such host")
	}}
	for src, want := range map[string]string{"10.0.2.100:/abc": "10.0.2.100", "[fd00::1]:/abc": "fd00::1", "nas.example:/v": "10.1.2.3"} {
		if got, err := m.serverAddr(src); err != nil || got != want {
			t.Errorf("serverAddr(%q) = %q, %v; want %q", src, got, err, want)
		}
	}
	for _, bad := range []string{"nohost.example:/v", "/just/a/path", ":/x", "[]:/x"} {
		if _, err := m.serverAddr(bad); err == nil {
			t.Errorf("serverAddr(%q) accepted", bad)
		}
	}
}

// TestKernelMounterMounts mounts a tmpfs (this host's kernel has no NFS
// client; the NFS path runs in the VM suite, test/e2e case 1) and checks that
// generic options became mount flags and the rest reached the file system.
func TestKernelMounterMounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mount(2) needs root; run as root to test the kernel mounter")
	}
	m := NewKernelMounter()
	target := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m.Mount("hangar-test", target, "tmpfs", []string{"ro,nosuid", "nodev", "size=1m", "_netdev"}); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(target, unix.MNT_DETACH)
	mps, err := m.List()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(mps, func(mp mount.MountPoint) bool { return mp.Path == target })
	if i < 0 {
		t.Fatalf("%s not in the mount list", target)
	}
	for _, want := range []string{"ro", "nosuid", "nodev", "size=1024k"} {
		if !slices.Contains(mps[i].Opts, want) {
			t.Errorf("mount options %v lack %s", mps[i].Opts, want)
		}
	}
	if notMnt, err := m.IsLikelyNotMountPoint(target); err != nil || notMnt {
		t.Errorf("IsLikelyNotMountPoint = %v, %v", notMnt, err)
	}
	err = m.Mount("hangar-test", target, "tmpfs", []string{"no_such_tmpfs_option=1"})
	if !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), "no_such_tmpfs_option") {
		t.Errorf("bad option: %v", err)
	}
	if err := m.Unmount(target); err != nil {
		t.Fatal(err)
	}
	if notMnt, err := m.IsLikelyNotMountPoint(target); err != nil || !notMnt {
		t.Errorf("after Unmount: IsLikelyNotMountPoint = %v, %v", notMnt, err)
	}
	if err := m.Unmount(target); !errors.Is(err, unix.EINVAL) {
		t.Errorf("second Unmount: %v", err)
	}
}

// TestKernelMounterBind: NodePublishVolume bind-mounts the staged volume
// into the pod, read-only when asked; the read-only bind must refuse writes
// while the staged mount stays writable.
func TestKernelMounterBind(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mount(2) needs root; run as root to test the kernel mounter")
	}
	m := NewKernelMounter()
	dir := t.TempDir()
	staging, target := filepath.Join(dir, "staging"), filepath.Join(dir, "target")
	for _, d := range []string{staging, target} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Mount("hangar-test", staging, "tmpfs", []string{"size=1m"}); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(staging, unix.MNT_DETACH)
	if err := m.Mount(staging, target, "", []string{"bind", "ro"}); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(target, unix.MNT_DETACH)
	if err := os.WriteFile(filepath.Join(staging, "f"), []byte("x"), 0o644); err != nil {
		t.Fatalf("staged mount not writable: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(target, "f")); err != nil || string(b) != "x" {
		t.Fatalf("bind mount shows %q, %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(target, "g"), []byte("x"), 0o644); !errors.Is(err, unix.EROFS) {
		t.Fatalf("write through the read-only bind: %v, want EROFS", err)
	}
}

// TestKernelMounterBindKeepsFlags: a read-only publication must not be
// weaker than the staged mount. Remounting a bind replaces its per-mount
// flags, so the nodev, nosuid and noexec it inherited from the staged
// mount have to be passed again (as mount(8) does).
func TestKernelMounterBindKeepsFlags(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mount(2) needs root; run as root to test the kernel mounter")
	}
	m := NewKernelMounter()
	dir := t.TempDir()
	staging, target := filepath.Join(dir, "staging"), filepath.Join(dir, "target")
	for _, d := range []string{staging, target} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Mount("hangar-test", staging, "tmpfs", []string{"size=1m", "nodev", "nosuid", "noexec"}); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(staging, unix.MNT_DETACH)
	if err := m.Mount(staging, target, "", []string{"bind", "ro"}); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(target, unix.MNT_DETACH)
	var st unix.Statfs_t
	if err := unix.Statfs(target, &st); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name string
		bit  int64
	}{{"ro", unix.ST_RDONLY}, {"nodev", unix.ST_NODEV}, {"nosuid", unix.ST_NOSUID}, {"noexec", unix.ST_NOEXEC}} {
		if st.Flags&f.bit == 0 {
			t.Errorf("read-only bind of a nodev,nosuid,noexec mount lacks %s (flags %#x)", f.name, st.Flags)
		}
	}
}

// TestKernelMounterBindPropagatesReadOnly: the node plugin runs in a
// container and its publications reach kubelet's mount namespace through
// mount propagation (Bidirectional). Propagation copies a mount as it is
// when attached; a later remount to read-only is not propagated. So a
// read-only publication must be read-only before it is attached, or the
// host (and runc, which binds it into the pod) sees it read-write. Here
// the peer of a shared mount stands in for the host's copy.
func TestKernelMounterBindPropagatesReadOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mount(2) needs root; run as root to test the kernel mounter")
	}
	m := NewKernelMounter()
	dir := t.TempDir()
	staging, shared, peer := filepath.Join(dir, "staging"), filepath.Join(dir, "shared"), filepath.Join(dir, "peer")
	for _, d := range []string{staging, shared, peer} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Mount("hangar-test", staging, "tmpfs", []string{"size=1m", "nodev"}); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(staging, unix.MNT_DETACH)
	if err := m.Mount("hangar-pods", shared, "tmpfs", []string{"size=1m"}); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(shared, unix.MNT_DETACH)
	if err := unix.Mount("", shared, "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(shared, peer, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(peer, unix.MNT_DETACH)
	for _, ro := range []bool{true, false} {
		name, opts := "rw", []string{"bind"}
		if ro {
			name, opts = "ro", []string{"bind", "ro"}
		}
		target := filepath.Join(shared, name)
		if err := os.Mkdir(target, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := m.Mount(staging, target, "", opts); err != nil {
			t.Fatal(err)
		}
		defer unix.Unmount(target, unix.MNT_DETACH)
		for _, p := range []string{target, filepath.Join(peer, name)} {
			var st unix.Statfs_t
			if err := unix.Statfs(p, &st); err != nil {
				t.Fatal(err)
			}
			if st.Type != unix.TMPFS_MAGIC {
				t.Fatalf("%s: no mount propagated there (fs type %#x)", p, st.Type)
			}
			if got := st.Flags&unix.ST_RDONLY != 0; got != ro {
				t.Errorf("%s bind at %s: read-only=%v, want %v (flags %#x)", name, p, got, ro, st.Flags)
			}
			if st.Flags&unix.ST_NODEV == 0 {
				t.Errorf("%s bind at %s lacks the staged mount's nodev (flags %#x)", name, p, st.Flags)
			}
		}
	}
}
