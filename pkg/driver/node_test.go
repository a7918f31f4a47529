package driver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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
	"github.com/hangar-csi/hangar/pkg/logging"
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

// serveNode serves n on a unix socket and returns a client of it: the tests
// speak CSI gRPC as kubelet does.
func serveNode(t *testing.T, n *Node) csi.NodeClient {
	t.Helper()
	return serveNodeLog(t, n, logr.Discard())
}

func serveNodeLog(t *testing.T, n *Node, log logr.Logger) csi.NodeClient {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "csi.sock")
	l, err := endpoint.Listen("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	g := endpoint.NewGRPCServer(log)
	csi.RegisterNodeServer(g, n)
	go g.Serve(l)
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return csi.NewNodeClient(conn)
}

const testVol = "s1:0123456789abcdef"

func testCtx() map[string]string {
	return map[string]string{csicommon.ContextAddress: "10.0.0.5:2049", csicommon.ContextExport: "/0123456789abcdef"}
}

func stageReq(staging string, mode csi.VolumeCapability_AccessMode_Mode) *csi.NodeStageVolumeRequest {
	c := mountCap(mode)
	c.GetMount().MountFlags = []string{"noatime"}
	return &csi.NodeStageVolumeRequest{VolumeId: testVol, StagingTargetPath: staging, VolumeCapability: c, VolumeContext: testCtx()}
}

func publishReq(staging, target string, mode csi.VolumeCapability_AccessMode_Mode) *csi.NodePublishVolumeRequest {
	c := mountCap(mode)
	c.GetMount().MountFlags = []string{"noatime"}
	return &csi.NodePublishVolumeRequest{
		VolumeId:          testVol,
		StagingTargetPath: staging,
		TargetPath:        target,
		VolumeCapability:  c,
		VolumeContext:     testCtx(),
	}
}

func mountsAt(m *mount.FakeMounter, path string) []mount.MountPoint {
	mps, _ := m.List()
	return slices.DeleteFunc(slices.Clone(mps), func(mp mount.MountPoint) bool { return mp.Path != path })
}

// TestNodeStagePublish: one NFS mount at the staging path, a bind mount
// per pod, each step idempotent, and both undone.
func TestNodeStagePublish(t *testing.T) {
	ctx := context.Background()
	n, m, probes := newTestNode(nil)
	c := serveNode(t, n)
	dir := t.TempDir()
	staging := filepath.Join(dir, "staging")
	const mode = csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER

	// Publishing before staging is refused.
	if _, err := c.NodePublishVolume(ctx, publishReq("", filepath.Join(dir, "pod0"), mode)); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("publish without staging path: %v, want FailedPrecondition", err)
	}
	if _, err := c.NodePublishVolume(ctx, publishReq(staging, filepath.Join(dir, "pod0"), mode)); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("publish of an unstaged volume: %v, want FailedPrecondition", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "pod0")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused publish left its target behind: %v", err)
	}

	for range 2 {
		if _, err := c.NodeStageVolume(ctx, stageReq(staging, mode)); err != nil {
			t.Fatal(err)
		}
	}
	st := mountsAt(m, staging)
	wantOpts := []string{"vers=4.1", "proto=tcp", "port=2049", "nodev", "noatime"}
	if len(st) != 1 || *probes != 1 || st[0].Device != "10.0.0.5:/0123456789abcdef" || st[0].Type != "nfs" || !slices.Equal(st[0].Opts, wantOpts) {
		t.Fatalf("staging mounts %+v after %d probes", st, *probes)
	}
	// Another volume at the same staging path is refused.
	other := stageReq(staging, mode)
	other.VolumeContext[csicommon.ContextExport] = "/ffffffffffffffff"
	if _, err := c.NodeStageVolume(ctx, other); status.Code(err) != codes.AlreadyExists {
		t.Errorf("other volume at the staging path: %v, want AlreadyExists", err)
	}
	// A publish naming another volume's staging path is refused.
	wrong := publishReq(staging, filepath.Join(dir, "pod0"), mode)
	wrong.VolumeContext[csicommon.ContextExport] = "/ffffffffffffffff"
	if _, err := c.NodePublishVolume(ctx, wrong); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("publish from another volume's staging path: %v, want FailedPrecondition", err)
	}

	pods := []string{filepath.Join(dir, "pods", "a", "mount"), filepath.Join(dir, "pods", "b", "mount")}
	for i, target := range pods {
		req := publishReq(staging, target, mode)
		req.Readonly = i == 1
		for range 2 {
			if _, err := c.NodePublishVolume(ctx, req); err != nil {
				t.Fatal(err)
			}
		}
		mps := mountsAt(m, target)
		if len(mps) != 1 || mps[0].Device != "10.0.0.5:/0123456789abcdef" || !slices.Contains(mps[0].Opts, "bind") || slices.Contains(mps[0].Opts, "ro") != req.Readonly {
			t.Fatalf("pod %d mounts %+v", i, mps)
		}
	}
	if *probes != 1 {
		t.Errorf("publishing probed the server again (%d probes): a bind mount needs no network", *probes)
	}
	if len(mountsAt(m, staging)) != 1 {
		t.Errorf("staging mounted again: %+v", mountsAt(m, staging))
	}
	// The same target with the other read-only setting is refused.
	flip := publishReq(staging, pods[0], mode)
	flip.Readonly = true
	if _, err := c.NodePublishVolume(ctx, flip); status.Code(err) != codes.AlreadyExists {
		t.Errorf("read-only over read-write: %v, want AlreadyExists", err)
	}

	for _, p := range []string{staging, pods[0]} {
		stats, err := c.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: testVol, VolumePath: p, StagingTargetPath: staging})
		if err != nil || len(stats.Usage) != 2 || stats.Usage[0].Total <= 0 || stats.Usage[1].Total <= 0 {
			t.Fatalf("stats at %s: %v %v", p, stats, err)
		}
	}

	for _, target := range pods {
		for range 2 {
			if _, err := c.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: testVol, TargetPath: target}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("target not removed: %v", err)
		}
	}
	for range 2 {
		if _, err := c.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: testVol, StagingTargetPath: staging}); err != nil {
			t.Fatal(err)
		}
	}
	if mps, _ := m.List(); len(mps) != 0 {
		t.Errorf("still mounted: %+v", mps)
	}
	if _, err := c.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: testVol, VolumePath: staging}); status.Code(err) != codes.NotFound {
		t.Errorf("stats after unstage: %v", err)
	}
	// Unstaging a path that never existed is fine too.
	if _, err := c.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: testVol, StagingTargetPath: filepath.Join(dir, "never")}); err != nil {
		t.Errorf("unstage of a missing path: %v", err)
	}
}

func TestNodeReadOnly(t *testing.T) {
	ctx := context.Background()
	n, m, _ := newTestNode(nil)
	c := serveNode(t, n)
	dir := t.TempDir()
	for i, mode := range []csi.VolumeCapability_AccessMode_Mode{
		csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY,
		csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY,
	} {
		staging, target := filepath.Join(dir, "s", mode.String()), filepath.Join(dir, "t", mode.String())
		if _, err := c.NodeStageVolume(ctx, stageReq(staging, mode)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.NodePublishVolume(ctx, publishReq(staging, target, mode)); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{staging, target} {
			if mps := mountsAt(m, p); len(mps) != 1 || !slices.Contains(mps[0].Opts, "ro") {
				t.Errorf("%d: %s mounted %+v, want read-only", i, p, mps)
			}
		}
	}
}

// TestNodePublishLogsPod: with podInfoOnMount the kubelet sends the pod's
// name, namespace and UID; the publish log line names the pod, so a mount
// on a node can be traced to the pod it is for.
func TestNodePublishLogsPod(t *testing.T) {
	ctx := context.Background()
	n, _, _ := newTestNode(nil)
	var buf syncBuffer
	c := serveNodeLog(t, n, logging.New(&buf, "json", 0))
	dir := t.TempDir()
	staging, target := filepath.Join(dir, "s"), filepath.Join(dir, "t")
	const mode = csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER
	if _, err := c.NodeStageVolume(ctx, stageReq(staging, mode)); err != nil {
		t.Fatal(err)
	}
	req := publishReq(staging, target, mode)
	req.VolumeContext[podNameKey] = "app-0"
	req.VolumeContext[podNamespaceKey] = "shop"
	req.VolumeContext[podUIDKey] = "6c8f0b2e-1b7a-4d1e-9a57-0f4f6c1e2d3a"
	if _, err := c.NodePublishVolume(ctx, req); err != nil {
		t.Fatal(err)
	}
	var published string
	for _, l := range strings.Split(buf.String(), "\n") {
		if strings.Contains(l, `"volume published"`) {
			published = l
		}
	}
	for _, want := range []string{`"pod":"shop/app-0"`, `"podUID":"6c8f0b2e-1b7a-4d1e-9a57-0f4f6c1e2d3a"`} {
		if !strings.Contains(published, want) {
			t.Errorf("publish log %q lacks %s", published, want)
		}
	}
}

// syncBuffer is a bytes.Buffer the server's goroutines may write to.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestNodeSingleWriter: SINGLE_NODE_SINGLE_WRITER allows one publication on
// the node; SINGLE_NODE_MULTI_WRITER many.
func TestNodeSingleWriter(t *testing.T) {
	ctx := context.Background()
	n, _, _ := newTestNode(nil)
	c := serveNode(t, n)
	dir := t.TempDir()
	staging := filepath.Join(dir, "staging")
	if _, err := c.NodeStageVolume(ctx, stageReq(staging, csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.NodePublishVolume(ctx, publishReq(staging, filepath.Join(dir, "a"), csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.NodePublishVolume(ctx, publishReq(staging, filepath.Join(dir, "b"), csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER)); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("second single-writer publication: %v, want FailedPrecondition", err)
	}
	if _, err := c.NodePublishVolume(ctx, publishReq(staging, filepath.Join(dir, "c"), csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER)); err != nil {
		t.Errorf("multi-writer publication: %v", err)
	}
}

func TestNodeProbeFailure(t *testing.T) {
	n, m, _ := newTestNode(errors.New("connection refused"))
	c := serveNode(t, n)
	staging := filepath.Join(t.TempDir(), "s")
	_, err := c.NodeStageVolume(context.Background(), stageReq(staging, csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER))
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("got %v, want Unavailable", err)
	}
	if mps, _ := m.List(); len(mps) != 0 {
		t.Fatalf("mounted despite failed probe: %+v", mps)
	}
	if _, err := os.Stat(staging); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused stage left its path behind: %v", err)
	}
}

func TestNodeInvalid(t *testing.T) {
	n, _, _ := newTestNode(nil)
	c := serveNode(t, n)
	ctx := context.Background()
	dir := t.TempDir()
	staging := filepath.Join(dir, "s")
	const mode = csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER
	good := publishReq(staging, filepath.Join(dir, "t"), mode)
	block := publishReq(staging, filepath.Join(dir, "t"), mode)
	block.VolumeCapability.AccessType = &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}}
	for name, r := range map[string]*csi.NodePublishVolumeRequest{
		"no id":     {StagingTargetPath: staging, TargetPath: good.TargetPath, VolumeCapability: good.VolumeCapability, VolumeContext: good.VolumeContext},
		"no target": {VolumeId: good.VolumeId, StagingTargetPath: staging, VolumeCapability: good.VolumeCapability, VolumeContext: good.VolumeContext},
		"no cap":    {VolumeId: good.VolumeId, StagingTargetPath: staging, TargetPath: good.TargetPath, VolumeContext: good.VolumeContext},
		"block":     block,
	} {
		if _, err := c.NodePublishVolume(ctx, r); status.Code(err) != codes.InvalidArgument {
			t.Errorf("publish %s: %v", name, err)
		}
	}
	sgood := stageReq(staging, mode)
	sblock := stageReq(staging, mode)
	sblock.VolumeCapability.AccessType = &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}}
	noCtx := stageReq(staging, mode)
	noCtx.VolumeContext = nil
	for name, r := range map[string]*csi.NodeStageVolumeRequest{
		"no id":      {StagingTargetPath: staging, VolumeCapability: sgood.VolumeCapability, VolumeContext: sgood.VolumeContext},
		"no staging": {VolumeId: testVol, VolumeCapability: sgood.VolumeCapability, VolumeContext: sgood.VolumeContext},
		"no cap":     {VolumeId: testVol, StagingTargetPath: staging, VolumeContext: sgood.VolumeContext},
		"block":      sblock,
		"no ctx":     noCtx,
	} {
		if _, err := c.NodeStageVolume(ctx, r); status.Code(err) != codes.InvalidArgument {
			t.Errorf("stage %s: %v", name, err)
		}
	}
	for name, r := range map[string]*csi.NodeUnstageVolumeRequest{
		"no id":      {StagingTargetPath: staging},
		"no staging": {VolumeId: testVol},
	} {
		if _, err := c.NodeUnstageVolume(ctx, r); status.Code(err) != codes.InvalidArgument {
			t.Errorf("unstage %s: %v", name, err)
		}
	}
	if _, err := c.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: "x", VolumePath: dir}); status.Code(err) != codes.NotFound {
		t.Errorf("stats of unmounted dir: %v", err)
	}
	if _, err := c.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: "x"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("unpublish without target: %v", err)
	}
}

// TestNodeExpand: node expansion validates and reports what the mount
// shows; the controller says none is needed.
func TestNodeExpand(t *testing.T) {
	ctx := context.Background()
	n, _, _ := newTestNode(nil)
	c := serveNode(t, n)
	dir := t.TempDir()
	staging, target := filepath.Join(dir, "s"), filepath.Join(dir, "t")
	const mode = csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER
	if _, err := c.NodeStageVolume(ctx, stageReq(staging, mode)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.NodePublishVolume(ctx, publishReq(staging, target, mode)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{staging, target} {
		r, err := c.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: testVol, VolumePath: p, StagingTargetPath: staging,
			CapacityRange: &csi.CapacityRange{RequiredBytes: 1 << 20}, VolumeCapability: mountCap(mode)})
		if err != nil || r.CapacityBytes <= 0 {
			t.Fatalf("expand at %s: %v %v", p, r, err)
		}
	}
	block := mountCap(mode)
	block.AccessType = &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}}
	for name, tc := range map[string]struct {
		req  *csi.NodeExpandVolumeRequest
		want codes.Code
	}{
		"no id":        {&csi.NodeExpandVolumeRequest{VolumePath: target}, codes.InvalidArgument},
		"no path":      {&csi.NodeExpandVolumeRequest{VolumeId: testVol}, codes.InvalidArgument},
		"block":        {&csi.NodeExpandVolumeRequest{VolumeId: testVol, VolumePath: target, VolumeCapability: block}, codes.InvalidArgument},
		"negative":     {&csi.NodeExpandVolumeRequest{VolumeId: testVol, VolumePath: target, CapacityRange: &csi.CapacityRange{RequiredBytes: -1}}, codes.InvalidArgument},
		"over limit":   {&csi.NodeExpandVolumeRequest{VolumeId: testVol, VolumePath: target, CapacityRange: &csi.CapacityRange{RequiredBytes: 2, LimitBytes: 1}}, codes.OutOfRange},
		"missing path": {&csi.NodeExpandVolumeRequest{VolumeId: testVol, VolumePath: filepath.Join(dir, "nope")}, codes.NotFound},
		"not mounted":  {&csi.NodeExpandVolumeRequest{VolumeId: testVol, VolumePath: dir}, codes.NotFound},
		"other volume": {&csi.NodeExpandVolumeRequest{VolumeId: "s1:ffffffffffffffff", VolumePath: target}, codes.NotFound},
		"not hangar's": {&csi.NodeExpandVolumeRequest{VolumeId: "nonsense", VolumePath: target}, codes.NotFound},
	} {
		if _, err := c.NodeExpandVolume(ctx, tc.req); status.Code(err) != tc.want {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}

// TestNodeStorageHealth probes each storage server the node mounts from
// once, and reports the one that does not answer.
func TestNodeStorageHealth(t *testing.T) {
	ctx := context.Background()
	m := mount.NewFakeMounter(nil)
	var mu sync.Mutex
	var probed []string
	n := &Node{NodeID: "n1", Mounter: m, Probe: func(ctx context.Context, addr, export string) error {
		mu.Lock()
		defer mu.Unlock()
		probed = append(probed, addr+export)
		if strings.HasPrefix(addr, "10.0.0.6") {
			return errors.New("connection refused")
		}
		return nil
	}}
	dir := t.TempDir()
	for i, mp := range []struct {
		dev, typ string
		opts     []string
	}{
		{"10.0.0.5:/0123456789abcdef", "nfs", []string{"vers=3", "port=20490"}},
		{"10.0.0.5:/1123456789abcdef", "nfs", []string{"vers=3", "port=20490"}},
		{"10.0.0.6:/2123456789abcdef", "nfs", []string{"vers=3"}},
		// An NFSv4.x mount shows as type nfs4.
		{"10.0.0.8:/3123456789abcdef", "nfs4", []string{"vers=4.1", "port=20490"}},
		{"10.0.0.7:/export/home", "nfs", nil}, // not a Hangar volume
		{"/dev/sda1", "ext4", nil},
	} {
		p := filepath.Join(dir, string(rune('a'+i)))
		os.Mkdir(p, 0o750)
		if err := m.Mount(mp.dev, p, mp.typ, mp.opts); err != nil {
			t.Fatal(err)
		}
	}
	c := serveNode(t, n)
	r, err := c.NodeGetStorageHealth(ctx, &csi.NodeGetStorageHealthRequest{})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(probed)
	if len(probed) != 3 || !strings.HasPrefix(probed[0], "10.0.0.5:20490/") || probed[1] != "10.0.0.6:2049/2123456789abcdef" || probed[2] != "10.0.0.8:20490/3123456789abcdef" {
		t.Errorf("probed %v, want one export of 10.0.0.5:20490, 10.0.0.6:2049 and 10.0.0.8:20490", probed)
	}
	h := r.GetBackendHealth()
	if len(h) != 1 || h[0].Status != csi.StorageHealthErrorType_STORAGE_UNREACHABLE || !strings.Contains(h[0].Message, "10.0.0.6:2049") {
		t.Fatalf("storage health %v", h)
	}
}

func TestNodeCapabilities(t *testing.T) {
	n, _, _ := newTestNode(nil)
	r, err := serveNode(t, n).NodeGetCapabilities(context.Background(), &csi.NodeGetCapabilitiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var have []csi.NodeServiceCapability_RPC_Type
	for _, c := range r.GetCapabilities() {
		have = append(have, c.GetRpc().GetType())
	}
	for _, want := range []csi.NodeServiceCapability_RPC_Type{
		csi.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME, csi.NodeServiceCapability_RPC_EXPAND_VOLUME,
		csi.NodeServiceCapability_RPC_GET_STORAGE_HEALTH, csi.NodeServiceCapability_RPC_GET_VOLUME_HEALTH,
	} {
		if !slices.Contains(have, want) {
			t.Errorf("node does not advertise %v", want)
		}
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
	client := serveNode(t, n)
	dir := t.TempDir()
	const mode = csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER
	longID := stageReq(filepath.Join(dir, "a"), mode)
	longID.VolumeId = "s1:" + strings.Repeat("0", 200)
	bigCtx := stageReq(filepath.Join(dir, "b"), mode)
	bigCtx.VolumeContext["junk"] = strings.Repeat("x", 5000)
	for field, req := range map[string]*csi.NodeStageVolumeRequest{"volume_id": longID, "volume_context": bigCtx} {
		_, err := client.NodeStageVolume(context.Background(), req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), field) {
			t.Errorf("oversized %s at stage: %v, want InvalidArgument naming it", field, err)
		}
	}
	pubID := publishReq(filepath.Join(dir, "a"), filepath.Join(dir, "t"), mode)
	pubID.VolumeId = longID.VolumeId
	if _, err := client.NodePublishVolume(context.Background(), pubID); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "volume_id") {
		t.Errorf("oversized volume_id at publish: %v, want InvalidArgument naming it", err)
	}
	if mps, _ := m.List(); len(mps) != 0 {
		t.Fatalf("mounted %v", mps)
	}
}
