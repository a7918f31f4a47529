package driver

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hangar-csi/hangar/pkg/csicommon"
)

// fakeQuota reports fixed usage for exported volumes.
type fakeQuota struct {
	usage    map[string]csicommon.VolumeUsage
	capacity map[string]int64
}

func (q *fakeQuota) SetCapacity(id string, c int64) error { q.capacity[id] = c; return nil }
func (q *fakeQuota) Available(int64) (int64, error)       { return 1 << 40, nil }
func (q *fakeQuota) ApplyPolicy(string) error             { return nil }
func (q *fakeQuota) Usage(id string) (csicommon.VolumeUsage, error) {
	u, ok := q.usage[id]
	if !ok {
		return u, errors.New("no such export")
	}
	return u, nil
}

func healthReasons(h *csi.VolumeHealth) string {
	var r []string
	for _, e := range h.GetHealthStatuses() {
		r = append(r, e.GetStatus().String()+"/"+e.GetReason())
	}
	return strings.Join(r, ",")
}

func TestVolumeHealth(t *testing.T) {
	ctx := context.Background()
	a := startServer(t, "a", 1<<40)
	q := &fakeQuota{usage: map[string]csicommon.VolumeUsage{}, capacity: map[string]int64{}}
	a.api.Quota = q
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	c := newTestController(t, ServerRef{"a", a.addr})
	withDown := newTestController(t, ServerRef{"a", a.addr}, ServerRef{"down", dead})
	withDown.CallTimeout = 5e9
	v, err := c.CreateVolume(ctx, createReq("v", 1000*mib))
	if err != nil {
		t.Fatal(err)
	}
	id := v.Volume.VolumeId
	local := strings.TrimPrefix(id, "a:")
	get := func(id string) *csi.VolumeHealth {
		t.Helper()
		r, err := withDown.ControllerGetVolumeHealth(ctx, &csi.ControllerGetVolumeHealthRequest{VolumeId: id})
		if err != nil {
			t.Fatal(err)
		}
		if r.GetVolumeHealth().GetVolumeId() != id {
			t.Fatalf("health of %s names %s", id, r.GetVolumeHealth().GetVolumeId())
		}
		return r.GetVolumeHealth()
	}
	if got := healthReasons(get(id)); got != "INACCESSIBLE/"+csicommon.ReasonExportMissing {
		t.Fatalf("unexported volume: %s", got)
	}
	q.usage[local] = csicommon.VolumeUsage{Bytes: 500, MaxBytes: 1000, Inodes: 10, MaxInodes: 100}
	if got := healthReasons(get(id)); got != "" {
		t.Fatalf("half full volume: %s", got)
	}
	q.usage[local] = csicommon.VolumeUsage{Bytes: 960, MaxBytes: 1000, Inodes: 99, MaxInodes: 100}
	h := get(id)
	if got := healthReasons(h); got != "DEGRADED/"+csicommon.ReasonNearlyFull+",DEGRADED/"+csicommon.ReasonNearlyOutOfInodes {
		t.Fatalf("full volume: %s", got)
	}
	if msg := h.GetHealthStatuses()[0].GetMessage(); !strings.Contains(msg, "96% full") || !strings.Contains(msg, "expand") {
		t.Fatalf("message not actionable: %q", msg)
	}
	if got := healthReasons(get("down:0123456789abcdef")); got != "INACCESSIBLE/"+csicommon.ReasonServerUnreachable {
		t.Fatalf("volume on a server that is down: %s", got)
	}
	_, err = c.ControllerGetVolumeHealth(ctx, &csi.ControllerGetVolumeHealthRequest{VolumeId: "a:fedcba9876543210"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("health of a missing volume: %v", err)
	}
	// Expansion reaches the live export.
	if _, err := c.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: id, CapacityRange: &csi.CapacityRange{RequiredBytes: 5000 * mib}}); err != nil {
		t.Fatal(err)
	}
	if q.capacity[local] != 5000*mib {
		t.Fatalf("export capacity after expansion: %d", q.capacity[local])
	}
	caps := csicommon.ControllerCapabilities()
	found := false
	for _, c := range caps.GetCapabilities() {
		found = found || c.GetRpc().GetType() == csi.ControllerServiceCapability_RPC_GET_VOLUME_HEALTH
	}
	if !found {
		t.Fatal("controller does not advertise GET_VOLUME_HEALTH")
	}
}

func TestNodeVolumeHealth(t *testing.T) {
	ctx := context.Background()
	n, m, _ := newTestNode(nil)
	target := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(target, 0o750); err != nil {
		t.Fatal(err)
	}
	_, err := n.NodeGetVolumeHealth(ctx, &csi.NodeGetVolumeHealthRequest{})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("no volume ID: %v", err)
	}
	r, err := n.NodeGetVolumeHealth(ctx, &csi.NodeGetVolumeHealthRequest{VolumeId: "s1:0123456789abcdef"})
	if err != nil || r.GetVolumeHealth().GetVolumeId() != "s1:0123456789abcdef" || len(r.GetVolumeHealth().GetHealthStatuses()) != 0 {
		t.Fatalf("health without a path: %v %v", r, err)
	}
	_, err = n.NodeGetVolumeHealth(ctx, &csi.NodeGetVolumeHealthRequest{VolumeId: "s1:0123456789abcdef", VolumePublishPath: target})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("health of a volume not mounted: %v", err)
	}
	if err := m.Mount("10.0.0.5:/0123456789abcdef", target, "nfs", nil); err != nil {
		t.Fatal(err)
	}
	r, err = n.NodeGetVolumeHealth(ctx, &csi.NodeGetVolumeHealthRequest{VolumeId: "s1:0123456789abcdef", VolumePublishPath: target})
	if err != nil || r.GetVolumeHealth() == nil {
		t.Fatalf("health of a mounted volume: %v %v", r, err)
	}
}

// TestNodeVolumeHealthFullDisk: a mount whose file system has no space
// left (as FSSTAT reports it when the server's disk is full) is DEGRADED.
func TestNodeVolumeHealthFullDisk(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	n, m, _ := newTestNode(nil)
	target := t.TempDir()
	if err := unix.Mount("tmpfs", target, "tmpfs", 0, "size=4m"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(target, unix.MNT_DETACH)
	if err := m.Mount("10.0.0.5:/0123456789abcdef", target, "nfs", nil); err != nil {
		t.Fatal(err)
	}
	health := func() string {
		r, err := n.NodeGetVolumeHealth(context.Background(), &csi.NodeGetVolumeHealthRequest{VolumeId: "s1:0123456789abcdef", VolumePublishPath: target})
		if err != nil {
			t.Fatal(err)
		}
		return healthReasons(r.GetVolumeHealth())
	}
	if got := health(); got != "" {
		t.Fatalf("empty volume: %s", got)
	}
	f, err := os.Create(filepath.Join(target, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for err == nil {
		_, err = f.Write(make([]byte, 64<<10))
	}
	if got := health(); got != "DEGRADED/"+csicommon.ReasonNearlyFull {
		t.Fatalf("full volume: %q", got)
	}
}
