package vfstest

import (
	"net/netip"
	"strings"
	"syscall"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

// hold takes a vfs.Holder hold of h, or skips a case the FS cannot run.
func (x *tester) hold(h vfs.Handle) vfs.Hold {
	x.Helper()
	hr, ok := x.FS.(vfs.Holder)
	if !ok {
		x.Skip("the FS is no vfs.Holder")
	}
	hd, err := hr.Hold(ctx, h)
	x.noErr("hold", err)
	x.Cleanup(hd.Release)
	return hd
}

// stale fails unless h is a stale handle now.
func (x *tester) stale(what string, h vfs.Handle) {
	x.Helper()
	_, err := x.FS.GetAttr(ctx, h)
	x.wantErr(what, err, vfs.ErrStale)
	_, _, _, err = x.FS.Read(ctx, Cred, h, 0, make([]byte, 8))
	x.wantErr(what+" (read)", err, vfs.ErrStale)
}

var holdCases = []testCase{
	{"removed file stays usable until released", func(x *tester) {
		f := x.create(x.Root, "f")
		x.write(f, 0, "kept data")
		hd := x.hold(f)
		if hd.Unlinked() {
			x.Fatal("Unlinked() of a file with a name")
		}
		_, err := x.FS.Remove(ctx, Cred, x.Root, "f")
		x.noErr("remove", err)
		x.gone(x.Root, "f")
		if !hd.Unlinked() {
			x.Fatal("Unlinked() false after the last name went")
		}
		if a := x.attr(f); a.Nlink != 0 || a.Size != 9 {
			x.Fatalf("held removed file: nlink %d size %d, want 0 and 9", a.Nlink, a.Size)
		}
		if got := x.read(f); got != "kept data" {
			x.Fatalf("read %q", got)
		}
		x.write(f, 9, " and more")
		if got := x.read(f); got != "kept data and more" {
			x.Fatalf("read after write %q", got)
		}
		x.setAttr(f, vfs.SetAttr{Size: ptr(uint64(4))})
		_, err = x.FS.Commit(ctx, Cred, f, 0, 0)
		x.noErr("commit", err)
		_, _, err = x.FS.Link(ctx, Cred, f, x.Root, "back")
		x.wantErr("link of a removed file", err, syscall.ENOENT)
		hd.Release()
		hd.Release() // twice is nothing
		x.stale("removed file after release", f)
		if hd.Unlinked() {
			x.Fatal("Unlinked() after release")
		}
	}},
	{"renamed over", func(x *tester) {
		f := x.create(x.Root, "f")
		x.write(f, 0, "old")
		g := x.create(x.Root, "g")
		x.write(g, 0, "new")
		x.hold(f)
		_, _, err := x.FS.Rename(ctx, Cred, x.Root, "g", x.Root, "f")
		x.noErr("rename over", err)
		if got := x.read(f); got != "old" {
			x.Fatalf("held renamed-over file reads %q", got)
		}
		if h, _ := x.lookup(x.Root, "f"); string(h) != string(g) {
			x.Fatal("the name does not name the new file")
		}
	}},
	{"every hold counts", func(x *tester) {
		f := x.create(x.Root, "f")
		x.write(f, 0, "data")
		a, b := x.hold(f), x.hold(f)
		_, err := x.FS.Remove(ctx, Cred, x.Root, "f")
		x.noErr("remove", err)
		a.Release()
		if got := x.read(f); got != "data" {
			x.Fatalf("read with one hold left %q", got)
		}
		b.Release()
		x.stale("after the last release", f)
	}},
	{"released before removal", func(x *tester) {
		f := x.create(x.Root, "f")
		x.hold(f).Release()
		_, err := x.FS.Remove(ctx, Cred, x.Root, "f")
		x.noErr("remove", err)
		x.stale("removed unheld file", f)
	}},
	{"only the held file", func(x *tester) {
		f := x.create(x.Root, "f")
		g := x.create(x.Root, "g")
		x.hold(f)
		_, err := x.FS.Remove(ctx, Cred, x.Root, "g")
		x.noErr("remove", err)
		x.stale("removed unheld file beside a held one", g)
	}},
	{"regular files only", func(x *tester) {
		hr, ok := x.FS.(vfs.Holder)
		if !ok {
			x.Skip("the FS is no vfs.Holder")
		}
		_, err := hr.Hold(ctx, x.Root)
		x.wantErr("hold of a directory", err, syscall.EINVAL)
		p := x.mknod(x.Root, "p", vfs.TypeFIFO)
		_, err = hr.Hold(ctx, p)
		x.wantErr("hold of a FIFO", err, syscall.EINVAL)
		f := x.create(x.Root, "f")
		_, err = x.FS.Remove(ctx, Cred, x.Root, "f")
		x.noErr("remove", err)
		_, err = hr.Hold(ctx, f)
		x.wantErr("hold of a removed file", err, vfs.ErrStale)
	}},
	{"quota counts a held file until released", func(x *tester) {
		x.limit(256<<10, 2)
		f := x.create(x.Root, "f")
		x.write(f, 0, strings.Repeat("a", 128<<10))
		hd := x.hold(f)
		_, err := x.FS.Remove(ctx, Cred, x.Root, "f")
		x.noErr("remove", err)
		g := x.create(x.Root, "g")
		_, _, _, err = x.FS.Create(ctx, Cred, x.Root, "h", vfs.CreateGuarded, vfs.SetAttr{}, vfs.Verifier{})
		x.wantErr("create past the inode limit while a removed file is held", err, syscall.EDQUOT)
		_, _, _, err = x.FS.Write(ctx, Cred, g, 0, make([]byte, 192<<10), vfs.FileSync)
		x.wantErr("write past the byte limit while a removed file is held", err, syscall.EDQUOT)
		hd.Release()
		x.create(x.Root, "h")
		x.write(g, 0, strings.Repeat("b", 192<<10))
	}},
	{"policy", func(x *tester) {
		f := x.create(x.Root, "f")
		hr, ok := x.FS.(vfs.Holder)
		if !ok {
			x.Skip("the FS is no vfs.Holder")
		}
		if x.Policy == nil {
			x.Skip("the FS has no policies")
		}
		x.Policy(x.T, func(netip.Addr) vfs.Grant { return vfs.GrantNone })
		_, err := hr.Hold(ctx, f)
		x.wantErr("hold without a grant", err, vfs.ErrNotAllowed)
	}},
}
