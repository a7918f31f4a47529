package localfs

import (
	"fmt"
	"testing"

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
