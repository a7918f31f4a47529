package driver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	mount "k8s.io/mount-utils"

	"github.com/hangar-csi/hangar/pkg/csicommon"
	"github.com/hangar-csi/hangar/pkg/endpoint"
)

func newTestNode(probeErr error) (*Node, *mount.FakeMounter, *int) {
	m := mount.NewFakeMounter(nil)
	probes := new(int)
	n := &Node{NodeID: "n1", Mounter: m, Probe: func(ctx context.Context, addr, export string) error {
		*probes++
		return probeErr
	}}
	return n, m, probes
}

func publishReq(target string, mode csi.VolumeCapability_AccessMode_Mode) *csi.NodePublishVolumeRequest {
	c := mountCap(mode)
	c.GetMount().MountFlags = []string{"noatime"}
	return &csi.NodePublishVolumeRequest{
		VolumeId:         "s1:0123456789abcdef",
		TargetPath:       target,
		VolumeCapability: c,
		VolumeContext:    map[string]string{csicommon.ContextAddress: "10.0.0.5:2049", csicommon.ContextExport: "/0123456789abcdef"},
	}
}

func TestNodePublishUnpublish(t *testing.T) {
	ctx := context.Background()
	n, m, probes := newTestNode(nil)
	target := filepath.Join(t.TempDir(), "pods", "target")
	req := publishReq(target, csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER)
	for range 2 {
		if _, err := n.NodePublishVolume(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	mps, _ := m.List()
	if len(mps) != 1 || *probes != 1 {
		t.Fatalf("mounts %+v, probes %d", mps, *probes)
	}
	mp := mps[0]
	wantOpts := []string{"vers=3", "proto=tcp", "port=2049", "mountport=2049", "mountproto=tcp", "nolock", "noatime"}
	if mp.Device != "10.0.0.5:/0123456789abcdef" || mp.Type != "nfs" || !slices.Equal(mp.Opts, wantOpts) {
		t.Errorf("mount %+v", mp)
	}

	// The same volume read-only at the same target is refused.
	ro := publishReq(target, csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER)
	ro.Readonly = true
	if _, err := n.NodePublishVolume(ctx, ro); status.Code(err) != codes.AlreadyExists {
		t.Errorf("read-only over read-write: %v", err)
	}

	// A different volume at the same target is refused.
	other := publishReq(target, csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER)
	other.VolumeContext[csicommon.ContextExport] = "/ffffffffffffffff"
	if _, err := n.NodePublishVolume(ctx, other); status.Code(err) != codes.AlreadyExists {
		t.Errorf("other volume at target: %v", err)
	}

	stats, err := n.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: req.VolumeId, VolumePath: target})
	if err != nil || len(stats.Usage) != 2 || stats.Usage[0].Total <= 0 || stats.Usage[1].Total <= 0 {
		t.Fatalf("stats: %v %v", stats, err)
	}

	for range 2 {
		if _, err := n.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: req.VolumeId, TargetPath: target}); err != nil {
			t.Fatal(err)
		}
	}
	if mps, _ := m.List(); len(mps) != 0 {
		t.Errorf("still mounted: %+v", mps)
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("target not removed: %v", err)
	}
	if _, err := n.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: req.VolumeId, VolumePath: target}); status.Code(err) != codes.NotFound {
		t.Errorf("stats after unpublish: %v", err)
	}
}

func TestNodeReadOnly(t *testing.T) {
	n, m, _ := newTestNode(nil)
	dir := t.TempDir()
	for i, req := range []*csi.NodePublishVolumeRequest{
		publishReq(filepath.Join(dir, "a"), csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY),
		publishReq(filepath.Join(dir, "b"), csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY),
		func() *csi.NodePublishVolumeRequest {
			r := publishReq(filepath.Join(dir, "c"), csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
			r.Readonly = true
			return r
		}(),
	} {
		if _, err := n.NodePublishVolume(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		mps, _ := m.List()
		if !slices.Contains(mps[i].Opts, "ro") {
			t.Errorf("%d: options %v lack ro", i, mps[i].Opts)
		}
	}
}

func TestNodeProbeFailure(t *testing.T) {
	n, m, _ := newTestNode(errors.New("connection refused"))
	target := filepath.Join(t.TempDir(), "t")
	_, err := n.NodePublishVolume(context.Background(), publishReq(target, csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER))
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("got %v, want Unavailable", err)
	}
	if mps, _ := m.List(); len(mps) != 0 {
		t.Fatalf("mounted despite failed probe: %+v", mps)
	}
}

func TestNodeInvalid(t *testing.T) {
	n, _, _ := newTestNode(nil)
	ctx := context.Background()
	dir := t.TempDir()
	good := publishReq(filepath.Join(dir, "t"), csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
	block := publishReq(filepath.Join(dir, "t"), csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
	block.VolumeCapability.AccessType = &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}}
	noCtx := publishReq(filepath.Join(dir, "t"), csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
	noCtx.VolumeContext = nil
	for name, r := range map[string]*csi.NodePublishVolumeRequest{
		"no id":     {TargetPath: good.TargetPath, VolumeCapability: good.VolumeCapability, VolumeContext: good.VolumeContext},
		"no target": {VolumeId: good.VolumeId, VolumeCapability: good.VolumeCapability, VolumeContext: good.VolumeContext},
		"no cap":    {VolumeId: good.VolumeId, TargetPath: good.TargetPath, VolumeContext: good.VolumeContext},
		"block":     block,
		"no ctx":    noCtx,
	} {
		if _, err := n.NodePublishVolume(ctx, r); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := n.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: "x", VolumePath: dir}); status.Code(err) != codes.NotFound {
		t.Errorf("stats of unmounted dir: %v", err)
	}
	if _, err := n.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: "x"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("unpublish without target: %v", err)
	}
}

func TestMountSourceIPv6(t *testing.T) {
	src, port, err := MountSource("[fd00::1]:2049", "/v")
	if err != nil || src != "[fd00::1]:/v" || port != "2049" {
		t.Fatalf("%q %q %v", src, port, err)
	}
}

// TestNodeSizeLimits: over the node's CSI socket, a volume ID or volume
// context past the CSI size limits is refused before anything is mounted.
func TestNodeSizeLimits(t *testing.T) {
	n, m, _ := newTestNode(nil)
	sock := filepath.Join(t.TempDir(), "csi.sock")
	l, err := endpoint.Listen("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	g := endpoint.NewGRPCServer(logr.Discard())
	csi.RegisterNodeServer(g, n)
	go g.Serve(l)
	defer g.Stop()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := csi.NewNodeClient(conn)
	longID := publishReq(filepath.Join(t.TempDir(), "a"), csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
	longID.VolumeId = "s1:" + strings.Repeat("0", 200)
	bigCtx := publishReq(filepath.Join(t.TempDir(), "b"), csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
	bigCtx.VolumeContext["junk"] = strings.Repeat("x", 5000)
	for field, req := range map[string]*csi.NodePublishVolumeRequest{"volume_id": longID, "volume_context": bigCtx} {
		_, err := client.NodePublishVolume(context.Background(), req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), field) {
			t.Errorf("oversized %s: %v, want InvalidArgument naming it", field, err)
		}
	}
	if mps, _ := m.List(); len(mps) != 0 {
		t.Fatalf("mounted %v", mps)
	}
}
