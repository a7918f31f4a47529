package driver

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hangar-csi/hangar/pkg/csicommon"
)

// badNFSVersions are values of nfsVersion Hangar must refuse, at
// CreateVolume and from a hand-made volume context alike.
var badNFSVersions = []string{"", "4", "4.0", "v4.1", "3,nolock", " 4.1", "4.1,sec=none", "2"}

// TestNFSVersionOptions: the node mounts with the options of the NFS
// version in the volume context, 4.1 when it names none; v3 alone uses
// MOUNT and goes without NLM.
func TestNFSVersionOptions(t *testing.T) {
	ctx := context.Background()
	for vers, want := range map[string][]string{
		"(none)": {"vers=4.1", "proto=tcp", "port=2049", "nodev", "noatime"},
		"3":      {"vers=3", "proto=tcp", "port=2049", "mountport=2049", "mountproto=tcp", "nolock", "nodev", "noatime"},
		"4.1":    {"vers=4.1", "proto=tcp", "port=2049", "nodev", "noatime"},
		"4.2":    {"vers=4.2", "proto=tcp", "port=2049", "nodev", "noatime"},
	} {
		t.Run(vers, func(t *testing.T) {
			n, m, _ := newTestNode(nil)
			c := serveNode(t, n)
			staging := filepath.Join(t.TempDir(), "staging")
			req := stageReq(staging, csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER)
			if vers != "(none)" {
				req.VolumeContext[csicommon.ContextNFSVersion] = vers
			}
			if _, err := c.NodeStageVolume(ctx, req); err != nil {
				t.Fatal(err)
			}
			st := mountsAt(m, staging)
			if len(st) != 1 || st[0].Device != "10.0.0.5:/0123456789abcdef" || !slices.Equal(st[0].Opts, want) {
				t.Fatalf("staging mounts %+v, want one of 10.0.0.5:/0123456789abcdef with %v", st, want)
			}
		})
	}
}

// TestNFSVersionBadContext: a volume context with an NFS version Hangar
// does not mount (a static PV written by hand) is refused at stage and at
// publish with InvalidArgument naming nfsVersion, and nothing is mounted.
func TestNFSVersionBadContext(t *testing.T) {
	ctx := context.Background()
	n, m, probes := newTestNode(nil)
	c := serveNode(t, n)
	dir := t.TempDir()
	staging := filepath.Join(dir, "staging")
	const mode = csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER
	// A good stage first, so publish gets past its staging checks and
	// reaches the version.
	if _, err := c.NodeStageVolume(ctx, stageReq(staging, mode)); err != nil {
		t.Fatal(err)
	}
	for _, bad := range badNFSVersions {
		sreq := stageReq(filepath.Join(dir, "other-staging"), mode)
		sreq.VolumeContext[csicommon.ContextNFSVersion] = bad
		_, err := c.NodeStageVolume(ctx, sreq)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `"nfsVersion"`) {
			t.Errorf("stage with nfsVersion %q: %v, want InvalidArgument naming nfsVersion", bad, err)
		}
		preq := publishReq(staging, filepath.Join(dir, "pod"), mode)
		preq.VolumeContext[csicommon.ContextNFSVersion] = bad
		_, err = c.NodePublishVolume(ctx, preq)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `"nfsVersion"`) {
			t.Errorf("publish with nfsVersion %q: %v, want InvalidArgument naming nfsVersion", bad, err)
		}
	}
	if mps, _ := m.List(); len(mps) != 1 || *probes != 1 {
		t.Errorf("mounts %+v after %d probes: a refused request mounted or probed", mps, *probes)
	}
}

// TestNFSVersionParameter: the StorageClass parameter nfsVersion is
// checked at CreateVolume, kept with the volume and handed to the node in
// the volume context, where it picks the mount options.
func TestNFSVersionParameter(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t, "a", 1000*mib)
	c := newTestController(t, ServerRef{"a", srv.addr})
	for _, bad := range badNFSVersions {
		req := createReq("bad", mib)
		req.Parameters = map[string]string{csicommon.ParamNFSVersion: bad}
		_, err := c.CreateVolume(ctx, req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `"nfsVersion"`) || !strings.Contains(err.Error(), `"4.1"`) {
			t.Errorf("CreateVolume with nfsVersion %q: %v, want InvalidArgument naming nfsVersion and its values", bad, err)
		}
	}
	if l, err := c.ListVolumes(ctx, &csi.ListVolumesRequest{}); err != nil || len(l.GetEntries()) != 0 {
		t.Fatalf("refused creates made volumes: %v %v", l, err)
	}

	n, m, _ := newTestNode(nil)
	node := serveNode(t, n)
	for _, vers := range append([]string{""}, csicommon.NFSVersions...) {
		req := createReq("v"+vers, mib)
		if vers != "" {
			req.Parameters = map[string]string{csicommon.ParamNFSVersion: vers}
		}
		resp, err := c.CreateVolume(ctx, req)
		if err != nil {
			t.Fatalf("CreateVolume with nfsVersion %q: %v", vers, err)
		}
		got, err := c.ControllerGetVolume(ctx, &csi.ControllerGetVolumeRequest{VolumeId: resp.Volume.VolumeId})
		if err != nil {
			t.Fatal(err)
		}
		for _, vctx := range []map[string]string{resp.Volume.VolumeContext, got.Volume.VolumeContext} {
			if have, ok := vctx[csicommon.ContextNFSVersion]; have != vers || ok != (vers != "") {
				t.Errorf("volume with nfsVersion %q: context %v", vers, vctx)
			}
		}
		staging := filepath.Join(t.TempDir(), "staging")
		if _, err := node.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: resp.Volume.VolumeId, StagingTargetPath: staging,
			VolumeCapability: mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER), VolumeContext: resp.Volume.VolumeContext}); err != nil {
			t.Fatal(err)
		}
		want := vers
		if want == "" {
			want = csicommon.DefaultNFSVersion
		}
		if st := mountsAt(m, staging); len(st) != 1 || !slices.Contains(st[0].Opts, "vers="+want) || slices.Contains(st[0].Opts, "nolock") != (want == "3") {
			t.Errorf("volume with nfsVersion %q staged as %+v, want vers=%s (nolock only for v3)", vers, st, want)
		}
	}
}
