package nfsclient_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/hangar-csi/hangar/pkg/nfs"
	"github.com/hangar-csi/hangar/pkg/nfs/nfs3"
	"github.com/hangar-csi/hangar/pkg/nfs/nfs4"
	"github.com/hangar-csi/hangar/pkg/nfs/nfsclient"
	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/vfs"
	"github.com/hangar-csi/hangar/pkg/vfs/vfstest"
)

func start(t *testing.T) (*nfsclient.Client, vfs.Handle) {
	t.Helper()
	fs := vfstest.NewMemFS()
	fs.AddExport("/m")
	srv := nfs.NewServer(fs, rpc.Options{}, nfs4.Options{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	c, err := nfsclient.Dial(context.Background(), l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		srv.Close()
		<-done
	})
	root, err := c.Mount(context.Background(), "/m")
	if err != nil {
		t.Fatal(err)
	}
	return c, root
}

func TestListingsPage(t *testing.T) {
	c, root := start(t)
	ctx := context.Background()
	const n = 3000 // several 64 KiB pages
	for i := range n {
		if _, err := c.Create(ctx, root, fmt.Sprintf("file-%04d-%s", i, strings.Repeat("x", i%40)), 0o644, vfs.CreateGuarded); err != nil {
			t.Fatal(err)
		}
	}
	for _, plus := range []bool{false, true} {
		seen := map[string]bool{}
		fn := func(e vfs.DirEntry) {
			if seen[e.Name] {
				t.Errorf("plus=%v: %s twice", plus, e.Name)
			}
			seen[e.Name] = true
			if plus && (e.Attr == nil || len(e.Handle) == 0) {
				t.Errorf("%s: no attrs/handle", e.Name)
			}
		}
		var err error
		if plus {
			err = c.ReadDirPlus(ctx, root, fn)
		} else {
			err = c.ReadDir(ctx, root, fn)
		}
		if err != nil || len(seen) != n {
			t.Fatalf("plus=%v: %d entries, %v", plus, len(seen), err)
		}
	}
	p, err := c.ReadDirPage(ctx, root, 0, vfs.Verifier{}, 4096)
	if err != nil || p.EOF || len(p.Entries) == 0 || p.DirAttr == nil {
		t.Fatalf("first page: %d entries eof=%v %v", len(p.Entries), p.EOF, err)
	}
}

func TestErrorsAndReads(t *testing.T) {
	c, root := start(t)
	ctx := context.Background()
	f, err := c.Create(ctx, root, "f", 0o644, vfs.CreateGuarded)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := c.Write(ctx, f, 0, []byte("0123456789"), vfs.FileSync); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	n, eof, err := c.Read(ctx, f, 3, buf)
	if err != nil || n != 4 || eof || string(buf) != "3456" {
		t.Errorf("READ: %q %v %v", buf[:n], eof, err)
	}
	n, eof, err = c.Read(ctx, f, 8, buf)
	if err != nil || n != 2 || !eof {
		t.Errorf("tail READ: %d %v %v", n, eof, err)
	}
	_, _, err = c.Lookup(ctx, root, "missing")
	if !nfsclient.IsStatus(err, nfs3.StatusNoEnt) || !strings.Contains(err.Error(), "LOOKUP: NFS3ERR_NOENT") {
		t.Errorf("LOOKUP missing: %v", err)
	}
	if err := c.Remove(ctx, root, "f"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetAttr(ctx, f); !nfsclient.IsStatus(err, nfs3.StatusStale) {
		t.Errorf("GETATTR removed: %v", err)
	}
	c.SetCred(rpc.Cred{Flavor: rpc.AuthNone})
	if _, err := c.GetAttr(ctx, root); err != nil {
		t.Errorf("AUTH_NONE GETATTR: %v", err)
	}
}
