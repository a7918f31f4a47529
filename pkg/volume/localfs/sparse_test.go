package localfs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

// TestSparseUsageExact: after every ALLOCATE and DEALLOCATE (aligned or
// not, inside the file, across its end, into holes) the accounted usage is
// what a scan finds, and punching gives the bytes back.
func TestSparseUsageExact(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		env.configure(t, ExportConfig{MaxBytes: 1 << 30})
		f := env.create(t, env.root, "f")
		env.write(t, f, 0, strings.Repeat("x", 1<<20))
		env.checkScan(t)
		full := env.usage(t).Bytes
		steps := []struct {
			alloc  bool
			off, n uint64
		}{
			{false, 64 << 10, 256 << 10},
			{false, 1000, 5000},
			{true, 100 << 10, 30 << 10},
			{true, 900 << 10, 1 << 20}, // across the end: grows the file
			{false, 1 << 20, 2 << 20},  // past the old end, to past the new
			{true, 0, 4 << 20},
			{false, 0, 8 << 20},
		}
		for _, s := range steps {
			var err error
			if s.alloc {
				_, err = env.fs.Allocate(ctx, user, f, s.off, s.n)
			} else {
				_, err = env.fs.Deallocate(ctx, user, f, s.off, s.n)
			}
			if err != nil {
				t.Fatalf("%+v: %v", s, err)
			}
			env.checkScan(t)
		}
		if u := env.usage(t).Bytes; u+(1<<20) > full {
			t.Errorf("usage %d after punching the whole file, was %d with 1 MiB written", u, full)
		}
	})
}

// TestSparseFrozen: ALLOCATE and DEALLOCATE change the volume, so a frozen
// volume (a snapshot being taken) holds them off like WRITE; SEEK reads.
func TestSparseFrozen(t *testing.T) {
	defer func(d time.Duration) { holdWait = d }(holdWait)
	holdWait = 20 * time.Millisecond
	env := newEnv(t)
	fs := env.fs.Holding().(vfs.Sparse)
	f := env.create(t, env.root, "f")
	env.write(t, f, 0, strings.Repeat("x", 8192))
	thaw, err := env.fs.Freeze("/vol")
	if err != nil {
		t.Fatal(err)
	}
	defer thaw()
	if _, err := fs.Allocate(ctx, user, f, 0, 1<<20); !errors.Is(err, unix.EAGAIN) {
		t.Errorf("allocate in a frozen volume: %v, want EAGAIN", err)
	}
	if _, err := fs.Deallocate(ctx, user, f, 0, 4096); !errors.Is(err, unix.EAGAIN) {
		t.Errorf("deallocate in a frozen volume: %v, want EAGAIN", err)
	}
	if _, _, err := fs.Seek(ctx, user, f, 0, true); err != nil {
		t.Errorf("seek in a frozen volume: %v", err)
	}
	if a := env.getattr(t, f); a.Size != 8192 {
		t.Errorf("size %d after refused changes", a.Size)
	}
}

// TestSparseConcurrentUsage: WRITEs, truncations, ALLOCATEs and
// DEALLOCATEs racing on one file leave the accounted usage equal to a scan
// (each settles its own change of st_blocks; DEALLOCATE waits for WRITEs
// whose estimates counted the blocks it frees).
func TestSparseConcurrentUsage(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		env.configure(t, ExportConfig{MaxBytes: 1 << 30})
		f := env.create(t, env.root, "f")
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				for i := 0; i < 50; i++ {
					off := uint64((g*50+i)*37%64) << 14
					var err error
					switch (g + i) % 4 {
					case 0:
						_, _, _, err = env.fs.Write(ctx, user, f, off, pattern(20000, byte(i)), vfs.Unstable)
					case 1:
						_, err = env.fs.Allocate(ctx, user, f, off, 70000)
					case 2:
						_, err = env.fs.Deallocate(ctx, user, f, off, 50000)
					case 3:
						size := off / 2
						_, err = env.fs.SetAttr(ctx, user, f, vfs.SetAttr{Size: &size}, nil)
					}
					if err != nil {
						t.Errorf("op %d at %d: %v", (g+i)%4, off, err)
						return
					}
				}
			}(g)
		}
		wg.Wait()
		env.checkScan(t)
	})
}

// ext4 without extents (ext3-style block maps): fallocate is EOPNOTSUPP
// there, which ALLOCATE answers as NOTSUPP rather than faking.
var ext4NoExtents = &scratchFS{mount: func(d string) error {
	img := d + ".img"
	for _, cmd := range [][]string{
		{"truncate", "-s", "64M", img},
		{"mkfs.ext4", "-q", "-F", "-b", "4096", "-O", "^extent,^64bit", img},
		{"mount", "-o", "loop", img, d},
	} {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			os.Remove(img)
			return fmt.Errorf("%v: %v: %s", cmd, err, out)
		}
	}
	return os.Remove(img)
}}

func TestSparseUnsupported(t *testing.T) {
	env := newEnvIn(t, ext4NoExtents.base(t), Options{})
	env.configure(t, ExportConfig{MaxBytes: 1 << 30})
	f := env.create(t, env.root, "f")
	env.write(t, f, 0, "data")
	before := env.usage(t)
	if _, err := env.fs.Allocate(ctx, user, f, 0, 1<<20); !errors.Is(err, unix.ENOTSUP) {
		t.Fatalf("allocate on ext4 without extents: %v, want ENOTSUP", err)
	}
	if u := env.usage(t); u != before {
		t.Errorf("usage %+v after a refused allocate, was %+v", u, before)
	}
	if a := env.getattr(t, f); a.Size != 4 {
		t.Errorf("size %d after a refused allocate", a.Size)
	}
	env.checkScan(t)
}
