package mount

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/go-logr/logr"

	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
	"github.com/hangar-csi/hangar/pkg/vfs"
	"github.com/hangar-csi/hangar/pkg/vfs/vfstest"
)

func serve(t *testing.T, h *Handler, proc uint32, ip string, args []byte) (rpc.AcceptStat, *xdr.Reader) {
	t.Helper()
	w := xdr.NewWriter(nil)
	c := &rpc.Call{Prog: Program, Vers: Version, Proc: proc, Args: args,
		Remote: &net.TCPAddr{IP: net.ParseIP(ip), Port: 700}}
	// The client's address travels in the context, as pkg/nfs attaches it.
	st := h.Serve(vfs.WithClient(context.Background(), c.Remote), c, w)
	return st, xdr.NewReader(w.Bytes())
}

func path(p string) []byte {
	w := xdr.NewWriter(nil)
	w.String(p)
	return w.Bytes()
}

func dump(t *testing.T, h *Handler) []string { t.Helper(); return dumpFrom(t, h, "10.0.0.1") }

func dumpFrom(t *testing.T, h *Handler, ip string) []string {
	t.Helper()
	st, r := serve(t, h, ProcDump, ip, nil)
	if st != rpc.Success {
		t.Fatalf("DUMP: %d", st)
	}
	var out []string
	for r.Bool() {
		out = append(out, r.String(MaxName)+":"+r.String(MaxPath))
	}
	if r.Err() != nil || len(r.Remaining()) != 0 {
		t.Fatalf("DUMP reply: %v", r.Err())
	}
	return out
}

func TestMount(t *testing.T) {
	fs := vfstest.NewMemFS()
	root := fs.AddExport("/a")
	fs.AddExport("/b")
	h := NewHandler(fs, logr.Discard())

	st, r := serve(t, h, ProcMnt, "10.0.0.1", path("/a"))
	if st != rpc.Success || r.Uint32() != StatusOK {
		t.Fatal("MNT /a failed")
	}
	if got := r.Opaque(64); !bytes.Equal(got, root) {
		t.Errorf("MNT handle %x want %x", got, root)
	}
	if n := r.Uint32(); n != 2 || r.Uint32() != rpc.AuthSys || r.Uint32() != rpc.AuthNone || len(r.Remaining()) != 0 {
		t.Errorf("auth flavors wrong (%d)", n)
	}
	serve(t, h, ProcMnt, "10.0.0.2", path("/b"))
	serve(t, h, ProcMnt, "10.0.0.1", path("/b"))
	serve(t, h, ProcMnt, "10.0.0.1", path("/b")) // recorded once
	if got, want := strings.Join(dump(t, h), " "), "10.0.0.1:/a 10.0.0.1:/b 10.0.0.2:/b"; got != want {
		t.Errorf("DUMP %q want %q", got, want)
	}
	serve(t, h, ProcUmnt, "10.0.0.1", path("/a"))
	if got, want := strings.Join(dump(t, h), " "), "10.0.0.1:/b 10.0.0.2:/b"; got != want {
		t.Errorf("after UMNT: %q want %q", got, want)
	}
	serve(t, h, ProcUmntAll, "10.0.0.1", nil)
	if got, want := strings.Join(dump(t, h), " "), "10.0.0.2:/b"; got != want {
		t.Errorf("after UMNTALL: %q want %q", got, want)
	}

	for _, c := range []struct {
		path string
		want uint32
	}{
		{"/nope", StatusNoEnt},
		{strings.Repeat("x", 1025), StatusNameTooLong},
	} {
		st, r := serve(t, h, ProcMnt, "10.0.0.1", path(c.path))
		if s := r.Uint32(); st != rpc.Success || s != c.want || len(r.Remaining()) != 0 {
			t.Errorf("MNT %.20q: %d/%d want %d", c.path, st, s, c.want)
		}
	}
	exports := func(ip string) string {
		st, r := serve(t, h, ProcExport, ip, nil)
		var exports []string
		for r.Bool() {
			exports = append(exports, r.String(MaxPath))
			if r.Bool() {
				t.Error("export has groups")
			}
		}
		if st != rpc.Success || len(r.Remaining()) != 0 {
			t.Errorf("EXPORT from %s: %d, %d bytes left", ip, st, len(r.Remaining()))
		}
		return strings.Join(exports, " ")
	}
	if got := exports("10.0.0.1"); got != "/a /b" {
		t.Errorf("EXPORT %q", got)
	}

	// /b only for 10.0.0.2: invisible to 10.0.0.1.
	only2 := netip.MustParseAddr("10.0.0.2")
	if err := fs.SetPolicy("/b", func(c netip.Addr) vfs.Grant {
		if c == only2 {
			return vfs.GrantReadWrite
		}
		return vfs.GrantNone
	}); err != nil {
		t.Fatal(err)
	}
	serve(t, h, ProcUmntAll, "10.0.0.2", nil)
	if _, r := serve(t, h, ProcMnt, "10.0.0.1", path("/b")); r.Uint32() != StatusAcces {
		t.Error("MNT not allowed: want ACCES")
	}
	if len(dump(t, h)) != 0 {
		t.Error("refused mount recorded")
	}
	if _, r := serve(t, h, ProcMnt, "10.0.0.2", path("/b")); r.Uint32() != StatusOK {
		t.Error("MNT from the allowed client refused")
	}
	// DUMP names volumes too: only the ones the caller may mount.
	if got := dumpFrom(t, h, "10.0.0.1"); len(got) != 0 {
		t.Errorf("DUMP to a client /b is not for: %q", got)
	}
	if got := strings.Join(dumpFrom(t, h, "10.0.0.2"), " "); got != "10.0.0.2:/b" {
		t.Errorf("DUMP to /b's client: %q", got)
	}
	if got := exports("10.0.0.1"); got != "/a" {
		t.Errorf("EXPORT to a client /b is not for: %q", got)
	}
	if got := exports("10.0.0.2"); got != "/a /b" {
		t.Errorf("EXPORT to /b's client: %q", got)
	}

	for _, proc := range []uint32{ProcMnt, ProcUmnt} {
		if st, _ := serve(t, h, proc, "10.0.0.1", []byte{0, 0, 0, 9, 'x'}); st != rpc.GarbageArgs {
			t.Errorf("proc %d truncated: %d", proc, st)
		}
	}
	if st, _ := serve(t, h, 6, "10.0.0.1", nil); st != rpc.ProcUnavail {
		t.Errorf("proc 6: %d", st)
	}
}

func TestMountListBounded(t *testing.T) {
	fs := vfstest.NewMemFS()
	fs.AddExport("/a")
	h := NewHandler(fs, logr.Discard())
	for i := range MaxMounts + 10 {
		ip := net.IPv4(10, byte(i>>16), byte(i>>8), byte(i)).String()
		if _, r := serve(t, h, ProcMnt, ip, path("/a")); r.Uint32() != StatusOK {
			t.Fatal("MNT failed")
		}
	}
	if n := len(dump(t, h)); n != MaxMounts {
		t.Errorf("mount list has %d entries, want %d", n, MaxMounts)
	}
}
