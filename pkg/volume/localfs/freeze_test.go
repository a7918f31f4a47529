package localfs

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

// TestFreezeHoldsChanges: while a volume is frozen, changes to it wait and
// then fail with EAGAIN (JUKEBOX) instead of waiting for ever; reads and
// other volumes go on; after thaw changes work again.
func TestFreezeHoldsChanges(t *testing.T) {
	defer func(d time.Duration) { holdWait = d }(holdWait)
	holdWait = 20 * time.Millisecond
	env := newEnv(t)
	fs := env.fs.Holding()
	f := env.create(t, env.root, "f")
	env.write(t, f, 0, "before")
	if _, err := env.fs.Freeze("/nope"); !errors.Is(err, vfs.ErrNoExport) {
		t.Fatalf("freezing an unknown export: %v", err)
	}
	thaw, err := env.fs.Freeze("/vol")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := fs.Write(ctx, root, f, 0, []byte("during"), vfs.FileSync); !errors.Is(err, unix.EAGAIN) {
		t.Errorf("write to a frozen volume: %v, want EAGAIN", err)
	}
	if _, _, _, err := fs.Create(ctx, root, env.root, "new", vfs.CreateUnchecked, vfs.SetAttr{}, vfs.Verifier{}); !errors.Is(err, unix.EAGAIN) {
		t.Errorf("create in a frozen volume: %v, want EAGAIN", err)
	}
	if _, err := fs.Remove(ctx, root, env.root, "f"); !errors.Is(err, unix.EAGAIN) {
		t.Errorf("remove in a frozen volume: %v, want EAGAIN", err)
	}
	if got := env.read(t, f); got != "before" {
		t.Errorf("read during the freeze: %q", got)
	}
	// A change waiting when the thaw comes goes through.
	done := make(chan error, 1)
	holdWait = time.Minute
	go func() {
		_, _, _, err := fs.Write(ctx, root, f, 0, []byte("after!"), vfs.FileSync)
		done <- err
	}()
	thaw()
	if err := <-done; err != nil {
		t.Fatalf("write after thaw: %v", err)
	}
	if got := env.read(t, f); got != "after!" {
		t.Errorf("after thaw: %q", got)
	}
}
