package localfs

import (
	"fmt"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

// TestHeldNodesLeaveCacheRoom checks that held files, whose nodes stay
// open for their holds, do not count against MaxOpenFiles: with more files
// held than it allows, idle files are still kept open between calls, and
// releasing the holds leaves no more than the maximum open.
func TestHeldNodesLeaveCacheRoom(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		env.open(t, Options{MaxOpenFiles: 2})
		var holds []vfs.Hold
		for i := range 4 {
			hd, err := env.fs.Hold(ctx, env.create(t, env.root, fmt.Sprintf("held%d", i)))
			if err != nil {
				t.Fatal(err)
			}
			holds = append(holds, hd)
		}
		idle := env.create(t, env.root, "idle")
		env.getattr(t, idle)
		if n := env.fs.cache.getKey(string(idle)); n == nil {
			t.Fatal("an idle file was evicted at once while 4 held files are open")
		} else {
			env.fs.cache.release(n)
		}
		for _, hd := range holds {
			hd.Release()
		}
		if n := env.fs.cache.len(); n > 2 {
			t.Fatalf("cache holds %d nodes once the holds are released, max 2", n)
		}
	})
}

// TestHoldAfterLateNode checks that a removed file cannot be held through
// a node made after its removal from an fd opened before it (a resolve
// racing the REMOVE): its accounting state, made afresh, must know the
// inode was given back, or the hold's end would give it back twice.
func TestHoldAfterLateNode(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		env.configure(t, ExportConfig{MaxInodes: 100})
		h := env.create(t, env.root, "f")
		env.fs.cache.forgetKey(h) // no node of f: the removal's state is its own
		fd, err := unix.Open(filepath.Join(env.dir, "f"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.fs.Remove(ctx, user, env.root, "f"); err != nil {
			t.Fatal(err)
		}
		u0 := env.usage(t)
		d, err := env.fs.resolve(ctx, env.root, vfs.GrantReadOnly)
		if err != nil {
			t.Fatal(err)
		}
		e := d.exp
		env.fs.cache.release(d)
		var st unix.Stat_t
		if err := fstat(fd, &st); err != nil {
			t.Fatal(err)
		}
		n, err := newNode(string(h), e, fd, &st)
		if err != nil {
			t.Fatal(err)
		}
		n, fresh := env.fs.cache.add(n)
		if !fresh {
			t.Fatal("a node of the removed file was cached already")
		}
		env.fs.cache.release(n)
		if hd, err := env.fs.Hold(ctx, h); err != vfs.ErrStale {
			if err == nil {
				hd.Release()
			}
			t.Errorf("hold of a removed file through a late node: %v, want stale", err)
		}
		if u := env.usage(t); u.Inodes != u0.Inodes {
			t.Errorf("%d inodes accounted, %d after the removal", u.Inodes, u0.Inodes)
		}
	})
}
