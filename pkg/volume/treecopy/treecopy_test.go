package treecopy_test

import (
	"bytes"
	"crypto/rand"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/volume/loopfs"
	"github.com/hangar-csi/hangar/pkg/volume/treecopy"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// makeTree builds a tree with every kind of object a client can make, in
// src; outside is a file next to it that a symlink points at.
func makeTree(t *testing.T, src, outside string) {
	must(t, os.MkdirAll(filepath.Join(src, "a/b/c"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "a/data"), []byte("hello snapshot"), 0o640))
	big := make([]byte, 3<<20+123)
	rand.Read(big)
	must(t, os.WriteFile(filepath.Join(src, "a/b/big"), big, 0o600))
	// A sparse file: data, a hole, data.
	f, err := os.Create(filepath.Join(src, "sparse"))
	must(t, err)
	f.WriteAt([]byte("start"), 0)
	f.WriteAt([]byte("end"), 64<<20)
	f.Close()
	must(t, os.Link(filepath.Join(src, "a/data"), filepath.Join(src, "a/b/c/hardlink")))
	must(t, os.Symlink(outside, filepath.Join(src, "escape")))
	must(t, os.Symlink("../data", filepath.Join(src, "a/b/rel")))
	must(t, unix.Mkfifo(filepath.Join(src, "fifo"), 0o620))
	must(t, unix.Mknod(filepath.Join(src, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(t, os.WriteFile(filepath.Join(src, "setuid"), []byte("x"), 0o644))
	must(t, os.Chown(filepath.Join(src, "setuid"), 1234, 5678))
	must(t, os.Chmod(filepath.Join(src, "setuid"), 0o4755|fs.ModeSetuid))
	must(t, unix.Lchown(filepath.Join(src, "escape"), 42, 43))
	must(t, os.Chown(filepath.Join(src, "a/b"), 1000, 1000))
	must(t, os.Chmod(filepath.Join(src, "a/b"), 0o1770|fs.ModeSticky))
	old := time.Date(2001, 2, 3, 4, 5, 6, 7000, time.UTC)
	must(t, os.Chtimes(filepath.Join(src, "a/data"), old, old))
	must(t, os.Chtimes(filepath.Join(src, "a"), old, old))
}

// compareTrees checks dst is a faithful copy of src.
func compareTrees(t *testing.T, src, dst string) {
	t.Helper()
	inodes := map[uint64]uint64{} // src inode -> dst inode, for hard links
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		q := filepath.Join(dst, rel)
		var a, b unix.Stat_t
		must(t, unix.Lstat(p, &a))
		if err := unix.Lstat(q, &b); err != nil {
			t.Errorf("%s missing from copy: %v", rel, err)
			return nil
		}
		if a.Mode != b.Mode || a.Uid != b.Uid || a.Gid != b.Gid || a.Rdev != b.Rdev {
			t.Errorf("%s: mode/owner/rdev %o %d:%d %d, copy has %o %d:%d %d", rel, a.Mode, a.Uid, a.Gid, a.Rdev, b.Mode, b.Uid, b.Gid, b.Rdev)
		}
		if a.Mode&unix.S_IFMT != unix.S_IFLNK && a.Mtim != b.Mtim {
			t.Errorf("%s: mtime %v, copy has %v", rel, a.Mtim, b.Mtim)
		}
		if a.Mode&unix.S_IFMT != unix.S_IFDIR {
			if prev, ok := inodes[a.Ino]; ok && prev != b.Ino {
				t.Errorf("%s: hard link not preserved", rel)
			}
			inodes[a.Ino] = b.Ino
			if a.Nlink != b.Nlink {
				t.Errorf("%s: nlink %d, copy has %d", rel, a.Nlink, b.Nlink)
			}
		}
		switch a.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			x, _ := os.ReadFile(p)
			y, _ := os.ReadFile(q)
			if !bytes.Equal(x, y) || a.Size != b.Size {
				t.Errorf("%s: content differs", rel)
			}
		case unix.S_IFLNK:
			x, _ := os.Readlink(p)
			y, _ := os.Readlink(q)
			if x != y {
				t.Errorf("%s: symlink target %q, copy has %q", rel, x, y)
			}
		}
		return nil
	})
	must(t, err)
}

func TestCopyEveryFileSystem(t *testing.T) {
	for _, kind := range loopfs.Kinds {
		t.Run(kind, func(t *testing.T) {
			mnt := loopfs.Mount(t, kind, 512<<20)
			src, dst := filepath.Join(mnt, "src"), filepath.Join(mnt, "dst")
			outside := filepath.Join(mnt, "outside")
			must(t, os.WriteFile(outside, []byte("not in the volume"), 0o600))
			must(t, os.Mkdir(src, 0o777))
			makeTree(t, src, outside)
			// A mount inside the volume is not part of it.
			must(t, os.Mkdir(filepath.Join(src, "mnt"), 0o755))
			must(t, unix.Mount("tmpfs", filepath.Join(src, "mnt"), "tmpfs", 0, "size=1m"))
			defer unix.Unmount(filepath.Join(src, "mnt"), unix.MNT_DETACH)
			must(t, os.WriteFile(filepath.Join(src, "mnt/foreign"), []byte("x"), 0o600))

			st, err := treecopy.Copy(src, dst, treecopy.Options{})
			must(t, err)
			t.Logf("%+v", st)
			if _, err := os.Lstat(filepath.Join(dst, "mnt")); err == nil || st.Skipped != 1 {
				t.Errorf("copy crossed into a mount inside the volume (skipped %d)", st.Skipped)
			}
			// The mount's directory is left out whole; compare the rest.
			unix.Unmount(filepath.Join(src, "mnt"), unix.MNT_DETACH)
			var rst unix.Stat_t
			must(t, unix.Stat(src, &rst))
			must(t, os.Remove(filepath.Join(src, "mnt")))
			must(t, unix.UtimesNano(src, []unix.Timespec{rst.Atim, rst.Mtim}))
			compareTrees(t, src, dst)
			if got, _ := os.ReadFile(outside); string(got) != "not in the volume" {
				t.Error("file outside the volume changed")
			}
			if loopfs.Reflink(kind) && st.Copied != 0 {
				t.Errorf("%s: %d files copied, want all cloned", kind, st.Copied)
			}
			if !loopfs.Reflink(kind) && st.Cloned != 0 {
				t.Errorf("%s: %d files cloned on a file system without reflink", kind, st.Cloned)
			}
			// Holes stay holes.
			var s unix.Stat_t
			must(t, unix.Stat(filepath.Join(dst, "sparse"), &s))
			if s.Blocks*512 > 8<<20 {
				t.Errorf("sparse file copy allocates %d bytes", s.Blocks*512)
			}
		})
	}
}

// TestCopyPathNoClone covers the data copy on a file system that could
// clone (the fallback a file takes when FICLONE fails).
func TestCopyPathNoClone(t *testing.T) {
	mnt := loopfs.Mount(t, "xfs", 512<<20)
	src, dst := filepath.Join(mnt, "src"), filepath.Join(mnt, "dst")
	must(t, os.Mkdir(src, 0o777))
	makeTree(t, src, "/etc/passwd")
	st, err := treecopy.Copy(src, dst, treecopy.Options{NoClone: true})
	must(t, err)
	if st.Cloned != 0 || st.Copied == 0 {
		t.Errorf("stats %+v", st)
	}
	compareTrees(t, src, dst)
}

// TestReflinkGiB: a reflink copy of a 1 GiB volume takes no extra blocks
// until data changes; then only the changed blocks.
func TestReflinkGiB(t *testing.T) {
	for _, kind := range []string{"xfs", "btrfs"} {
		t.Run(kind, func(t *testing.T) {
			mnt := loopfs.Mount(t, kind, 3<<30)
			src, dst := filepath.Join(mnt, "src"), filepath.Join(mnt, "dst")
			must(t, os.Mkdir(src, 0o777))
			f, err := os.Create(filepath.Join(src, "gib"))
			must(t, err)
			chunk := make([]byte, 4<<20)
			rand.Read(chunk)
			for i := 0; i < 256; i++ {
				chunk[0] = byte(i)
				_, err := f.Write(chunk)
				must(t, err)
			}
			must(t, f.Sync())
			f.Close()
			before := loopfs.UsedBytes(t, mnt)
			start := time.Now()
			st, err := treecopy.Copy(src, dst, treecopy.Options{})
			took := time.Since(start)
			must(t, err)
			after := loopfs.UsedBytes(t, mnt)
			t.Logf("%s: reflink copy of 1 GiB took %v, used bytes %d -> %d (+%d)", kind, took, before, after, after-before)
			if st.Cloned != 1 {
				t.Fatalf("stats %+v", st)
			}
			if after-before > 4<<20 {
				t.Errorf("reflink copy used %d more bytes, want (almost) none", after-before)
			}
			// Overwrite 8 MiB of the original: only that much is new.
			g, err := os.OpenFile(filepath.Join(src, "gib"), os.O_WRONLY, 0)
			must(t, err)
			rand.Read(chunk)
			g.WriteAt(chunk, 100<<20)
			g.WriteAt(chunk, 500<<20)
			must(t, g.Sync())
			g.Close()
			changed := loopfs.UsedBytes(t, mnt)
			t.Logf("%s: after overwriting 8 MiB: +%d bytes", kind, changed-after)
			if d := changed - after; d < 8<<20 || d > 24<<20 {
				t.Errorf("overwriting 8 MiB used %d more bytes, want about 8 MiB", d)
			}
			// The copy still holds the old data.
			h, err := os.Open(filepath.Join(dst, "gib"))
			must(t, err)
			defer h.Close()
			got := make([]byte, 16)
			h.ReadAt(got, 100<<20)
			if bytes.Equal(got, chunk[:16]) {
				t.Error("overwrite of the source reached the copy")
			}
		})
	}
}

// stream runs Send into Receive through a slice of frames.
func stream(t *testing.T, src, dst string) (treecopy.Stats, error) {
	var frames [][]byte
	if _, err := treecopy.Send(src, func(f []byte) error {
		frames = append(frames, append([]byte(nil), f...))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return treecopy.Receive(dst, 0, func() ([]byte, error) {
		if len(frames) == 0 {
			return nil, io.EOF
		}
		f := frames[0]
		frames = frames[1:]
		return f, nil
	})
}

func TestStreamRoundTrip(t *testing.T) {
	mnt := loopfs.Mount(t, "ext4", 512<<20)
	src, dst := filepath.Join(mnt, "src"), filepath.Join(mnt, "dst")
	must(t, os.Mkdir(src, 0o777))
	makeTree(t, src, "/etc/passwd")
	st, err := stream(t, src, dst)
	must(t, err)
	t.Logf("%+v", st)
	compareTrees(t, src, dst)
	var s unix.Stat_t
	must(t, unix.Stat(filepath.Join(dst, "sparse"), &s))
	if s.Blocks*512 > 8<<20 {
		t.Errorf("sparse file arrives with %d bytes allocated", s.Blocks*512)
	}
}

// TestReceiveHostileStreams: a stream cannot put anything outside the
// destination, through .., absolute paths, symlinks it made itself or
// hard links, and an unfinished stream fails.
func TestReceiveHostileStreams(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	must(t, os.Mkdir(outside, 0o755))
	hdr := func(kind byte, mode uint32, p, extra string) []byte {
		return treecopy.HeaderFrame(kind, mode, p, extra)
	}
	dir, file, link := uint32(unix.S_IFDIR|0o755), uint32(unix.S_IFREG|0o644), uint32(unix.S_IFLNK|0o777)
	cases := map[string][][]byte{
		"dotdot":          {hdr('F', file, "../outside/x", ""), {'z'}, {'Q'}},
		"absolute":        {hdr('F', file, "/tmp/x", ""), {'z'}, {'Q'}},
		"through symlink": {hdr('L', link, "l", outside), hdr('F', file, "l/x", ""), {'z'}, {'Q'}},
		"dir via symlink": {hdr('L', link, "l", outside), hdr('D', dir, "l/d", ""), {'Q'}},
		"hardlink out":    {hdr('H', 0, "h", "../outside"), {'Q'}},
		"hardlink via l":  {hdr('L', link, "l", outside), hdr('H', 0, "h", "l/f"), {'Q'}},
		"unfinished":      {hdr('D', dir, "d", "")},
		"chunk past end":  {hdr('F', file, "f", ""), append([]byte{'C', 0, 0, 0, 0, 0, 0, 0, 0}, 'x'), {'z'}, {'Q'}},
		"file kind lies":  {hdr('F', dir, "f", ""), {'z'}, {'Q'}},
		"garbage":         {{'F', 1, 2}, {'Q'}},
	}
	must(t, os.WriteFile(filepath.Join(outside, "f"), []byte("x"), 0o644))
	for name, frames := range cases {
		dst := filepath.Join(base, "dst-"+strings.ReplaceAll(name, " ", "-"))
		_, err := treecopy.Receive(dst, 0, func() ([]byte, error) {
			if len(frames) == 0 {
				return nil, io.EOF
			}
			f := frames[0]
			frames = frames[1:]
			return f, nil
		})
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	ents, _ := os.ReadDir(outside)
	var st unix.Stat_t
	if len(ents) != 1 || unix.Stat(filepath.Join(outside, "f"), &st) != nil || st.Nlink != 1 {
		t.Errorf("outside the destination now holds %v (nlink of f %d)", ents, st.Nlink)
	}
	if _, err := os.Stat("/tmp/x"); err == nil {
		t.Error("/tmp/x created")
	}
}
