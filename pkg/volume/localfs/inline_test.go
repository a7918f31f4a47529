package localfs

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hangar-csi/hangar/pkg/nfs/nfsclient"
	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/vfs"
)

// A node's NFS client sends every volume's calls over one connection, so a
// call that waits (here a WRITE held by a snapshot's freeze of its volume)
// must not stop the server reading the calls behind it: another volume's
// GETATTR on the same connection is answered while the WRITE waits. (Calls
// that ran on the connection's reader goroutine stalled everything behind
// them until the thaw.)
func TestWireFrozenVolumeDoesNotStallConnection(t *testing.T) {
	// The WRITE waits for the thaw, not for JUKEBOX after holdWait.
	saved := holdWait
	t.Cleanup(func() { holdWait = saved }) // after the server's cleanup
	holdWait = time.Minute
	base := t.TempDir()
	f, err := New(Options{KeyFile: filepath.Join(base, "key")})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"a", "b"} {
		dir := filepath.Join(base, v)
		if err := os.Mkdir(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := f.AddExport("/"+v, dir, "vol-"+v, nil); err != nil {
			t.Fatal(err)
		}
	}
	c, err := nfsclient.Dial(ctx, serveLoopback(t, f, f.Holding(), rpc.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetCred(wireUser)
	rootA, err := c.Mount(ctx, "/a")
	if err != nil {
		t.Fatal(err)
	}
	rootB, err := c.Mount(ctx, "/b")
	if err != nil {
		t.Fatal(err)
	}
	fh := wireCreate(t, c, rootA, "f")

	thaw, err := f.Freeze("/a")
	if err != nil {
		t.Fatal(err)
	}
	thawed := false
	defer func() {
		if !thawed {
			thaw()
		}
	}()
	wrote := make(chan error, 1)
	go func() {
		_, _, _, err := c.Write(ctx, fh, 0, []byte("held by the freeze"), vfs.Unstable)
		wrote <- err
	}()
	// Let the WRITE reach the server and wait there; were it not there
	// yet, the GETATTR below would pass without testing anything.
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-wrote:
		t.Fatalf("WRITE to a frozen volume returned (%v)", err)
	default:
	}
	gctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := c.GetAttr(gctx, rootB); err != nil {
		t.Fatalf("GETATTR of another volume on the same connection while a WRITE waits for a freeze: %v", err)
	}
	thaw()
	thawed = true
	if err := <-wrote; err != nil {
		t.Fatalf("WRITE after the thaw: %v", err)
	}
}
