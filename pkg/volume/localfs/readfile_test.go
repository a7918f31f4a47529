package localfs

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

// TestReadFileMatchesRead checks that ReadFile describes exactly the bytes
// Read returns (count, eof, data through the fd) at every interesting
// offset, that the fd it hands out is the caller's (the node may be
// evicted and its own fds closed meanwhile), and that it refuses what Read
// refuses.
func TestReadFileMatchesRead(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		env.open(t, Options{MaxOpenFiles: 1}) // every other call evicts
		data := strings.Repeat("0123456789abcdef", 4096) + "xyz"
		h := env.create(t, env.root, "f")
		env.write(t, h, 0, data)
		other := env.create(t, env.root, "g")
		for _, off := range []uint64{0, 1, 4096, uint64(len(data)) - 1, uint64(len(data)), uint64(len(data)) + 9, 1 << 62} {
			for _, count := range []uint32{1, 65536, 1 << 20} {
				buf := make([]byte, count)
				n, eof, _, err := env.fs.Read(ctx, user, h, off, buf)
				if err != nil {
					t.Fatal(err)
				}
				fd, fn, feof, a, err := env.fs.ReadFile(ctx, user, h, off, count)
				if err != nil {
					t.Fatalf("ReadFile %d at %d: %v", count, off, err)
				}
				if fn != n || feof != eof || a == nil || a.Size != uint64(len(data)) {
					unix.Close(fd)
					t.Fatalf("ReadFile %d at %d: n %d eof %v, Read: n %d eof %v", count, off, fn, feof, n, eof)
				}
				// Evict h's node and close its fds: ours must stay valid.
				env.getattr(t, other)
				got := make([]byte, fn)
				if fn > 0 {
					m, err := unix.Pread(fd, got, int64(off))
					if err != nil || m != fn {
						t.Fatalf("pread from ReadFile's fd: %d, %v", m, err)
					}
				}
				unix.Close(fd)
				if !bytes.Equal(got, buf[:n]) {
					t.Fatalf("ReadFile %d at %d: data differs from Read", count, off)
				}
			}
		}
		// A file the caller may not read.
		mode := uint32(0o600)
		if _, err := env.fs.SetAttr(ctx, user, h, vfs.SetAttr{Mode: &mode}, nil); err != nil {
			t.Fatal(err)
		}
		stranger := vfs.Cred{UID: 2000, GID: 2000}
		_, _, _, rerr := env.fs.Read(ctx, stranger, h, 0, make([]byte, 10))
		fd, _, _, _, err := env.fs.ReadFile(ctx, stranger, h, 0, 10)
		if rerr == nil || err != rerr || fd != -1 {
			t.Fatalf("ReadFile by a stranger: fd %d, %v; Read: %v", fd, err, rerr)
		}
		// Not a regular file.
		if fd, _, _, _, err := env.fs.ReadFile(ctx, user, env.root, 0, 10); err == nil || fd != -1 {
			t.Fatalf("ReadFile of a directory: fd %d, %v", fd, err)
		}
	})
}

// TestReadDirPlusAllocs bounds the heap allocations of a READDIRPLUS
// listing: names, handles and attributes come from per-call slabs, not a
// handful of allocations per entry (about 8 before).
func TestReadDirPlusAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	env := newEnv(t)
	const files = 300
	for i := range files {
		env.create(t, env.root, "file-"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	count := 0
	emit := func(e vfs.DirEntry) bool {
		if e.Handle == nil || e.Attr == nil {
			t.Errorf("entry %q without handle or attributes", e.Name)
		}
		count++
		return true
	}
	allocs := testing.AllocsPerRun(5, func() {
		count = 0
		if _, _, _, err := env.fs.ReadDir(ctx, user, env.root, 0, vfs.Verifier{}, true, emit); err != nil {
			t.Fatal(err)
		}
	})
	if count != files+2 {
		t.Fatalf("listed %d entries, want %d", count, files+2)
	}
	if per := allocs / float64(count); per > 0.5 {
		t.Fatalf("%.1f allocations per entry (%.0f for %d)", per, allocs, count)
	}
}
