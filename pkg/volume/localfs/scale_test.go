package localfs

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

func openFds(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// manyExports makes n volume directories under base and an FS exporting
// them as /v<i>.
func manyExports(t *testing.T, base, keyFile string, n int) (*FS, []string) {
	t.Helper()
	f, err := New(Options{KeyFile: keyFile, MaxOpenFiles: 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	var paths []string
	for i := range n {
		dir := filepath.Join(base, fmt.Sprintf("v%d", i))
		if err := os.MkdirAll(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o777); err != nil { // as the volume store makes them
			t.Fatal(err)
		}
		p := fmt.Sprintf("/v%d", i)
		if err := f.AddExport(p, dir, fmt.Sprintf("vol-%d", i), nil); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return f, paths
}

// Idle exports hold no fd each: the server would otherwise keep one per
// volume (10,000 fds at 10,000 volumes). Handles still resolve after a
// restart and when many clients use many exports first at once.
func TestExportsHoldNoFdEach(t *testing.T) {
	const n = 200
	base := t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "key")
	fds0 := openFds(t)
	f, paths := manyExports(t, base, keyFile, n)
	if d := openFds(t) - fds0; d > 4 {
		t.Fatalf("%d exports hold %d more fds; want a few for all of them", n, d)
	}
	if got := f.mounts.len(); got != 1 {
		t.Errorf("%d shared mount fds for exports on one mount, want 1", got)
	}
	roots := make([]vfs.Handle, n)
	for i, p := range paths {
		h, err := f.Mount(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		roots[i] = h
	}

	// First use of every export by 16 clients at once, in a new FS (a
	// restart: same key, nothing cached).
	f.Close()
	f2, err := New(Options{KeyFile: keyFile, MaxOpenFiles: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	for i, p := range paths {
		if err := f2.AddExport(p, filepath.Join(base, fmt.Sprintf("v%d", i)), fmt.Sprintf("vol-%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	useAll := func(f *FS, skip func(i int) bool) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for w := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, i := range rand.Perm(n) {
					if skip(i) {
						continue
					}
					name := fmt.Sprintf("f%d", w)
					h, _, _, err := f.Create(ctx, user, roots[i], name, vfs.CreateUnchecked, vfs.SetAttr{}, vfs.Verifier{})
					if err == nil {
						_, _, _, err = f.Write(ctx, user, h, 0, []byte("x"), vfs.Unstable)
					}
					if err != nil {
						errs <- fmt.Errorf("export %d: %w", i, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	useAll(f2, func(int) bool { return false })

	// Removing exports (the first one added included) leaves the others
	// working; removing the last closes the shared fd.
	for i := 0; i < n; i += 2 {
		if err := f2.RemoveExport(paths[i]); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i += 2 {
		if _, err := f2.GetAttr(ctx, roots[i]); !errors.Is(err, vfs.ErrStale) {
			t.Fatalf("removed export %d: GetAttr = %v, want stale", i, err)
		}
	}
	useAll(f2, func(i int) bool { return i%2 == 0 })
	for i := 1; i < n; i += 2 {
		if err := f2.RemoveExport(paths[i]); err != nil {
			t.Fatal(err)
		}
	}
	if got := f2.mounts.len(); got != 0 {
		t.Errorf("%d shared mount fds left with no export", got)
	}
	if d := openFds(t) - fds0; d > 0 {
		t.Errorf("%d fds left open with no export", d)
	}
}

// An export directory that is itself a mount point gets its own mount's fd.
func TestExportsOnTwoMounts(t *testing.T) {
	other := tmpfs.base(t)
	f, err := New(Options{KeyFile: filepath.Join(t.TempDir(), "key")})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	disk := filepath.Join(t.TempDir(), "a")
	for _, d := range []string{disk, other} {
		os.Mkdir(d, 0o777)
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.AddExport("/a", disk, "vol-a", nil); err != nil {
		t.Fatal(err)
	}
	if err := f.AddExport("/b", other, "vol-b", nil); err != nil {
		t.Fatal(err)
	}
	if got := f.mounts.len(); got != 2 {
		t.Fatalf("%d mount fds for exports on two mounts, want 2", got)
	}
	for _, p := range []string{"/a", "/b"} {
		h, err := f.Mount(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := f.Create(ctx, user, h, "x", vfs.CreateGuarded, vfs.SetAttr{}, vfs.Verifier{}); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
}

// CommittedBytes is kept as usage and limits change; it must always equal a
// recount over the exports, also after concurrent writes, removals, limit
// changes and unexports.
func TestCommittedBytesEqualsRecount(t *testing.T) {
	const n = 6
	base := t.TempDir()
	f, paths := manyExports(t, base, filepath.Join(t.TempDir(), "key"), n)
	for i, p := range paths {
		// Export 0 is unlimited (counts nothing); the others small.
		if err := f.Configure(p, ExportConfig{MaxBytes: uint64(i) * 64 << 10}); err != nil {
			t.Fatal(err)
		}
	}
	recount := func() int64 {
		var sum int64
		for _, p := range paths {
			if u, err := f.Usage(p); err == nil && u.MaxBytes > 0 {
				sum += int64(min(u.Bytes, u.MaxBytes))
			}
		}
		return sum
	}
	var wg sync.WaitGroup
	var wrote atomic.Int64
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range 150 {
				i := r.IntN(n)
				root, err := f.Mount(ctx, paths[i])
				if err != nil {
					continue // unexported meanwhile
				}
				name := fmt.Sprintf("f%d", r.IntN(6))
				switch r.IntN(4) {
				case 0, 1:
					h, _, _, err := f.Create(ctx, user, root, name, vfs.CreateUnchecked, vfs.SetAttr{}, vfs.Verifier{})
					if err == nil {
						if _, _, _, err := f.Write(ctx, user, h, uint64(r.IntN(4))<<14, pattern(16<<10, byte(w)), vfs.Unstable); err == nil {
							wrote.Add(1)
						}
					}
				case 2:
					f.Remove(ctx, user, root, name)
				case 3:
					f.SetLimits(paths[i], uint64(r.IntN(4))*32<<10, 0)
				}
			}
		}()
	}
	wg.Wait()
	if got, want := f.CommittedBytes(), recount(); got != want {
		t.Fatalf("CommittedBytes %d, recount %d", got, want)
	}
	if wrote.Load() == 0 {
		t.Fatal("no write succeeded: the test tested nothing")
	}
	for _, p := range paths[:3] {
		if err := f.RemoveExport(p); err != nil {
			t.Fatal(err)
		}
	}
	paths = paths[3:]
	if got, want := f.CommittedBytes(), recount(); got != want {
		t.Fatalf("after unexporting: CommittedBytes %d, recount %d", got, want)
	}
	// Reconfiguring rescans: still equal.
	if err := f.Configure(paths[0], ExportConfig{MaxBytes: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	if got, want := f.CommittedBytes(), recount(); got != want {
		t.Fatalf("after Configure: CommittedBytes %d, recount %d", got, want)
	}
}
