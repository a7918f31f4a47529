package localfs

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

// The namespace operations take shortcuts when the object they touch has
// an open node (REMOVE holds the victim by it, READDIRPLUS takes its
// handle from it) and the long way otherwise, as after a restart. Both
// ways must give the same handles, usage and staleness.

func TestReadDirPlusHandlesOpenOrNot(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		d := env.mkdir(t, env.root, "d")
		want := map[string]vfs.Handle{}
		for i := range 20 {
			name := fmt.Sprintf("f%d", i)
			want[name] = env.create(t, d, name)
		}
		check := func(what string) {
			t.Helper()
			n := 0
			for _, e := range listAll(t, env.fs, d, true, 1000) {
				if w, ok := want[e.Name]; ok {
					n++
					if !bytes.Equal(e.Handle, w) || e.Attr == nil || e.Attr.FileID != e.FileID {
						t.Fatalf("%s: entry %q: handle %x attr %+v, want handle %x", what, e.Name, e.Handle, e.Attr, w)
					}
				}
			}
			if n != len(want) {
				t.Fatalf("%s: %d entries, want %d", what, n, len(want))
			}
		}
		check("open nodes")
		env.open(t, Options{})
		check("after a restart")
		// Replaced under an open node's name: the entry is the new file.
		if _, err := env.fs.Remove(ctx, user, d, "f0"); err != nil {
			t.Fatal(err)
		}
		want["f0"] = env.create(t, d, "f0")
		check("after a replacement")
	})
}

func TestRemoveOpenOrNot(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		env.configure(t, ExportConfig{MaxInodes: 100})
		var hs []vfs.Handle
		for i := range 4 {
			h := env.create(t, env.root, fmt.Sprintf("f%d", i))
			env.write(t, h, 0, string(make([]byte, 64<<10)))
			hs = append(hs, h)
		}
		dh := env.mkdir(t, env.root, "d")
		before := env.usage(t)
		// f0, f1 and d have open nodes; f2 and f3 are opened by the
		// removal itself after a restart that closed every node.
		for _, name := range []string{"f0", "f1"} {
			if _, err := env.fs.Remove(ctx, user, env.root, name); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := env.fs.Rmdir(ctx, user, env.root, "d"); err != nil {
			t.Fatal(err)
		}
		env.checkScan(t)
		env.open(t, Options{})
		env.configure(t, ExportConfig{MaxInodes: 100})
		for _, name := range []string{"f2", "f3"} {
			if _, err := env.fs.Remove(ctx, user, env.root, name); err != nil {
				t.Fatal(err)
			}
		}
		env.checkScan(t)
		if u := env.usage(t); u.Inodes != before.Inodes-5 {
			t.Fatalf("inodes %d after removing 5 of %d", u.Inodes, before.Inodes)
		}
		for _, h := range append(hs, dh) {
			_, err := env.fs.GetAttr(ctx, h)
			wantErr(t, "getattr of a removed object", err, vfs.ErrStale)
		}
		_, err := env.fs.Remove(ctx, user, env.root, "f0")
		wantErr(t, "second removal", err, unix.ENOENT)
	})
}

// A root caller's new files and directories are made with their final
// mode where the umask allows, and with no change after: the attributes
// CREATE and MKDIR return (from the creation's own stat then) must be what
// GETATTR says, whatever the umask took.
func TestRootNewObjectModes(t *testing.T) {
	old := unix.Umask(0o022)
	defer unix.Umask(old)
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		f := env.fs
		sgid, _, _, err := f.Mkdir(ctx, root, env.root, "sgid", vfs.SetAttr{Mode: u32(0o2775)})
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range []*uint32{nil, u32(0o755), u32(0o775), u32(0o700), u32(0o1777), u32(0o4755)} {
			for _, dir := range []vfs.Handle{env.root, sgid} {
				name := fmt.Sprintf("o%d", i)
				check := func(what string, h vfs.Handle, a *vfs.Attr, def uint32) {
					t.Helper()
					want := def
					if m != nil {
						want = *m
					}
					if a.Type == vfs.TypeDirectory && bytes.Equal(dir, sgid) {
						want |= unix.S_ISGID
					}
					got := env.getattr(t, h)
					if a.Mode != want || got != *a {
						t.Fatalf("%s mode %v in %x: returned %+v, getattr %+v, want mode %o", what, m, dir[:4], *a, got, want)
					}
				}
				h, a, _, err := f.Mkdir(ctx, root, dir, "d"+name, vfs.SetAttr{Mode: m})
				if err != nil {
					t.Fatal(err)
				}
				check("mkdir", h, a, defaultDirMode)
				h, a, _, err = f.Create(ctx, root, dir, "f"+name, vfs.CreateGuarded, vfs.SetAttr{Mode: m}, vfs.Verifier{})
				if err != nil {
					t.Fatal(err)
				}
				check("create", h, a, defaultFileMode)
			}
		}
	})
}

// A SETATTR of the mode a file has plus its times (what Linux sends after
// every exclusive CREATE) leaves the chmod out; the result must be what
// the chmod would have given: the mode kept, the times set, ctime moved.
func TestSetAttrSameModeWithTimes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		h := env.create(t, env.root, "f")
		before := env.getattr(t, h)
		for _, sa := range []vfs.SetAttr{
			{Mode: u32(before.Mode), Atime: vfs.SetTime{How: vfs.TimeServer}, Mtime: vfs.SetTime{How: vfs.TimeServer}},
			{Mode: u32(before.Mode), Mtime: vfs.SetTime{How: vfs.TimeClient, Time: before.Mtime.Add(-time.Hour)}},
			{Mode: u32(before.Mode)}, // no time: the chmod alone moves ctime
		} {
			prev := env.getattr(t, h)
			time.Sleep(10 * time.Millisecond) // past the file system's timestamp granularity
			wcc, err := env.fs.SetAttr(ctx, user, h, sa, nil)
			if err != nil {
				t.Fatal(err)
			}
			a := env.getattr(t, h)
			if a.Mode != before.Mode || !a.Ctime.After(prev.Ctime) || wcc.After == nil || *wcc.After != a {
				t.Fatalf("setattr %+v: before %+v, after %+v, wcc after %+v", sa, prev, a, wcc.After)
			}
			if sa.Mtime.How == vfs.TimeClient && !a.Mtime.Equal(sa.Mtime.Time) {
				t.Fatalf("mtime %v, want %v", a.Mtime, sa.Mtime.Time)
			}
		}
	})
}
