package localfs

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

// A held file removed before a restart is gone after it: the clean
// shutdown's saved usage and a crash's scan both leave it out, and both
// agree with the tree.
func TestHoldRestart(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		usageFile := filepath.Join(env.base, "usage.json")
		cfg := ExportConfig{MaxBytes: 1 << 20, MaxInodes: 100, UsageFile: usageFile}
		env.configure(t, cfg)
		base := env.usage(t)
		h := env.create(t, env.root, "held")
		env.write(t, h, 0, string(pattern(200<<10, 1)))
		hd, err := env.fs.Hold(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.fs.Remove(ctx, user, env.root, "held"); err != nil {
			t.Fatal(err)
		}
		if u := env.usage(t); u.Bytes < base.Bytes+200<<10 || u.Inodes != base.Inodes+1 {
			t.Fatalf("usage %+v while a removed file is held, want it counted over %+v", u, base)
		}
		env.open(t, Options{}) // a clean restart: Close saves usage
		hd.Release()           // after its FS closed: nothing
		saved, err := loadUsage(usageFile)
		if err != nil {
			t.Fatal(err)
		}
		if saved.Bytes != base.Bytes || saved.Inodes != base.Inodes {
			t.Fatalf("saved usage %+v counts the removed held file (before it: %+v)", saved, base)
		}
		cfg.Saved = &saved
		env.configure(t, cfg)
		env.checkScan(t)
		cfg.Saved = nil // as after a crash: a scan
		env.configure(t, cfg)
		if u := env.usage(t); u.Bytes != base.Bytes || u.Inodes != base.Inodes {
			t.Fatalf("scanned usage %+v, want %+v", u, base)
		}
		if _, err := env.fs.GetAttr(ctx, h); err != vfs.ErrStale {
			t.Fatalf("held file after a restart: %v, want stale", err)
		}
	})
}

// Pins are bounded: one fd per held file however many holds, and past
// MaxHeldFiles a hold fails with ENFILE until one is released.
func TestHoldLimit(t *testing.T) {
	env := newEnvIn(t, t.TempDir(), Options{MaxHeldFiles: 2})
	a, b, c := env.create(t, env.root, "a"), env.create(t, env.root, "b"), env.create(t, env.root, "c")
	var hs []vfs.Hold
	for _, h := range []vfs.Handle{a, a, b, b} {
		hd, err := env.fs.Hold(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, hd)
	}
	if _, err := env.fs.Hold(ctx, c); err != unix.ENFILE {
		t.Fatalf("hold past the limit: %v, want ENFILE", err)
	}
	hs[0].Release()
	if _, err := env.fs.Hold(ctx, c); err != unix.ENFILE {
		t.Fatalf("hold past the limit with a's second hold left: %v, want ENFILE", err)
	}
	hs[1].Release()
	if _, err := env.fs.Hold(ctx, c); err != nil {
		t.Fatalf("hold after a release: %v", err)
	}
}

// A hold reaches only its own volume: a removed held file's handle moved
// to another volume's tag is refused before any lookup.
func TestHoldConfined(t *testing.T) {
	env := newEnv(t)
	other := filepath.Join(env.base, "other")
	if err := unix.Mkdir(other, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := env.fs.AddExport("/other", other, "vol-2", nil); err != nil {
		t.Fatal(err)
	}
	h := env.create(t, env.root, "f")
	hd, err := env.fs.Hold(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	defer hd.Release()
	if _, err := env.fs.Remove(ctx, user, env.root, "f"); err != nil {
		t.Fatal(err)
	}
	moved := append(vfs.Handle(nil), h...)
	t2 := env.fs.keys.volumeTag("vol-2")
	copy(moved[1:], t2[:])
	if _, err := env.fs.GetAttr(ctx, moved); err != vfs.ErrBadHandle {
		t.Fatalf("held handle with another volume's tag: %v, want ErrBadHandle", err)
	}
	if _, err := env.fs.GetAttr(ctx, h); err != nil {
		t.Fatalf("held handle itself: %v", err)
	}
}

// Holds, releases, removals and writes of the same files racing each
// other leave usage equal to a scan once every hold is released (run with
// -race).
func TestHoldRaces(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		env.configure(t, ExportConfig{MaxBytes: 64 << 20, MaxInodes: 1000})
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 20 {
					name := fmt.Sprintf("f%d", i%3)
					h, _, _, err := env.fs.Create(ctx, user, env.root, name, vfs.CreateUnchecked, vfs.SetAttr{}, vfs.Verifier{})
					if err != nil {
						continue // removed or replaced meanwhile
					}
					hd, err := env.fs.Hold(ctx, h)
					if err == nil && w%2 == 0 {
						env.fs.Remove(ctx, user, env.root, name)
					}
					env.fs.Write(ctx, user, h, uint64(i)*4096, make([]byte, 8192), vfs.Unstable)
					if err == nil {
						hd.Unlinked()
						hd.Release()
					}
				}
			}()
		}
		wg.Wait()
		env.checkScan(t)
	})
}
