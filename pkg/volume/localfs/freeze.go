package localfs

import (
	"context"
	"time"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

// Snapshots need a point in time: while a volume's tree is cloned, no
// operation may change it. Every export has a hold (export.hold) that the
// operations changing a volume take shared, through Holding, and that
// Freeze takes exclusively: Freeze waits for the running changes to finish
// and keeps new ones waiting until thaw. Reads, COMMIT and everything on
// other volumes go on.

// Freeze holds every change to the volumes exported at paths until thaw is
// called. Paths are frozen in order; freezing a volume twice at once
// deadlocks, so callers pass each path once.
func (f *FS) Freeze(paths ...string) (thaw func(), err error) {
	var held []*export
	thaw = func() {
		for _, e := range held {
			e.hold.Unlock()
		}
	}
	for _, p := range paths {
		e := f.exportAt(p)
		if e == nil {
			thaw()
			return nil, vfs.ErrNoExport
		}
		e.hold.Lock()
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
func (f holding) hold(h vfs.Handle) func() {
	if len(h) < headerLen || h[0] != handleVersion {
		return func() {}
	}
	var t tag
	copy(t[:], h[1:1+tagLen])
	e := f.exportByTag(t)
	if e == nil {
		return func() {}
	}
	e.hold.RLock()
	return e.hold.RUnlock
}

func (f holding) SetAttr(ctx context.Context, c vfs.Cred, h vfs.Handle, sa vfs.SetAttr, guard *time.Time) (vfs.Wcc, error) {
	defer f.hold(h)()
	return f.FS.SetAttr(ctx, c, h, sa, guard)
}

func (f holding) Write(ctx context.Context, c vfs.Cred, h vfs.Handle, off uint64, data []byte, stable vfs.Stable) (int, vfs.Stable, vfs.Wcc, error) {
	defer f.hold(h)()
	return f.FS.Write(ctx, c, h, off, data, stable)
}

func (f holding) Create(ctx context.Context, c vfs.Cred, dir vfs.Handle, name string, how vfs.CreateHow, sa vfs.SetAttr, verf vfs.Verifier) (vfs.Handle, *vfs.Attr, vfs.Wcc, error) {
	defer f.hold(dir)()
	return f.FS.Create(ctx, c, dir, name, how, sa, verf)
}

func (f holding) Mkdir(ctx context.Context, c vfs.Cred, dir vfs.Handle, name string, sa vfs.SetAttr) (vfs.Handle, *vfs.Attr, vfs.Wcc, error) {
	defer f.hold(dir)()
	return f.FS.Mkdir(ctx, c, dir, name, sa)
}

func (f holding) Symlink(ctx context.Context, c vfs.Cred, dir vfs.Handle, name, target string, sa vfs.SetAttr) (vfs.Handle, *vfs.Attr, vfs.Wcc, error) {
	defer f.hold(dir)()
	return f.FS.Symlink(ctx, c, dir, name, target, sa)
}

func (f holding) Mknod(ctx context.Context, c vfs.Cred, dir vfs.Handle, name string, t vfs.FileType, sa vfs.SetAttr, major, minor uint32) (vfs.Handle, *vfs.Attr, vfs.Wcc, error) {
	defer f.hold(dir)()
	return f.FS.Mknod(ctx, c, dir, name, t, sa, major, minor)
}

func (f holding) Remove(ctx context.Context, c vfs.Cred, dir vfs.Handle, name string) (vfs.Wcc, error) {
	defer f.hold(dir)()
	return f.FS.Remove(ctx, c, dir, name)
}

func (f holding) Rmdir(ctx context.Context, c vfs.Cred, dir vfs.Handle, name string) (vfs.Wcc, error) {
	defer f.hold(dir)()
	return f.FS.Rmdir(ctx, c, dir, name)
}

// Rename and Link change only their target directory's volume (across
// volumes they fail with EXDEV), so one hold covers them; taking two could
// deadlock against a group Freeze.
func (f holding) Rename(ctx context.Context, c vfs.Cred, fromDir vfs.Handle, fromName string, toDir vfs.Handle, toName string) (vfs.Wcc, vfs.Wcc, error) {
	defer f.hold(fromDir)()
	return f.FS.Rename(ctx, c, fromDir, fromName, toDir, toName)
}

func (f holding) Link(ctx context.Context, c vfs.Cred, h vfs.Handle, dir vfs.Handle, name string) (*vfs.Attr, vfs.Wcc, error) {
	defer f.hold(dir)()
	return f.FS.Link(ctx, c, h, dir, name)
}
