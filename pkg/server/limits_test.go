package server

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hangar-csi/hangar/pkg/nfs/nfsclient"
	"github.com/hangar-csi/hangar/pkg/vfs"
)

// wantInvalid checks that err is InvalidArgument naming field, in a message
// short enough that the oversized input was not echoed back.
func wantInvalid(t *testing.T, what string, err error, field string) {
	t.Helper()
	msg := status.Convert(err).Message()
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(msg, field) || len(msg) > 512 {
		if len(msg) > 512 {
			msg = msg[:512] + "..."
		}
		t.Errorf("%s: %s %q, want InvalidArgument naming %s", what, status.Code(err), msg, field)
	}
}

// TestCSISizeLimits: CSI strings are at most 128 bytes and maps 4 KiB
// (spec "Size Limits"); larger requests are refused naming the field.
func TestCSISizeLimits(t *testing.T) {
	ctx := context.Background()
	_, c, stop := start(t, t.TempDir(), "127.0.0.1:0")
	defer stop()
	create := func(name string, params map[string]string, flags ...string) error {
		cp := mountCapability()
		cp.GetMount().MountFlags = flags
		_, err := c.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: name, Parameters: params, VolumeCapabilities: []*csi.VolumeCapability{cp}})
		return err
	}
	wantInvalid(t, "1 MiB name", create(strings.Repeat("n", 1<<20), nil), "name")
	wantInvalid(t, "129-byte name", create(strings.Repeat("n", 129), nil), "name")
	if err := create(strings.Repeat("n", 128), nil); err != nil {
		t.Errorf("128-byte name: %v", err)
	}
	many := map[string]string{}
	for i := range 5000 {
		many[fmt.Sprintf("key-%d", i)] = "v"
	}
	wantInvalid(t, "parameters over 4 KiB", create("p", many), "parameters")
	wantInvalid(t, "mount flags over 4 KiB", create("f", nil, strings.Repeat("o", 5000)), "mount_flags")
	_, err := c.ControllerGetVolume(ctx, &csi.ControllerGetVolumeRequest{VolumeId: strings.Repeat("0", 1<<20)})
	wantInvalid(t, "1 MiB volume ID", err, "volume_id")
	_, err = c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: strings.Repeat("0", 200)})
	wantInvalid(t, "200-byte volume ID", err, "volume_id")
}

// TestTinyVolumeRoundedUp: a 1-byte request gets a volume of the minimum
// size that can hold files; a limit below that minimum is OutOfRange.
func TestTinyVolumeRoundedUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, c, stop := start(t, t.TempDir(), "127.0.0.1:0")
	defer stop()
	v := createWith(t, c, "tiny", 1, nil)
	if v.CapacityBytes != 1<<20 {
		t.Fatalf("1-byte request made a volume of %d bytes, want 1 MiB", v.CapacityBytes)
	}
	nc, err := nfsclient.Dial(ctx, srv.NFSListenAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetCred(authSys(1000, 1000))
	root, err := nc.Mount(ctx, "/"+v.VolumeId)
	if err != nil {
		t.Fatal(err)
	}
	h, err := nc.Create(ctx, root, "f", 0o644, vfs.CreateGuarded)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := nc.Write(ctx, h, 0, make([]byte, 64<<10), vfs.FileSync); err != nil {
		t.Fatalf("64 KiB write to a 1-byte request's volume: %v", err)
	}
	_, err = c.CreateVolume(ctx, &csi.CreateVolumeRequest{
		Name: "tiny-limited", CapacityRange: &csi.CapacityRange{RequiredBytes: 1, LimitBytes: 1000},
		VolumeCapabilities: []*csi.VolumeCapability{mountCapability()},
	})
	if status.Code(err) != codes.OutOfRange {
		t.Fatalf("limit below the minimum volume size: %v, want OutOfRange", err)
	}
}
