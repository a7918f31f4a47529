package localfs

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

// Snapshots need a point in time: while a volume's tree is cloned, no
// operation may change it. Every export has a hold (export.hold) that the
// operations changing a volume take shared, through Holding, and that
// Freeze takes exclusively: Freeze waits for the running changes to finish
// and keeps new ones waiting until thaw. Reads, COMMIT and everything on
// other volumes go on.
//
// A change waits at most holdWait for a thaw, then fails with EAGAIN
// (NFS3ERR_JUKEBOX: the client retries a few seconds later). A long hold
// (a full copy on a file system without reflink) then does not keep the
// server's call slots, which other volumes share, filled with waiting
// writes.

// holdWait is how long a change waits for a frozen volume.
var holdWait = time.Second

// hold is an export's snapshot hold.
type hold struct {
	rw     sync.RWMutex
	mu     sync.Mutex
	thawed chan struct{} // while frozen (or about to be): closed at thaw
}

// freeze takes the hold exclusively.
func (h *hold) freeze() {
	h.mu.Lock()
	if h.thawed == nil {
		h.thawed = make(chan struct{})
	}
	h.mu.Unlock()
	h.rw.Lock()
	h.mu.Lock()
	if h.thawed == nil { // an earlier freeze's thaw closed it meanwhile
		h.thawed = make(chan struct{})
	}
	h.mu.Unlock()
}

func (h *hold) thaw() {
	h.rw.Unlock()
	h.mu.Lock()
	if h.thawed != nil {
		close(h.thawed)
		h.thawed = nil
	}
	h.mu.Unlock()
}

// share takes the hold shared, waiting up to holdWait for a thaw.
func (h *hold) share() error {
	deadline := time.Now().Add(holdWait)
	for {
		if h.rw.TryRLock() {
			return nil
		}
		h.mu.Lock()
		ch := h.thawed
		h.mu.Unlock()
		left := time.Until(deadline)
		if left <= 0 {
			return unix.EAGAIN
		}
		if ch == nil {
			// Between one freeze's thaw and the next's channel.
			ch = make(chan struct{})
			left = min(left, time.Millisecond)
		}
		t := time.NewTimer(left)
		select {
		case <-ch:
		case <-t.C:
		}
		t.Stop()
	}
}

// Freeze holds every change to the volumes exported at paths until thaw is
// called. Paths are frozen in order; freezing a volume twice at once
// deadlocks, so callers pass each path once.
func (f *FS) Freeze(paths ...string) (thaw func(), err error) {
	var held []*export
	thaw = func() {
		for _, e := range held {
			e.hold.thaw()
		}
	}
	for _, p := range paths {
		e := f.exportAt(p)
		if e == nil {
			thaw()
			return nil, vfs.ErrNoExport
		}
		e.hold.freeze()
		held = append(held, e)
	}
	return thaw, nil
}

// Holding returns f as served over NFS: operations that change a volume
// take its hold shared, so Freeze can stop them.
func (f *FS) Holding() vfs.FS { return holding{f} }

type holding struct{ *FS }

// hold takes the hold of the export h names (by its tag; the operation
// itself checks the MAC) and returns its release. A handle of no export
// holds nothing: the operation fails as stale anyway.
func (f holding) hold(h vfs.Handle) (release func(), err error) {
	if len(h) < headerLen || h[0] != handleVersion {
		return func() {}, nil
	}
	var t tag
	copy(t[:], h[1:1+tagLen])
	e := f.exportByTag(t)
	if e == nil {
		return func() {}, nil
	}
	if err := e.hold.share(); err != nil {
		return nil, err
	}
	return e.hold.rw.RUnlock, nil
}

func (f holding) SetAttr(ctx context.Context, c vfs.Cred, h vfs.Handle, sa vfs.SetAttr, guard *time.Time) (vfs.Wcc, error) {
	release, err := f.hold(h)
	if err != nil {
		return vfs.Wcc{}, err
	}
	defer release()
	return f.FS.SetAttr(ctx, c, h, sa, guard)
}

func (f holding) Write(ctx context.Context, c vfs.Cred, h vfs.Handle, off uint64, data []byte, stable vfs.Stable) (int, vfs.Stable, vfs.Wcc, error) {
	release, err := f.hold(h)
	if err != nil {
		return 0, 0, vfs.Wcc{}, err
	}
	defer release()
	return f.FS.Write(ctx, c, h, off, data, stable)
}

func (f holding) Create(ctx context.Context, c vfs.Cred, dir vfs.Handle, name string, how vfs.CreateHow, sa vfs.SetAttr, verf vfs.Verifier) (vfs.Handle, *vfs.Attr, vfs.Wcc, error) {
	release, err := f.hold(dir)
	if err != nil {
		return nil, nil, vfs.Wcc{}, err
	}
	defer release()
	return f.FS.Create(ctx, c, dir, name, how, sa, verf)
}

func (f holding) Mkdir(ctx context.Context, c vfs.Cred, dir vfs.Handle, name string, sa vfs.SetAttr) (vfs.Handle, *vfs.Attr, vfs.Wcc, error) {
	release, err := f.hold(dir)
	if err != nil {
		return nil, nil, vfs.Wcc{}, err
	}
	defer release()
	return f.FS.Mkdir(ctx, c, dir, name, sa)
}

func (f holding) Symlink(ctx context.Context, c vfs.Cred, dir vfs.Handle, name, target string, sa vfs.SetAttr) (vfs.Handle, *vfs.Attr, vfs.Wcc, error) {
	release, err := f.hold(dir)
	if err != nil {
		return nil, nil, vfs.Wcc{}, err
	}
	defer release()
	return f.FS.Symlink(ctx, c, dir, name, target, sa)
}

func (f holding) Mknod(ctx context.Context, c vfs.Cred, dir vfs.Handle, name string, t vfs.FileType, sa vfs.SetAttr, major, minor uint32) (vfs.Handle, *vfs.Attr, vfs.Wcc, error) {
	release, err := f.hold(dir)
	if err != nil {
		return nil, nil, vfs.Wcc{}, err
	}
	defer release()
	return f.FS.Mknod(ctx, c, dir, name, t, sa, major, minor)
}

func (f holding) Remove(ctx context.Context, c vfs.Cred, dir vfs.Handle, name string) (vfs.Wcc, error) {
	release, err := f.hold(dir)
	if err != nil {
		return vfs.Wcc{}, err
	}
	defer release()
	return f.FS.Remove(ctx, c, dir, name)
}

func (f holding) Rmdir(ctx context.Context, c vfs.Cred, dir vfs.Handle, name string) (vfs.Wcc, error) {
	release, err := f.hold(dir)
	if err != nil {
		return vfs.Wcc{}, err
	}
	defer release()
	return f.FS.Rmdir(ctx, c, dir, name)
}

// Rename and Link change only their target directory's volume (across
// volumes they fail with EXDEV), so one hold covers them; taking two could
// deadlock against a group Freeze.
func (f holding) Rename(ctx context.Context, c vfs.Cred, fromDir vfs.Handle, fromName string, toDir vfs.Handle, toName string) (vfs.Wcc, vfs.Wcc, error) {
	release, err := f.hold(fromDir)
	if err != nil {
		return vfs.Wcc{}, vfs.Wcc{}, err
	}
	defer release()
	return f.FS.Rename(ctx, c, fromDir, fromName, toDir, toName)
}

func (f holding) Link(ctx context.Context, c vfs.Cred, h vfs.Handle, dir vfs.Handle, name string) (*vfs.Attr, vfs.Wcc, error) {
	release, err := f.hold(dir)
	if err != nil {
		return nil, vfs.Wcc{}, err
	}
	defer release()
	return f.FS.Link(ctx, c, h, dir, name)
}
