package vfstest

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

// Clients of the policy cases: the policy installed by x.policy grants
// nothing to denied, reads to reader, and everything to any other client
// (the suite's own ctx, which has no client, sets things up).
var (
	deniedIP = netip.MustParseAddr("192.0.2.1")
	readerIP = netip.MustParseAddr("192.0.2.2")
	denied   = vfs.WithClient(ctx, &net.TCPAddr{IP: deniedIP.AsSlice(), Port: 700})
	reader   = vfs.WithClient(ctx, &net.TCPAddr{IP: readerIP.AsSlice(), Port: 701})
)

func testPolicy(c netip.Addr) vfs.Grant {
	switch c {
	case deniedIP:
		return vfs.GrantNone
	case readerIP:
		return vfs.GrantReadOnly
	}
	return vfs.GrantReadWrite
}

// policy applies Env.Policy, or skips a case the FS cannot run.
func (x *tester) policy(p vfs.Policy) {
	x.Helper()
	if x.Env.Policy == nil {
		x.Skip("the FS has no policies (Env.Policy is nil)")
	}
	x.Env.Policy(x.T, p)
}

// tree makes the objects the policy cases work on: file f (with data),
// directory d, empty directory e, symlink l, and a stale handle.
type tree struct{ f, d, e, l, gone vfs.Handle }

func (x *tester) tree() tree {
	x.Helper()
	t := tree{f: x.create(x.Root, "f"), d: x.mkdir(x.Root, "d"), e: x.mkdir(x.Root, "e"), l: x.symlink(x.Root, "l", "f")}
	x.write(t.f, 0, "data")
	t.gone = x.create(x.Root, "gone")
	_, err := x.FS.Remove(ctx, Cred, x.Root, "gone")
	x.noErr("remove gone", err)
	return t
}

// ops runs every operation that takes a handle, as the client of c, and
// reports each one's error by name.
func (x *tester) ops(c context.Context, t tree) map[string]error {
	fs, root := x.FS, x.Root
	buf := make([]byte, 64)
	errs := map[string]error{}
	run := func(name string, err error) { errs[name] = err }
	_, err := fs.GetAttr(c, t.f)
	run("GetAttr", err)
	_, err = fs.GetAttr(c, t.gone)
	run("GetAttr of a stale handle", err)
	_, err = fs.SetAttr(c, Cred, t.f, vfs.SetAttr{Mode: ptr[uint32](0o600)}, nil)
	run("SetAttr", err)
	_, err = fs.SetAttr(c, Cred, t.f, vfs.SetAttr{Size: ptr[uint64](0)}, nil)
	run("SetAttr size", err)
	_, _, _, err = fs.Lookup(c, Cred, root, "f")
	run("Lookup", err)
	_, _, err = fs.Access(c, Cred, t.f, vfs.AccessRead)
	run("Access", err)
	_, _, err = fs.Readlink(c, Cred, t.l)
	run("Readlink", err)
	_, _, _, err = fs.Read(c, Cred, t.f, 0, buf)
	run("Read", err)
	if fr, ok := fs.(vfs.FileReader); ok {
		fd, _, _, _, err := fr.ReadFile(c, Cred, t.f, 0, 4)
		if fd >= 0 {
			syscall.Close(fd)
		}
		// ErrNotSupp declines (a wrapper of an FS without files): the
		// caller reads with Read, checked above.
		if !errors.Is(err, vfs.ErrNotSupp) {
			run("ReadFile", err)
		}
	}
	_, _, _, err = fs.Write(c, Cred, t.f, 0, []byte("evil"), vfs.FileSync)
	run("Write", err)
	_, _, _, err = fs.Create(c, Cred, root, "new", vfs.CreateUnchecked, vfs.SetAttr{}, vfs.Verifier{})
	run("Create", err)
	_, _, _, err = fs.Create(c, Cred, root, "f", vfs.CreateUnchecked, vfs.SetAttr{Size: ptr[uint64](0)}, vfs.Verifier{})
	run("Create truncating an existing file", err)
	_, _, _, err = fs.Mkdir(c, Cred, root, "newdir", vfs.SetAttr{})
	run("Mkdir", err)
	_, _, _, err = fs.Symlink(c, Cred, root, "newlink", "f", vfs.SetAttr{})
	run("Symlink", err)
	_, _, _, err = fs.Mknod(c, Cred, root, "newfifo", vfs.TypeFIFO, vfs.SetAttr{}, 0, 0)
	run("Mknod", err)
	_, err = fs.Remove(c, Cred, root, "f")
	run("Remove", err)
	_, err = fs.Rmdir(c, Cred, root, "e")
	run("Rmdir", err)
	_, _, err = fs.Rename(c, Cred, root, "f", t.d, "moved")
	run("Rename", err)
	_, _, err = fs.Link(c, Cred, t.f, t.d, "hard")
	run("Link", err)
	_, _, _, err = fs.ReadDir(c, Cred, root, 0, vfs.Verifier{}, true, func(vfs.DirEntry) bool { return true })
	run("ReadDir", err)
	_, _, err = fs.FSStat(c, t.f)
	run("FSStat", err)
	_, err = fs.Commit(c, Cred, t.f, 0, 0)
	run("Commit", err)
	return errs
}

// unchanged fails unless t is as x.tree left it.
func (x *tester) unchanged(t tree) {
	x.Helper()
	if got := sorted(names(x.list(x.Root, false, 100))); !slices.Equal(got, []string{"d", "e", "f", "l"}) {
		x.Fatalf("root lists %q after refused changes", got)
	}
	if got := names(x.list(t.d, false, 100)); len(got) != 0 {
		x.Fatalf("d lists %q after refused changes", got)
	}
	if got := x.read(t.f); got != "data" {
		x.Fatalf("f holds %q after refused changes", got)
	}
	if a := x.attr(t.f); a.Mode&0o777 == 0o600 || a.Nlink != 1 {
		x.Fatalf("f's attributes changed by refused changes: %+v", a)
	}
}

// mutating are the operations that change the export.
var mutating = []string{"SetAttr", "SetAttr size", "Write", "Create", "Create truncating an existing file",
	"Mkdir", "Symlink", "Mknod", "Remove", "Rmdir", "Rename", "Link"}

func (x *tester) exported(c context.Context) bool {
	return slices.ContainsFunc(x.FS.Exports(c), func(e vfs.Export) bool { return e.Path == x.Path })
}

var policyCases = []testCase{
	{"a client without a grant can do nothing", func(x *tester) {
		t := x.tree()
		x.policy(testPolicy)
		for op, err := range x.ops(denied, t) {
			if !errors.Is(err, vfs.ErrNotAllowed) {
				x.Errorf("%s by a client without a grant: error %v, want ErrNotAllowed", op, err)
			}
		}
		x.unchanged(t)
		if _, err := x.FS.Mount(denied, x.Path); !errors.Is(err, vfs.ErrNotAllowed) {
			x.Errorf("Mount by a client without a grant: error %v, want ErrNotAllowed", err)
		}
		if x.exported(denied) {
			x.Errorf("Exports to a client without a grant lists %s", x.Path)
		}
	}},
	{"a reader changes nothing", func(x *tester) {
		t := x.tree()
		x.policy(testPolicy)
		errs := x.ops(reader, t)
		for op, err := range errs {
			switch {
			case slices.Contains(mutating, op):
				if !errors.Is(err, syscall.EROFS) {
					x.Errorf("%s by a reader: error %v, want EROFS", op, err)
				}
			case strings.Contains(op, "stale"):
				x.wantErr(op+" by a reader", err, vfs.ErrStale)
			case err != nil:
				x.Errorf("%s by a reader: %v", op, err)
			}
		}
		x.unchanged(t)
		h, err := x.FS.Mount(reader, x.Path)
		if err != nil || !bytes.Equal(h, x.Root) {
			x.Errorf("Mount by a reader: %x, %v", h, err)
		}
		if !x.exported(reader) {
			x.Errorf("Exports to a reader omits %s", x.Path)
		}
		all := uint32(vfs.AccessRead | vfs.AccessLookup | vfs.AccessModify | vfs.AccessExtend | vfs.AccessDelete | vfs.AccessExecute)
		for _, h := range []vfs.Handle{x.Root, t.f} {
			got, _, err := x.FS.Access(reader, Cred, h, all)
			x.noErr("access by a reader", err)
			if got&(vfs.AccessModify|vfs.AccessExtend|vfs.AccessDelete) != 0 || got&vfs.AccessRead == 0 {
				x.Errorf("Access by a reader grants %#x", got)
			}
		}
	}},
	{"a policy change applies to the next call", func(x *tester) {
		f := x.create(x.Root, "f")
		write := func(c context.Context) error {
			_, _, _, err := x.FS.Write(c, Cred, f, 0, []byte("x"), vfs.FileSync)
			return err
		}
		x.policy(func(netip.Addr) vfs.Grant { return vfs.GrantReadWrite })
		x.noErr("write with a read-write grant", write(reader))
		x.policy(func(netip.Addr) vfs.Grant { return vfs.GrantNone })
		x.wantErr("write after the grant was revoked", write(reader), vfs.ErrNotAllowed)
		_, err := x.FS.GetAttr(reader, f)
		x.wantErr("getattr after the grant was revoked", err, vfs.ErrNotAllowed)
		x.policy(func(netip.Addr) vfs.Grant { return vfs.GrantReadOnly })
		x.wantErr("write with a read-only grant", write(reader), syscall.EROFS)
		x.policy(nil)
		x.noErr("write with no policy", write(reader))
		x.noErr("write with no policy and no client", write(ctx))
	}},
	{"no client address is no exception", func(x *tester) {
		f := x.create(x.Root, "f")
		x.policy(func(c netip.Addr) vfs.Grant {
			if c.IsValid() {
				return vfs.GrantReadWrite
			}
			return vfs.GrantNone
		})
		_, err := x.FS.GetAttr(ctx, f)
		x.wantErr("getattr with no client in ctx", err, vfs.ErrNotAllowed)
		_, err = x.FS.GetAttr(reader, f)
		x.noErr("getattr by a client", err)
	}},
}
