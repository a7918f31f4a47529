package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/hangar-csi/hangar/pkg/endpoint"
	"github.com/hangar-csi/hangar/pkg/nfs/nfsclient"
	"github.com/hangar-csi/hangar/pkg/server"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1Gi": 1 << 30, "512Mi": 512 << 20, "10G": 10e9, "4096": 4096, "2Ti": 2 << 40} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "Gi", "-1Gi", "0", "1.5Gi", "1Pi", "99999999999Ti"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
}

func TestInterspersedFlags(t *testing.T) {
	c := findCommand("volume")
	fs, _ := newFlagSet(*c, io.Discard)
	c.flags(fs)
	pos, err := parseInterspersed(fs, []string{"create", "NAME", "--size", "2Gi", "--csi-endpoint", "unix:///x"})
	if err != nil || strings.Join(pos, " ") != "create NAME" || fs.Lookup("size").Value.String() != "2Gi" {
		t.Fatalf("pos %q err %v size %s", pos, err, fs.Lookup("size").Value)
	}
}

func TestHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"help"}, &out, &errb); code != 0 {
		t.Fatalf("help exit %d", code)
	}
	for _, want := range []string{"server", "controller", "node", "run", "volume", "nfs", "version", "--csi-endpoint", "--servers", "--node-id", "--nfs-listen", "--api-listen", "--nfs-write-timeout", "--nfs-max-conns-per-addr", "--mounter", "--registration-dir", "--health-listen"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
	if strings.Contains(out.String(), "or record") {
		t.Error("help offers the test-only mounter")
	}
	if code := run([]string{"bogus"}, &out, &errb); code != 2 {
		t.Errorf("unknown command exit %d", code)
	}
	if code := run([]string{"server"}, io.Discard, &errb); code != 2 || !strings.Contains(errb.String(), "--data is required") {
		t.Errorf("server without --data: exit %d, %s", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"nfs", "--root", t.TempDir(), "--nfs-write-timeout", "0s"}, io.Discard, &errb); code != 2 || !strings.Contains(errb.String(), "--nfs-write-timeout must be positive") {
		t.Errorf("nfs --nfs-write-timeout 0s: exit %d, %s", code, errb.String())
	}
	for _, bad := range []string{"1s", "2h", "-90s"} {
		for _, role := range []string{"nfs", "server", "run"} {
			errb.Reset()
			dirFlag := "--data"
			if role == "nfs" {
				dirFlag = "--root"
			}
			d, _ := time.ParseDuration(bad)
			if code := run([]string{role, dirFlag, t.TempDir(), "--lease-time", bad}, io.Discard, &errb); code != 2 || !strings.Contains(errb.String(), "--lease-time "+d.String()+": must be between 10s and 1h0m0s") {
				t.Errorf("%s --lease-time %s: exit %d, %s", role, bad, code, errb.String())
			}
		}
	}
}

// startCommand runs a subcommand's action until the test ends.
func startCommand(t *testing.T, name string, args ...string) {
	t.Helper()
	c := findCommand(name)
	fs, _ := newFlagSet(*c, io.Discard)
	act := c.flags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- act(ctx, logr.Discard(), fs.Args()) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: %v", name, err)
		}
	})
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitFor polls cond a bounded number of times while a server starts.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 100 {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never happened", what)
}

func TestNFSCommand(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	os.Mkdir(root, 0o755)
	os.WriteFile(filepath.Join(root, "hello"), []byte("hi"), 0o644)
	addr := freePort(t)
	startCommand(t, "nfs", "--root", root, "--listen", addr)
	ctx := context.Background()
	waitFor(t, "NFS server answering", func() bool { return server.ProbeNFS(ctx, addr, "/") == nil })
	c, err := nfsclient.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h, err := c.Mount(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	if _, attr, err := c.Lookup(ctx, h, "hello"); err != nil || attr.Size != 2 {
		t.Fatalf("lookup: %+v %v", attr, err)
	}
}

func TestRunAndVolumeCommands(t *testing.T) {
	dir := t.TempDir()
	ep := "unix://" + filepath.Join(dir, "csi.sock")
	startCommand(t, "run", "--data", filepath.Join(dir, "data"), "--csi-endpoint", ep, "--nfs-listen", "127.0.0.1:0", "--mounter", "record")
	waitFor(t, "CSI socket", func() bool {
		_, err := os.Stat(filepath.Join(dir, "csi.sock"))
		return err == nil
	})
	var out, errb bytes.Buffer
	for _, args := range [][]string{
		{"volume", "create", "v1", "--size", "1Mi", "--csi-endpoint", ep},
		{"volume", "list", "--csi-endpoint", ep},
	} {
		if code := run(args, &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errb.String())
		}
	}
	if code := run([]string{"volume", "get", "local:0123456789abcdef", "--csi-endpoint", ep}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "NotFound") {
		t.Errorf("get missing: exit %d: %s", code, errb.String())
	}
	// Snapshot, list, restore, clone, delete the snapshot; the effects
	// checked over CSI (the command prints to the process's stdout).
	target, _ := endpoint.DialTarget(ep)
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cc := csi.NewControllerClient(conn)
	ctx := context.Background()
	vols, err := cc.ListVolumes(ctx, &csi.ListVolumesRequest{})
	if err != nil || len(vols.Entries) != 1 {
		t.Fatalf("volumes: %v %v", vols, err)
	}
	vid := vols.Entries[0].Volume.VolumeId
	snapshots := func() []*csi.ListSnapshotsResponse_Entry {
		l, err := cc.ListSnapshots(ctx, &csi.ListSnapshotsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return l.Entries
	}
	if code := run([]string{"volume", "snapshot", vid, "s1", "--csi-endpoint", ep}, &out, &errb); code != 0 {
		t.Fatalf("snapshot: exit %d: %s", code, errb.String())
	}
	snaps := snapshots()
	if len(snaps) != 1 || snaps[0].Snapshot.SourceVolumeId != vid {
		t.Fatalf("snapshots after snapshot: %v", snaps)
	}
	sid := snaps[0].Snapshot.SnapshotId
	for _, args := range [][]string{
		{"volume", "snapshots", vid, "--csi-endpoint", ep},
		{"volume", "restore", sid, "r1", "--csi-endpoint", ep},
		{"volume", "clone", vid, "c1", "--size", "2Mi", "--csi-endpoint", ep},
		{"volume", "delete-snapshot", sid, "--csi-endpoint", ep},
	} {
		if code := run(args, &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errb.String())
		}
	}
	vols, err = cc.ListVolumes(ctx, &csi.ListVolumesRequest{})
	if err != nil || len(vols.Entries) != 3 {
		t.Fatalf("volumes after restore and clone: %v %v", vols, err)
	}
	for _, e := range vols.Entries[1:] {
		if e.Volume.ContentSource == nil && e.Volume.VolumeId != vid {
			t.Errorf("volume %s has no content source", e.Volume.VolumeId)
		}
	}
	if snaps := snapshots(); len(snaps) != 0 {
		t.Errorf("snapshots after delete-snapshot: %v", snaps)
	}
	if code := run([]string{"volume", "snapshot", vid, "--csi-endpoint", ep}, &out, &errb); code == 0 {
		t.Error("snapshot without a name accepted")
	}
}
