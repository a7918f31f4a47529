package server

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hangar-csi/hangar/pkg/nfs/nfsclient"
	"github.com/hangar-csi/hangar/pkg/vfs"
)

// After a clean shutdown, startup takes each volume's usage from what the
// server saved instead of scanning every file; after a crash (no record of
// a clean shutdown) it scans. A file put into a volume behind the server's
// back while it is stopped shows which happened.
func TestStartupUsageAfterCleanAndCrash(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "data")
	srv, c, stop := start(t, dir, "127.0.0.1:0")
	v := createWith(t, c, "u", 64<<20, nil)
	nc, err := nfsclient.Dial(ctx, srv.NFSListenAddr())
	if err != nil {
		t.Fatal(err)
	}
	nc.SetCred(authSys(1000, 1000))
	root, err := nc.Mount(ctx, "/"+v.VolumeId)
	if err != nil {
		t.Fatal(err)
	}
	h, err := nc.Create(ctx, root, "f", 0o644, vfs.CreateGuarded)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := nc.Write(ctx, h, 0, make([]byte, 256<<10), vfs.FileSync); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	want, err := srv.vols.Usage(v.VolumeId)
	if err != nil {
		t.Fatal(err)
	}
	stop()

	// Behind the server's back: 1 MiB more, and a clean shutdown on record.
	if err := os.WriteFile(filepath.Join(dir, "volumes", v.VolumeId, "sneaked"), make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, _, stop = start(t, dir, "127.0.0.1:0")
	got, err := srv.vols.Usage(v.VolumeId)
	if err != nil {
		t.Fatal(err)
	}
	if got.Bytes != want.Bytes || got.Inodes != want.Inodes {
		t.Fatalf("after a clean shutdown: usage %+v, want the saved %+v", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "usage", cleanMarker)); err == nil {
		t.Fatal("clean-shutdown record still there while serving: a crash now would be taken for a clean shutdown")
	}
	// A crash: the server stops without recording a clean shutdown.
	fs := srv.fs
	srv.fs, srv.vols = nil, nil
	stop()
	fs.Close()
	srv, _, stop = start(t, dir, "127.0.0.1:0")
	defer stop()
	got, err = srv.vols.Usage(v.VolumeId)
	if err != nil {
		t.Fatal(err)
	}
	if got.Bytes < want.Bytes+1<<20 || got.Inodes != want.Inodes+1 {
		t.Fatalf("after a crash: usage %+v, want a scan's, with the sneaked 1 MiB file (saved: %+v)", got, want)
	}
}
