package localfs

import (
	"context"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

// Holds (vfs.Holder): files that stay usable after their last unlink.
//
// A held file is kept open: a pin per held handle, shared by every Hold
// of it, keeps a reference to the handle's cached node and so its data fd
// (the cache never closes a node in use). The kernel keeps an unlinked
// inode, data and blocks, alive while an fd of it is open, so nothing has
// to be moved anywhere: no hidden orphan directory to clean, no rename
// racing a client. When the
// server process ends, cleanly or not, the fds close and the kernel frees
// the inodes (ext4 and XFS also replay their orphan lists after a power
// loss); after a crash usage is rescanned, and Close first drops every pin
// (giving back the space of the unlinked ones) before it saves usage, so
// the saved usage never counts files that are gone once the server stops.
//
// A handle of an unlinked inode resolves only through its pin, looked up
// by the exact handle bytes in the export's own table: an export's pins
// are reachable only with a handle that names that export and carries a
// valid MAC (resolve checked both), so a hold never lets a client reach an
// inode elsewhere. The quota keeps charging a removed but pinned inode
// (writes through the pin still settle): the removal that saw its last
// link go leaves the discharge to the last unpin (see releaseVictim).

// defaultMaxHeldFiles bounds the fds pins keep open across the server.
const defaultMaxHeldFiles = 16384

// pin is the hold of one handle: a reference to its node.
type pin struct {
	key   string
	n     *node // referenced while the pin lives
	fd    int   // n's data fd: O_RDWR, or O_RDONLY if the inode cannot be written
	ioErr error // why fd is read-only, if it is
	acct  *inode
	holds int // guarded by pinSet.mu
}

// pinSet is an export's pins by handle.
type pinSet struct {
	mu sync.Mutex
	m  map[string]*pin
}

var _ vfs.Holder = (*FS)(nil)

// held is one vfs.Hold.
type held struct {
	f    *FS
	e    *export
	p    *pin
	once sync.Once
}

// Hold implements vfs.Holder.
func (f *FS) Hold(ctx context.Context, h vfs.Handle) (vfs.Hold, error) {
	// No stat: whether a removal took the last name is told without
	// one, below and in newPin.
	n, err := f.resolve(ctx, h, vfs.GrantReadOnly)
	if err != nil {
		return nil, err
	}
	// A new pin keeps the reference; every other way out drops it.
	fail := func(err error) (vfs.Hold, error) {
		f.cache.release(n)
		return nil, err
	}
	if n.typ != unix.S_IFREG {
		return fail(unix.EINVAL)
	}
	// Opened before pins.mu: ioFd may itself consult the pins (reopen).
	io, err := f.ioFd(n)
	if err != nil {
		return fail(f.stale(n, err))
	}
	e := n.exp
	e.pins.mu.Lock()
	p := e.pins.m[n.key]
	if p != nil {
		p.holds++
		e.pins.mu.Unlock()
		f.cache.release(n)
		return &held{f: f, e: e, p: p}, nil
	}
	if e.removed.Load() {
		e.pins.mu.Unlock()
		return fail(vfs.ErrStale)
	}
	if f.pinned.Add(1) > int64(f.maxPinned) {
		f.pinned.Add(-1)
		e.pins.mu.Unlock()
		return fail(unix.ENFILE)
	}
	p = newPin(n, io)
	if p == nil {
		f.pinned.Add(-1)
		e.pins.mu.Unlock()
		return fail(vfs.ErrStale)
	}
	if e.pins.m == nil {
		e.pins.m = make(map[string]*pin)
	}
	e.pins.m[p.key] = p
	e.pins.mu.Unlock()
	return &held{f: f, e: e, p: p}, nil
}

// newPin makes the pin of n (a regular file) with its data fd io, taking
// over the caller's reference to n; n.exp.pins.mu is held. It returns nil
// if a removal took the inode's last name and discharged it (a.gone: see
// releaseVictim, unpin and newInode): the file is not for keeping, its
// writes would no longer be charged. Told under a.mu, as the removal
// decides: one that comes later sees the pin and leaves the discharge to
// the last unpin. So no fstat is needed.
func newPin(n *node, io int) *pin {
	a := n.acct
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.gone {
		return nil
	}
	a.pins++
	return &pin{key: n.key, n: n, fd: io, ioErr: n.ioErr, acct: a, holds: 1}
}

// Unlinked implements vfs.Hold.
func (h *held) Unlinked() bool {
	e := h.e
	e.pins.mu.Lock()
	defer e.pins.mu.Unlock()
	if e.pins.m[h.p.key] != h.p {
		return false // dropped with its export: nothing kept
	}
	// The fd stays open while the pin is in the table.
	var st unix.Stat_t
	return fstat(h.p.fd, &st) == nil && st.Nlink == 0
}

// Release implements vfs.Hold.
func (h *held) Release() {
	h.once.Do(func() {
		e, p := h.e, h.p
		e.pins.mu.Lock()
		if e.pins.m[p.key] != p {
			e.pins.mu.Unlock()
			return // dropped with its export
		}
		if p.holds--; p.holds > 0 {
			e.pins.mu.Unlock()
			return
		}
		delete(e.pins.m, p.key)
		h.f.pinned.Add(-1)
		e.pins.mu.Unlock()
		h.f.unpin(e, p)
	})
}

// unpin closes a pin taken out of its table. The last pin of an inode
// with no link left gives its space back (once: see releaseVictim), and
// the cache forgets the handle so no cached fd keeps the freed blocks.
func (f *FS) unpin(e *export, p *pin) {
	a := p.acct
	var st unix.Stat_t
	var blocks int64
	a.mu.Lock()
	a.pins--
	// The link count is looked at under a.mu, after the decrement: a
	// removal that saw this pin left the discharge to us, and one that
	// runs later sees no pin and discharges itself.
	unlinked := fstat(p.fd, &st) == nil && st.Nlink == 0
	discharge := unlinked && a.pins == 0 && !a.gone
	if discharge {
		a.gone = true
		blocks = a.blocks
	}
	a.mu.Unlock()
	if discharge {
		e.q.add(-blocks*512, -1)
	}
	if unlinked {
		f.cache.forgetString(p.key)
	}
	// The node's last reference closes its fds, and closing the last fd
	// of an unlinked inode frees it: no lock held.
	f.cache.release(p.n)
}

// dropPins releases every pin of e, for RemoveExport and Close (a hold
// never outlives its export's service; later Releases do nothing).
func (f *FS) dropPins(e *export) {
	e.pins.mu.Lock()
	ps := e.pins.m
	e.pins.m = nil
	f.pinned.Add(-int64(len(ps)))
	e.pins.mu.Unlock()
	for _, p := range ps {
		f.unpin(e, p)
	}
}

// pinDup returns a new fd of the pinned inode with handle key, and why it
// is read-only if it is; ok is false when key is not pinned.
func (e *export) pinDup(key string) (fd int, ioErr error, ok bool, err error) {
	e.pins.mu.Lock()
	defer e.pins.mu.Unlock()
	p := e.pins.m[key]
	if p == nil {
		return -1, nil, false, nil
	}
	fd, err = unix.FcntlInt(uintptr(p.fd), unix.F_DUPFD_CLOEXEC, 0)
	return fd, p.ioErr, true, err
}

// pinned reports whether handle key of e is held.
func (e *export) pinned(key string) bool {
	e.pins.mu.Lock()
	defer e.pins.mu.Unlock()
	return e.pins.m[key] != nil
}

// resolvePinned is resolve for a handle whose inode has no link left (or
// that the kernel no longer opens by handle): it resolves only through a
// pin, to a node whose fds are duplicates of the pin's.
func (f *FS) resolvePinned(e *export, h vfs.Handle) (*node, error) {
	fd, ioErr, ok, err := e.pinDup(string(h))
	if !ok {
		return nil, vfs.ErrStale
	}
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, err
	}
	n, err := newNode(string(h), e, fd, &st)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	// A regular file's data fd serves metadata calls too (they go by fd
	// or its /proc/self/fd link), as after adopt.
	n.io.Store(int32(fd))
	n.ioOnly, n.ioErr = true, ioErr
	m, fresh := f.cache.add(n)
	if !fresh {
		n.close()
	}
	return m, nil
}
