package localfs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/fileutil"
	"github.com/hangar-csi/hangar/pkg/vfs"
)

// Capacity accounting.
//
// Every export counts the data blocks (st_blocks*512, each inode once) and
// inodes below its root. Usage is established by a scan when the export is
// configured and then kept current: every operation that can change an
// inode's allocation settles the difference between the inode's st_blocks
// now and what was last accounted for it (inode.blocks, shared by all its
// nodes), so concurrent writes to one file add up exactly whichever order
// their settles run in. A removal discharges an inode when the kernel says
// its last link went (see victim), exactly once. Operations that allocate
// check first, against usage plus what operations in flight have reserved,
// and fail with EDQUOT before touching anything, so a refused WRITE leaves
// no partial data.
//
// Estimates are per file system block; every allocating write reserves a
// block more for the extent tree, and every new name what its directory
// may grow by. (An extent tree growing by two levels at once, rare, can
// still leave usage a block over the limit; the next allocating operation
// is then refused.)

// ExportConfig is an export's capacity and identity policy.
type ExportConfig struct {
	MaxBytes  uint64 // byte limit (the volume's capacity); 0 = unlimited
	MaxInodes uint64 // inode limit; 0 = unlimited
	// RootSquash maps uid 0 and gid 0 (also in supplementary groups) to
	// AnonUID and AnonGID.
	RootSquash       bool
	AnonUID, AnonGID uint32
	// UsageFile, if set, is where usage is saved on Close, and compared with
	// the scan at the next Configure (the scan wins; drift is logged).
	UsageFile string
	// Saved, if set, is the export's usage as saved when the server last
	// shut down cleanly (nothing changed it since): Configure takes it
	// instead of scanning the tree, which at startup would cost a pass
	// over every file of every volume.
	Saved *Usage
}

// Usage is an export's accounted usage and limits.
type Usage struct {
	Bytes, Inodes       uint64
	MaxBytes, MaxInodes uint64 // 0 = unlimited
}

// quota is an export's usage and limits.
type quota struct {
	mu                  sync.Mutex
	bytes, inodes       int64 // accounted usage
	resBytes, resInodes int64 // reserved by operations in flight
	maxBytes, maxInodes int64 // 0 = unlimited
	blockSize           int64
	usageFile           string
	sum                 *atomic.Int64 // the FS's CommittedBytes, while exported
	// onDisk is what usageFile holds, when known (so an unchanged usage
	// is not written again: a server with 100,000 idle volumes would
	// otherwise rewrite 100,000 files on every shutdown).
	onDisk *Usage
}

// reserve books bytes and inodes for an operation about to allocate them,
// or fails with EDQUOT. allowOver lets an operation that allocates no
// bytes through even when usage is at the limit.
func (q *quota) reserve(bytes, inodes int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.maxInodes > 0 && inodes > 0 && q.inodes+q.resInodes+inodes > q.maxInodes {
		return unix.EDQUOT
	}
	if q.maxBytes > 0 {
		if bytes > 0 && q.bytes+q.resBytes+bytes > q.maxBytes {
			return unix.EDQUOT
		}
		// Metadata overshoot may have left usage past the limit: nothing
		// that adds objects may run then.
		if inodes > 0 && q.bytes > q.maxBytes {
			return unix.EDQUOT
		}
	}
	q.resBytes += bytes
	q.resInodes += inodes
	return nil
}

func (q *quota) unreserve(bytes, inodes int64) {
	if bytes == 0 && inodes == 0 {
		return
	}
	q.mu.Lock()
	q.resBytes -= bytes
	q.resInodes -= inodes
	q.mu.Unlock()
}

func (q *quota) add(bytes, inodes int64) {
	if bytes == 0 && inodes == 0 {
		return
	}
	q.mu.Lock()
	before := q.committed()
	q.bytes += bytes
	q.inodes += inodes
	q.track(before)
	q.mu.Unlock()
}

func (q *quota) usage() Usage {
	q.mu.Lock()
	defer q.mu.Unlock()
	return Usage{Bytes: uint64(max(q.bytes, 0)), Inodes: uint64(max(q.inodes, 0)), MaxBytes: uint64(q.maxBytes), MaxInodes: uint64(q.maxInodes)}
}

// inode is the accounting state of one inode of an export, shared by every
// node of it (a handle can have two nodes for a while: one being closed
// after the cache forgot it, one opened since), so each allocation change is
// counted once.
type inode struct {
	ino  uint64
	refs int    // nodes and held victims using it; guarded by export.inodesMu
	key  string // the handle of a node of it, once it has had one; guarded by export.inodesMu

	mu     sync.Mutex
	blocks int64 // st_blocks last accounted to the export's usage
	gone   bool  // its last link was removed and it was discharged
	pins   int   // holds keeping it (hold.go): a removal leaves the discharge to the last

	// resize is held shared by WRITEs from the stat their estimate uses
	// to their settle, and exclusively by truncation: a truncation freeing
	// blocks under a write that estimated them allocated would let the
	// write allocate them again unreserved.
	resize sync.RWMutex
}

// inodeRef returns the accounting state of the inode fd refers to (number
// ino), with a reference for the caller. State is created on first use
// from the inode's current blocks: with no node of it open, no operation on
// it is in flight, so everything it holds is accounted.
func (e *export) inodeRef(fd int, ino uint64) (*inode, error) {
	e.inodesMu.Lock()
	defer e.inodesMu.Unlock()
	a := e.inodes[ino]
	if a == nil {
		var st unix.Stat_t
		if err := fstat(fd, &st); err != nil {
			return nil, err
		}
		a = e.newInodeLocked(&st)
	}
	a.refs++
	return a, nil
}

// statRef is fstat(fd, st) and inodeRef in one system call: the stat runs
// under inodesMu, so when it creates the state it is as current as
// inodeRef's own.
func (e *export) statRef(fd int, st *unix.Stat_t) (*inode, error) {
	e.inodesMu.Lock()
	defer e.inodesMu.Unlock()
	if err := fstat(fd, st); err != nil {
		return nil, err
	}
	a := e.inodes[st.Ino]
	if a == nil {
		a = e.newInodeLocked(st)
	}
	a.refs++
	return a, nil
}

// newInodeLocked makes the accounting state of the inode with attributes
// st, when none exists. An inode with no link left then was given back
// already (by the removal that took its last link, whose state is gone
// since), or was removed outside the server and never will be: either way
// it is gone, so no hold keeps it and nothing discharges it again.
func (e *export) newInodeLocked(st *unix.Stat_t) *inode {
	if e.inodes == nil {
		e.inodes = make(map[uint64]*inode)
	}
	a := &inode{ino: st.Ino, blocks: st.Blocks, gone: st.Nlink == 0}
	e.inodes[st.Ino] = a
	return a
}

// inodeUnref drops a reference taken by inodeRef. The inode stays alive
// while it has a reference (each stands for an open fd), so its number
// cannot be reused for another inode meanwhile.
func (e *export) inodeUnref(a *inode) {
	e.inodesMu.Lock()
	if a.refs--; a.refs == 0 {
		delete(e.inodes, a.ino)
	}
	e.inodesMu.Unlock()
}

// settle accounts the change of n's allocation since it was last accounted
// and leaves n's current attributes in st. A removed inode's blocks were
// discharged with it, so they are not settled.
func (f *FS) settle(n *node, st *unix.Stat_t) error {
	a := n.acct
	a.mu.Lock()
	if err := fstat(n.fd, st); err != nil {
		a.mu.Unlock()
		return err
	}
	var delta int64
	if !a.gone {
		delta = st.Blocks - a.blocks
		a.blocks = st.Blocks
	}
	a.mu.Unlock()
	n.exp.q.add(delta*512, 0)
	return nil
}

// settleQuiet is settle for operations that do not need the attributes.
func (f *FS) settleQuiet(n *node) {
	var st unix.Stat_t
	f.settle(n, &st)
}

// chargeNew accounts a newly created object n: one inode and its blocks.
func (f *FS) chargeNew(n *node) {
	n.acct.mu.Lock()
	b := n.acct.blocks
	n.acct.mu.Unlock()
	n.exp.q.add(b*512, 1)
}

// victim is the object an entry named just before REMOVE, RMDIR or RENAME
// removed or replaced the entry, held open across the operation: its link
// count afterwards, not before, tells whether the inode is gone, whatever
// LINKs and removals of its other names ran at the same time.
type victim struct {
	fd   int
	st   unix.Stat_t // before the operation
	acct *inode
	// n is the cached node whose fd is fd, with a reference, when the
	// object had one (fd is then n's, not the victim's own).
	n *node
	// gone says the operation took the last link (no stat needed).
	gone bool
}

// holdVictim opens what name in dirfd (a directory of e) is now. The
// caller holds dirfd's entry lock, so the name still refers to it when the
// operation runs. An object with an open node (the usual case: the client
// named it before removing it) is held by that node: one fstatat instead
// of opening, stating and closing the name, and the node is known without
// minting the handle again.
func (f *FS) holdVictim(e *export, dirfd int, name string) (*victim, error) {
	v := &victim{fd: -1}
	switch err := fstatatName(dirfd, name, &v.st); {
	case err == unix.ENOENT:
		return nil, err
	case err == nil && v.st.Dev == e.dev:
		// As in cachedChild: with the entry locked, name is the inode
		// fstatat saw, and an open node of that number pins it.
		if key := e.openKey(v.st.Ino); key != "" {
			if n := f.cache.getKey(key); n != nil {
				if n.exp == e && n.ino == v.st.Ino {
					v.fd, v.acct, v.n = n.fd, n.acct, n
					return v, nil
				}
				f.cache.release(n)
			}
		}
	}
	fd, err := openChild(dirfd, name, unix.O_PATH, 0)
	if err != nil {
		return nil, err
	}
	if v.acct, err = e.statRef(fd, &v.st); err != nil {
		unix.Close(fd)
		return nil, err
	}
	v.fd = fd
	return v, nil
}

// releaseVictim accounts what the operation did to v and closes it. If the
// inode has no link left, its blocks as accounted (a WRITE in flight may
// have allocated more without settling yet; those were never charged) and
// the inode are discharged, once, by whichever removal saw it go; and the
// cache forgets it, so cached fds stop pinning the freed space.
func (f *FS) releaseVictim(e *export, v *victim) {
	var st unix.Stat_t
	if v.gone || (fstat(v.fd, &st) == nil && st.Nlink == 0) {
		a := v.acct
		a.mu.Lock()
		// A held inode stays charged until its last unpin (hold.go).
		first := !a.gone && a.pins == 0
		if first {
			a.gone = true
		}
		blocks := a.blocks
		a.mu.Unlock()
		if first {
			e.q.add(-blocks*512, -1)
		}
		if v.n != nil {
			f.cache.forget(v.n)
		} else {
			// A node of the inode, if any, has set the key: an inode
			// has one handle.
			e.inodesMu.Lock()
			key := a.key
			e.inodesMu.Unlock()
			if key != "" {
				f.cache.forgetString(key)
			}
		}
	}
	if v.n != nil {
		// The cache closes the node's fds once forgotten and released;
		// the caller holds no lock here.
		f.cache.release(v.n)
		return
	}
	e.inodeUnref(v.acct)
	// Closing the last fd of a removed inode frees it, which takes a while
	// on some file systems: the caller holds no lock here.
	unix.Close(v.fd)
}

// reserveWrite reserves what a write of n bytes at off may newly allocate
// in the file with attributes st and data fd, and returns the bytes to
// unreserve once the write is settled. The first estimate needs no system
// call; only when it does not fit does it look at the file's holes, so an
// overwrite of allocated blocks never fails near the limit and a write far
// from it never takes the file's locks an lseek takes.
func (q *quota) reserveWrite(fd int, st *unix.Stat_t, off, n uint64) (int64, error) {
	est := q.writeEstimate(fd, st, off, n, false)
	if est == 0 {
		return 0, nil
	}
	err := q.reserve(est, 0)
	if errors.Is(err, unix.EDQUOT) {
		if est = q.writeEstimate(fd, st, off, n, true); est == 0 {
			return 0, nil
		}
		err = q.reserve(est, 0)
	}
	if err != nil {
		return 0, err
	}
	return est, nil
}

// writeEstimate is an upper bound of the bytes a write of n bytes at off
// can newly allocate in the file with attributes st and data fd. Where the
// file may have holes in the range it counts them with lseek if exact, or
// else the whole range; it is 0 for overwrites of a file known dense.
func (q *quota) writeEstimate(fd int, st *unix.Stat_t, off, n uint64, exact bool) int64 {
	if n == 0 {
		return 0
	}
	bs := uint64(q.blockSize)
	start := off / bs * bs
	end := roundUp(off+n, bs)
	eofBlock := roundUp(uint64(st.Size), bs)
	allocated := uint64(st.Blocks) * 512
	var est uint64
	// Blocks beyond the data's are extent tree blocks, which may stand in
	// for as many bytes of holes.
	if allocated < eofBlock || (allocated > eofBlock && start < eofBlock) {
		est = end - start
		if exact {
			est = holeBytes(fd, start, end, eofBlock)
		}
	} else if end > max(start, eofBlock) {
		// Everything up to EOF is allocated: only the part past it is new.
		est = end - max(start, eofBlock)
	}
	if est > 0 {
		// A new extent may make the file system add an extent tree block.
		est += bs
	}
	return int64(est)
}

// holeBytes counts the bytes of [start, end) not backed by data in a file
// whose data ends by eof.
func holeBytes(fd int, start, end, eof uint64) uint64 {
	var holes uint64
	pos := start
	lim := min(end, eof)
	for pos < lim {
		d, err := unix.Seek(fd, int64(pos), unix.SEEK_DATA)
		if err != nil || uint64(d) >= lim {
			// ENXIO: no data after pos.
			holes += lim - pos
			break
		}
		holes += uint64(d) - pos
		h, err := unix.Seek(fd, d, unix.SEEK_HOLE)
		if err != nil {
			break
		}
		pos = uint64(h)
	}
	if end > max(start, eof) {
		holes += end - max(start, eof)
	}
	return holes
}

func roundUp(v, to uint64) uint64 { return (v + to - 1) / to * to }

// entryBytes bounds what adding a name to a directory allocates: ext4
// appends two blocks at once when a directory outgrows its first block and
// becomes indexed.
func (q *quota) entryBytes() int64 { return 2 * q.blockSize }

// newObjectBytes estimates what creating an object of type typ allocates,
// besides its directory entry.
func (q *quota) newObjectBytes(typ uint32, symlinkTarget string) int64 {
	switch typ {
	case unix.S_IFDIR:
		return q.blockSize
	case unix.S_IFLNK:
		if len(symlinkTarget) >= 60 { // longer targets leave the inode
			return q.blockSize
		}
	}
	return 0
}

func (f *FS) exportAt(path string) *export {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.byPath[path]
}

// Configure sets the policy of the export at path and establishes its usage
// by scanning it. Call it right after AddExport, before clients use the
// export; use SetLimits to change limits later.
func (f *FS) Configure(path string, c ExportConfig) error {
	e := f.exportAt(path)
	if e == nil {
		return vfs.ErrNoExport
	}
	if c.RootSquash {
		e.squash.Store(&squash{uid: c.AnonUID, gid: c.AnonGID})
	} else {
		e.squash.Store(nil)
	}
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(e.rootFd, &sfs); err != nil {
		return fmt.Errorf("localfs: statfs export %s: %w", path, err)
	}
	e.q.mu.Lock()
	defer e.q.mu.Unlock()
	defer e.q.track(e.q.committed())
	e.q.blockSize = max(int64(sfs.Bsize), 512)
	e.q.maxBytes, e.q.maxInodes = int64(c.MaxBytes), int64(c.MaxInodes)
	e.q.usageFile = c.UsageFile
	if c.Saved != nil {
		e.q.bytes, e.q.inodes = int64(c.Saved.Bytes), int64(c.Saved.Inodes)
		saved := *c.Saved
		e.q.onDisk = &saved
		return nil
	}
	// Hold q.mu through the scan: operations on this export wait in
	// reserve, so the scan sees a still tree.
	bytes, inodes, err := scanUsage(e.dirPath, e.dev)
	if err != nil {
		return fmt.Errorf("localfs: scanning usage of %s: %w", path, err)
	}
	saved, err := loadUsage(c.UsageFile)
	if err == nil {
		e.q.onDisk = &saved
	}
	if err == nil && (saved.Bytes != uint64(bytes) || saved.Inodes != uint64(inodes)) {
		f.log.Info("volume usage differs from the saved usage; using the scan", "export", path,
			"savedBytes", saved.Bytes, "scannedBytes", bytes, "savedInodes", saved.Inodes, "scannedInodes", inodes)
	}
	e.q.bytes, e.q.inodes = bytes, inodes
	return nil
}

// SetLimits changes the limits of a live export; it takes effect for the
// next operation (how ControllerExpandVolume grows a mounted volume).
func (f *FS) SetLimits(path string, maxBytes, maxInodes uint64) error {
	e := f.exportAt(path)
	if e == nil {
		return vfs.ErrNoExport
	}
	e.q.mu.Lock()
	before := e.q.committed()
	e.q.maxBytes, e.q.maxInodes = int64(maxBytes), int64(maxInodes)
	e.q.track(before)
	e.q.mu.Unlock()
	return nil
}

// SetSquash changes the root squash of a live export; it applies to the
// next operation (ControllerModifyVolume: no remount needed).
func (f *FS) SetSquash(path string, rootSquash bool, anonUID, anonGID uint32) error {
	e := f.exportAt(path)
	if e == nil {
		return vfs.ErrNoExport
	}
	if rootSquash {
		e.squash.Store(&squash{uid: anonUID, gid: anonGID})
	} else {
		e.squash.Store(nil)
	}
	return nil
}

// Usage reports the usage and limits of the export at path.
func (f *FS) Usage(path string) (Usage, error) {
	e := f.exportAt(path)
	if e == nil {
		return Usage{}, vfs.ErrNoExport
	}
	return e.q.usage(), nil
}

// VolumeOf names the volume handle h belongs to (by its tag, without
// checking its MAC: for labelling metrics, not for authorization).
func (f *FS) VolumeOf(h vfs.Handle) (string, bool) {
	if len(h) < headerLen || h[0] != handleVersion {
		return "", false
	}
	var t tag
	copy(t[:], h[1:1+tagLen])
	e := f.exportByTag(t)
	if e == nil {
		return "", false
	}
	return e.volumeID, true
}

// saveUsage writes e's usage to its usage file, if it has one.
func saveUsage(e *export) error {
	e.q.mu.Lock()
	file, onDisk := e.q.usageFile, e.q.onDisk
	e.q.mu.Unlock()
	if file == "" {
		return nil
	}
	u := e.q.usage()
	if onDisk != nil && *onDisk == u {
		return nil
	}
	b, err := json.Marshal(u)
	if err != nil {
		return err
	}
	// A lost or stale cache only costs a rescan (see Configure).
	if err := fileutil.WriteFileBestEffort(file, b, 0o600); err != nil {
		return err
	}
	e.q.mu.Lock()
	e.q.onDisk = &u
	e.q.mu.Unlock()
	return nil
}

func loadUsage(file string) (Usage, error) {
	var u Usage
	if file == "" {
		return u, errors.New("no usage file")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return u, err
	}
	return u, json.Unmarshal(b, &u)
}

// scanUsage counts the blocks and inodes below root on device dev, each
// inode once. Mount points inside are not part of the volume.
func scanUsage(root string, dev uint64) (bytes, inodes int64, err error) {
	linked := map[uint64]bool{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile
			}
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			if err == unix.ENOENT {
				return nil
			}
			return err
		}
		if st.Dev != dev {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR && st.Nlink > 1 {
			if linked[st.Ino] {
				return nil
			}
			linked[st.Ino] = true
		}
		bytes += st.Blocks * 512
		inodes++
		return nil
	})
	return bytes, inodes, err
}
