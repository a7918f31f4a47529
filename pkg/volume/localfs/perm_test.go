package localfs

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

var other = vfs.Cred{UID: 2000, GID: 2000}

func TestPermDenied(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		f := env.fs
		// user's private directory and files.
		d, a, _, err := f.Mkdir(ctx, user, env.root, "private", vfs.SetAttr{Mode: u32(0o700)})
		if err != nil || a.UID != 1000 || a.GID != 1000 {
			t.Fatalf("mkdir: %v %+v", err, a)
		}
		secret, _, _, err := f.Create(ctx, user, env.root, "secret", vfs.CreateGuarded, vfs.SetAttr{Mode: u32(0o600)}, vfs.Verifier{})
		if err != nil {
			t.Fatal(err)
		}
		env.write(t, secret, 0, "hush")
		pub, _, _, err := f.Create(ctx, user, env.root, "public", vfs.CreateGuarded, vfs.SetAttr{Mode: u32(0o644)}, vfs.Verifier{})
		if err != nil {
			t.Fatal(err)
		}
		env.create(t, d, "inner")

		_, _, _, err = f.Lookup(ctx, other, d, "inner")
		wantErr(t, "lookup without search permission", err, unix.EACCES)
		_, _, _, err = f.Create(ctx, other, d, "x", vfs.CreateGuarded, vfs.SetAttr{}, vfs.Verifier{})
		wantErr(t, "create without write permission", err, unix.EACCES)
		_, _, _, err = f.Mkdir(ctx, other, d, "x", vfs.SetAttr{})
		wantErr(t, "mkdir without write permission", err, unix.EACCES)
		_, err = f.Remove(ctx, other, d, "inner")
		wantErr(t, "remove without write permission", err, unix.EACCES)
		_, _, err = f.Rename(ctx, other, d, "inner", env.root, "stolen")
		wantErr(t, "rename without write permission", err, unix.EACCES)
		_, _, err = f.Link(ctx, other, pub, d, "x")
		wantErr(t, "link without write permission", err, unix.EACCES)
		_, _, _, err = f.ReadDir(ctx, other, d, 0, vfs.Verifier{}, false, func(vfs.DirEntry) bool { return true })
		wantErr(t, "readdir without read permission", err, unix.EACCES)
		_, _, _, err = f.Read(ctx, other, secret, 0, make([]byte, 10))
		wantErr(t, "read without permission", err, unix.EACCES)
		_, _, _, err = f.Write(ctx, other, pub, 0, []byte("x"), vfs.FileSync)
		wantErr(t, "write without permission", err, unix.EACCES)
		_, err = f.SetAttr(ctx, other, pub, vfs.SetAttr{Size: u64(0)}, nil)
		wantErr(t, "truncate without permission", err, unix.EACCES)
		if _, _, _, err := f.Read(ctx, other, pub, 0, make([]byte, 10)); err != nil {
			t.Fatalf("read of a public file: %v", err)
		}
		// ACCESS agrees with what is enforced.
		g, _, _ := f.Access(ctx, other, secret, vfs.AccessRead|vfs.AccessModify)
		if g != 0 {
			t.Fatalf("access granted %#x on a private file", g)
		}
		// Root is not checked, and nothing above changed anything.
		if got := env.read(t, secret); got != "hush" {
			t.Fatalf("secret is %q", got)
		}
		if _, _, _, err := f.Lookup(ctx, root, d, "inner"); err != nil {
			t.Fatal(err)
		}
		// Supplementary groups count.
		if _, err := f.SetAttr(ctx, user, secret, vfs.SetAttr{Mode: u32(0o640), GID: u32(3000)}, nil); err == nil {
			t.Fatal("chgrp to a group the owner is not in succeeded")
		}
		member := vfs.Cred{UID: 1000, GID: 1000, Groups: []uint32{3000}}
		if _, err := f.SetAttr(ctx, member, secret, vfs.SetAttr{Mode: u32(0o640), GID: u32(3000)}, nil); err != nil {
			t.Fatalf("chgrp to a supplementary group: %v", err)
		}
		if _, _, _, err := f.Read(ctx, vfs.Cred{UID: 2000, GID: 2000, Groups: []uint32{3000}}, secret, 0, make([]byte, 10)); err != nil {
			t.Fatalf("read by a group member: %v", err)
		}
	})
}

func TestPermOwnerOverride(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		f := env.fs
		// cp -p / tar create files 0444 and then write them.
		h, a, _, err := f.Create(ctx, user, env.root, "ro", vfs.CreateGuarded, vfs.SetAttr{Mode: u32(0o444)}, vfs.Verifier{})
		if err != nil || a.Mode != 0o444 || a.UID != 1000 {
			t.Fatalf("create: %v %+v", err, a)
		}
		env.write(t, h, 0, "still mine")
		_, _, _, err = f.Write(ctx, other, h, 0, []byte("x"), vfs.FileSync)
		wantErr(t, "write by another user", err, unix.EACCES)
	})
}

func TestPermSetAttr(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		f := env.fs
		h := env.create(t, env.root, "f")
		_, err := f.SetAttr(ctx, other, h, vfs.SetAttr{Mode: u32(0o777)}, nil)
		wantErr(t, "chmod by another user", err, unix.EPERM)
		_, err = f.SetAttr(ctx, user, h, vfs.SetAttr{UID: u32(2000)}, nil)
		wantErr(t, "chown by the owner", err, unix.EPERM)
		_, err = f.SetAttr(ctx, other, h, vfs.SetAttr{Mtime: vfs.SetTime{How: vfs.TimeClient, Time: time.Unix(1, 0)}}, nil)
		wantErr(t, "set times by another user", err, unix.EPERM)
		_, err = f.SetAttr(ctx, other, h, vfs.SetAttr{Mtime: vfs.SetTime{How: vfs.TimeServer}}, nil)
		wantErr(t, "touch by another user without write permission", err, unix.EACCES)
		if _, err := f.SetAttr(ctx, user, h, vfs.SetAttr{Mtime: vfs.SetTime{How: vfs.TimeClient, Time: time.Unix(1, 0)}}, nil); err != nil {
			t.Fatalf("owner sets times: %v", err)
		}
		if _, err := f.SetAttr(ctx, root, h, vfs.SetAttr{UID: u32(2000), GID: u32(2000)}, nil); err != nil {
			t.Fatalf("root chowns: %v", err)
		}
		// A non-member cannot set setgid: it is dropped, as chmod does.
		if _, err := f.SetAttr(ctx, root, h, vfs.SetAttr{GID: u32(5000)}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := f.SetAttr(ctx, other, h, vfs.SetAttr{Mode: u32(0o2755)}, nil); err != nil {
			t.Fatal(err)
		}
		if m := env.getattr(t, h).Mode; m != 0o755 {
			t.Fatalf("mode %o after chmod g+s by a non-member, want 755", m)
		}
		// A write by a non-root user clears setuid.
		if _, err := f.SetAttr(ctx, root, h, vfs.SetAttr{Mode: u32(0o4777)}, nil); err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := f.Write(ctx, user, h, 0, []byte("x"), vfs.FileSync); err != nil {
			t.Fatal(err)
		}
		if m := env.getattr(t, h).Mode; m != 0o777 {
			t.Fatalf("mode %o after a write by a non-owner, want 777", m)
		}
	})
}

func TestPermSticky(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		f := env.fs
		tmp, _, _, err := f.Mkdir(ctx, root, env.root, "tmp", vfs.SetAttr{Mode: u32(0o1777)})
		if err != nil {
			t.Fatal(err)
		}
		env.create(t, tmp, "mine")
		_, err = f.Remove(ctx, other, tmp, "mine")
		wantErr(t, "remove another's file in a sticky dir", err, unix.EPERM)
		_, _, err = f.Rename(ctx, other, tmp, "mine", tmp, "theirs")
		wantErr(t, "rename another's file in a sticky dir", err, unix.EPERM)
		if _, _, _, err := f.Create(ctx, other, tmp, "theirs", vfs.CreateGuarded, vfs.SetAttr{}, vfs.Verifier{}); err != nil {
			t.Fatal(err)
		}
		_, _, err = f.Rename(ctx, other, tmp, "theirs", tmp, "mine")
		wantErr(t, "rename over another's file in a sticky dir", err, unix.EPERM)
		if _, err := f.Remove(ctx, user, tmp, "mine"); err != nil {
			t.Fatalf("owner removes in a sticky dir: %v", err)
		}
		if _, err := f.Remove(ctx, root, tmp, "theirs"); err != nil {
			t.Fatalf("root removes in a sticky dir: %v", err)
		}
	})
}

func TestRootSquash(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		f := env.fs
		h, _, _, err := f.Create(ctx, user, env.root, "private", vfs.CreateGuarded, vfs.SetAttr{Mode: u32(0o600)}, vfs.Verifier{})
		if err != nil {
			t.Fatal(err)
		}
		env.configure(t, ExportConfig{RootSquash: true, AnonUID: 65534, AnonGID: 65533})
		_, a, _, err := f.Create(ctx, vfs.Cred{Groups: []uint32{0}}, env.root, "byroot", vfs.CreateGuarded, vfs.SetAttr{}, vfs.Verifier{})
		if err != nil || a.UID != 65534 || a.GID != 65533 {
			t.Fatalf("create by squashed root: %v %+v", err, a)
		}
		_, _, _, err = f.Read(ctx, root, h, 0, make([]byte, 10))
		wantErr(t, "squashed root reads a private file", err, unix.EACCES)
		_, err = f.SetAttr(ctx, root, h, vfs.SetAttr{UID: u32(0)}, nil)
		wantErr(t, "squashed root chowns", err, unix.EPERM)
		// Other users are not affected.
		env.write(t, h, 0, "ok")
	})
}

// TestFSGroup does what kubelet does for fsGroupPolicy File (as root, over
// NFS): chown every object to the fsGroup, add group rw (rwx for
// directories) and setgid on directories; then the pod's user, a member
// of fsGroup, creates files that get the group.
func TestFSGroup(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		f := env.fs
		const fsGroup = 3000
		d := env.mkdir(t, env.root, "data")
		fh := env.create(t, d, "old")
		for _, o := range []struct {
			h   vfs.Handle
			dir bool
		}{{env.root, true}, {d, true}, {fh, false}} {
			a := env.getattr(t, o.h)
			if _, err := f.SetAttr(ctx, root, o.h, vfs.SetAttr{GID: u32(fsGroup)}, nil); err != nil {
				t.Fatal(err)
			}
			mode := a.Mode | 0o060
			if o.dir {
				mode |= 0o2070
			}
			if _, err := f.SetAttr(ctx, root, o.h, vfs.SetAttr{Mode: &mode}, nil); err != nil {
				t.Fatal(err)
			}
			if got := env.getattr(t, o.h); got.Mode != mode || got.GID != fsGroup {
				t.Fatalf("after chown/chmod: mode %o gid %d, want %o %d", got.Mode, got.GID, mode, fsGroup)
			}
		}
		pod := vfs.Cred{UID: 1001, GID: 1001, Groups: []uint32{fsGroup}}
		_, a, _, err := f.Create(ctx, pod, d, "new", vfs.CreateGuarded, vfs.SetAttr{Mode: u32(0o664)}, vfs.Verifier{})
		if err != nil || a.UID != 1001 || a.GID != fsGroup || a.Mode != 0o664 {
			t.Fatalf("pod creates: %v %+v", err, a)
		}
		_, a, _, err = f.Mkdir(ctx, pod, d, "sub", vfs.SetAttr{Mode: u32(0o775)})
		if err != nil || a.GID != fsGroup || a.Mode != 0o2775 {
			t.Fatalf("pod mkdir: %v %+v", err, a)
		}
		// A non-member cannot create a setgid file of the directory's group.
		_, a, _, err = f.Create(ctx, other, d, "sgid", vfs.CreateGuarded, vfs.SetAttr{Mode: u32(0o2775)}, vfs.Verifier{})
		if err == nil || a != nil {
			// d is 2775 + group fsGroup: other (not a member) may not
			// create at all.
			t.Fatalf("non-member creates in the fsGroup dir: %v", err)
		}
		_, a, _, err = f.Create(ctx, pod, d, "sgid", vfs.CreateGuarded, vfs.SetAttr{Mode: u32(0o2775)}, vfs.Verifier{})
		if err != nil || a.Mode != 0o2775 {
			t.Fatalf("member creates a setgid file: %v %+v", err, a)
		}
		// The group-writable old file is the pod's to write.
		if _, _, _, err := f.Write(ctx, pod, fh, 0, []byte("x"), vfs.FileSync); err != nil {
			t.Fatalf("pod writes the old file: %v", err)
		}
	})
}

func TestPermCreateStripsSetgid(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		f := env.fs
		d, _, _, err := f.Mkdir(ctx, root, env.root, "shared", vfs.SetAttr{Mode: u32(0o2777), GID: u32(4242)})
		if err != nil {
			t.Fatal(err)
		}
		_, a, _, err := f.Create(ctx, user, d, "f", vfs.CreateGuarded, vfs.SetAttr{Mode: u32(0o2755)}, vfs.Verifier{})
		if err != nil || a.GID != 4242 || a.Mode != 0o755 {
			t.Fatalf("setgid file by a non-member: %v %+v", err, a)
		}
	})
}

// TestPermReadDirPlusNeedsSearch: a directory the caller may read but not
// search (mode r--) lists names, but READDIRPLUS must not hand out the
// entries' handles and attributes: with a handle the caller could read a
// file LOOKUP refuses to reach, bypassing the search permission (knfsd
// likewise omits them when the lookup fails).
func TestPermReadDirPlusNeedsSearch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		f := env.fs
		d, _, _, err := f.Mkdir(ctx, user, env.root, "listonly", vfs.SetAttr{Mode: u32(0o700)})
		if err != nil {
			t.Fatal(err)
		}
		in, _, _, err := f.Create(ctx, user, d, "inner", vfs.CreateGuarded, vfs.SetAttr{Mode: u32(0o644)}, vfs.Verifier{})
		if err != nil {
			t.Fatal(err)
		}
		env.write(t, in, 0, "behind a search-denied directory")
		if _, err := f.SetAttr(ctx, user, d, vfs.SetAttr{Mode: u32(0o744)}, nil); err != nil {
			t.Fatal(err)
		}
		_, _, _, err = f.Lookup(ctx, other, d, "inner")
		wantErr(t, "lookup without search permission", err, unix.EACCES)
		seen := false
		_, _, _, err = f.ReadDir(ctx, other, d, 0, vfs.Verifier{}, true, func(e vfs.DirEntry) bool {
			if e.Name == "inner" {
				seen = true
				if e.Handle != nil || e.Attr != nil {
					t.Errorf("READDIRPLUS without search permission gave %q a handle/attributes", e.Name)
				}
			}
			return true
		})
		if err != nil || !seen {
			t.Fatalf("readdirplus with read permission: err %v, listed inner %v", err, seen)
		}
	})
}
