package server

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/hangar-csi/hangar/pkg/csicommon"
	"github.com/hangar-csi/hangar/pkg/nfs/nfsclient"
)

func start(t *testing.T, dir, nfsAddr string) (*Server, csi.ControllerClient, func()) {
	t.Helper()
	srv, err := New(Options{DataDir: dir, Name: "t", NFSListen: nfsAddr, APIListen: "127.0.0.1:0", Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve() }()
	conn, err := grpc.NewClient("passthrough:///"+srv.APIAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	stop := func() {
		conn.Close()
		srv.Close()
		if err := <-errc; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}
	return srv, csi.NewControllerClient(conn), stop
}

func createVolume(t *testing.T, c csi.ControllerClient, name string) *csi.Volume {
	t.Helper()
	r, err := c.CreateVolume(context.Background(), &csi.CreateVolumeRequest{
		Name:          name,
		CapacityRange: &csi.CapacityRange{RequiredBytes: 1 << 20},
		VolumeCapabilities: []*csi.VolumeCapability{{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r.Volume
}

// TestExportsFollowVolumes checks over real NFS that volumes are exported
// when created, unexported when deleted, and exported again after a
// restart with their file handles still valid.
func TestExportsFollowVolumes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "data")
	srv, c, stop := start(t, dir, "127.0.0.1:0")
	nfsAddr := srv.NFSListenAddr()
	keep := createVolume(t, c, "keep")
	gone := createVolume(t, c, "gone")
	if keep.VolumeContext[csicommon.ContextAddress] != nfsAddr || keep.VolumeContext[csicommon.ContextExport] != "/"+keep.VolumeId {
		t.Fatalf("volume context %v (NFS at %s)", keep.VolumeContext, nfsAddr)
	}
	for _, v := range []*csi.Volume{keep, gone} {
		if err := ProbeNFS(ctx, nfsAddr, v.VolumeContext[csicommon.ContextExport]); err != nil {
			t.Fatalf("probe %s: %v", v.VolumeId, err)
		}
	}
	nc, err := nfsclient.Dial(ctx, nfsAddr)
	if err != nil {
		t.Fatal(err)
	}
	root, err := nc.Mount(ctx, "/"+keep.VolumeId)
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	if _, err := c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: gone.VolumeId}); err != nil {
		t.Fatal(err)
	}
	if err := ProbeNFS(ctx, nfsAddr, "/"+gone.VolumeId); err == nil {
		t.Fatal("deleted volume still exported")
	}
	stop()

	// Restart on the same port: the surviving volume is exported again
	// and the root handle obtained before the restart still works.
	_, c, stop = start(t, dir, nfsAddr)
	defer stop()
	if err := ProbeNFS(ctx, nfsAddr, "/"+keep.VolumeId); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if err := ProbeNFS(ctx, nfsAddr, "/"+gone.VolumeId); err == nil {
		t.Fatal("deleted volume exported after restart")
	}
	nc, err = nfsclient.Dial(ctx, nfsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.GetAttr(ctx, root); err != nil {
		t.Fatalf("pre-restart handle: %v", err)
	}
	lr, err := c.ListVolumes(ctx, &csi.ListVolumesRequest{})
	if err != nil || len(lr.Entries) != 1 || lr.Entries[0].Volume.VolumeId != keep.VolumeId {
		t.Fatalf("list after restart: %v %v", lr, err)
	}
}

// TestRestartRemovesTempFiles: a crash in the middle of saving a usage
// file leaves its temp file in DATA/usage; the next start removes it, and
// keeps the real files.
func TestRestartRemovesTempFiles(t *testing.T) {
	dir := t.TempDir()
	_, c, stop := start(t, dir, "127.0.0.1:0")
	v := createVolume(t, c, "keep")
	stop()
	usage := filepath.Join(dir, "usage")
	leftover := filepath.Join(usage, "."+v.VolumeId+".json.tmp-123456")
	if err := os.WriteFile(leftover, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, stop = start(t, dir, "127.0.0.1:0")
	defer stop()
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Fatalf("temp file left by a crash is still there after restart: %v", err)
	}
	if _, err := os.Stat(filepath.Join(usage, v.VolumeId+".json")); err != nil {
		t.Fatalf("usage file: %v", err)
	}
}
