package csi

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fakeQuota reports fixed usage for exported volumes.
type fakeQuota struct {
	usage    map[string]VolumeUsage
	capacity map[string]int64
}

func (q *fakeQuota) SetCapacity(id string, c int64) error { q.capacity[id] = c; return nil }
func (q *fakeQuota) Available() (int64, error)            { return 1 << 40, nil }
func (q *fakeQuota) Usage(id string) (VolumeUsage, error) {
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
	q := &fakeQuota{usage: map[string]VolumeUsage{}, capacity: map[string]int64{}}
	a.api.Quota = q
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	c := newTestController(t, ServerRef{"a", a.addr})
	withDown := newTestController(t, ServerRef{"a", a.addr}, ServerRef{"down", dead})
	withDown.CallTimeout = 5e9
	v, err := c.CreateVolume(ctx, createReq("v", 1000))
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
	if got := healthReasons(get(id)); got != "INACCESSIBLE/"+ReasonExportMissing {
		t.Fatalf("unexported volume: %s", got)
	}
	q.usage[local] = VolumeUsage{Bytes: 500, MaxBytes: 1000, Inodes: 10, MaxInodes: 100}
	if got := healthReasons(get(id)); got != "" {
		t.Fatalf("half full volume: %s", got)
	}
	q.usage[local] = VolumeUsage{Bytes: 960, MaxBytes: 1000, Inodes: 99, MaxInodes: 100}
	h := get(id)
	if got := healthReasons(h); got != "DEGRADED/"+ReasonNearlyFull+",DEGRADED/"+ReasonNearlyOutOfInodes {
		t.Fatalf("full volume: %s", got)
	}
	if msg := h.GetHealthStatuses()[0].GetMessage(); !strings.Contains(msg, "96% full") || !strings.Contains(msg, "expand") {
		t.Fatalf("message not actionable: %q", msg)
	}
	if got := healthReasons(get("down:0123456789abcdef")); got != "INACCESSIBLE/"+ReasonServerUnreachable {
		t.Fatalf("volume on a server that is down: %s", got)
	}
	_, err = c.ControllerGetVolumeHealth(ctx, &csi.ControllerGetVolumeHealthRequest{VolumeId: "a:fedcba9876543210"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("health of a missing volume: %v", err)
	}
	// Expansion reaches the live export.
	if _, err := c.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: id, CapacityRange: &csi.CapacityRange{RequiredBytes: 5000}}); err != nil {
		t.Fatal(err)
	}
	if q.capacity[local] != 5000 {
		t.Fatalf("export capacity after expansion: %d", q.capacity[local])
	}
	caps := ControllerCapabilities()
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

func TestUsageHealthThreshold(t *testing.T) {
	for _, c := range []struct {
		u    VolumeUsage
		want int
	}{
		{VolumeUsage{Bytes: 949, MaxBytes: 1000}, 0},
		{VolumeUsage{Bytes: 950, MaxBytes: 1000}, 1},
		{VolumeUsage{Bytes: 2000, MaxBytes: 1000}, 1},
		{VolumeUsage{Bytes: 1 << 40}, 0}, // unlimited
		{VolumeUsage{Inodes: 95, MaxInodes: 100}, 1},
	} {
		if got := len(usageHealth(c.u)); got != c.want {
			t.Errorf("%+v: %d problems, want %d", c.u, got, c.want)
		}
	}
}

func TestParseVolumeParams(t *testing.T) {
	p, err := ParseVolumeParams(map[string]string{ParamMaxInodes: "1000", ParamRootSquash: "true", ParamAnonUID: "0", ParamAnonGID: "4000"})
	if err != nil || p != (VolumeParams{MaxInodes: 1000, RootSquash: true, AnonUID: 0, AnonGID: 4000}) {
		t.Fatalf("%+v %v", p, err)
	}
	if p, _ := ParseVolumeParams(nil); p != (VolumeParams{AnonUID: DefaultAnonID, AnonGID: DefaultAnonID}) || p.InodeLimit(1<<30) != 65536 || p.InodeLimit(1<<20) != minInodes {
		t.Fatalf("defaults: %+v", p)
	}
	for k, v := range map[string]string{ParamMaxInodes: "0", ParamRootSquash: "yes please", ParamAnonUID: "-1", ParamAnonGID: "4294967295"} {
		err := ValidateParameters(map[string]string{k: v})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%q: %v", k, v, err)
		}
	}
}
