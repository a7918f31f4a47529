package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/hangar-csi/hangar/pkg/csicommon"
	"github.com/hangar-csi/hangar/pkg/nfs/nfsclient"
	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/vfs"
)

// TestVolumeListShowsNames: after "hangar volume create demo", list and get
// show the name and the bytes the volume uses, and get finds it by name.
func TestVolumeListShowsNames(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	sock := filepath.Join(dir, "csi.sock")
	ep := "unix://" + sock
	startCommand(t, "run", "--data", filepath.Join(dir, "data"), "--csi-endpoint", ep, "--nfs-listen", "127.0.0.1:0", "--mounter", "record")
	hangar := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(append(args, "--csi-endpoint", ep), &out, &errb); code != 0 {
			t.Fatalf("hangar %v: exit %d: %s", args, code, errb.String())
		}
		return out.String()
	}
	var created string
	waitFor(t, "CSI socket", func() bool {
		var out, errb bytes.Buffer
		if run([]string{"volume", "create", "demo", "--size", "16Mi", "--csi-endpoint", ep}, &out, &errb) != 0 {
			return false
		}
		created = out.String()
		return true
	})
	id := regexp.MustCompile(`created volume (\S+)`).FindStringSubmatch(created)
	if id == nil {
		t.Fatalf("create printed %q", created)
	}
	hangar("volume", "create", "other", "--size", "1Mi")

	// Put 1 MiB into demo over NFS.
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	v, err := csi.NewControllerClient(conn).ControllerGetVolume(ctx, &csi.ControllerGetVolumeRequest{VolumeId: id[1]})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nfsclient.Dial(ctx, v.Volume.VolumeContext[csicommon.ContextAddress])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetCred(rpc.Cred{Flavor: rpc.AuthSys, Machine: "test", UID: 1000, GID: 1000})
	root, err := nc.Mount(ctx, v.Volume.VolumeContext[csicommon.ContextExport])
	if err != nil {
		t.Fatal(err)
	}
	h, err := nc.Create(ctx, root, "f", 0o644, vfs.CreateGuarded)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := nc.Write(ctx, h, 0, bytes.Repeat([]byte{1}, 1<<20), vfs.FileSync); err != nil {
		t.Fatal(err)
	}

	list := hangar("volume", "list")
	var row string
	for _, l := range strings.Split(list, "\n") {
		if strings.Contains(l, id[1]) {
			row = l
		}
	}
	if f := strings.Fields(row); len(f) < 4 || f[0] != "demo" || f[1] != id[1] || !strings.HasPrefix(f[2], "1.0MiB") {
		t.Fatalf("list row of demo %q (want NAME ID USED ...):\n%s", row, list)
	}
	for _, byWhat := range []string{id[1], "demo"} {
		get := hangar("volume", "get", byWhat)
		if !strings.Contains(get, "name:      demo\n") || !strings.Contains(get, "id:        "+id[1]+"\n") || !regexp.MustCompile(`used:\s+1\.0MiB`).MatchString(get) {
			t.Errorf("get %s:\n%s", byWhat, get)
		}
	}
}
