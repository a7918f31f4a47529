package vfstest

import (
	"context"
	"encoding/binary"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

const handleSize = 16 // fsid, fileid

// MemFS is an in-memory vfs.FS for protocol tests and benchmarks of the NFS
// layer. It follows the vfs contract (TestFS checks it does), export
// policies (SetPolicy) included, but checks no permissions and persists
// nothing. The zero value is not usable; call
// NewMemFS.
type MemFS struct {
	// Fault, if set, is consulted at the start of every operation with its
	// name ("GetAttr", "Read", ...); a non-nil result is returned as the
	// operation's error. Tests use it to drive error paths.
	Fault func(op string) error
	// MaxFileSize bounds file sizes (default 4 GiB); writes and truncations
	// beyond it fail with EFBIG.
	MaxFileSize uint64

	mu       sync.Mutex
	exports  map[string]*node
	limits   map[uint64]limits     // by fsid
	policies map[uint64]vfs.Policy // by fsid; none: everyone read-write
	nodes    map[uint64]*node
	nextID   uint64
	nextFS   uint64
	verf     vfs.Verifier
	now      func() time.Time
}

// limits bound an export's usage; 0 is unlimited.
type limits struct{ maxBytes, maxInodes uint64 }

type node struct {
	id, fsid uint64
	attr     vfs.Attr
	data     []byte
	target   string
	dir      *dirState
	excl     *vfs.Verifier // exclusive create verifier, until attributes are set
	holes    []span        // punched holes in data, sorted, disjoint (see Deallocate)
	holds    int           // vfs.Holder holds: an unlinked file lives on while > 0
}

type dirState struct {
	parent  *node
	entries map[string]*dirent
	seq     uint64 // last cookie handed out
}

type dirent struct {
	name   string
	n      *node
	cookie uint64
}

// NewMemFS returns an empty MemFS with no exports.
func NewMemFS() *MemFS {
	return &MemFS{
		exports:     map[string]*node{},
		limits:      map[uint64]limits{},
		policies:    map[uint64]vfs.Policy{},
		nodes:       map[uint64]*node{},
		nextID:      1,
		nextFS:      1,
		verf:        vfs.Verifier{'m', 'e', 'm', 'f', 's', 0, 0, 1},
		MaxFileSize: 1 << 32,
		now:         time.Now,
	}
}

// AddExport creates an empty root directory exported at path.
func (f *MemFS) AddExport(path string) vfs.Handle {
	f.mu.Lock()
	defer f.mu.Unlock()
	fsid := f.nextFS
	f.nextFS++
	root := f.newNode(fsid, vfs.TypeDirectory, 0o755)
	root.dir.parent = root
	f.exports[path] = root
	return handleOf(root)
}

// SetPolicy sets the policy of the export at path (nil: everyone
// read-write); it applies from the next operation on.
func (f *MemFS) SetPolicy(path string, p vfs.Policy) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	root, ok := f.exports[path]
	if !ok {
		return vfs.ErrNoExport
	}
	if p == nil {
		delete(f.policies, root.fsid)
	} else {
		f.policies[root.fsid] = p
	}
	return nil
}

// SetWriteVerifier changes the verifier, as a server restart would.
func (f *MemFS) SetWriteVerifier(v vfs.Verifier) {
	f.mu.Lock()
	f.verf = v
	f.mu.Unlock()
}

// SetLimits bounds the usage of the export at path, as a volume's capacity
// does; 0 is unlimited. Operations that would allocate past a limit fail
// with EDQUOT.
func (f *MemFS) SetLimits(path string, maxBytes, maxInodes uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	root, ok := f.exports[path]
	if !ok {
		return vfs.ErrNoExport
	}
	f.limits[root.fsid] = limits{maxBytes, maxInodes}
	return nil
}

// Usage reports the bytes and inodes the export at path uses.
func (f *MemFS) Usage(path string) (bytes, inodes uint64, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	root, ok := f.exports[path]
	if !ok {
		return 0, 0, vfs.ErrNoExport
	}
	bytes, inodes = f.usage(root.fsid)
	return bytes, inodes, nil
}

func (f *MemFS) usage(fsid uint64) (bytes, inodes uint64) {
	for _, n := range f.nodes {
		if n.fsid == fsid {
			bytes += n.attr.Used
			inodes++
		}
	}
	return bytes, inodes
}

// reserve fails with EDQUOT unless the export fsid may grow by bytes and
// inodes.
func (f *MemFS) reserve(fsid, bytes, inodes uint64) error {
	l := f.limits[fsid]
	if l.maxBytes == 0 && l.maxInodes == 0 {
		return nil
	}
	b, i := f.usage(fsid)
	if (l.maxInodes > 0 && inodes > 0 && i+inodes > l.maxInodes) ||
		(l.maxBytes > 0 && bytes > 0 && b+bytes > l.maxBytes) {
		return syscall.EDQUOT
	}
	return nil
}

func (f *MemFS) newNode(fsid uint64, t vfs.FileType, mode uint32) *node {
	id := f.nextID
	f.nextID++
	now := f.now()
	n := &node{id: id, fsid: fsid}
	n.attr = vfs.Attr{Type: t, Mode: mode & 07777, Nlink: 1, FSID: fsid, FileID: id,
		Atime: now, Mtime: now, Ctime: now}
	if t == vfs.TypeDirectory {
		n.dir = &dirState{entries: map[string]*dirent{}}
		n.attr.Nlink = 2
		n.attr.Size = 4096
		n.attr.Used = 4096
	}
	f.nodes[id] = n
	return n
}

func handleOf(n *node) vfs.Handle {
	h := make(vfs.Handle, handleSize)
	binary.BigEndian.PutUint64(h, n.fsid)
	binary.BigEndian.PutUint64(h[8:], n.id)
	return h
}

// get resolves h for an operation that needs grant need of the export's
// policy.
func (f *MemFS) get(ctx context.Context, h vfs.Handle, need vfs.Grant) (*node, error) {
	if len(h) != handleSize {
		return nil, vfs.ErrBadHandle
	}
	switch g := f.grant(ctx, binary.BigEndian.Uint64(h)); {
	case g == vfs.GrantNone:
		return nil, vfs.ErrNotAllowed
	case g < need:
		return nil, syscall.EROFS
	}
	n := f.nodes[binary.BigEndian.Uint64(h[8:])]
	if n == nil || n.fsid != binary.BigEndian.Uint64(h) {
		return nil, vfs.ErrStale
	}
	return n, nil
}

// grant is what the policy of export fsid grants the client in ctx.
func (f *MemFS) grant(ctx context.Context, fsid uint64) vfs.Grant {
	if p := f.policies[fsid]; p != nil {
		return p(vfs.ClientOf(ctx))
	}
	return vfs.GrantReadWrite
}

func (f *MemFS) getDir(ctx context.Context, h vfs.Handle, need vfs.Grant) (*node, error) {
	n, err := f.get(ctx, h, need)
	if err != nil {
		return nil, err
	}
	if n.dir == nil {
		return nil, syscall.ENOTDIR
	}
	return n, nil
}

func (f *MemFS) fault(op string) error {
	if f.Fault != nil {
		return f.Fault(op)
	}
	return nil
}

func (n *node) attrCopy() *vfs.Attr {
	a := n.attr
	return &a
}

func (n *node) pre() *vfs.WccAttr {
	return &vfs.WccAttr{Size: n.attr.Size, Mtime: n.attr.Mtime, Ctime: n.attr.Ctime}
}

func (f *MemFS) touch(n *node) {
	now := f.now()
	n.attr.Mtime, n.attr.Ctime = now, now
}

// Exports implements vfs.FS.
func (f *MemFS) Exports(ctx context.Context) []vfs.Export {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []vfs.Export
	for p, root := range f.exports {
		if f.grant(ctx, root.fsid) != vfs.GrantNone {
			out = append(out, vfs.Export{Path: p})
		}
	}
	slices.SortFunc(out, func(a, b vfs.Export) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// Mount implements vfs.FS.
func (f *MemFS) Mount(ctx context.Context, path string) (vfs.Handle, error) {
	if err := f.fault("Mount"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	root, ok := f.exports[path]
	if !ok {
		return nil, vfs.ErrNoExport
	}
	if f.grant(ctx, root.fsid) == vfs.GrantNone {
		return nil, vfs.ErrNotAllowed
	}
	return handleOf(root), nil
}

// GetAttr implements vfs.FS.
func (f *MemFS) GetAttr(ctx context.Context, h vfs.Handle) (vfs.Attr, error) {
	if err := f.fault("GetAttr"); err != nil {
		return vfs.Attr{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.get(ctx, h, vfs.GrantReadOnly)
	if err != nil {
		return vfs.Attr{}, err
	}
	return n.attr, nil
}

// SetAttr implements vfs.FS.
func (f *MemFS) SetAttr(ctx context.Context, c vfs.Cred, h vfs.Handle, sa vfs.SetAttr, guard *time.Time) (vfs.Wcc, error) {
	if err := f.fault("SetAttr"); err != nil {
		return vfs.Wcc{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.get(ctx, h, vfs.GrantReadWrite)
	if err != nil {
		return vfs.Wcc{}, err
	}
	wcc := vfs.Wcc{Before: n.pre()}
	if guard != nil && !guard.Equal(n.attr.Ctime) {
		wcc.After = n.attrCopy()
		return wcc, vfs.ErrNotSync
	}
	if err := f.apply(n, sa); err != nil {
		wcc.After = n.attrCopy()
		return wcc, err
	}
	wcc.After = n.attrCopy()
	return wcc, nil
}

func (f *MemFS) apply(n *node, sa vfs.SetAttr) error {
	if sa.Mode != nil && n.attr.Type == vfs.TypeSymlink && *sa.Mode&07777 != n.attr.Mode {
		// As localfs: Linux has no symlink permissions.
		return vfs.ErrNotSupp
	}
	if sa.Size != nil {
		if n.dir != nil {
			return syscall.EISDIR
		}
		if n.attr.Type != vfs.TypeRegular {
			return syscall.EINVAL
		}
		if *sa.Size > f.MaxFileSize {
			return syscall.EFBIG
		}
		if l := f.limits[n.fsid]; l.maxBytes > 0 && *sa.Size > l.maxBytes {
			// A file larger than the whole volume could never be filled.
			return syscall.EDQUOT
		}
		sz := int(*sa.Size)
		if sz <= len(n.data) {
			n.data = n.data[:sz]
		} else {
			n.data = append(n.data, make([]byte, sz-len(n.data))...)
		}
		n.resized()
		f.touch(n)
	}
	if sa.Mode != nil {
		n.attr.Mode = *sa.Mode & 07777
	}
	if sa.UID != nil {
		n.attr.UID = *sa.UID
	}
	if sa.GID != nil {
		n.attr.GID = *sa.GID
	}
	now := f.now()
	switch sa.Atime.How {
	case vfs.TimeServer:
		n.attr.Atime = now
	case vfs.TimeClient:
		n.attr.Atime = sa.Atime.Time
	}
	switch sa.Mtime.How {
	case vfs.TimeServer:
		n.attr.Mtime = now
	case vfs.TimeClient:
		n.attr.Mtime = sa.Mtime.Time
	}
	n.attr.Ctime = now
	n.excl = nil
	return nil
}

// Lookup implements vfs.FS.
func (f *MemFS) Lookup(ctx context.Context, c vfs.Cred, dir vfs.Handle, name string) (vfs.Handle, vfs.Attr, *vfs.Attr, error) {
	if err := f.fault("Lookup"); err != nil {
		return nil, vfs.Attr{}, nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.getDir(ctx, dir, vfs.GrantReadOnly)
	if err != nil {
		return nil, vfs.Attr{}, nil, err
	}
	var n *node
	switch name {
	case ".":
		n = d
	case "..":
		n = d.dir.parent
	default:
		e := d.dir.entries[name]
		if e == nil {
			return nil, vfs.Attr{}, d.attrCopy(), syscall.ENOENT
		}
		n = e.n
	}
	return handleOf(n), n.attr, d.attrCopy(), nil
}

// Access implements vfs.FS by the mode bits, as localfs does, although
// MemFS enforces no permissions.
func (f *MemFS) Access(ctx context.Context, c vfs.Cred, h vfs.Handle, want uint32) (uint32, vfs.Attr, error) {
	if err := f.fault("Access"); err != nil {
		return 0, vfs.Attr{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.get(ctx, h, vfs.GrantReadOnly)
	if err != nil {
		return 0, vfs.Attr{}, err
	}
	granted := accessBits(&c, &n.attr) & want
	if f.grant(ctx, n.fsid) == vfs.GrantReadOnly {
		granted &^= vfs.AccessModify | vfs.AccessExtend | vfs.AccessDelete
	}
	return granted, n.attr, nil
}

// accessBits grants by the rwx bits of the class c falls in. LOOKUP and
// DELETE are for directories only, EXECUTE for the rest (as knfsd).
func accessBits(c *vfs.Cred, a *vfs.Attr) uint32 {
	isDir := a.Type == vfs.TypeDirectory
	var perm uint32
	switch {
	case c.UID == 0:
		perm = 7
		if !isDir && a.Mode&0o111 == 0 {
			perm = 6
		}
	case c.UID == a.UID:
		perm = a.Mode >> 6 & 7
	case c.GID == a.GID || slices.Contains(c.Groups, a.GID):
		perm = a.Mode >> 3 & 7
	default:
		perm = a.Mode & 7
	}
	var g uint32
	if perm&4 != 0 {
		g |= vfs.AccessRead
	}
	if perm&2 != 0 {
		g |= vfs.AccessModify | vfs.AccessExtend
		if isDir {
			g |= vfs.AccessDelete
		}
	}
	if perm&1 != 0 {
		if isDir {
			g |= vfs.AccessLookup
		} else {
			g |= vfs.AccessExecute
		}
	}
	return g
}

// Readlink implements vfs.FS.
func (f *MemFS) Readlink(ctx context.Context, c vfs.Cred, h vfs.Handle) (string, *vfs.Attr, error) {
	if err := f.fault("Readlink"); err != nil {
		return "", nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.get(ctx, h, vfs.GrantReadOnly)
	if err != nil {
		return "", nil, err
	}
	if n.attr.Type != vfs.TypeSymlink {
		return "", n.attrCopy(), syscall.EINVAL
	}
	return n.target, n.attrCopy(), nil
}

// Read implements vfs.FS.
func (f *MemFS) Read(ctx context.Context, c vfs.Cred, h vfs.Handle, off uint64, buf []byte) (int, bool, *vfs.Attr, error) {
	if err := f.fault("Read"); err != nil {
		return 0, false, nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.get(ctx, h, vfs.GrantReadOnly)
	if err != nil {
		return 0, false, nil, err
	}
	switch {
	case n.dir != nil:
		return 0, false, n.attrCopy(), syscall.EISDIR
	case n.attr.Type != vfs.TypeRegular:
		return 0, false, n.attrCopy(), syscall.EINVAL
	}
	if off >= uint64(len(n.data)) {
		return 0, true, n.attrCopy(), nil
	}
	k := copy(buf, n.data[off:])
	return k, off+uint64(k) >= uint64(len(n.data)), n.attrCopy(), nil
}

// Write implements vfs.FS. Everything is "stable" at once.
func (f *MemFS) Write(ctx context.Context, c vfs.Cred, h vfs.Handle, off uint64, data []byte, stable vfs.Stable) (int, vfs.Stable, vfs.Wcc, error) {
	if err := f.fault("Write"); err != nil {
		return 0, 0, vfs.Wcc{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.get(ctx, h, vfs.GrantReadWrite)
	if err != nil {
		return 0, 0, vfs.Wcc{}, err
	}
	wcc := vfs.Wcc{Before: n.pre()}
	switch {
	case n.dir != nil:
		wcc.After = n.attrCopy()
		return 0, 0, wcc, syscall.EISDIR
	case n.attr.Type != vfs.TypeRegular:
		wcc.After = n.attrCopy()
		return 0, 0, wcc, syscall.EINVAL
	case off > f.MaxFileSize || off+uint64(len(data)) > f.MaxFileSize:
		wcc.After = n.attrCopy()
		return 0, 0, wcc, syscall.EFBIG
	}
	if end := off + uint64(len(data)); end > uint64(len(n.data)) || n.holeBytes(off, end) > 0 {
		if err := f.reserve(n.fsid, n.allocBytes(off, end), 0); err != nil {
			wcc.After = n.attrCopy()
			return 0, 0, wcc, err
		}
	}
	end := int(off) + len(data)
	if end > len(n.data) {
		n.data = append(n.data, make([]byte, end-len(n.data))...)
	}
	copy(n.data[off:], data)
	n.fill(off, off+uint64(len(data)))
	n.resized()
	f.touch(n)
	wcc.After = n.attrCopy()
	return len(data), vfs.FileSync, wcc, nil
}

// create makes a new object named name in d, owned by c unless sa says
// otherwise.
func (f *MemFS) create(c vfs.Cred, d *node, name string, t vfs.FileType, sa vfs.SetAttr) (*node, error) {
	if _, ok := d.dir.entries[name]; ok {
		return nil, syscall.EEXIST
	}
	var bytes uint64
	if t == vfs.TypeDirectory {
		bytes = 4096
	}
	if err := f.reserve(d.fsid, bytes, 1); err != nil {
		return nil, err
	}
	mode := uint32(0o644)
	if t == vfs.TypeDirectory {
		mode = 0o755
	}
	if sa.Mode != nil {
		mode = *sa.Mode
	}
	n := f.newNode(d.fsid, t, mode)
	n.attr.UID, n.attr.GID = c.UID, c.GID
	if t == vfs.TypeDirectory {
		n.dir.parent = d
		d.attr.Nlink++
	}
	f.link(d, name, n)
	sa.Mode = nil
	if err := f.apply(n, sa); err != nil {
		return nil, err
	}
	return n, nil
}

func (f *MemFS) link(d *node, name string, n *node) {
	d.dir.seq++
	d.dir.entries[name] = &dirent{name: name, n: n, cookie: d.dir.seq}
	f.touch(d)
}

func (f *MemFS) dirOp(ctx context.Context, op string, dir vfs.Handle) (*node, vfs.Wcc, error) {
	if err := f.fault(op); err != nil {
		return nil, vfs.Wcc{}, err
	}
	d, err := f.getDir(ctx, dir, vfs.GrantReadWrite)
	if err != nil {
		return nil, vfs.Wcc{}, err
	}
	return d, vfs.Wcc{Before: d.pre()}, nil
}

// Create implements vfs.FS.
func (f *MemFS) Create(ctx context.Context, c vfs.Cred, dir vfs.Handle, name string, how vfs.CreateHow, sa vfs.SetAttr, verf vfs.Verifier) (vfs.Handle, *vfs.Attr, vfs.Wcc, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, wcc, err := f.dirOp(ctx, "Create", dir)
	if err != nil {
		return nil, nil, wcc, err
	}
	if e, ok := d.dir.entries[name]; ok {
		switch {
		case how == vfs.CreateExclusive && e.n.excl != nil && *e.n.excl == verf:
			return handleOf(e.n), e.n.attrCopy(), vfs.Wcc{Before: wcc.Before, After: d.attrCopy()}, nil
		case how == vfs.CreateUnchecked && e.n.attr.Type == vfs.TypeRegular:
			// UNCHECKED: an existing file is kept; only a size in sa
			// (typically 0, for O_TRUNC) changes it.
			if sa.Size != nil {
				if err := f.apply(e.n, vfs.SetAttr{Size: sa.Size}); err != nil {
					return nil, nil, vfs.Wcc{Before: wcc.Before, After: d.attrCopy()}, err
				}
			}
			return handleOf(e.n), e.n.attrCopy(), vfs.Wcc{Before: wcc.Before, After: d.attrCopy()}, nil
		}
		return nil, nil, vfs.Wcc{Before: wcc.Before, After: d.attrCopy()}, syscall.EEXIST
	}
	n, err := f.create(c, d, name, vfs.TypeRegular, sa)
	if err != nil {
		return nil, nil, vfs.Wcc{Before: wcc.Before, After: d.attrCopy()}, err
	}
	if how == vfs.CreateExclusive {
		v := verf
		n.excl = &v
	}
	return handleOf(n), n.attrCopy(), vfs.Wcc{Before: wcc.Before, After: d.attrCopy()}, nil
}

func (f *MemFS) make(ctx context.Context, op string, c vfs.Cred, dir vfs.Handle, name string, t vfs.FileType, sa vfs.SetAttr, setup func(*node)) (vfs.Handle, *vfs.Attr, vfs.Wcc, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, wcc, err := f.dirOp(ctx, op, dir)
	if err != nil {
		return nil, nil, wcc, err
	}
	n, err := f.create(c, d, name, t, sa)
	wcc.After = d.attrCopy()
	if err != nil {
		return nil, nil, wcc, err
	}
	if setup != nil {
		setup(n)
	}
	return handleOf(n), n.attrCopy(), wcc, nil
}

// Mkdir implements vfs.FS.
func (f *MemFS) Mkdir(ctx context.Context, c vfs.Cred, dir vfs.Handle, name string, sa vfs.SetAttr) (vfs.Handle, *vfs.Attr, vfs.Wcc, error) {
	return f.make(ctx, "Mkdir", c, dir, name, vfs.TypeDirectory, sa, nil)
}

// Symlink implements vfs.FS.
func (f *MemFS) Symlink(ctx context.Context, c vfs.Cred, dir vfs.Handle, name, target string, sa vfs.SetAttr) (vfs.Handle, *vfs.Attr, vfs.Wcc, error) {
	switch {
	case target == "":
		return nil, nil, vfs.Wcc{}, syscall.EINVAL
	case len(target) >= 4096: // Linux's PATH_MAX, as localfs
		return nil, nil, vfs.Wcc{}, syscall.ENAMETOOLONG
	}
	// Symlinks are always 0777, whatever the client asks.
	m := uint32(0o777)
	sa.Mode = &m
	return f.make(ctx, "Symlink", c, dir, name, vfs.TypeSymlink, sa, func(n *node) {
		n.target = target
		n.attr.Size = uint64(len(target))
	})
}

// Mknod implements vfs.FS. Devices are metadata only, with localfs's
// rules: root callers only, Linux's 12-bit major and 20-bit minor.
func (f *MemFS) Mknod(ctx context.Context, c vfs.Cred, dir vfs.Handle, name string, t vfs.FileType, sa vfs.SetAttr, major, minor uint32) (vfs.Handle, *vfs.Attr, vfs.Wcc, error) {
	if err := f.fault("Mknod"); err != nil {
		return nil, nil, vfs.Wcc{}, err
	}
	var setup func(*node)
	switch t {
	case vfs.TypeFIFO, vfs.TypeSocket:
	case vfs.TypeChar, vfs.TypeBlock:
		switch {
		case major >= 1<<12 || minor >= 1<<20:
			return nil, nil, vfs.Wcc{}, syscall.EINVAL
		case c.UID != 0:
			return nil, nil, vfs.Wcc{}, syscall.EPERM
		}
		setup = func(n *node) { n.attr.RdevMajor, n.attr.RdevMinor = major, minor }
	default:
		return nil, nil, vfs.Wcc{}, vfs.ErrBadType
	}
	return f.make(ctx, "Mknod", c, dir, name, t, sa, setup)
}

func (f *MemFS) unlink(d *node, name string, wantDir bool) error {
	e := d.dir.entries[name]
	if e == nil {
		return syscall.ENOENT
	}
	if wantDir {
		if e.n.dir == nil {
			return syscall.ENOTDIR
		}
		if len(e.n.dir.entries) > 0 {
			return syscall.ENOTEMPTY
		}
		d.attr.Nlink--
	} else if e.n.dir != nil {
		return syscall.EISDIR
	}
	delete(d.dir.entries, name)
	f.drop(e.n)
	f.touch(d)
	return nil
}

func (f *MemFS) drop(n *node) {
	if n.dir != nil {
		delete(f.nodes, n.id)
		return
	}
	n.attr.Nlink--
	n.attr.Ctime = f.now()
	if n.attr.Nlink == 0 && n.holds == 0 {
		delete(f.nodes, n.id)
	}
}

var _ vfs.Holder = (*MemFS)(nil)

// Hold implements vfs.Holder: a held file stays in the node table (so its
// handle resolves and usage counts it) until its last hold goes.
func (f *MemFS) Hold(ctx context.Context, h vfs.Handle) (vfs.Hold, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fault("Hold"); err != nil {
		return nil, err
	}
	n, err := f.get(ctx, h, vfs.GrantReadOnly)
	if err != nil {
		return nil, err
	}
	if n.attr.Type != vfs.TypeRegular {
		return nil, syscall.EINVAL
	}
	n.holds++
	return &memHold{f: f, n: n}, nil
}

type memHold struct {
	f    *MemFS
	n    *node
	done bool
}

func (h *memHold) Unlinked() bool {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	return !h.done && h.n.attr.Nlink == 0
}

func (h *memHold) Release() {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	if h.done {
		return
	}
	h.done = true
	if h.n.holds--; h.n.holds == 0 && h.n.attr.Nlink == 0 {
		delete(h.f.nodes, h.n.id)
	}
}

func (f *MemFS) removeOp(ctx context.Context, op string, dir vfs.Handle, name string, wantDir bool) (vfs.Wcc, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, wcc, err := f.dirOp(ctx, op, dir)
	if err != nil {
		return wcc, err
	}
	err = f.unlink(d, name, wantDir)
	wcc.After = d.attrCopy()
	return wcc, err
}

// Remove implements vfs.FS.
func (f *MemFS) Remove(ctx context.Context, c vfs.Cred, dir vfs.Handle, name string) (vfs.Wcc, error) {
	return f.removeOp(ctx, "Remove", dir, name, false)
}

// Rmdir implements vfs.FS.
func (f *MemFS) Rmdir(ctx context.Context, c vfs.Cred, dir vfs.Handle, name string) (vfs.Wcc, error) {
	return f.removeOp(ctx, "Rmdir", dir, name, true)
}

// Rename implements vfs.FS.
func (f *MemFS) Rename(ctx context.Context, c vfs.Cred, fromDir vfs.Handle, fromName string, toDir vfs.Handle, toName string) (vfs.Wcc, vfs.Wcc, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fd, fw, err := f.dirOp(ctx, "Rename", fromDir)
	if err != nil {
		return fw, vfs.Wcc{}, err
	}
	td, tw, err := f.dirOp(ctx, "Rename", toDir)
	if err != nil {
		return fw, tw, err
	}
	done := func(err error) (vfs.Wcc, vfs.Wcc, error) {
		fw.After, tw.After = fd.attrCopy(), td.attrCopy()
		return fw, tw, err
	}
	if fd.fsid != td.fsid {
		return done(syscall.EXDEV)
	}
	src := fd.dir.entries[fromName]
	if src == nil {
		return done(syscall.ENOENT)
	}
	if src.n.dir != nil {
		for p := td; ; p = p.dir.parent {
			if p == src.n {
				return done(syscall.EINVAL)
			}
			if p.dir.parent == p {
				break
			}
		}
	}
	if dst := td.dir.entries[toName]; dst != nil {
		if dst.n == src.n {
			return done(nil)
		}
		switch {
		case src.n.dir != nil && dst.n.dir == nil:
			return done(syscall.ENOTDIR)
		case src.n.dir == nil && dst.n.dir != nil:
			return done(syscall.EISDIR)
		case dst.n.dir != nil && len(dst.n.dir.entries) > 0:
			return done(syscall.ENOTEMPTY)
		}
		if err := f.unlink(td, toName, dst.n.dir != nil); err != nil {
			return done(err)
		}
	}
	delete(fd.dir.entries, fromName)
	f.touch(fd)
	f.link(td, toName, src.n)
	if src.n.dir != nil && fd != td {
		src.n.dir.parent = td
		fd.attr.Nlink--
		td.attr.Nlink++
	}
	src.n.attr.Ctime = f.now()
	return done(nil)
}

// Link implements vfs.FS.
func (f *MemFS) Link(ctx context.Context, c vfs.Cred, h vfs.Handle, dir vfs.Handle, name string) (*vfs.Attr, vfs.Wcc, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, wcc, err := f.dirOp(ctx, "Link", dir)
	if err != nil {
		return nil, wcc, err
	}
	n, err := f.get(ctx, h, vfs.GrantReadWrite)
	if err != nil {
		wcc.After = d.attrCopy()
		return nil, wcc, err
	}
	switch {
	case n.dir != nil:
		err = syscall.EISDIR
	case n.fsid != d.fsid:
		err = syscall.EXDEV
	case n.attr.Nlink == 0:
		err = syscall.ENOENT // held after its removal: not to be revived (as linkat)
	case d.dir.entries[name] != nil:
		err = syscall.EEXIST
	}
	if err != nil {
		wcc.After = d.attrCopy()
		return n.attrCopy(), wcc, err
	}
	f.link(d, name, n)
	n.attr.Nlink++
	n.attr.Ctime = f.now()
	wcc.After = d.attrCopy()
	return n.attrCopy(), wcc, nil
}

func dirVerf(d *node) vfs.Verifier {
	var v vfs.Verifier
	binary.BigEndian.PutUint64(v[:], d.id|1<<63)
	return v
}

// ReadDir implements vfs.FS. Cookies are per-directory insertion sequence
// numbers, so they stay valid while the directory changes.
func (f *MemFS) ReadDir(ctx context.Context, c vfs.Cred, dir vfs.Handle, cookie uint64, verf vfs.Verifier, plus bool, emit func(vfs.DirEntry) bool) (vfs.Verifier, bool, *vfs.Attr, error) {
	if err := f.fault("ReadDir"); err != nil {
		return vfs.Verifier{}, false, nil, err
	}
	f.mu.Lock()
	d, err := f.getDir(ctx, dir, vfs.GrantReadOnly)
	if err != nil {
		f.mu.Unlock()
		return vfs.Verifier{}, false, nil, err
	}
	dv := dirVerf(d)
	if cookie != 0 && verf != dv {
		a := d.attrCopy()
		f.mu.Unlock()
		return vfs.Verifier{}, false, a, vfs.ErrBadCookie
	}
	if cookie > d.dir.seq {
		a := d.attrCopy()
		f.mu.Unlock()
		return vfs.Verifier{}, false, a, vfs.ErrBadCookie
	}
	var list []vfs.DirEntry
	for _, e := range d.dir.entries {
		if e.cookie <= cookie {
			continue
		}
		de := vfs.DirEntry{FileID: e.n.id, Name: e.name, Cookie: e.cookie}
		if plus {
			de.Attr = e.n.attrCopy()
			de.Handle = handleOf(e.n)
		}
		list = append(list, de)
	}
	a := d.attrCopy()
	f.mu.Unlock()
	slices.SortFunc(list, func(a, b vfs.DirEntry) int {
		switch {
		case a.Cookie < b.Cookie:
			return -1
		case a.Cookie > b.Cookie:
			return 1
		}
		return 0
	})
	for _, e := range list {
		if !emit(e) {
			return dv, false, a, nil
		}
	}
	return dv, true, a, nil
}

// FSStat implements vfs.FS.
func (f *MemFS) FSStat(ctx context.Context, h vfs.Handle) (vfs.FSStat, *vfs.Attr, error) {
	if err := f.fault("FSStat"); err != nil {
		return vfs.FSStat{}, nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.get(ctx, h, vfs.GrantReadOnly)
	if err != nil {
		return vfs.FSStat{}, nil, err
	}
	used, files := f.usage(n.fsid)
	total, totalFiles := uint64(1<<30), uint64(1<<20)
	if l := f.limits[n.fsid]; l.maxBytes > 0 {
		total = l.maxBytes
	}
	if l := f.limits[n.fsid]; l.maxInodes > 0 {
		totalFiles = l.maxInodes
	}
	free := total - min(used, total)
	freeFiles := totalFiles - min(files, totalFiles)
	st := vfs.FSStat{
		TotalBytes: total, FreeBytes: free, AvailBytes: free,
		TotalFiles: totalFiles, FreeFiles: freeFiles, AvailFiles: freeFiles,
	}
	return st, n.attrCopy(), nil
}

// Commit implements vfs.FS.
func (f *MemFS) Commit(ctx context.Context, c vfs.Cred, h vfs.Handle, off uint64, count uint32) (vfs.Wcc, error) {
	if err := f.fault("Commit"); err != nil {
		return vfs.Wcc{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.get(ctx, h, vfs.GrantReadOnly)
	if err != nil {
		return vfs.Wcc{}, err
	}
	wcc := vfs.Wcc{Before: n.pre(), After: n.attrCopy()}
	switch n.attr.Type {
	case vfs.TypeRegular:
		return wcc, nil
	case vfs.TypeDirectory:
		return wcc, syscall.EISDIR
	}
	return wcc, syscall.EINVAL
}

// WriteVerifier implements vfs.FS.
func (f *MemFS) WriteVerifier() vfs.Verifier {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.verf
}

var _ vfs.FS = (*MemFS)(nil)
