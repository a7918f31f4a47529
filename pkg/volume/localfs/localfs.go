// Package localfs implements vfs.FS on directories of the local Linux file
// system.
//
// Security model. Clients name objects only by handles this package minted
// (MAC'd with a per-server key, see handle.go) and by single names relative
// to a directory they hold a handle for. Every path operation is one name
// resolved from a directory fd with openat2(RESOLVE_BENEATH|
// RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS|RESOLVE_NO_XDEV) or an *at
// syscall that does not follow the final component, so no symlink a client
// planted is ever followed and ".." never leaves a volume's root. Objects are
// reopened by handle (open_by_handle_at), never by path, so renaming things
// around an object cannot redirect an operation on it.
//
// The process needs CAP_DAC_READ_SEARCH (open_by_handle_at, linkat with
// AT_EMPTY_PATH) and CAP_CHOWN/CAP_FOWNER: in practice, root.
package localfs

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

// Options configure an FS.
type Options struct {
	// KeyFile holds the per-server handle MAC key; it is created (0600,
	// atomically) if missing. Handles stay valid across restarts only while
	// this file does.
	KeyFile string
	// MaxOpenFiles bounds the idle objects kept open (each up to two fds).
	// Default 4096.
	MaxOpenFiles int
	// MaxHeldFiles bounds the files vfs.Holder holds open (one fd each),
	// across exports; a Hold past it fails with ENFILE. Default 16384.
	MaxHeldFiles int
	Log          logr.Logger
}

// FS serves a set of exported directories. It implements vfs.FS.
type FS struct {
	log   logr.Logger
	keys  *keys
	cache *cache
	verf  vfs.Verifier

	mu     sync.RWMutex
	byPath map[string]*export
	byTag  map[tag]*export
	closed bool

	mounts    mounts       // the fds exports resolve handles on
	committed atomic.Int64 // see CommittedBytes
	dirSync   sync.Map     // device -> dirSyncCoversInodes, asked once a device
	pinned    atomic.Int64 // pins across exports (hold.go)
	maxPinned int
}

func (f *FS) dirSyncCoversInodes(fd int, dev uint64) bool {
	if v, ok := f.dirSync.Load(dev); ok {
		return v.(bool)
	}
	v := dirSyncCoversInodes(fd, dev)
	f.dirSync.Store(dev, v)
	return v
}

var _ vfs.FS = (*FS)(nil)

var errKernelHandle = errors.New("localfs: file system handle type or size not supported")

// export is one exported volume.
type export struct {
	path     string
	volumeID string
	tag      tag
	fsid     uint64
	dev      uint64
	rootIno  uint64
	root     vfs.Handle
	// rootFd is an fd on the export's mount (O_RDONLY, shared with the
	// other exports there, see mounts.go), only used as the mount reference
	// for open_by_handle_at and for statfs.
	rootFd int
	mnt    *mountRef
	mounts *mounts
	// refs counts the registration plus every in-flight use of rootFd, so
	// RemoveExport never drops it under a running open_by_handle_at.
	refs    atomic.Int64
	removed atomic.Bool
	policy  atomic.Pointer[vfs.Policy] // nil: everyone read-write
	// dirSyncEnough: a directory fsync also persists new inodes (see
	// dirSyncCoversInodes).
	dirSyncEnough bool
	// inMemory: fsync does nothing on this file system (see inMemory).
	inMemory bool

	dirPath string // the exported directory, for the usage scan
	q       quota
	// inodes is the accounting state of the inodes open as nodes or
	// victims, by inode number.
	inodesMu sync.Mutex
	inodes   map[uint64]*inode
	// entries serialises, per directory (by inode number, striped), every
	// change of what a name refers to: each new name, removal and rename
	// holds it from its look at the names concerned to the change, so
	// what it saw still holds (see victim and makeNode).
	entries [64]sync.Mutex
	squash  atomic.Pointer[squash] // nil: no root squash
	hold    hold                   // changes shared, Freeze exclusive (freeze.go)
	pins    pinSet                 // held files (hold.go)
}

func (e *export) acquire() bool {
	for {
		r := e.refs.Load()
		if r <= 0 {
			return false
		}
		if e.refs.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

func (e *export) release() {
	if e.refs.Add(-1) == 0 {
		e.mounts.put(e.mnt)
	}
}

// openByHandle opens the inode with kernel handle (ktype, kfh) in e.
func (e *export) openByHandle(ktype int32, kfh []byte, flags int) (int, error) {
	if !e.acquire() {
		return -1, vfs.ErrStale
	}
	defer e.release()
	fh := unix.NewFileHandle(ktype, kfh)
	for try := 0; ; try++ {
		fd, err := unix.OpenByHandleAt(e.rootFd, fh, flags|unix.O_CLOEXEC)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.ENOMEM && try < 10:
			// iget_locked fails (and ext4 reports ENOMEM) while the inode
			// number is being reused by a concurrent create. That state is
			// brief; afterwards the kernel answers ESTALE (new generation)
			// or opens the inode.
			time.Sleep(time.Duration(try+1) * 20 * time.Microsecond)
			continue
		}
		return fd, err
	}
}

// grant is what e's policy grants the client of ctx.
func (e *export) grant(ctx context.Context) vfs.Grant {
	if p := e.policy.Load(); p != nil {
		return (*p)(vfs.ClientOf(ctx))
	}
	return vfs.GrantReadWrite
}

// allow fails unless the client of ctx has at least grant need on e: a
// client with none may not learn anything of e (not even whether a handle
// is stale), a reader may not change it.
func (e *export) allow(ctx context.Context, need vfs.Grant) error {
	switch g := e.grant(ctx); {
	case g == vfs.GrantNone:
		return vfs.ErrNotAllowed
	case g < need:
		return unix.EROFS
	}
	return nil
}

func (e *export) setPolicy(p vfs.Policy) {
	if p == nil {
		e.policy.Store(nil)
	} else {
		e.policy.Store(&p)
	}
}

// New returns an FS with no exports.
func New(o Options) (*FS, error) {
	if o.KeyFile == "" {
		return nil, errors.New("localfs: Options.KeyFile is required")
	}
	if o.MaxOpenFiles <= 0 {
		o.MaxOpenFiles = 4096
	}
	if o.MaxHeldFiles <= 0 {
		o.MaxHeldFiles = defaultMaxHeldFiles
	}
	key, err := loadOrCreateKey(o.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("localfs: %w", err)
	}
	f := &FS{
		log:    o.Log,
		keys:   newKeys(key),
		cache:  newCache(o.MaxOpenFiles),
		byPath: make(map[string]*export),
		byTag:  make(map[tag]*export),

		maxPinned: o.MaxHeldFiles,
	}
	if _, err := rand.Read(f.verf[:]); err != nil {
		return nil, fmt.Errorf("localfs: write verifier: %w", err)
	}
	return f, nil
}

// AddExport exports directory dir at path ("/<volume-id>" or "/") under
// policy p (nil: every client read-write). The export is never reachable
// without p. volumeID is the volume's stable identity: it is baked into
// every handle and the fsid, so it must never change for the same data.
func (f *FS) AddExport(path, dir, volumeID string, p vfs.Policy) error {
	if path != "/" && (!strings.HasPrefix(path, "/") || len(path) < 2 || strings.ContainsAny(path[1:], "/\x00")) {
		return fmt.Errorf("localfs: invalid export path %q", path)
	}
	if volumeID == "" {
		return errors.New("localfs: empty volume ID")
	}
	// dir comes from the operator, not a client: following symlinks in it
	// is intended. Not O_PATH: open_by_handle_at refuses O_PATH mount fds.
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("localfs: open export %s: %w", dir, err)
	}
	var st unix.Stat_t
	if err := fstat(fd, &st); err != nil {
		unix.Close(fd)
		return fmt.Errorf("localfs: stat export %s: %w", dir, err)
	}
	e := &export{
		path:     path,
		volumeID: volumeID,
		tag:      f.keys.volumeTag(volumeID),
		fsid:     fsidOf(volumeID),
		dev:      st.Dev,
		rootIno:  st.Ino,
		dirPath:  dir,
		mounts:   &f.mounts,

		dirSyncEnough: f.dirSyncCoversInodes(fd, st.Dev),
		inMemory:      inMemory(fd),
	}
	e.setPolicy(p)
	e.q.blockSize = max(int64(st.Blksize), 512)
	e.root, err = f.mint(e, fd, "", unix.AT_EMPTY_PATH)
	// From here on e holds a reference to the mount's fd (and fd is
	// closed or became it).
	e.mnt = f.mounts.get(fd, dir)
	e.rootFd = e.mnt.fd
	e.refs.Store(1)
	if err != nil {
		e.release()
		return fmt.Errorf("localfs: file handle for export %s: %w", dir, err)
	}
	// Check now that the file system can open what it hands out.
	if _, kt, kfh, err := f.keys.decodeHandle(e.root); err != nil {
		e.release()
		return fmt.Errorf("localfs: export %s: %w", dir, err)
	} else if rfd, err := e.openByHandle(kt, kfh, unix.O_PATH); err != nil {
		e.release()
		return fmt.Errorf("localfs: export %s: open_by_handle_at: %w", dir, err)
	} else {
		unix.Close(rfd)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.closed:
		err = errors.New("localfs: closed")
	case f.byPath[path] != nil:
		err = fmt.Errorf("localfs: export path %s already in use", path)
	case f.byTag[e.tag] != nil:
		err = fmt.Errorf("localfs: volume %q already exported (or tag collision) at %s", volumeID, f.byTag[e.tag].path)
	}
	if err != nil {
		e.release()
		return err
	}
	e.q.joinSum(&f.committed)
	f.byPath[path] = e
	f.byTag[e.tag] = e
	f.log.V(1).Info("export added", "path", path, "dir", dir, "volumeID", volumeID, "dirSyncCoversInodes", e.dirSyncEnough)
	return nil
}

// RemoveExport stops serving path. Its handles become stale; requests
// already running finish.
func (f *FS) RemoveExport(path string) error {
	f.mu.Lock()
	e := f.byPath[path]
	if e != nil {
		delete(f.byPath, path)
		delete(f.byTag, e.tag)
	}
	f.mu.Unlock()
	if e == nil {
		return vfs.ErrNoExport
	}
	e.removed.Store(true)
	e.q.leaveSum()
	f.cache.forgetExport(e)
	f.dropPins(e) // before saving: what they kept is freed now
	if err := saveUsage(e); err != nil {
		f.log.Error(err, "saving volume usage", "export", path)
	}
	e.release()
	f.log.V(1).Info("export removed", "path", path)
	return nil
}

// SetPolicy replaces the policy of the export at path (nil: every client
// read-write). It applies from the next operation on, on every connection.
func (f *FS) SetPolicy(path string, p vfs.Policy) error {
	f.mu.RLock()
	e := f.byPath[path]
	f.mu.RUnlock()
	if e == nil {
		return vfs.ErrNoExport
	}
	e.setPolicy(p)
	return nil
}

// Exports lists, sorted, the export paths the client of ctx may mount.
func (f *FS) Exports(ctx context.Context) []vfs.Export {
	f.mu.RLock()
	out := make([]vfs.Export, 0, len(f.byPath))
	for p, e := range f.byPath {
		if e.grant(ctx) != vfs.GrantNone {
			out = append(out, vfs.Export{Path: p})
		}
	}
	f.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Mount returns the root handle of the export at path for the client of
// ctx.
func (f *FS) Mount(ctx context.Context, path string) (vfs.Handle, error) {
	f.mu.RLock()
	e := f.byPath[path]
	f.mu.RUnlock()
	if e == nil {
		return nil, vfs.ErrNoExport
	}
	if e.grant(ctx) == vfs.GrantNone {
		return nil, vfs.ErrNotAllowed
	}
	return append(vfs.Handle(nil), e.root...), nil
}

// WriteVerifier is random per FS, so it changes on every server start.
func (f *FS) WriteVerifier() vfs.Verifier { return f.verf }

// Close closes every export and open file, saving each export's usage;
// it reports usage it could not save. No request may run during or after
// Close.
func (f *FS) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	exps := f.byPath
	f.byPath, f.byTag = map[string]*export{}, map[tag]*export{}
	f.mu.Unlock()
	f.cache.closeAllNodes()
	var errs []error
	for _, e := range exps {
		e.removed.Store(true)
		e.q.leaveSum()
		f.dropPins(e) // before saving: what they kept is freed now
		if err := saveUsage(e); err != nil {
			errs = append(errs, fmt.Errorf("localfs: saving usage of %s: %w", e.path, err))
		}
		e.release()
	}
	return errors.Join(errs...)
}

// fsidOf derives a stable fsid from the volume ID alone, so it survives a
// lost key (clients use it to tell file systems apart, not to authorize).
func fsidOf(volumeID string) uint64 {
	s := sha256.Sum256([]byte("hangar fsid v1\x00" + volumeID))
	return binary.BigEndian.Uint64(s[:8])
}

func (f *FS) exportByTag(t tag) *export {
	f.mu.RLock()
	e := f.byTag[t]
	f.mu.RUnlock()
	return e
}

// resolve returns the node for h, with a reference the caller must release,
// if the client of ctx has grant need on its export (see export.allow):
// every operation on a handle comes through here, so the export's policy
// is applied to every call.
func (f *FS) resolve(ctx context.Context, h vfs.Handle, need vfs.Grant) (*node, error) {
	n, _, err := f.resolveInto(ctx, h, need, nil)
	return n, err
}

// resolveInto is resolve that also leaves the node's attributes in st and
// reports true when it had to open the node, whose fstat then serves.
func (f *FS) resolveInto(ctx context.Context, h vfs.Handle, need vfs.Grant, st *unix.Stat_t) (*node, bool, error) {
	if n := f.cache.get(h); n != nil {
		// No MAC check needed: the cache holds only handles we minted or
		// verified, and a hit needs the exact bytes, MAC included. (Map
		// timing depends on a per-process random hash seed, which gives an
		// attacker no handle on the MAC bytes.)
		if err := n.exp.allow(ctx, need); err != nil {
			f.cache.release(n)
			return nil, false, err
		}
		if n.exp.removed.Load() {
			f.cache.release(n)
			return nil, false, vfs.ErrStale
		}
		return n, false, nil
	}
	t, ktype, kfh, err := f.keys.decodeHandle(h)
	if err != nil {
		return nil, false, err
	}
	e := f.exportByTag(t)
	if e == nil {
		return nil, false, vfs.ErrStale
	}
	if err := e.allow(ctx, need); err != nil {
		return nil, false, err
	}
	fd, err := e.openByHandle(ktype, kfh, unix.O_PATH)
	if err != nil {
		switch err {
		case unix.ESTALE, unix.ENOENT, vfs.ErrStale:
			n, err := f.resolvePinned(e, h)
			return n, false, err
		}
		f.log.Error(err, "open_by_handle_at failed", "export", e.path)
		return nil, false, err
	}
	var local unix.Stat_t
	if st == nil {
		st = &local
	}
	a, err := e.statRef(fd, st)
	if err != nil {
		unix.Close(fd)
		return nil, false, err
	}
	if st.Dev != e.dev {
		// A valid MAC means we minted it, so this cannot happen unless the
		// export's backing directory was replaced underneath us.
		e.inodeUnref(a)
		unix.Close(fd)
		f.log.Info("handle resolves to another device; refusing", "export", e.path)
		return nil, false, vfs.ErrStale
	}
	if st.Nlink == 0 {
		// Removed: usable only while held.
		e.inodeUnref(a)
		unix.Close(fd)
		n, err := f.resolvePinned(e, h)
		return n, false, err
	}
	n := newNodeRef(string(h), e, fd, st, a)
	m, fresh := f.cache.add(n)
	if !fresh {
		n.close()
	}
	return m, true, nil
}

// resolveStat returns the node for h and its attributes, as every
// operation starts; the caller owns a reference to the node. A removed
// object is stale.
func (f *FS) resolveStat(ctx context.Context, h vfs.Handle, need vfs.Grant) (*node, unix.Stat_t, error) {
	var st unix.Stat_t
	n, opened, err := f.resolveInto(ctx, h, need, &st)
	if err != nil {
		return nil, st, err
	}
	if opened {
		return n, st, nil
	}
	if err := statNode(n, &st); err != nil {
		f.cache.release(n)
		return nil, st, f.stale(n, err)
	}
	return n, st, nil
}

// newNode makes the node of fd, an object of e with attributes st.
func newNode(key string, e *export, fd int, st *unix.Stat_t) (*node, error) {
	a, err := e.inodeRef(fd, st.Ino)
	if err != nil {
		return nil, err
	}
	return newNodeRef(key, e, fd, st, a), nil
}

// newNodeRef is newNode with the inode's state a already referenced (by
// statRef): the node takes over that reference.
func newNodeRef(key string, e *export, fd int, st *unix.Stat_t, a *inode) *node {
	e.inodesMu.Lock()
	a.key = key
	e.inodesMu.Unlock()
	n := &node{key: key, exp: e, fd: fd, typ: st.Mode & unix.S_IFMT, ino: st.Ino, acct: a}
	n.io.Store(-1)
	return n
}

// mint makes the handle of the object (dirfd, name) in e without following
// a final symlink.
func (f *FS) mint(e *export, dirfd int, name string, flags int) (vfs.Handle, error) {
	fh, _, err := unix.NameToHandleAt(dirfd, name, flags)
	if err != nil {
		return nil, err
	}
	return f.keys.encodeHandle(e.tag, fh.Type(), fh.Bytes())
}

// mintKey is mint of fd itself, as the string a node keys on, built
// without the allocations of unix.NameToHandleAt and of a second copy.
func (f *FS) mintKey(e *export, fd int) (string, error) {
	var kh kernelHandle
	if err := nameToHandleAt(fd, emptyPath, &kh, unix.AT_EMPTY_PATH); err != nil {
		return "", err
	}
	if kh.bytes > uint32(len(kh.fh)) {
		return "", errKernelHandle
	}
	return f.keys.encodeKey(e.tag, kh.typ, kh.fh[:kh.bytes])
}

// adopt turns fd, a freshly opened object of e, into a cached node. It
// takes ownership of fd, and of io (>= 0, may equal fd) as the node's data
// fd. The object's attributes are stored in st.
func (f *FS) adopt(e *export, fd, io int, st *unix.Stat_t) (*node, error) {
	closeFds := func() {
		if io >= 0 && io != fd {
			unix.Close(io)
		}
		unix.Close(fd)
	}
	a, err := e.statRef(fd, st)
	if err != nil {
		closeFds()
		return nil, err
	}
	if st.Dev != e.dev {
		// A mount point inside the volume: not part of it.
		e.inodeUnref(a)
		closeFds()
		return nil, unix.EACCES
	}
	key, err := f.mintKey(e, fd)
	if err != nil {
		e.inodeUnref(a)
		closeFds()
		if err == errKernelHandle {
			return nil, vfs.ErrNotSupp
		}
		return nil, err
	}
	n := newNodeRef(key, e, fd, st, a)
	if io >= 0 {
		n.io.Store(int32(io))
		n.ioOnly = io == fd
	}
	m, fresh := f.cache.add(n)
	if !fresh {
		n.close()
		n = m
	}
	if e.removed.Load() {
		// RemoveExport ran meanwhile and may have missed this node.
		f.cache.forget(n)
	}
	return n, nil
}

// ioFd returns n's data fd, opening it on first use.
func (f *FS) ioFd(n *node) (int, error) {
	if fd := n.io.Load(); fd >= 0 {
		return int(fd), nil
	}
	n.ioMu.Lock()
	defer n.ioMu.Unlock()
	if fd := n.io.Load(); fd >= 0 {
		return int(fd), nil
	}
	var fd int
	var err error
	switch n.typ {
	case unix.S_IFDIR:
		fd, err = unix.Openat(n.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	case unix.S_IFREG:
		fd, err = f.reopen(n, unix.O_RDWR)
		if err == unix.EROFS || err == unix.EPERM || err == unix.EACCES || err == unix.ETXTBSY {
			// Immutable file or read-only file system: reads still work.
			n.ioErr = err
			fd, err = f.reopen(n, unix.O_RDONLY)
		}
	default:
		// Never open devices, FIFOs or sockets: opening has side effects.
		return -1, unix.EINVAL
	}
	if err != nil {
		return -1, err
	}
	n.io.Store(int32(fd))
	return fd, nil
}

// reopen opens n's (regular file) inode again by handle with flags.
func (f *FS) reopen(n *node, flags int) (int, error) {
	_, ktype, kfh, err := f.keys.decodeHandle(vfs.Handle(n.key))
	if err != nil {
		return -1, err
	}
	fd, err := n.exp.openByHandle(ktype, kfh, flags)
	if err == unix.ESTALE || err == unix.ENOENT {
		// The kernel may refuse a handle of an unlinked inode; a held one
		// is still reachable through its pin (with the pin's access).
		pfd, ioErr, ok, perr := n.exp.pinDup(n.key)
		if !ok {
			return -1, vfs.ErrStale
		}
		if perr == nil && ioErr != nil && flags&unix.O_ACCMODE != unix.O_RDONLY {
			unix.Close(pfd)
			return -1, ioErr
		}
		return pfd, perr
	}
	return fd, err
}
