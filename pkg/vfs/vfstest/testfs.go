// Package vfstest helps test implementations and users of vfs.FS, as
// testing/fstest does for io/fs: MemFS is an in-memory FS for tests of the
// protocol layer, and TestFS checks that an FS behaves the way that layer
// relies on, so the double and the real storage layer cannot drift apart.
package vfstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

// Env is one fresh, empty export of the FS under test.
type Env struct {
	FS vfs.FS
	// Root is the export's root handle. The root must be writable by Cred.
	Root vfs.Handle
	// Limit lets the export use at most bytes more bytes and inodes more
	// inodes than it uses now (both > 0); past them operations fail with
	// EDQUOT. Nil if the FS has no limits: the quota cases then skip.
	Limit func(t *testing.T, bytes, inodes uint64)
	// Devices reports that Mknod makes block and character devices; when
	// false they must be refused (EPERM or vfs.ErrBadType).
	Devices bool
	// Path is the export's path, for Mount and Exports.
	Path string
	// Policy replaces the export's policy (nil: everyone read-write). Nil
	// if the FS has no policies: the policy cases then skip.
	Policy func(t *testing.T, p vfs.Policy)
}

// Cred is the caller of every operation TestFS makes.
var Cred = vfs.Cred{UID: 1000, GID: 1000}

// TestFS runs the conformance suite; newEnv is called once per subtest.
func TestFS(t *testing.T, newEnv func(t *testing.T) Env) {
	for _, g := range suite {
		t.Run(g.name, func(t *testing.T) {
			for _, c := range g.cases {
				t.Run(c.name, func(t *testing.T) {
					c.fn(&tester{T: t, Env: newEnv(t)})
				})
			}
		})
	}
}

type testCase struct {
	name string
	fn   func(x *tester)
}

var suite = []struct {
	name  string
	cases []testCase
}{
	{"GetAttr", getAttrCases},
	{"SetAttr", setAttrCases},
	{"Lookup", lookupCases},
	{"Access", accessCases},
	{"Readlink", readlinkCases},
	{"Read", readCases},
	{"Write", writeCases},
	{"Create", createCases},
	{"Mkdir", mkdirCases},
	{"Symlink", symlinkCases},
	{"Mknod", mknodCases},
	{"Remove", removeCases},
	{"Rename", renameCases},
	{"Link", linkCases},
	{"ReadDir", readDirCases},
	{"Handles", handleCases},
	{"FSStat", fsStatCases},
	{"Commit", commitCases},
	{"Quota", quotaCases},
	{"Policy", policyCases},
	{"Sparse", sparseCases},
	{"Hold", holdCases},
}

// tester runs one case against one Env.
type tester struct {
	*testing.T
	Env
}

var ctx = context.Background()

func ptr[T any](v T) *T { return &v }

// wantErr fails unless err is want (errors.Is).
func (x *tester) wantErr(what string, err, want error) {
	x.Helper()
	if !errors.Is(err, want) {
		x.Fatalf("%s: error %v, want %v", what, err, want)
	}
}

func (x *tester) noErr(what string, err error) {
	x.Helper()
	if err != nil {
		x.Fatalf("%s: %v", what, err)
	}
}

// wantWcc fails unless both halves of wcc are present.
func (x *tester) wantWcc(what string, w vfs.Wcc) {
	x.Helper()
	if w.Before == nil || w.After == nil {
		x.Fatalf("%s: wcc before %v after %v, want both", what, w.Before, w.After)
	}
}

func (x *tester) create(dir vfs.Handle, name string) vfs.Handle {
	x.Helper()
	h, a, w, err := x.FS.Create(ctx, Cred, dir, name, vfs.CreateGuarded, vfs.SetAttr{}, vfs.Verifier{})
	x.noErr("create "+name, err)
	if len(h) == 0 || a == nil || a.Type != vfs.TypeRegular {
		x.Fatalf("create %s: handle %x attr %+v", name, h, a)
	}
	x.wantWcc("create "+name, w)
	return h
}

func (x *tester) mkdir(dir vfs.Handle, name string) vfs.Handle {
	x.Helper()
	h, a, w, err := x.FS.Mkdir(ctx, Cred, dir, name, vfs.SetAttr{})
	x.noErr("mkdir "+name, err)
	if len(h) == 0 || a == nil || a.Type != vfs.TypeDirectory {
		x.Fatalf("mkdir %s: handle %x attr %+v", name, h, a)
	}
	x.wantWcc("mkdir "+name, w)
	return h
}

func (x *tester) symlink(dir vfs.Handle, name, target string) vfs.Handle {
	x.Helper()
	h, a, w, err := x.FS.Symlink(ctx, Cred, dir, name, target, vfs.SetAttr{})
	x.noErr("symlink "+name, err)
	if len(h) == 0 || a == nil || a.Type != vfs.TypeSymlink {
		x.Fatalf("symlink %s: handle %x attr %+v", name, h, a)
	}
	x.wantWcc("symlink "+name, w)
	return h
}

func (x *tester) mknod(dir vfs.Handle, name string, t vfs.FileType) vfs.Handle {
	x.Helper()
	h, a, w, err := x.FS.Mknod(ctx, Cred, dir, name, t, vfs.SetAttr{}, 0, 0)
	x.noErr("mknod "+name, err)
	if len(h) == 0 || a == nil || a.Type != t {
		x.Fatalf("mknod %s: handle %x attr %+v, want type %d", name, h, a, t)
	}
	x.wantWcc("mknod "+name, w)
	return h
}

func (x *tester) write(h vfs.Handle, off uint64, data string) {
	x.Helper()
	n, _, w, err := x.FS.Write(ctx, Cred, h, off, []byte(data), vfs.FileSync)
	if err != nil || n != len(data) {
		x.Fatalf("write %d bytes at %d: n=%d err=%v", len(data), off, n, err)
	}
	x.wantWcc("write", w)
}

// read reads h whole (up to 1 MiB).
func (x *tester) read(h vfs.Handle) string {
	x.Helper()
	buf := make([]byte, 1<<20)
	n, eof, a, err := x.FS.Read(ctx, Cred, h, 0, buf)
	x.noErr("read", err)
	if !eof || a == nil {
		x.Fatalf("read whole file: eof %v attr %v", eof, a)
	}
	return string(buf[:n])
}

func (x *tester) attr(h vfs.Handle) vfs.Attr {
	x.Helper()
	a, err := x.FS.GetAttr(ctx, h)
	x.noErr("getattr", err)
	return a
}

func (x *tester) lookup(dir vfs.Handle, name string) (vfs.Handle, vfs.Attr) {
	x.Helper()
	h, a, _, err := x.FS.Lookup(ctx, Cred, dir, name)
	x.noErr("lookup "+name, err)
	return h, a
}

func (x *tester) gone(dir vfs.Handle, name string) {
	x.Helper()
	_, _, _, err := x.FS.Lookup(ctx, Cred, dir, name)
	x.wantErr("lookup of removed "+name, err, syscall.ENOENT)
}

func (x *tester) setAttr(h vfs.Handle, sa vfs.SetAttr) vfs.Attr {
	x.Helper()
	w, err := x.FS.SetAttr(ctx, Cred, h, sa, nil)
	x.noErr("setattr", err)
	x.wantWcc("setattr", w)
	return *w.After
}

// list reads dir whole, accepting at most page entries per ReadDir call
// and passing back the cookie and verifier of the last one accepted.
func (x *tester) list(dir vfs.Handle, plus bool, page int) []vfs.DirEntry {
	x.Helper()
	var all []vfs.DirEntry
	var cookie uint64
	var verf vfs.Verifier
	for range 10000 {
		var got []vfs.DirEntry
		v, eof, da, err := x.FS.ReadDir(ctx, Cred, dir, cookie, verf, plus, func(e vfs.DirEntry) bool {
			if len(got) == page {
				return false
			}
			got = append(got, e)
			return true
		})
		x.noErr("readdir", err)
		if da == nil {
			x.Fatal("readdir: no directory attributes")
		}
		all = append(all, got...)
		if eof {
			return all
		}
		if len(got) == 0 {
			x.Fatal("readdir: no entry and no eof")
		}
		cookie, verf = got[len(got)-1].Cookie, v
	}
	x.Fatal("readdir: does not end")
	return nil
}

// names are the entry names but "." and "..", which an FS may list or not.
func names(es []vfs.DirEntry) []string {
	var out []string
	for _, e := range es {
		if e.Name != "." && e.Name != ".." {
			out = append(out, e.Name)
		}
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

var getAttrCases = []testCase{
	{"root", func(x *tester) {
		a := x.attr(x.Root)
		if a.Type != vfs.TypeDirectory || a.Nlink < 2 || a.FileID == 0 {
			x.Fatalf("root attributes %+v", a)
		}
	}},
	{"new file", func(x *tester) {
		f := x.create(x.Root, "f")
		a := x.attr(f)
		if a.Type != vfs.TypeRegular || a.Size != 0 || a.Nlink != 1 || a.Mode != 0o644 {
			x.Fatalf("new file attributes %+v", a)
		}
		if a.UID != Cred.UID || a.GID != Cred.GID {
			x.Errorf("new file owned by %d:%d, want the caller %d:%d", a.UID, a.GID, Cred.UID, Cred.GID)
		}
		if r := x.attr(x.Root); a.FSID != r.FSID || a.FileID == r.FileID {
			x.Errorf("file fsid/fileid %d/%d, root %d/%d", a.FSID, a.FileID, r.FSID, r.FileID)
		}
	}},
	{"size after write", func(x *tester) {
		f := x.create(x.Root, "f")
		x.write(f, 0, "hello")
		if a := x.attr(f); a.Size != 5 {
			x.Fatalf("size %d, want 5", a.Size)
		}
	}},
}

var setAttrCases = []testCase{
	{"guard mismatch is ErrNotSync", func(x *tester) {
		f := x.create(x.Root, "f")
		a := x.attr(f)
		stale := a.Ctime.Add(-time.Second)
		w, err := x.FS.SetAttr(ctx, Cred, f, vfs.SetAttr{Mode: ptr(uint32(0o600))}, &stale)
		x.wantErr("setattr with a wrong guard", err, vfs.ErrNotSync)
		x.wantWcc("setattr with a wrong guard", w)
		if got := x.attr(f).Mode; got != a.Mode {
			x.Fatalf("mode changed to %o despite the guard", got)
		}
	}},
	{"guard match applies", func(x *tester) {
		f := x.create(x.Root, "f")
		guard := x.attr(f).Ctime
		w, err := x.FS.SetAttr(ctx, Cred, f, vfs.SetAttr{Mode: ptr(uint32(0o600))}, &guard)
		x.noErr("setattr with the right guard", err)
		x.wantWcc("setattr", w)
		if w.After.Mode != 0o600 || x.attr(f).Mode != 0o600 {
			x.Fatalf("mode after %o, want 600", w.After.Mode)
		}
	}},
	{"size truncates and extends with zeros", func(x *tester) {
		f := x.create(x.Root, "f")
		x.write(f, 0, "hello world")
		if a := x.setAttr(f, vfs.SetAttr{Size: ptr(uint64(5))}); a.Size != 5 {
			x.Fatalf("size %d after truncating to 5", a.Size)
		}
		if a := x.setAttr(f, vfs.SetAttr{Size: ptr(uint64(8))}); a.Size != 8 {
			x.Fatalf("size %d after extending to 8", a.Size)
		}
		if got := x.read(f); got != "hello\x00\x00\x00" {
			x.Fatalf("data %q", got)
		}
	}},
	{"size of a directory is EISDIR", func(x *tester) {
		d := x.mkdir(x.Root, "d")
		w, err := x.FS.SetAttr(ctx, Cred, d, vfs.SetAttr{Size: ptr(uint64(0))}, nil)
		x.wantErr("truncate a directory", err, syscall.EISDIR)
		x.wantWcc("truncate a directory", w)
	}},
	{"size of a symlink is EINVAL", func(x *tester) {
		l := x.symlink(x.Root, "l", "target")
		_, err := x.FS.SetAttr(ctx, Cred, l, vfs.SetAttr{Size: ptr(uint64(0))}, nil)
		x.wantErr("truncate a symlink", err, syscall.EINVAL)
	}},
	{"size of a FIFO is EINVAL", func(x *tester) {
		p := x.mknod(x.Root, "p", vfs.TypeFIFO)
		_, err := x.FS.SetAttr(ctx, Cred, p, vfs.SetAttr{Size: ptr(uint64(0))}, nil)
		x.wantErr("truncate a FIFO", err, syscall.EINVAL)
	}},
	{"mode", func(x *tester) {
		f := x.create(x.Root, "f")
		if a := x.setAttr(f, vfs.SetAttr{Mode: ptr(uint32(0o4751))}); a.Mode != 0o4751 {
			x.Fatalf("mode %o, want 4751", a.Mode)
		}
		if a := x.attr(f); a.Mode != 0o4751 {
			x.Fatalf("getattr mode %o, want 4751", a.Mode)
		}
	}},
	{"mode of a symlink is not supported", func(x *tester) {
		l := x.symlink(x.Root, "l", "target")
		_, err := x.FS.SetAttr(ctx, Cred, l, vfs.SetAttr{Mode: ptr(uint32(0o700))}, nil)
		x.wantErr("chmod a symlink", err, vfs.ErrNotSupp)
	}},
	{"client times", func(x *tester) {
		f := x.create(x.Root, "f")
		at, mt := time.Unix(1000, 5), time.Unix(2000, 7)
		a := x.setAttr(f, vfs.SetAttr{
			Atime: vfs.SetTime{How: vfs.TimeClient, Time: at},
			Mtime: vfs.SetTime{How: vfs.TimeClient, Time: mt}})
		if !a.Atime.Equal(at) || !a.Mtime.Equal(mt) {
			x.Fatalf("times %v %v, want %v %v", a.Atime, a.Mtime, at, mt)
		}
	}},
	{"server times", func(x *tester) {
		f := x.create(x.Root, "f")
		old := time.Unix(1000, 0)
		x.setAttr(f, vfs.SetAttr{
			Atime: vfs.SetTime{How: vfs.TimeClient, Time: old},
			Mtime: vfs.SetTime{How: vfs.TimeClient, Time: old}})
		a := x.setAttr(f, vfs.SetAttr{
			Atime: vfs.SetTime{How: vfs.TimeServer},
			Mtime: vfs.SetTime{How: vfs.TimeServer}})
		if !a.Atime.After(old) || !a.Mtime.After(old) {
			x.Fatalf("server times %v %v not set", a.Atime, a.Mtime)
		}
	}},
	{"only what is asked changes", func(x *tester) {
		f := x.create(x.Root, "f")
		x.write(f, 0, "abc")
		mt := time.Unix(2000, 0)
		x.setAttr(f, vfs.SetAttr{Mtime: vfs.SetTime{How: vfs.TimeClient, Time: mt}})
		a := x.setAttr(f, vfs.SetAttr{Mode: ptr(uint32(0o600))})
		if a.Size != 3 || !a.Mtime.Equal(mt) || a.UID != Cred.UID {
			x.Fatalf("a mode change changed other attributes: %+v", a)
		}
	}},
	{"ctime advances", func(x *tester) {
		f := x.create(x.Root, "f")
		before := x.attr(f).Ctime
		a := x.setAttr(f, vfs.SetAttr{Mode: ptr(uint32(0o600))})
		if a.Ctime.Before(before) {
			x.Fatalf("ctime went back from %v to %v", before, a.Ctime)
		}
	}},
}

var lookupCases = []testCase{
	{"file", func(x *tester) {
		f := x.create(x.Root, "f")
		h, a, da, err := x.FS.Lookup(ctx, Cred, x.Root, "f")
		x.noErr("lookup", err)
		if !bytes.Equal(h, f) || a.Type != vfs.TypeRegular || a.FileID != x.attr(f).FileID {
			x.Fatalf("lookup: handle %x attr %+v; created %x", h, a, f)
		}
		if da == nil || da.Type != vfs.TypeDirectory {
			x.Fatalf("lookup: directory attributes %+v", da)
		}
	}},
	{"missing is ENOENT with directory attributes", func(x *tester) {
		_, _, da, err := x.FS.Lookup(ctx, Cred, x.Root, "missing")
		x.wantErr("lookup missing", err, syscall.ENOENT)
		if da == nil {
			x.Fatal("no directory attributes with ENOENT")
		}
	}},
	{"dot", func(x *tester) {
		d := x.mkdir(x.Root, "d")
		h, a := x.lookup(d, ".")
		if !bytes.Equal(h, d) || a.FileID != x.attr(d).FileID {
			x.Fatalf("lookup . gave %x (%d), want %x", h, a.FileID, d)
		}
	}},
	{"dotdot", func(x *tester) {
		d := x.mkdir(x.Root, "d")
		e := x.mkdir(d, "e")
		if h, _ := x.lookup(e, ".."); !bytes.Equal(h, d) {
			x.Fatalf("lookup d/e/.. gave %x, want d %x", h, d)
		}
		if h, _ := x.lookup(d, ".."); !bytes.Equal(h, x.Root) {
			x.Fatalf("lookup d/.. gave %x, want root %x", h, x.Root)
		}
	}},
	{"dotdot of the root is the root", func(x *tester) {
		if h, _ := x.lookup(x.Root, ".."); !bytes.Equal(h, x.Root) {
			x.Fatalf("lookup /.. gave %x, want root %x", h, x.Root)
		}
	}},
	{"in a file is ENOTDIR", func(x *tester) {
		f := x.create(x.Root, "f")
		_, _, _, err := x.FS.Lookup(ctx, Cred, f, "x")
		x.wantErr("lookup in a file", err, syscall.ENOTDIR)
	}},
	{"symlink is not followed", func(x *tester) {
		x.mkdir(x.Root, "d")
		l := x.symlink(x.Root, "l", "d")
		h, a := x.lookup(x.Root, "l")
		if !bytes.Equal(h, l) || a.Type != vfs.TypeSymlink {
			x.Fatalf("lookup of a symlink gave %x type %d", h, a.Type)
		}
	}},
}

var accessCases = []testCase{
	{"owner of a 0644 file", func(x *tester) {
		f := x.create(x.Root, "f")
		const all = vfs.AccessRead | vfs.AccessLookup | vfs.AccessModify | vfs.AccessExtend | vfs.AccessDelete | vfs.AccessExecute
		g, a, err := x.FS.Access(ctx, Cred, f, all)
		x.noErr("access", err)
		if want := uint32(vfs.AccessRead | vfs.AccessModify | vfs.AccessExtend); g != want {
			x.Fatalf("granted %#x, want %#x", g, want)
		}
		if a.Type != vfs.TypeRegular {
			x.Fatalf("attributes %+v", a)
		}
	}},
	{"executable file", func(x *tester) {
		f := x.create(x.Root, "f")
		x.setAttr(f, vfs.SetAttr{Mode: ptr(uint32(0o755))})
		g, _, err := x.FS.Access(ctx, Cred, f, vfs.AccessExecute|vfs.AccessRead)
		x.noErr("access", err)
		if g != vfs.AccessExecute|vfs.AccessRead {
			x.Fatalf("granted %#x", g)
		}
	}},
	{"owner of a 0755 directory", func(x *tester) {
		d := x.mkdir(x.Root, "d")
		const want = vfs.AccessRead | vfs.AccessLookup | vfs.AccessModify | vfs.AccessExtend | vfs.AccessDelete
		g, _, err := x.FS.Access(ctx, Cred, d, want|vfs.AccessExecute)
		x.noErr("access", err)
		if g != want {
			x.Fatalf("granted %#x, want %#x", g, want)
		}
	}},
	{"only what was asked", func(x *tester) {
		f := x.create(x.Root, "f")
		g, _, err := x.FS.Access(ctx, Cred, f, vfs.AccessRead)
		x.noErr("access", err)
		if g != vfs.AccessRead {
			x.Fatalf("granted %#x for READ only", g)
		}
	}},
	{"others of a 0600 file get nothing", func(x *tester) {
		f := x.create(x.Root, "f")
		x.setAttr(f, vfs.SetAttr{Mode: ptr(uint32(0o600))})
		other := vfs.Cred{UID: 2000, GID: 2000}
		g, _, err := x.FS.Access(ctx, other, f, vfs.AccessRead|vfs.AccessModify)
		x.noErr("access", err)
		if g != 0 {
			x.Fatalf("granted %#x to another user", g)
		}
	}},
	{"group class", func(x *tester) {
		f := x.create(x.Root, "f")
		x.setAttr(f, vfs.SetAttr{Mode: ptr(uint32(0o640))})
		member := vfs.Cred{UID: 2000, GID: 3000, Groups: []uint32{Cred.GID}}
		g, _, err := x.FS.Access(ctx, member, f, vfs.AccessRead|vfs.AccessModify)
		x.noErr("access", err)
		if g != vfs.AccessRead {
			x.Fatalf("granted %#x to a group member, want READ", g)
		}
	}},
}

var readlinkCases = []testCase{
	{"target verbatim", func(x *tester) {
		for _, target := range []string{"a", "../x/./y", "/abs/path", "with space/ünï", strings.Repeat("p", 1000)} {
			l := x.symlink(x.Root, fmt.Sprintf("l%d", len(target)), target)
			got, a, err := x.FS.Readlink(ctx, Cred, l)
			x.noErr("readlink", err)
			if got != target || a == nil || a.Size != uint64(len(target)) {
				x.Fatalf("readlink %q gave %q, attr %+v", target, got, a)
			}
		}
	}},
	{"of a file is EINVAL", func(x *tester) {
		f := x.create(x.Root, "f")
		_, _, err := x.FS.Readlink(ctx, Cred, f)
		x.wantErr("readlink of a file", err, syscall.EINVAL)
	}},
}

var readCases = []testCase{
	{"whole file reaches eof", func(x *tester) {
		f := x.create(x.Root, "f")
		x.write(f, 0, "hello")
		buf := make([]byte, 100)
		n, eof, a, err := x.FS.Read(ctx, Cred, f, 0, buf)
		x.noErr("read", err)
		if n != 5 || !eof || string(buf[:n]) != "hello" || a == nil || a.Size != 5 {
			x.Fatalf("read: %d %q eof %v attr %+v", n, buf[:n], eof, a)
		}
	}},
	{"exactly to the end is eof", func(x *tester) {
		f := x.create(x.Root, "f")
		x.write(f, 0, "hello")
		buf := make([]byte, 3)
		n, eof, _, err := x.FS.Read(ctx, Cred, f, 2, buf)
		x.noErr("read", err)
		if n != 3 || !eof || string(buf) != "llo" {
			x.Fatalf("read 3 at 2: %d %q eof %v", n, buf[:n], eof)
		}
	}},
	{"part is not eof", func(x *tester) {
		f := x.create(x.Root, "f")
		x.write(f, 0, "hello")
		buf := make([]byte, 2)
		n, eof, _, err := x.FS.Read(ctx, Cred, f, 1, buf)
		x.noErr("read", err)
		if n != 2 || eof || string(buf) != "el" {
			x.Fatalf("read 2 at 1: %d %q eof %v", n, buf[:n], eof)
		}
	}},
	{"at and beyond eof", func(x *tester) {
		f := x.create(x.Root, "f")
		x.write(f, 0, "hello")
		for _, off := range []uint64{5, 6, 1 << 40, 1<<63 - 1, 1 << 63, 1<<64 - 1} {
			n, eof, _, err := x.FS.Read(ctx, Cred, f, off, make([]byte, 10))
			x.noErr(fmt.Sprintf("read at %d", off), err)
			if n != 0 || !eof {
				x.Fatalf("read at %d: n=%d eof=%v", off, n, eof)
			}
		}
	}},
	{"empty file", func(x *tester) {
		f := x.create(x.Root, "f")
		n, eof, _, err := x.FS.Read(ctx, Cred, f, 0, make([]byte, 10))
		x.noErr("read", err)
		if n != 0 || !eof {
			x.Fatalf("read of an empty file: n=%d eof=%v", n, eof)
		}
	}},
	{"directory is EISDIR", func(x *tester) {
		_, _, a, err := x.FS.Read(ctx, Cred, x.Root, 0, make([]byte, 10))
		x.wantErr("read a directory", err, syscall.EISDIR)
		if a == nil {
			x.Fatal("no attributes with EISDIR")
		}
	}},
	{"symlink is EINVAL", func(x *tester) {
		l := x.symlink(x.Root, "l", "target")
		_, _, _, err := x.FS.Read(ctx, Cred, l, 0, make([]byte, 10))
		x.wantErr("read a symlink", err, syscall.EINVAL)
	}},
	{"FIFO is EINVAL and does not block", func(x *tester) {
		p := x.mknod(x.Root, "p", vfs.TypeFIFO)
		_, _, _, err := x.FS.Read(ctx, Cred, p, 0, make([]byte, 10))
		x.wantErr("read a FIFO", err, syscall.EINVAL)
	}},
	{"socket is EINVAL", func(x *tester) {
		s := x.mknod(x.Root, "s", vfs.TypeSocket)
		_, _, _, err := x.FS.Read(ctx, Cred, s, 0, make([]byte, 10))
		x.wantErr("read a socket", err, syscall.EINVAL)
	}},
}

var writeCases = []testCase{
	{"stable levels", func(x *tester) {
		f := x.create(x.Root, "f")
		for i, s := range []vfs.Stable{vfs.Unstable, vfs.DataSync, vfs.FileSync} {
			n, got, w, err := x.FS.Write(ctx, Cred, f, uint64(i), []byte{'a' + byte(i)}, s)
			x.noErr("write", err)
			if n != 1 || got < s || got > vfs.FileSync {
				x.Fatalf("write asking %d: n=%d committed %d", s, n, got)
			}
			x.wantWcc("write", w)
			if w.After.Size != uint64(i+1) {
				x.Fatalf("wcc after size %d, want %d", w.After.Size, i+1)
			}
		}
		if got := x.read(f); got != "abc" {
			x.Fatalf("data %q", got)
		}
	}},
	{"overwrite in the middle", func(x *tester) {
		f := x.create(x.Root, "f")
		x.write(f, 0, "hello world")
		x.write(f, 6, "WORLD")
		if got := x.read(f); got != "hello WORLD" {
			x.Fatalf("data %q", got)
		}
	}},
	{"past the end leaves a hole of zeros", func(x *tester) {
		f := x.create(x.Root, "f")
		x.write(f, 4, "x")
		if got := x.read(f); got != "\x00\x00\x00\x00x" {
			x.Fatalf("data %q", got)
		}
	}},
	{"wcc before is the old state", func(x *tester) {
		f := x.create(x.Root, "f")
		x.write(f, 0, "abc")
		_, _, w, err := x.FS.Write(ctx, Cred, f, 3, []byte("defg"), vfs.FileSync)
		x.noErr("write", err)
		x.wantWcc("write", w)
		if w.Before.Size != 3 || w.After.Size != 7 {
			x.Fatalf("wcc sizes %d -> %d, want 3 -> 7", w.Before.Size, w.After.Size)
		}
	}},
	{"directory is EISDIR", func(x *tester) {
		_, _, _, err := x.FS.Write(ctx, Cred, x.Root, 0, []byte("x"), vfs.FileSync)
		x.wantErr("write a directory", err, syscall.EISDIR)
	}},
	{"FIFO is EINVAL", func(x *tester) {
		p := x.mknod(x.Root, "p", vfs.TypeFIFO)
		_, _, _, err := x.FS.Write(ctx, Cred, p, 0, []byte("x"), vfs.FileSync)
		x.wantErr("write a FIFO", err, syscall.EINVAL)
	}},
	{"beyond the largest offset is EFBIG", func(x *tester) {
		f := x.create(x.Root, "f")
		_, _, _, err := x.FS.Write(ctx, Cred, f, 1<<63, []byte("x"), vfs.FileSync)
		x.wantErr("write at 2^63", err, syscall.EFBIG)
		if a := x.attr(f); a.Size != 0 {
			x.Fatalf("size %d after a refused write", a.Size)
		}
	}},
	{"verifier is stable", func(x *tester) {
		v := x.FS.WriteVerifier()
		f := x.create(x.Root, "f")
		x.write(f, 0, "x")
		if _, err := x.FS.Commit(ctx, Cred, f, 0, 0); err != nil {
			x.Fatal(err)
		}
		if w := x.FS.WriteVerifier(); w != v {
			x.Fatalf("verifier changed from %x to %x within one FS", v, w)
		}
	}},
}

var createCases = []testCase{
	{"mode and owner", func(x *tester) {
		h, a, _, err := x.FS.Create(ctx, Cred, x.Root, "f", vfs.CreateGuarded, vfs.SetAttr{Mode: ptr(uint32(0o600))}, vfs.Verifier{})
		x.noErr("create", err)
		if a == nil || a.Mode != 0o600 || a.UID != Cred.UID || a.GID != Cred.GID || a.Size != 0 {
			x.Fatalf("attributes %+v", a)
		}
		if got := x.attr(h); got.Mode != 0o600 {
			x.Fatalf("getattr mode %o", got.Mode)
		}
	}},
	{"owner given by the caller", func(x *tester) {
		_, a, _, err := x.FS.Create(ctx, Cred, x.Root, "f", vfs.CreateGuarded, vfs.SetAttr{GID: ptr(Cred.GID)}, vfs.Verifier{})
		x.noErr("create", err)
		if a.GID != Cred.GID {
			x.Fatalf("gid %d", a.GID)
		}
	}},
	{"size in sattr", func(x *tester) {
		h, _, _, err := x.FS.Create(ctx, Cred, x.Root, "f", vfs.CreateUnchecked, vfs.SetAttr{Size: ptr(uint64(3))}, vfs.Verifier{})
		x.noErr("create", err)
		if a := x.attr(h); a.Size != 3 {
			x.Fatalf("size %d, want 3", a.Size)
		}
	}},
	{"unchecked keeps an existing file", func(x *tester) {
		f := x.create(x.Root, "f")
		x.write(f, 0, "data")
		h, a, w, err := x.FS.Create(ctx, Cred, x.Root, "f", vfs.CreateUnchecked, vfs.SetAttr{Mode: ptr(uint32(0o600))}, vfs.Verifier{})
		x.noErr("unchecked create of an existing file", err)
		x.wantWcc("create", w)
		if !bytes.Equal(h, f) || a == nil || a.Size != 4 {
			x.Fatalf("unchecked create: handle %x attr %+v; existing %x", h, a, f)
		}
		if got := x.read(f); got != "data" {
			x.Fatalf("unchecked create changed the data to %q", got)
		}
	}},
	{"unchecked with size 0 truncates", func(x *tester) {
		f := x.create(x.Root, "f")
		x.write(f, 0, "data")
		_, _, _, err := x.FS.Create(ctx, Cred, x.Root, "f", vfs.CreateUnchecked, vfs.SetAttr{Size: ptr(uint64(0))}, vfs.Verifier{})
		x.noErr("unchecked create with size 0", err)
		if a := x.attr(f); a.Size != 0 {
			x.Fatalf("size %d, want 0", a.Size)
		}
	}},
	{"unchecked over a directory is EEXIST", func(x *tester) {
		x.mkdir(x.Root, "d")
		_, _, _, err := x.FS.Create(ctx, Cred, x.Root, "d", vfs.CreateUnchecked, vfs.SetAttr{}, vfs.Verifier{})
		x.wantErr("unchecked create over a directory", err, syscall.EEXIST)
	}},
	{"guarded existing is EEXIST", func(x *tester) {
		f := x.create(x.Root, "f")
		x.write(f, 0, "data")
		_, _, w, err := x.FS.Create(ctx, Cred, x.Root, "f", vfs.CreateGuarded, vfs.SetAttr{Size: ptr(uint64(0))}, vfs.Verifier{})
		x.wantErr("guarded create of an existing file", err, syscall.EEXIST)
		x.wantWcc("guarded create", w)
		if got := x.read(f); got != "data" {
			x.Fatalf("data %q after a refused create", got)
		}
	}},
	{"exclusive retransmission", func(x *tester) {
		v := vfs.Verifier{1, 2, 3, 4, 5, 6, 7, 8}
		h1, _, _, err := x.FS.Create(ctx, Cred, x.Root, "f", vfs.CreateExclusive, vfs.SetAttr{}, v)
		x.noErr("exclusive create", err)
		h2, a, _, err := x.FS.Create(ctx, Cred, x.Root, "f", vfs.CreateExclusive, vfs.SetAttr{}, v)
		x.noErr("retransmitted exclusive create", err)
		if !bytes.Equal(h1, h2) || a == nil || a.Type != vfs.TypeRegular {
			x.Fatalf("retransmission gave %x (%+v), first %x", h2, a, h1)
		}
	}},
	{"exclusive with another verifier is EEXIST", func(x *tester) {
		v := vfs.Verifier{1, 2, 3, 4, 5, 6, 7, 8}
		_, _, _, err := x.FS.Create(ctx, Cred, x.Root, "f", vfs.CreateExclusive, vfs.SetAttr{}, v)
		x.noErr("exclusive create", err)
		v[7]++
		_, _, _, err = x.FS.Create(ctx, Cred, x.Root, "f", vfs.CreateExclusive, vfs.SetAttr{}, v)
		x.wantErr("exclusive create with another verifier", err, syscall.EEXIST)
		v[7]--
		v[0]++
		_, _, _, err = x.FS.Create(ctx, Cred, x.Root, "f", vfs.CreateExclusive, vfs.SetAttr{}, v)
		x.wantErr("exclusive create with another verifier", err, syscall.EEXIST)
	}},
	{"exclusive over a file made otherwise is EEXIST", func(x *tester) {
		x.create(x.Root, "f")
		_, _, _, err := x.FS.Create(ctx, Cred, x.Root, "f", vfs.CreateExclusive, vfs.SetAttr{}, vfs.Verifier{9})
		x.wantErr("exclusive create of an existing file", err, syscall.EEXIST)
	}},
	{"exclusive then setattr", func(x *tester) {
		// What a client does after an exclusive create: set the real
		// attributes, which replace whatever held the verifier.
		h, _, _, err := x.FS.Create(ctx, Cred, x.Root, "f", vfs.CreateExclusive, vfs.SetAttr{}, vfs.Verifier{1, 2, 3, 4, 5, 6, 7, 8})
		x.noErr("exclusive create", err)
		mt := time.Unix(5000, 0)
		a := x.setAttr(h, vfs.SetAttr{Mode: ptr(uint32(0o640)), Mtime: vfs.SetTime{How: vfs.TimeClient, Time: mt}, Atime: vfs.SetTime{How: vfs.TimeClient, Time: mt}})
		if a.Mode != 0o640 || !a.Mtime.Equal(mt) || !a.Atime.Equal(mt) {
			x.Fatalf("attributes after setattr %+v", a)
		}
	}},
	{"in a file is ENOTDIR", func(x *tester) {
		f := x.create(x.Root, "f")
		_, _, _, err := x.FS.Create(ctx, Cred, f, "g", vfs.CreateGuarded, vfs.SetAttr{}, vfs.Verifier{})
		x.wantErr("create in a file", err, syscall.ENOTDIR)
	}},
}

var mkdirCases = []testCase{
	{"attributes and parent link count", func(x *tester) {
		before := x.attr(x.Root).Nlink
		h, a, w, err := x.FS.Mkdir(ctx, Cred, x.Root, "d", vfs.SetAttr{Mode: ptr(uint32(0o750))})
		x.noErr("mkdir", err)
		x.wantWcc("mkdir", w)
		if a == nil || a.Type != vfs.TypeDirectory || a.Mode != 0o750 || a.Nlink != 2 || a.UID != Cred.UID {
			x.Fatalf("attributes %+v", a)
		}
		if n := x.attr(x.Root).Nlink; n != before+1 {
			x.Fatalf("parent nlink %d, want %d", n, before+1)
		}
		if got := names(x.list(h, false, 100)); len(got) != 0 {
			x.Fatalf("new directory lists %v", got)
		}
	}},
	{"existing is EEXIST", func(x *tester) {
		x.create(x.Root, "f")
		_, _, w, err := x.FS.Mkdir(ctx, Cred, x.Root, "f", vfs.SetAttr{})
		x.wantErr("mkdir over a file", err, syscall.EEXIST)
		x.wantWcc("mkdir", w)
	}},
}

var symlinkCases = []testCase{
	{"attributes", func(x *tester) {
		_, a, _, err := x.FS.Symlink(ctx, Cred, x.Root, "l", "some/target", vfs.SetAttr{Mode: ptr(uint32(0o700))})
		x.noErr("symlink", err)
		if a == nil || a.Type != vfs.TypeSymlink || a.Size != 11 || a.Mode != 0o777 || a.UID != Cred.UID {
			x.Fatalf("attributes %+v (symlinks are always 0777)", a)
		}
	}},
	{"existing is EEXIST", func(x *tester) {
		x.create(x.Root, "f")
		_, _, _, err := x.FS.Symlink(ctx, Cred, x.Root, "f", "t", vfs.SetAttr{})
		x.wantErr("symlink over a file", err, syscall.EEXIST)
	}},
	{"target of PATH_MAX-1 bytes", func(x *tester) {
		target := strings.Repeat("d/", 2047) + "x"
		l := x.symlink(x.Root, "l", target)
		got, a, err := x.FS.Readlink(ctx, Cred, l)
		x.noErr("readlink", err)
		if got != target || a.Size != 4095 {
			x.Fatalf("readlink gave %d bytes, size %d", len(got), a.Size)
		}
	}},
	{"target of PATH_MAX bytes is ENAMETOOLONG", func(x *tester) {
		_, _, _, err := x.FS.Symlink(ctx, Cred, x.Root, "l", strings.Repeat("x", 4096), vfs.SetAttr{})
		x.wantErr("symlink of 4096 bytes", err, syscall.ENAMETOOLONG)
		x.gone(x.Root, "l")
	}},
	{"empty target is EINVAL", func(x *tester) {
		_, _, _, err := x.FS.Symlink(ctx, Cred, x.Root, "l", "", vfs.SetAttr{})
		x.wantErr("symlink to nothing", err, syscall.EINVAL)
	}},
}

var mknodCases = []testCase{
	{"FIFO", func(x *tester) {
		h := x.mknod(x.Root, "p", vfs.TypeFIFO)
		if a := x.attr(h); a.Type != vfs.TypeFIFO || a.UID != Cred.UID || a.Mode != 0o644 {
			x.Fatalf("attributes %+v", a)
		}
	}},
	{"socket", func(x *tester) {
		h, a, _, err := x.FS.Mknod(ctx, Cred, x.Root, "s", vfs.TypeSocket, vfs.SetAttr{Mode: ptr(uint32(0o600))}, 0, 0)
		x.noErr("mknod socket", err)
		if a.Type != vfs.TypeSocket || a.Mode != 0o600 || x.attr(h).Type != vfs.TypeSocket {
			x.Fatalf("attributes %+v", a)
		}
	}},
	{"regular, directory and symlink are ErrBadType", func(x *tester) {
		for _, t := range []vfs.FileType{vfs.TypeRegular, vfs.TypeDirectory, vfs.TypeSymlink, 0, 99} {
			_, _, _, err := x.FS.Mknod(ctx, Cred, x.Root, "n", t, vfs.SetAttr{}, 0, 0)
			x.wantErr(fmt.Sprintf("mknod type %d", t), err, vfs.ErrBadType)
		}
		x.gone(x.Root, "n")
	}},
	{"existing is EEXIST", func(x *tester) {
		x.create(x.Root, "f")
		_, _, _, err := x.FS.Mknod(ctx, Cred, x.Root, "f", vfs.TypeFIFO, vfs.SetAttr{}, 0, 0)
		x.wantErr("mknod over a file", err, syscall.EEXIST)
	}},
	{"devices", func(x *tester) {
		x.devices()
		for _, d := range []struct {
			t            vfs.FileType
			major, minor uint32
		}{{vfs.TypeChar, 1, 3}, {vfs.TypeBlock, 8, 0}, {vfs.TypeChar, 1<<12 - 1, 1<<20 - 1}} {
			name := fmt.Sprintf("dev%d-%d-%d", d.t, d.major, d.minor)
			h, a, w, err := x.FS.Mknod(ctx, rootCred, x.Root, name, d.t, vfs.SetAttr{Mode: ptr(uint32(0o660))}, d.major, d.minor)
			x.noErr("mknod "+name, err)
			x.wantWcc("mknod "+name, w)
			for _, a := range []vfs.Attr{*a, x.attr(h)} {
				if a.Type != d.t || a.RdevMajor != d.major || a.RdevMinor != d.minor || a.Mode != 0o660 {
					x.Fatalf("%s: attributes %+v", name, a)
				}
			}
			if _, a := x.lookup(x.Root, name); a.RdevMajor != d.major || a.RdevMinor != d.minor {
				x.Fatalf("%s: lookup attributes %+v", name, a)
			}
		}
	}},
	{"devices only for root", func(x *tester) {
		x.devices()
		for _, t := range []vfs.FileType{vfs.TypeChar, vfs.TypeBlock} {
			_, _, _, err := x.FS.Mknod(ctx, Cred, x.Root, "dev", t, vfs.SetAttr{}, 1, 3)
			x.wantErr("mknod of a device by a non-root caller", err, syscall.EPERM)
		}
		x.gone(x.Root, "dev")
	}},
	{"device numbers out of range are EINVAL", func(x *tester) {
		x.devices()
		for _, mm := range [][2]uint32{{1 << 12, 0}, {0, 1 << 20}, {1<<32 - 1, 1<<32 - 1}} {
			_, _, _, err := x.FS.Mknod(ctx, rootCred, x.Root, "dev", vfs.TypeBlock, vfs.SetAttr{}, mm[0], mm[1])
			x.wantErr(fmt.Sprintf("mknod %d:%d", mm[0], mm[1]), err, syscall.EINVAL)
		}
		x.gone(x.Root, "dev")
	}},
	{"no I/O on a device", func(x *tester) {
		x.devices()
		h, _, _, err := x.FS.Mknod(ctx, rootCred, x.Root, "null", vfs.TypeChar, vfs.SetAttr{}, 1, 3)
		x.noErr("mknod", err)
		_, _, _, err = x.FS.Read(ctx, rootCred, h, 0, make([]byte, 10))
		x.wantErr("read a device", err, syscall.EINVAL)
		_, _, _, err = x.FS.Write(ctx, rootCred, h, 0, []byte("x"), vfs.FileSync)
		x.wantErr("write a device", err, syscall.EINVAL)
		_, err = x.FS.Commit(ctx, rootCred, h, 0, 0)
		x.wantErr("commit a device", err, syscall.EINVAL)
		_, err = x.FS.SetAttr(ctx, rootCred, h, vfs.SetAttr{Size: ptr(uint64(0))}, nil)
		x.wantErr("truncate a device", err, syscall.EINVAL)
		_, _, _, err = x.FS.Create(ctx, rootCred, x.Root, "null", vfs.CreateUnchecked, vfs.SetAttr{Size: ptr(uint64(0))}, vfs.Verifier{})
		x.wantErr("unchecked create over a device", err, syscall.EEXIST)
	}},
	{"devices refused", func(x *tester) {
		if x.Devices {
			x.Skip("the FS makes devices (Env.Devices)")
		}
		_, _, _, err := x.FS.Mknod(ctx, rootCred, x.Root, "dev", vfs.TypeChar, vfs.SetAttr{}, 1, 3)
		if !errors.Is(err, syscall.EPERM) && !errors.Is(err, vfs.ErrBadType) && !errors.Is(err, vfs.ErrNotSupp) {
			x.Fatalf("mknod of a device: %v, want EPERM, ErrBadType or ErrNotSupp", err)
		}
	}},
}

// rootCred is a root caller, for what only root may do.
var rootCred = vfs.Cred{}

// devices skips a case about device nodes if the FS does not make them.
func (x *tester) devices() {
	x.Helper()
	if !x.Devices {
		x.Skip("the FS makes no devices (Env.Devices is false)")
	}
}

var removeCases = []testCase{
	{"file", func(x *tester) {
		f := x.create(x.Root, "f")
		w, err := x.FS.Remove(ctx, Cred, x.Root, "f")
		x.noErr("remove", err)
		x.wantWcc("remove", w)
		x.gone(x.Root, "f")
		_, err = x.FS.GetAttr(ctx, f)
		x.wantErr("getattr of a removed file", err, vfs.ErrStale)
	}},
	{"stale handle everywhere", func(x *tester) {
		f := x.create(x.Root, "f")
		x.write(f, 0, "data")
		x.noErr("remove", func() error { _, err := x.FS.Remove(ctx, Cred, x.Root, "f"); return err }())
		_, _, _, err := x.FS.Read(ctx, Cred, f, 0, make([]byte, 4))
		x.wantErr("read", err, vfs.ErrStale)
		_, _, _, err = x.FS.Write(ctx, Cred, f, 0, []byte("x"), vfs.FileSync)
		x.wantErr("write", err, vfs.ErrStale)
		_, err = x.FS.SetAttr(ctx, Cred, f, vfs.SetAttr{Mode: ptr(uint32(0o600))}, nil)
		x.wantErr("setattr", err, vfs.ErrStale)
		_, _, err = x.FS.Access(ctx, Cred, f, vfs.AccessRead)
		x.wantErr("access", err, vfs.ErrStale)
		_, err = x.FS.Commit(ctx, Cred, f, 0, 0)
		x.wantErr("commit", err, vfs.ErrStale)
		_, _, err = x.FS.Link(ctx, Cred, f, x.Root, "again")
		x.wantErr("link", err, vfs.ErrStale)
	}},
	{"removed directory is stale", func(x *tester) {
		d := x.mkdir(x.Root, "d")
		x.noErr("rmdir", func() error { _, err := x.FS.Rmdir(ctx, Cred, x.Root, "d"); return err }())
		_, _, _, err := x.FS.Lookup(ctx, Cred, d, "x")
		x.wantErr("lookup in a removed directory", err, vfs.ErrStale)
		_, _, _, err = x.FS.Create(ctx, Cred, d, "x", vfs.CreateGuarded, vfs.SetAttr{}, vfs.Verifier{})
		x.wantErr("create in a removed directory", err, vfs.ErrStale)
		_, _, _, err = x.FS.ReadDir(ctx, Cred, d, 0, vfs.Verifier{}, false, func(vfs.DirEntry) bool { return true })
		x.wantErr("readdir of a removed directory", err, vfs.ErrStale)
	}},
	{"one of two links", func(x *tester) {
		f := x.create(x.Root, "f")
		x.write(f, 0, "data")
		_, _, err := x.FS.Link(ctx, Cred, f, x.Root, "g")
		x.noErr("link", err)
		_, err = x.FS.Remove(ctx, Cred, x.Root, "f")
		x.noErr("remove", err)
		if a := x.attr(f); a.Nlink != 1 {
			x.Fatalf("nlink %d after removing one of two links", a.Nlink)
		}
		if g, _ := x.lookup(x.Root, "g"); x.read(g) != "data" {
			x.Fatal("the other link lost the data")
		}
	}},
	{"missing is ENOENT", func(x *tester) {
		w, err := x.FS.Remove(ctx, Cred, x.Root, "missing")
		x.wantErr("remove missing", err, syscall.ENOENT)
		x.wantWcc("remove missing", w)
	}},
	{"directory with Remove is EISDIR", func(x *tester) {
		x.mkdir(x.Root, "d")
		_, err := x.FS.Remove(ctx, Cred, x.Root, "d")
		x.wantErr("remove a directory", err, syscall.EISDIR)
		x.lookup(x.Root, "d")
	}},
	{"Rmdir", func(x *tester) {
		x.mkdir(x.Root, "d")
		before := x.attr(x.Root).Nlink
		w, err := x.FS.Rmdir(ctx, Cred, x.Root, "d")
		x.noErr("rmdir", err)
		x.wantWcc("rmdir", w)
		x.gone(x.Root, "d")
		if n := x.attr(x.Root).Nlink; n != before-1 {
			x.Fatalf("parent nlink %d, want %d", n, before-1)
		}
	}},
	{"Rmdir of a non-empty directory is ENOTEMPTY", func(x *tester) {
		d := x.mkdir(x.Root, "d")
		x.create(d, "f")
		w, err := x.FS.Rmdir(ctx, Cred, x.Root, "d")
		x.wantErr("rmdir non-empty", err, syscall.ENOTEMPTY)
		x.wantWcc("rmdir non-empty", w)
		x.lookup(d, "f")
	}},
	{"Rmdir of a file is ENOTDIR", func(x *tester) {
		x.create(x.Root, "f")
		_, err := x.FS.Rmdir(ctx, Cred, x.Root, "f")
		x.wantErr("rmdir a file", err, syscall.ENOTDIR)
		x.lookup(x.Root, "f")
	}},
	{"Rmdir missing is ENOENT", func(x *tester) {
		_, err := x.FS.Rmdir(ctx, Cred, x.Root, "missing")
		x.wantErr("rmdir missing", err, syscall.ENOENT)
	}},
	{"symlink, not its target", func(x *tester) {
		f := x.create(x.Root, "f")
		x.symlink(x.Root, "l", "f")
		_, err := x.FS.Remove(ctx, Cred, x.Root, "l")
		x.noErr("remove symlink", err)
		x.gone(x.Root, "l")
		x.attr(f)
	}},
}

var renameCases = []testCase{
	{"within a directory", func(x *tester) {
		f := x.create(x.Root, "a")
		fw, tw, err := x.FS.Rename(ctx, Cred, x.Root, "a", x.Root, "b")
		x.noErr("rename", err)
		x.wantWcc("rename from", fw)
		x.wantWcc("rename to", tw)
		x.gone(x.Root, "a")
		if h, _ := x.lookup(x.Root, "b"); !bytes.Equal(h, f) {
			x.Fatalf("renamed file has handle %x, was %x", h, f)
		}
		x.attr(f)
	}},
	{"over an existing file", func(x *tester) {
		a := x.create(x.Root, "a")
		x.write(a, 0, "new")
		b := x.create(x.Root, "b")
		x.write(b, 0, "old")
		_, _, err := x.FS.Rename(ctx, Cred, x.Root, "a", x.Root, "b")
		x.noErr("rename over a file", err)
		h, _ := x.lookup(x.Root, "b")
		if !bytes.Equal(h, a) || x.read(h) != "new" {
			x.Fatalf("b is %x, want the renamed %x", h, a)
		}
		_, err = x.FS.GetAttr(ctx, b)
		x.wantErr("getattr of the replaced file", err, vfs.ErrStale)
	}},
	{"over a file with another link", func(x *tester) {
		x.create(x.Root, "a")
		b := x.create(x.Root, "b")
		_, _, err := x.FS.Link(ctx, Cred, b, x.Root, "b2")
		x.noErr("link", err)
		_, _, err = x.FS.Rename(ctx, Cred, x.Root, "a", x.Root, "b")
		x.noErr("rename", err)
		if a := x.attr(b); a.Nlink != 1 {
			x.Fatalf("replaced file nlink %d, want 1", a.Nlink)
		}
	}},
	{"onto another link of itself does nothing", func(x *tester) {
		f := x.create(x.Root, "a")
		_, _, err := x.FS.Link(ctx, Cred, f, x.Root, "b")
		x.noErr("link", err)
		_, _, err = x.FS.Rename(ctx, Cred, x.Root, "a", x.Root, "b")
		x.noErr("rename onto the same file", err)
		x.lookup(x.Root, "a")
		x.lookup(x.Root, "b")
		if n := x.attr(f).Nlink; n != 2 {
			x.Fatalf("nlink %d, want 2", n)
		}
	}},
	{"directory across directories", func(x *tester) {
		p := x.mkdir(x.Root, "p")
		q := x.mkdir(x.Root, "q")
		d := x.mkdir(p, "d")
		np, nq := x.attr(p).Nlink, x.attr(q).Nlink
		_, _, err := x.FS.Rename(ctx, Cred, p, "d", q, "d")
		x.noErr("rename directory", err)
		if a, b := x.attr(p).Nlink, x.attr(q).Nlink; a != np-1 || b != nq+1 {
			x.Fatalf("nlink of old parent %d (was %d), new parent %d (was %d)", a, np, b, nq)
		}
		if h, _ := x.lookup(d, ".."); !bytes.Equal(h, q) {
			x.Fatalf("moved directory's .. is %x, want %x", h, q)
		}
	}},
	{"directory over an empty directory", func(x *tester) {
		d := x.mkdir(x.Root, "d")
		e := x.mkdir(x.Root, "e")
		n := x.attr(x.Root).Nlink
		_, _, err := x.FS.Rename(ctx, Cred, x.Root, "d", x.Root, "e")
		x.noErr("rename over an empty directory", err)
		if h, _ := x.lookup(x.Root, "e"); !bytes.Equal(h, d) {
			x.Fatal("e is not the renamed directory")
		}
		if got := x.attr(x.Root).Nlink; got != n-1 {
			x.Fatalf("parent nlink %d, want %d", got, n-1)
		}
		_, err = x.FS.GetAttr(ctx, e)
		x.wantErr("getattr of the replaced directory", err, vfs.ErrStale)
	}},
	{"directory over a non-empty directory is ENOTEMPTY", func(x *tester) {
		x.mkdir(x.Root, "d")
		e := x.mkdir(x.Root, "e")
		x.create(e, "f")
		_, _, err := x.FS.Rename(ctx, Cred, x.Root, "d", x.Root, "e")
		x.wantErr("rename over a non-empty directory", err, syscall.ENOTEMPTY)
	}},
	{"directory over a file is ENOTDIR", func(x *tester) {
		x.mkdir(x.Root, "d")
		x.create(x.Root, "f")
		_, _, err := x.FS.Rename(ctx, Cred, x.Root, "d", x.Root, "f")
		x.wantErr("rename a directory over a file", err, syscall.ENOTDIR)
	}},
	{"file over a directory is EISDIR", func(x *tester) {
		x.mkdir(x.Root, "d")
		x.create(x.Root, "f")
		fw, tw, err := x.FS.Rename(ctx, Cred, x.Root, "f", x.Root, "d")
		x.wantErr("rename a file over a directory", err, syscall.EISDIR)
		x.wantWcc("rename from", fw)
		x.wantWcc("rename to", tw)
	}},
	{"directory into itself is EINVAL", func(x *tester) {
		d := x.mkdir(x.Root, "d")
		e := x.mkdir(d, "e")
		_, _, err := x.FS.Rename(ctx, Cred, x.Root, "d", e, "d")
		x.wantErr("rename a directory below itself", err, syscall.EINVAL)
	}},
	{"missing source is ENOENT", func(x *tester) {
		_, _, err := x.FS.Rename(ctx, Cred, x.Root, "missing", x.Root, "b")
		x.wantErr("rename missing", err, syscall.ENOENT)
	}},
	{"from a file is ENOTDIR", func(x *tester) {
		f := x.create(x.Root, "f")
		_, _, err := x.FS.Rename(ctx, Cred, f, "a", x.Root, "b")
		x.wantErr("rename from a file", err, syscall.ENOTDIR)
	}},
}

var linkCases = []testCase{
	{"link count and identity", func(x *tester) {
		f := x.create(x.Root, "f")
		x.write(f, 0, "data")
		a, w, err := x.FS.Link(ctx, Cred, f, x.Root, "g")
		x.noErr("link", err)
		x.wantWcc("link", w)
		if a == nil || a.Nlink != 2 {
			x.Fatalf("attributes after link %+v", a)
		}
		g, ga := x.lookup(x.Root, "g")
		if ga.FileID != a.FileID || ga.Nlink != 2 || x.read(g) != "data" {
			x.Fatalf("new link: %+v", ga)
		}
	}},
	{"to a directory is EISDIR", func(x *tester) {
		d := x.mkdir(x.Root, "d")
		_, w, err := x.FS.Link(ctx, Cred, d, x.Root, "e")
		x.wantErr("link a directory", err, syscall.EISDIR)
		x.wantWcc("link a directory", w)
	}},
	{"existing name is EEXIST", func(x *tester) {
		f := x.create(x.Root, "f")
		x.create(x.Root, "g")
		_, _, err := x.FS.Link(ctx, Cred, f, x.Root, "g")
		x.wantErr("link over a file", err, syscall.EEXIST)
		if n := x.attr(f).Nlink; n != 1 {
			x.Fatalf("nlink %d after a refused link", n)
		}
	}},
	{"into a file is ENOTDIR", func(x *tester) {
		f := x.create(x.Root, "f")
		_, _, err := x.FS.Link(ctx, Cred, f, f, "g")
		x.wantErr("link into a file", err, syscall.ENOTDIR)
	}},
	{"symlink", func(x *tester) {
		l := x.symlink(x.Root, "l", "t")
		_, _, err := x.FS.Link(ctx, Cred, l, x.Root, "l2")
		x.noErr("link a symlink", err)
		if h, a := x.lookup(x.Root, "l2"); !bytes.Equal(h, l) || a.Type != vfs.TypeSymlink {
			x.Fatalf("link of a symlink: %x %+v", h, a)
		}
	}},
}

// fill makes n files named prefix00.. in dir.
func (x *tester) fill(dir vfs.Handle, prefix string, n int) []string {
	x.Helper()
	var out []string
	for i := range n {
		name := fmt.Sprintf("%s%02d", prefix, i)
		x.create(dir, name)
		out = append(out, name)
	}
	return out
}

var readDirCases = []testCase{
	{"empty", func(x *tester) {
		if got := names(x.list(x.Root, false, 100)); len(got) != 0 {
			x.Fatalf("empty root lists %v", got)
		}
	}},
	{"all entries once", func(x *tester) {
		want := x.fill(x.Root, "f", 30)
		x.mkdir(x.Root, "dir")
		x.symlink(x.Root, "link", "f00")
		want = append(want, "dir", "link")
		for _, plus := range []bool{false, true} {
			if got := sorted(names(x.list(x.Root, plus, 1000))); !slices.Equal(got, sorted(want)) {
				x.Fatalf("plus=%v lists %v, want %v", plus, got, sorted(want))
			}
		}
	}},
	{"a refused entry is not consumed", func(x *tester) {
		x.fill(x.Root, "f", 25)
		full := names(x.list(x.Root, false, 1000))
		for _, page := range []int{1, 2, 3, 7} {
			if got := names(x.list(x.Root, false, page)); !slices.Equal(got, full) {
				x.Fatalf("in pages of %d: %v, want %v", page, got, full)
			}
		}
	}},
	{"eof only after the last entry", func(x *tester) {
		x.fill(x.Root, "f", 3)
		n := len(x.list(x.Root, false, 1000))
		seen := 0
		_, eof, _, err := x.FS.ReadDir(ctx, Cred, x.Root, 0, vfs.Verifier{}, false, func(vfs.DirEntry) bool {
			seen++
			return seen < n // refuse the last one
		})
		x.noErr("readdir", err)
		if eof {
			x.Fatal("eof although the last entry was refused")
		}
	}},
	{"cookies survive changes", func(x *tester) {
		// Entries present all along appear exactly once; entries removed
		// before the listing reached them do not appear.
		all := x.fill(x.Root, "a", 40)
		var first []vfs.DirEntry
		var verf vfs.Verifier
		verf, _, _, err := x.FS.ReadDir(ctx, Cred, x.Root, 0, vfs.Verifier{}, false, func(e vfs.DirEntry) bool {
			if len(first) == 15 {
				return false
			}
			first = append(first, e)
			return true
		})
		x.noErr("readdir", err)
		seen := map[string]int{}
		for _, e := range first {
			seen[e.Name]++
		}
		removed := map[string]bool{}
		for _, name := range all {
			if seen[name] == 0 && len(removed) < 5 {
				removed[name] = true
			}
		}
		for _, name := range names(first)[:3] {
			removed[name] = true
		}
		for name := range removed {
			_, err := x.FS.Remove(ctx, Cred, x.Root, name)
			x.noErr("remove", err)
		}
		x.fill(x.Root, "b", 20)
		cookie := first[len(first)-1].Cookie
		for range 1000 {
			var got []vfs.DirEntry
			v, eof, _, err := x.FS.ReadDir(ctx, Cred, x.Root, cookie, verf, false, func(e vfs.DirEntry) bool {
				if len(got) == 10 {
					return false
				}
				got = append(got, e)
				return true
			})
			x.noErr("readdir after changes", err)
			for _, e := range got {
				seen[e.Name]++
			}
			if eof {
				break
			}
			cookie, verf = got[len(got)-1].Cookie, v
		}
		for _, name := range all {
			switch {
			case seen[name] > 1:
				x.Errorf("%s listed %d times", name, seen[name])
			case seen[name] == 0 && !removed[name]:
				x.Errorf("%s, present all along, not listed", name)
			case seen[name] == 1 && removed[name] && !slices.Contains(names(first), name):
				x.Errorf("%s listed after it was removed", name)
			}
		}
		for name, n := range seen {
			if n > 1 {
				x.Errorf("%s listed %d times", name, n)
			}
		}
	}},
	{"plus has handles and attributes", func(x *tester) {
		x.fill(x.Root, "f", 5)
		x.mkdir(x.Root, "d")
		for _, e := range x.list(x.Root, true, 1000) {
			if e.Attr == nil || len(e.Handle) == 0 {
				x.Fatalf("%s: attr %v handle %x", e.Name, e.Attr, e.Handle)
			}
			if e.Attr.FileID != e.FileID {
				x.Fatalf("%s: fileid %d, attr fileid %d", e.Name, e.FileID, e.Attr.FileID)
			}
			a := x.attr(e.Handle)
			if a.FileID != e.Attr.FileID || a.Type != e.Attr.Type {
				x.Fatalf("%s: handle names %+v, attr says %+v", e.Name, a, e.Attr)
			}
			if e.Name == "." || e.Name == ".." {
				continue
			}
			if h, _ := x.lookup(x.Root, e.Name); !bytes.Equal(h, e.Handle) {
				x.Fatalf("%s: readdirplus handle %x, lookup %x", e.Name, e.Handle, h)
			}
		}
	}},
	{"fileids match getattr", func(x *tester) {
		f := x.create(x.Root, "f")
		d := x.mkdir(x.Root, "d")
		ids := map[string]uint64{"f": x.attr(f).FileID, "d": x.attr(d).FileID, ".": x.attr(x.Root).FileID}
		for _, e := range x.list(x.Root, false, 1000) {
			if want, ok := ids[e.Name]; ok && e.FileID != want {
				x.Errorf("%s: fileid %d, getattr %d", e.Name, e.FileID, want)
			}
		}
	}},
	{"verifier with its cookie is accepted", func(x *tester) {
		x.fill(x.Root, "f", 4)
		var first vfs.DirEntry
		v, _, _, err := x.FS.ReadDir(ctx, Cred, x.Root, 0, vfs.Verifier{}, false, func(e vfs.DirEntry) bool {
			if first.Name != "" {
				return false
			}
			first = e
			return true
		})
		x.noErr("readdir", err)
		_, _, _, err = x.FS.ReadDir(ctx, Cred, x.Root, first.Cookie, v, false, func(vfs.DirEntry) bool { return true })
		x.noErr("readdir with the returned cookie and verifier", err)
	}},
	{"of a file is ENOTDIR", func(x *tester) {
		f := x.create(x.Root, "f")
		_, _, _, err := x.FS.ReadDir(ctx, Cred, f, 0, vfs.Verifier{}, false, func(vfs.DirEntry) bool { return true })
		x.wantErr("readdir of a file", err, syscall.ENOTDIR)
	}},
}

var handleCases = []testCase{
	{"malformed is ErrBadHandle", func(x *tester) {
		bad := map[string]vfs.Handle{
			"empty":     {},
			"nil":       nil,
			"one byte":  {1},
			"truncated": x.Root[:len(x.Root)-1],
			"extended":  append(slices.Clone(x.Root), 0),
			"too long":  vfs.Handle(bytes.Repeat([]byte{1}, vfs.MaxHandleSize+1)),
		}
		for name, h := range bad {
			_, err := x.FS.GetAttr(ctx, h)
			x.wantErr("getattr of a "+name+" handle", err, vfs.ErrBadHandle)
			_, _, _, err = x.FS.Lookup(ctx, Cred, h, "x")
			x.wantErr("lookup in a "+name+" handle", err, vfs.ErrBadHandle)
			_, _, _, err = x.FS.Read(ctx, Cred, h, 0, make([]byte, 1))
			x.wantErr("read of a "+name+" handle", err, vfs.ErrBadHandle)
			_, _, _, err = x.FS.Create(ctx, Cred, h, "x", vfs.CreateGuarded, vfs.SetAttr{}, vfs.Verifier{})
			x.wantErr("create in a "+name+" handle", err, vfs.ErrBadHandle)
		}
	}},
	{"forged is refused", func(x *tester) {
		f := x.create(x.Root, "f")
		h := slices.Clone(f)
		h[len(h)-1] ^= 0x80
		_, err := x.FS.GetAttr(ctx, h)
		if !errors.Is(err, vfs.ErrBadHandle) && !errors.Is(err, vfs.ErrStale) {
			x.Fatalf("getattr of a damaged handle: %v, want ErrBadHandle or ErrStale", err)
		}
	}},
	{"stable across lookups", func(x *tester) {
		d := x.mkdir(x.Root, "d")
		f := x.create(d, "f")
		for range 3 {
			if h, _ := x.lookup(d, "f"); !bytes.Equal(h, f) {
				x.Fatalf("lookup gave %x, create %x", h, f)
			}
		}
		if h, _ := x.lookup(x.Root, "d"); !bytes.Equal(h, d) {
			x.Fatalf("lookup gave %x, mkdir %x", h, d)
		}
	}},
	{"at most MaxHandleSize", func(x *tester) {
		d := x.mkdir(x.Root, "d")
		for _, h := range []vfs.Handle{x.Root, d, x.create(d, "f"), x.symlink(d, "l", "t"), x.mknod(d, "p", vfs.TypeFIFO)} {
			if len(h) == 0 || len(h) > vfs.MaxHandleSize {
				x.Fatalf("handle of %d bytes", len(h))
			}
		}
	}},
}

var fsStatCases = []testCase{
	{"consistent", func(x *tester) {
		st, a, err := x.FS.FSStat(ctx, x.Root)
		x.noErr("fsstat", err)
		if a == nil || a.Type != vfs.TypeDirectory {
			x.Fatalf("attributes %+v", a)
		}
		if st.TotalBytes == 0 || st.FreeBytes > st.TotalBytes || st.AvailBytes > st.FreeBytes ||
			st.FreeFiles > st.TotalFiles || st.AvailFiles > st.FreeFiles {
			x.Fatalf("inconsistent %+v", st)
		}
	}},
	{"of a file", func(x *tester) {
		f := x.create(x.Root, "f")
		_, a, err := x.FS.FSStat(ctx, f)
		x.noErr("fsstat of a file", err)
		if a == nil || a.Type != vfs.TypeRegular {
			x.Fatalf("attributes %+v", a)
		}
	}},
}

var commitCases = []testCase{
	{"file", func(x *tester) {
		f := x.create(x.Root, "f")
		_, _, _, err := x.FS.Write(ctx, Cred, f, 0, []byte("data"), vfs.Unstable)
		x.noErr("write", err)
		w, err := x.FS.Commit(ctx, Cred, f, 0, 0)
		x.noErr("commit", err)
		x.wantWcc("commit", w)
		if w.After.Size != 4 {
			x.Fatalf("size after commit %d", w.After.Size)
		}
	}},
	{"directory is EISDIR", func(x *tester) {
		_, err := x.FS.Commit(ctx, Cred, x.Root, 0, 0)
		x.wantErr("commit a directory", err, syscall.EISDIR)
	}},
	{"FIFO is EINVAL", func(x *tester) {
		p := x.mknod(x.Root, "p", vfs.TypeFIFO)
		_, err := x.FS.Commit(ctx, Cred, p, 0, 0)
		x.wantErr("commit a FIFO", err, syscall.EINVAL)
	}},
}

// limit applies Env.Limit, or skips a case the FS cannot run.
func (x *tester) limit(bytes, inodes uint64) {
	x.Helper()
	if x.Limit == nil {
		x.Skip("the FS has no limits (Env.Limit is nil)")
	}
	x.Limit(x.T, bytes, inodes)
}

var quotaCases = []testCase{
	{"inode limit", func(x *tester) {
		x.limit(1<<30, 1)
		x.create(x.Root, "f")
		_, _, _, err := x.FS.Create(ctx, Cred, x.Root, "g", vfs.CreateGuarded, vfs.SetAttr{}, vfs.Verifier{})
		x.wantErr("create past the inode limit", err, syscall.EDQUOT)
		_, _, _, err = x.FS.Mkdir(ctx, Cred, x.Root, "d", vfs.SetAttr{})
		x.wantErr("mkdir past the inode limit", err, syscall.EDQUOT)
		_, _, _, err = x.FS.Symlink(ctx, Cred, x.Root, "l", "t", vfs.SetAttr{})
		x.wantErr("symlink past the inode limit", err, syscall.EDQUOT)
		_, _, _, err = x.FS.Mknod(ctx, Cred, x.Root, "p", vfs.TypeFIFO, vfs.SetAttr{}, 0, 0)
		x.wantErr("mknod past the inode limit", err, syscall.EDQUOT)
		if x.Devices {
			_, _, _, err = x.FS.Mknod(ctx, rootCred, x.Root, "c", vfs.TypeChar, vfs.SetAttr{}, 1, 3)
			x.wantErr("mknod of a device past the inode limit", err, syscall.EDQUOT)
		}
		for _, name := range []string{"g", "d", "l", "p", "c"} {
			x.gone(x.Root, name)
		}
	}},
	{"no new inode needs no quota", func(x *tester) {
		x.limit(1<<30, 1)
		f := x.create(x.Root, "f")
		x.write(f, 0, "data")
		_, _, _, err := x.FS.Create(ctx, Cred, x.Root, "f", vfs.CreateUnchecked, vfs.SetAttr{}, vfs.Verifier{})
		x.noErr("unchecked create of an existing file at the limit", err)
		_, _, err = x.FS.Link(ctx, Cred, f, x.Root, "g")
		x.noErr("link at the inode limit", err)
		_, _, err = x.FS.Rename(ctx, Cred, x.Root, "g", x.Root, "h")
		x.noErr("rename at the inode limit", err)
	}},
	{"remove frees an inode", func(x *tester) {
		x.limit(1<<30, 1)
		x.create(x.Root, "f")
		_, err := x.FS.Remove(ctx, Cred, x.Root, "f")
		x.noErr("remove", err)
		x.create(x.Root, "g")
	}},
	{"byte limit refuses a write whole", func(x *tester) {
		x.limit(256<<10, 100)
		f := x.create(x.Root, "f")
		x.write(f, 0, strings.Repeat("a", 4096))
		_, _, _, err := x.FS.Write(ctx, Cred, f, 4096, make([]byte, 1<<20), vfs.FileSync)
		x.wantErr("write past the byte limit", err, syscall.EDQUOT)
		if a := x.attr(f); a.Size != 4096 {
			x.Fatalf("size %d after a refused write, want 4096", a.Size)
		}
		x.write(f, 0, strings.Repeat("b", 4096)) // overwriting allocates nothing
	}},
	{"fsstat reports the limits", func(x *tester) {
		x.limit(1<<20, 10)
		st, _, err := x.FS.FSStat(ctx, x.Root)
		x.noErr("fsstat", err)
		if st.AvailBytes > 1<<20 || st.AvailFiles > 10 || st.AvailFiles == 0 {
			x.Fatalf("fsstat %+v past limits of 1 MiB and 10 inodes more", st)
		}
	}},
}
