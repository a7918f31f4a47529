package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/hangar-csi/hangar/pkg/csicommon"
	"github.com/hangar-csi/hangar/pkg/driver"
	"github.com/hangar-csi/hangar/pkg/nfs/mount"
	"github.com/hangar-csi/hangar/pkg/nfs/nfs3"
	"github.com/hangar-csi/hangar/pkg/nfs/nfsclient"
	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/vfs"
)

// These tests stand up a storage server with access control and talk to
// it over the wire from several loopback addresses (all of 127.0.0.0/8 is
// local), as pods on different nodes would.

// dialFrom connects an NFS client to addr from the local IP from.
func dialFrom(t *testing.T, addr, from string) *nfsclient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, from, err)
	}
	c := nfsclient.New(rpc.NewClient(nc))
	t.Cleanup(func() { c.Close() })
	return c
}

// wantStatus fails unless err is NFS status want ("" names the call).
func wantStatus(t *testing.T, what string, err error, want uint32) {
	t.Helper()
	if !nfsclient.IsStatus(err, want) {
		t.Errorf("%s: %v, want status %d", what, err, want)
	}
}

func publish(t *testing.T, ctrl *driver.Controller, vid, node string, c *csi.VolumeCapability, ro bool) {
	t.Helper()
	if _, err := ctrl.ControllerPublishVolume(context.Background(), &csi.ControllerPublishVolumeRequest{VolumeId: vid, NodeId: node, VolumeCapability: c, Readonly: ro}); err != nil {
		t.Fatalf("publish %s to %s: %v", vid, node, err)
	}
}

func unpublish(t *testing.T, ctrl *driver.Controller, vid, node string) {
	t.Helper()
	if _, err := ctrl.ControllerUnpublishVolume(context.Background(), &csi.ControllerUnpublishVolumeRequest{VolumeId: vid, NodeId: node}); err != nil {
		t.Fatalf("unpublish %s from %s: %v", vid, node, err)
	}
}

func capOf(m csi.VolumeCapability_AccessMode_Mode) *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: m},
	}
}

func exportsOf(t *testing.T, c *nfsclient.Client) []string {
	t.Helper()
	ex, err := c.Exports(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ex {
		out = append(out, e.Dir)
	}
	return out
}

// TestHandleUseNeedsPublication: a root handle obtained on a published
// node is refused (NFS3ERR_ACCES) from an address that was never
// published, on the publisher's own connection once it is unpublished,
// and still after a server restart.
func TestHandleUseNeedsPublication(t *testing.T) {
	ctx := context.Background()
	pki := newPKI(t)
	dir := t.TempDir()
	srv, ctrl, stop := startSecure(t, pki, dir)
	defer func() { stop() }()
	vol, err := ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "pvc-1", VolumeCapabilities: []*csi.VolumeCapability{rwo}})
	if err != nil {
		t.Fatal(err)
	}
	vid, export := vol.Volume.VolumeId, vol.Volume.VolumeContext[csicommon.ContextExport]
	const nodeA = "node-a@127.0.0.1"
	publish(t, ctrl, vid, nodeA, rwo, false)

	a := dialFrom(t, srv.NFSListenAddr(), "127.0.0.1")
	root, err := a.Mount(ctx, export)
	if err != nil {
		t.Fatal(err)
	}
	f, err := a.Create(ctx, root, "f", 0o644, vfs.CreateGuarded)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := a.Write(ctx, f, 0, []byte("data"), vfs.FileSync); err != nil {
		t.Fatal(err)
	}

	// refused checks that c can use neither handle.
	refused := func(who string, c *nfsclient.Client) {
		t.Helper()
		_, err := c.GetAttr(ctx, root)
		wantStatus(t, who+": GETATTR of the root", err, nfs3.StatusAcces)
		_, err = c.Create(ctx, root, "evil", 0o644, vfs.CreateUnchecked)
		wantStatus(t, who+": CREATE in the root", err, nfs3.StatusAcces)
		_, _, _, err = c.Write(ctx, f, 0, []byte("evil"), vfs.FileSync)
		wantStatus(t, who+": WRITE", err, nfs3.StatusAcces)
		_, _, err = c.Read(ctx, f, 0, make([]byte, 8))
		wantStatus(t, who+": READ", err, nfs3.StatusAcces)
		_, _, err = c.Lookup(ctx, root, "f")
		wantStatus(t, who+": LOOKUP", err, nfs3.StatusAcces)
	}
	// works checks that c can use both.
	works := func(who string, c *nfsclient.Client) {
		t.Helper()
		if _, err := c.GetAttr(ctx, root); err != nil {
			t.Errorf("%s: GETATTR of the root: %v", who, err)
		}
		if _, _, _, err := c.Write(ctx, f, 0, []byte("data"), vfs.FileSync); err != nil {
			t.Errorf("%s: WRITE: %v", who, err)
		}
	}

	b := dialFrom(t, srv.NFSListenAddr(), "127.0.0.2") // never published
	refused("unpublished address", b)
	if st := mountStatusFrom(t, b, export); st != mount.StatusAcces {
		t.Errorf("MOUNT from an unpublished address: %d, want MNT3ERR_ACCES", st)
	}
	if got := exportsOf(t, b); len(got) != 0 {
		t.Errorf("EXPORT to an unpublished address lists %v", got)
	}
	works("published node", a)
	if got := exportsOf(t, a); len(got) != 1 || got[0] != export {
		t.Errorf("EXPORT to the published node lists %v, want [%s]", got, export)
	}

	// The rule survives a restart; handles stay valid for the publisher.
	stop()
	srv, ctrl, stop = startSecure(t, pki, dir)
	a = dialFrom(t, srv.NFSListenAddr(), "127.0.0.1")
	b = dialFrom(t, srv.NFSListenAddr(), "127.0.0.2")
	refused("unpublished address after restart", b)
	works("published node after restart", a)

	// Revocation applies to the next call on the open connection.
	unpublish(t, ctrl, vid, nodeA)
	refused("unpublished node, same connection", a)
	stop()
	srv, ctrl, stop = startSecure(t, pki, dir)
	refused("unpublished node after restart", dialFrom(t, srv.NFSListenAddr(), "127.0.0.1"))

	// And publishing again admits the node with the handles it had.
	publish(t, ctrl, vid, nodeA, rwo, false)
	works("republished node", dialFrom(t, srv.NFSListenAddr(), "127.0.0.1"))
}

func mountStatusFrom(t *testing.T, c *nfsclient.Client, export string) uint32 {
	t.Helper()
	_, err := c.Mount(context.Background(), export)
	var se *nfsclient.StatusError
	switch {
	case err == nil:
		return mount.StatusOK
	case errors.As(err, &se):
		return se.Status
	}
	t.Fatalf("MOUNT %s: %v", export, err)
	return 0
}

// TestReadOnlyPublishIsEnforced: a node published read-only (readonly=true,
// or a reader-only access mode) gets NFS3ERR_ROFS for every change, also
// after a restart, while it reads as before.
func TestReadOnlyPublishIsEnforced(t *testing.T) {
	ctx := context.Background()
	pki := newPKI(t)
	dir := t.TempDir()
	srv, ctrl, stop := startSecure(t, pki, dir)
	defer func() { stop() }()
	rwx := capOf(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER)
	rox := capOf(csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY)
	vol, err := ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "pvc-ro", VolumeCapabilities: []*csi.VolumeCapability{rwx}})
	if err != nil {
		t.Fatal(err)
	}
	vid, export := vol.Volume.VolumeId, vol.Volume.VolumeContext[csicommon.ContextExport]
	publish(t, ctrl, vid, "writer@127.0.0.3", rwx, false)
	publish(t, ctrl, vid, "ro-flag@127.0.0.1", rwx, true)
	publish(t, ctrl, vid, "ro-mode@127.0.0.2", rox, false)

	w := dialFrom(t, srv.NFSListenAddr(), "127.0.0.3")
	root, err := w.Mount(ctx, export)
	if err != nil {
		t.Fatal(err)
	}
	f, err := w.Create(ctx, root, "f", 0o666, vfs.CreateGuarded)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := w.Write(ctx, f, 0, []byte("data"), vfs.FileSync); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Mkdir(ctx, root, "d", 0o777); err != nil {
		t.Fatal(err)
	}

	readOnly := func(who string, c *nfsclient.Client) {
		t.Helper()
		if h, err := c.Mount(ctx, export); err != nil {
			t.Errorf("%s: MOUNT: %v", who, err)
		} else if _, err := c.GetAttr(ctx, h); err != nil {
			t.Errorf("%s: GETATTR: %v", who, err)
		}
		buf := make([]byte, 16)
		if n, _, err := c.Read(ctx, f, 0, buf); err != nil || string(buf[:n]) != "data" {
			t.Errorf("%s: READ: %q, %v", who, buf[:n], err)
		}
		if _, _, err := c.Lookup(ctx, root, "d"); err != nil {
			t.Errorf("%s: LOOKUP: %v", who, err)
		}
		if err := c.ReadDirPlus(ctx, root, func(vfs.DirEntry) {}); err != nil {
			t.Errorf("%s: READDIRPLUS: %v", who, err)
		}
		if got, err := c.Access(ctx, f, vfs.AccessRead|vfs.AccessModify|vfs.AccessExtend); err != nil || got != vfs.AccessRead {
			t.Errorf("%s: ACCESS grants %#x (%v), want READ only", who, got, err)
		}
		const rofs = nfs3.StatusROFS
		_, err := c.Create(ctx, root, "new", 0o644, vfs.CreateUnchecked)
		wantStatus(t, who+": CREATE", err, rofs)
		_, _, _, err = c.Write(ctx, f, 0, []byte("evil"), vfs.FileSync)
		wantStatus(t, who+": WRITE", err, rofs)
		_, err = c.SetAttr(ctx, f, vfs.SetAttr{Size: new(uint64)}, nil)
		wantStatus(t, who+": SETATTR", err, rofs)
		_, err = c.Mkdir(ctx, root, "newdir", 0o755)
		wantStatus(t, who+": MKDIR", err, rofs)
		_, err = c.Symlink(ctx, root, "newlink", "f")
		wantStatus(t, who+": SYMLINK", err, rofs)
		_, err = c.Mknod(ctx, root, "newfifo", vfs.TypeFIFO, 0o644, 0, 0)
		wantStatus(t, who+": MKNOD", err, rofs)
		wantStatus(t, who+": RENAME", c.Rename(ctx, root, "f", root, "g"), rofs)
		wantStatus(t, who+": LINK", c.Link(ctx, f, root, "hard"), rofs)
		wantStatus(t, who+": REMOVE", c.Remove(ctx, root, "f"), rofs)
		wantStatus(t, who+": RMDIR", c.Rmdir(ctx, root, "d"), rofs)
	}
	ro1 := dialFrom(t, srv.NFSListenAddr(), "127.0.0.1")
	ro2 := dialFrom(t, srv.NFSListenAddr(), "127.0.0.2")
	readOnly("readonly=true", ro1)
	readOnly("MULTI_NODE_READER_ONLY", ro2)

	stop()
	srv, ctrl, stop = startSecure(t, pki, dir)
	readOnly("readonly=true after restart", dialFrom(t, srv.NFSListenAddr(), "127.0.0.1"))
	readOnly("MULTI_NODE_READER_ONLY after restart", dialFrom(t, srv.NFSListenAddr(), "127.0.0.2"))

	// Nothing changed; the writer still writes.
	w = dialFrom(t, srv.NFSListenAddr(), "127.0.0.3")
	var names []string
	if err := w.ReadDir(ctx, root, func(e vfs.DirEntry) {
		if e.Name != "." && e.Name != ".." {
			names = append(names, e.Name)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(names) != "[d f]" && fmt.Sprint(names) != "[f d]" {
		t.Errorf("root lists %v after read-only clients tried changes", names)
	}
	if a, err := w.GetAttr(ctx, f); err != nil || a.Size != 4 || a.Nlink != 1 {
		t.Errorf("f after read-only clients tried changes: %+v, %v", a, err)
	}
	if _, _, _, err := w.Write(ctx, f, 0, []byte("DATA"), vfs.FileSync); err != nil {
		t.Errorf("writer: %v", err)
	}

	// Republished read-write, the node writes from its next call on.
	c := dialFrom(t, srv.NFSListenAddr(), "127.0.0.1")
	_, _, _, err = c.Write(ctx, f, 0, []byte("data"), vfs.FileSync)
	wantStatus(t, "WRITE before republishing read-write", err, nfs3.StatusROFS)
	unpublish(t, ctrl, vid, "ro-flag@127.0.0.1")
	publish(t, ctrl, vid, "ro-flag@127.0.0.1", rwx, false)
	if _, _, _, err := c.Write(ctx, f, 0, []byte("data"), vfs.FileSync); err != nil {
		t.Errorf("WRITE after republishing read-write: %v", err)
	}
}

// TestNewVolumesNeverVisible: a client on an unpublished address that
// polls EXPORT and MOUNTs whatever it sees while volumes are being created
// never gets a root handle (the export used to be live before its
// allow-list was installed).
func TestNewVolumesNeverVisible(t *testing.T) {
	ctx := context.Background()
	pki := newPKI(t)
	srv, ctrl, stop := startSecure(t, pki, t.TempDir())
	defer stop()
	spy := dialFrom(t, srv.NFSListenAddr(), "127.0.0.2")

	var done atomic.Bool
	var listed atomic.Int64
	var mounted sync.Map // export paths mounted
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tries := map[string]int{}
		for !done.Load() {
			ex, err := spy.Exports(ctx)
			if err != nil {
				t.Errorf("EXPORT: %v", err)
				return
			}
			listed.Add(int64(len(ex)))
			// MOUNT what is new: a fresh export is where a window would be.
			for _, e := range ex {
				if tries[e.Dir]++; tries[e.Dir] > 3 {
					continue
				}
				if _, err := spy.Mount(ctx, e.Dir); err == nil {
					mounted.Store(e.Dir, true)
				}
			}
		}
	}()
	const volumes = 300
	for i := range volumes {
		if _, err := ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: fmt.Sprintf("pvc-%d", i), VolumeCapabilities: []*csi.VolumeCapability{rwo},
			CapacityRange: &csi.CapacityRange{RequiredBytes: 1 << 20}}); err != nil {
			done.Store(true)
			wg.Wait()
			t.Fatal(err)
		}
	}
	done.Store(true)
	wg.Wait()
	n := 0
	mounted.Range(func(any, any) bool { n++; return true })
	if n > 0 {
		t.Errorf("an unpublished client mounted %d of %d new volumes", n, volumes)
	}
	if n := listed.Load(); n > 0 {
		t.Errorf("EXPORT replies to an unpublished client listed %d volumes in all", n)
	}
}
