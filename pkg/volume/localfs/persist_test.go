package localfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

func TestHandlesSurviveRestart(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		d := env.mkdir(t, env.root, "dir")
		h := env.create(t, d, "file")
		env.write(t, h, 0, "persistent")
		l, _, _, err := env.fs.Symlink(ctx, user, d, "link", "file", vfs.SetAttr{})
		if err != nil {
			t.Fatal(err)
		}
		oldRoot := env.root
		want := map[string]vfs.Attr{}
		for name, obj := range map[string]vfs.Handle{"root": env.root, "dir": d, "file": h, "link": l} {
			want[name] = env.getattr(t, obj)
		}
		env.open(t, Options{})
		if !bytes.Equal(env.root, oldRoot) {
			t.Fatal("root handle changed across restart")
		}
		// Rename the object and its parent: handles still resolve.
		if _, _, err := env.fs.Rename(ctx, user, d, "file", d, "renamed"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := env.fs.Rename(ctx, user, env.root, "dir", env.root, "dir2"); err != nil {
			t.Fatal(err)
		}
		env.open(t, Options{})
		for name, obj := range map[string]vfs.Handle{"root": env.root, "dir": d, "file": h, "link": l} {
			a := env.getattr(t, obj)
			if a.FileID != want[name].FileID || a.Type != want[name].Type {
				t.Fatalf("%s resolves to another object after restart", name)
			}
		}
		if got := env.read(t, h); got != "persistent" {
			t.Fatalf("read after restart: %q", got)
		}
		// The same object gets the same handle when looked up again.
		d2, _ := env.lookup(t, env.root, "dir2")
		h2, _ := env.lookup(t, d2, "renamed")
		if !bytes.Equal(d2, d) || !bytes.Equal(h2, h) {
			t.Fatal("lookup after rename and restart gives a different handle")
		}
	})
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	kf := filepath.Join(dir, "sub-key")
	f1, err := New(Options{KeyFile: kf})
	if err != nil {
		t.Fatal(err)
	}
	f1.Close()
	st, err := os.Stat(kf)
	if err != nil || st.Mode().Perm() != 0o600 || st.Size() != keySize {
		t.Fatalf("key file: %v %v", st, err)
	}
	k1, _ := os.ReadFile(kf)
	f2, err := New(Options{KeyFile: kf})
	if err != nil {
		t.Fatal(err)
	}
	f2.Close()
	if k2, _ := os.ReadFile(kf); !bytes.Equal(k1, k2) {
		t.Fatal("key rewritten")
	}
	// No temporary files left behind.
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("stray files: %v", ents)
	}
	// A key others can read is refused, as is a damaged one.
	os.Chmod(kf, 0o644)
	if _, err := New(Options{KeyFile: kf}); err == nil {
		t.Fatal("world-readable key accepted")
	}
	os.Chmod(kf, 0o600)
	os.WriteFile(kf, []byte("short"), 0o600)
	if _, err := New(Options{KeyFile: kf}); err == nil {
		t.Fatal("short key accepted")
	}
	// A different key invalidates every handle.
	env := newEnv(t)
	h := env.create(t, env.root, "f")
	os.Remove(env.keyFile)
	env.open(t, Options{})
	if _, err := env.fs.GetAttr(ctx, h); !errors.Is(err, vfs.ErrBadHandle) {
		t.Fatalf("handle under a new key: %v", err)
	}
	// Concurrent creation agrees on one key.
	kf2 := filepath.Join(dir, "race-key")
	var wg sync.WaitGroup
	keys := make([][]byte, 8)
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := loadOrCreateKey(kf2)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		}()
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if !bytes.Equal(k, keys[0]) {
			t.Fatal("concurrent creators disagree on the key")
		}
	}
}

func TestCacheEviction(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		env.open(t, Options{MaxOpenFiles: 2})
		var hs []vfs.Handle
		for i := 0; i < 100; i++ {
			h := env.create(t, env.root, fmt.Sprintf("f%d", i))
			env.write(t, h, 0, fmt.Sprint(i))
			hs = append(hs, h)
		}
		if n := env.fs.cache.len(); n > 2 {
			t.Fatalf("cache holds %d nodes, max 2", n)
		}
		for round := 0; round < 2; round++ {
			for i, h := range hs {
				if got := env.read(t, h); got != fmt.Sprint(i) {
					t.Fatalf("file %d reads %q", i, got)
				}
			}
		}
		// In-use nodes are never closed by eviction: hold one while others
		// churn the cache, then use it.
		n, err := env.fs.resolve(ctx, hs[0], vfs.GrantReadOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hs[1:] {
			env.getattr(t, h)
		}
		var st unix.Stat_t
		if err := fstat(n.fd, &st); err != nil || st.Ino != n.ino {
			t.Fatalf("fd of a node in use was closed or reused: %v", err)
		}
		env.fs.cache.release(n)
		if c := env.fs.cache.len(); c > 2 {
			t.Fatalf("cache holds %d nodes after release, max 2", c)
		}
	})
}

// TestConcurrency runs reads, writes, creates, renames, removes and
// listings in one directory at once. Run with -race.
func TestConcurrency(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		env.open(t, Options{MaxOpenFiles: 16})
		f := env.fs
		d := env.mkdir(t, env.root, "d")
		shared := env.create(t, d, "shared")
		const workers, iters = 8, 60
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 64)
				for i := 0; i < iters; i++ {
					name := fmt.Sprintf("w%d-%d", w, i)
					h, _, _, err := f.Create(ctx, user, d, name, vfs.CreateGuarded, vfs.SetAttr{}, vfs.Verifier{})
					if err != nil {
						t.Errorf("create: %v", err)
						return
					}
					data := []byte(name)
					if _, _, _, err := f.Write(ctx, user, h, 0, data, vfs.Unstable); err != nil {
						t.Errorf("write: %v", err)
						return
					}
					if n, _, _, err := f.Read(ctx, user, h, 0, buf); err != nil || string(buf[:n]) != name {
						t.Errorf("read back %q: %q %v", name, buf[:n], err)
						return
					}
					if _, _, _, err := f.Write(ctx, user, shared, uint64(w*8), []byte("abcdefgh"), vfs.Unstable); err != nil {
						t.Errorf("write shared: %v", err)
					}
					if _, _, err := f.Rename(ctx, user, d, name, d, name+"-r"); err != nil {
						t.Errorf("rename: %v", err)
					}
					if i%3 == 0 {
						if _, err := f.Remove(ctx, user, d, name+"-r"); err != nil {
							t.Errorf("remove: %v", err)
						}
						if _, err := f.GetAttr(ctx, h); !errors.Is(err, vfs.ErrStale) {
							t.Errorf("removed file: %v", err)
						}
					} else if a, err := f.GetAttr(ctx, h); err != nil || a.Size != uint64(len(name)) {
						t.Errorf("getattr: %+v %v", a, err)
					}
					if i%20 == 0 {
						if _, _, _, err := f.ReadDir(ctx, user, d, 0, vfs.Verifier{}, true, func(vfs.DirEntry) bool { return true }); err != nil {
							t.Errorf("readdir: %v", err)
						}
					}
				}
			}()
		}
		wg.Wait()
		if _, err := f.Commit(ctx, user, shared, 0, 0); err != nil {
			t.Fatal(err)
		}
		ents := listAll(t, f, d, false, 1000)
		if want := 2 + 1 + workers*(iters-iters/3); len(ents) != want {
			t.Fatalf("%d entries, want %d", len(ents), want)
		}
	})
}
