package nfs4

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
	"github.com/hangar-csi/hangar/pkg/vfs"
)

// TestOpenUncheckedExisting checks the answers of an UNCHECKED OPEN, which
// tries a create before it looks the name up, where the create fails and
// the name exists: a file the caller may open opens in a directory it may
// not write; one it may not open, or a new name there, is refused; a
// directory is not opened.
func TestOpenUncheckedExisting(t *testing.T) {
	s := startWire(t)
	locked := filepath.Join(s.dir, "locked")
	if err := os.Mkdir(locked, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{"open": 0o666, "secret": 0o600} {
		if err := os.WriteFile(filepath.Join(locked, name), []byte("x"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(locked, name), mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(s.dir, "sub"), 0o777); err != nil {
		t.Fatal(err)
	}
	c := s.dial(t)
	c.cred = rpc.Cred{Flavor: rpc.AuthSys, UID: 1000, GID: 1000}
	c.connect("unchecked")
	root := c.volRoot()
	dir := c.fh(putfh(root), lookup("locked"))
	for _, tc := range []struct {
		dir  []byte
		name string
		want uint32
	}{
		{dir, "open", OK},
		{dir, "secret", ErrAccess},
		{dir, "new", ErrAccess},
		{root, "sub", ErrIsDir},
	} {
		_, _, st := c.open(tc.dir, openArgs{access: ShareAccessBoth, owner: "o", create: true, how: createUnchecked, name: tc.name})
		if st != tc.want {
			t.Errorf("UNCHECKED OPEN of %s: status %d, want %d", tc.name, st, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(locked, "new")); !os.IsNotExist(err) {
		t.Errorf("refused create left a file: %v", err)
	}
}

// TestAccessAfterOpen checks that an ACCESS following an OPEN of an
// existing file, which reuses the access bits the OPEN found, and a
// GETATTR following an ACCESS, which reuses its attributes, answer as on
// their own: for a caller who may only read, and one who may write too.
func TestAccessAfterOpen(t *testing.T) {
	s := startWire(t)
	for name, mode := range map[string]os.FileMode{"ro": 0o644, "rw": 0o666} {
		p := filepath.Join(s.dir, name)
		if err := os.WriteFile(p, []byte("x"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	c := s.dial(t)
	c.cred = rpc.Cred{Flavor: rpc.AuthSys, UID: 1000, GID: 1000}
	c.connect("access")
	root := c.volRoot()
	const all = vfs.AccessRead | vfs.AccessLookup | vfs.AccessModify | vfs.AccessExtend | vfs.AccessDelete | vfs.AccessExecute
	accessOf := func(p *reply) [2]uint32 {
		r := p.ok(OpAccess)
		return [2]uint32{r.Uint32(), r.Uint32()}
	}
	for _, name := range []string{"ro", "rw"} {
		fh := c.fh(putfh(root), lookup(name))
		p := c.must(putfh(fh), access(all))
		p.ok(OpPutFH)
		alone := accessOf(p)
		p = c.must(putfh(root), openOp(openArgs{access: ShareAccessRead, owner: "o", name: name}), getfh(), access(all), getattr(linuxAttrs))
		p.ok(OpPutFH)
		p.ok(OpOpen)
		sid, _ := openOK(p.r)
		p.ok(OpGetFH).Opaque(MaxFHSize)
		if got := accessOf(p); got != alone {
			t.Errorf("%s: ACCESS after OPEN %v, on its own %v", name, got, alone)
		}
		c.must(putfh(fh), closeOp(sid))

		p = c.must(putfh(fh), access(all), getattr(linuxAttrs))
		p.ok(OpPutFH)
		p.ok(OpAccess)
		p.r.Uint32()
		p.r.Uint32()
		r := p.ok(OpGetAttr)
		decodeBitmap(r)
		got := append([]byte(nil), r.Opaque(maxAttrVals)...)
		p = c.must(putfh(fh), getattr(linuxAttrs))
		p.ok(OpPutFH)
		r = p.ok(OpGetAttr)
		decodeBitmap(r)
		if want := r.Opaque(maxAttrVals); !bytes.Equal(got, want) {
			t.Errorf("%s: GETATTR after ACCESS %x, on its own %x", name, got, want)
		}
	}
}

// TestChangeInfoAtomic checks that OPEN (create), CREATE and REMOVE report
// their directory's change_info as atomic, bracketing exactly their own
// change: before is the change attribute a GETATTR saw just before, after
// the one a GETATTR sees just after. A Linux client told otherwise drops
// its cached lookups and access of the directory after each of them.
func TestChangeInfoAtomic(t *testing.T) {
	s := startWire(t)
	c := s.dial(t)
	c.connect("cinfo")
	dir := c.volRoot()
	change := func() uint64 {
		p := c.must(putfh(dir), getattr(bits(AttrChange)))
		p.ok(OpPutFH)
		r := p.ok(OpGetAttr)
		decodeBitmap(r)
		return xdr.NewReader(r.Opaque(maxAttrVals)).Uint64()
	}
	check := func(what string, r *xdr.Reader, before uint64) {
		t.Helper()
		atomic, b, a := r.Bool(), r.Uint64(), r.Uint64()
		if now := change(); !atomic || b != before || a != now || a == b {
			t.Errorf("%s: change_info atomic=%v %d -> %d; GETATTR before %d, after %d", what, atomic, b, a, before, now)
		}
	}
	for _, how := range []uint32{createUnchecked, createGuarded, createExclusive1} {
		name := fmt.Sprintf("f%d", how)
		c0 := change()
		p := c.must(putfh(dir), openOp(openArgs{access: ShareAccessBoth, owner: "o", create: true, how: how, verf: [8]byte{7}, name: name}))
		p.ok(OpPutFH)
		r := p.ok(OpOpen)
		sid := decodeStateid(r)
		check(fmt.Sprintf("OPEN create (how %d)", how), r, c0)
		c.must(putfh(dir), lookup(name), closeOp(sid))
	}
	c0 := change()
	p := c.must(putfh(dir), mkdirOp("d"))
	p.ok(OpPutFH)
	check("CREATE", p.ok(OpCreate), c0)
	for _, name := range []string{"f0", "d"} {
		c0 = change()
		p = c.must(putfh(dir), remove(name))
		p.ok(OpPutFH)
		check("REMOVE of "+name, p.ok(OpRemove), c0)
	}
}
