package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hangar-csi/hangar/pkg/nfs/nfsclient"
	"github.com/hangar-csi/hangar/pkg/vfs"
)

// TestMain lets the test binary stand in for the hangar binary, so the
// crash test can SIGKILL a real server process without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("HANGAR_TEST_AS_HANGAR") == "1" {
		tuneScheduler(os.Args[1:])
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// startNFS starts "hangar nfs" as a child process, with env added to this
// process's environment, and waits until it answers.
func startNFS(t *testing.T, root, addr string, env ...string) (*exec.Cmd, *nfsclient.Client) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "nfs", "--root", root, "--listen", addr)
	cmd.Env = append(append(os.Environ(), "HANGAR_TEST_AS_HANGAR=1"), env...)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := nfsclient.Dial(ctx, addr)
		if err == nil {
			err = c.Null(ctx)
		}
		cancel()
		if err == nil {
			t.Cleanup(func() { c.Close() })
			return cmd, c
		}
		if c != nil {
			c.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("server at %s did not answer: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestKillRestart is the restart promise at the process level: after
// SIGKILL and a restart on the same data, handles taken before (including
// one whose parent was renamed) still work, data written UNSTABLE and
// COMMITted reads back intact, and the write verifier has changed so
// clients know to resend anything they had not committed.
func TestKillRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	root, addr := t.TempDir(), freeAddr(t)

	cmd, c := startNFS(t, root, addr)
	rootH, err := c.Mount(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := c.Mkdir(ctx, rootH, "d", 0o755)
	if err != nil {
		t.Fatal(err)
	}
	f, err := c.Create(ctx, dir, "f", 0o644, vfs.CreateGuarded)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 3<<20+123)
	rand.Read(data)
	var verf vfs.Verifier
	for off := 0; off < len(data); off += 1 << 20 {
		end := min(off+1<<20, len(data))
		n, committed, v, err := c.Write(ctx, f, uint64(off), data[off:end], vfs.Unstable)
		if err != nil || n != end-off {
			t.Fatalf("write at %d: n=%d err=%v", off, n, err)
		}
		if committed != vfs.Unstable {
			t.Fatalf("UNSTABLE write replied %v: the server must say what it did", committed)
		}
		verf = v
	}
	cv, err := c.Commit(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	if cv != verf {
		t.Fatalf("COMMIT verifier %x differs from WRITE verifier %x within one boot", cv, verf)
	}
	if err := c.Rename(ctx, rootH, "d", rootH, "e"); err != nil {
		t.Fatal(err)
	}

	if err := cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	_, c = startNFS(t, root, addr)

	a, err := c.GetAttr(ctx, f)
	if err != nil {
		t.Fatalf("GETATTR with a handle from before the restart: %v", err)
	}
	if a.Size != uint64(len(data)) {
		t.Fatalf("size after restart %d, want %d", a.Size, len(data))
	}
	got := make([]byte, len(data))
	for off := 0; off < len(got); {
		n, eof, err := c.Read(ctx, f, uint64(off), got[off:min(off+1<<20, len(got))])
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		off += n
		if eof || n == 0 {
			got = got[:off]
			break
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatal("committed data differs after SIGKILL and restart")
	}
	if b, err := os.ReadFile(filepath.Join(root, "e", "f")); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("file on disk differs after restart (err %v)", err)
	}
	e, _, err := c.Lookup(ctx, rootH, "e")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e, dir) {
		t.Fatal("a renamed directory's handle changed across the restart")
	}
	_, _, v2, err := c.Write(ctx, f, 0, data[:1], vfs.Unstable)
	if err != nil {
		t.Fatal(err)
	}
	if v2 == verf {
		t.Fatal("write verifier unchanged across a restart: clients would not resend uncommitted data")
	}
	forged := bytes.Clone(f)
	forged[len(forged)/2] ^= 1
	if _, err := c.GetAttr(ctx, forged); !nfsclient.IsStatus(err, 10001) && !nfsclient.IsStatus(err, 70) {
		t.Fatalf("forged handle: got %v, want BADHANDLE or STALE", err)
	}
}
