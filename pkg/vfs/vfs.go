// Package vfs is the contract between Hangar's NFS protocol layer and its
// storage layer. It speaks neither XDR nor syscalls: the protocol layer
// (pkg/nfs/nfs3, pkg/nfs/mount) decodes requests into these calls, and the
// storage layer (pkg/volume/localfs) carries them out on a local disk.
//
// Errors are syscall.Errno values (ENOENT, EEXIST, EDQUOT, ...) or one of the
// sentinels below for the conditions that have no errno; the protocol layer
// maps both to NFS status codes.
package vfs

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"
)

// Sentinel errors with no errno equivalent.
var (
	ErrStale      = errors.New("vfs: stale file handle")         // NFS3ERR_STALE
	ErrBadHandle  = errors.New("vfs: malformed file handle")     // NFS3ERR_BADHANDLE
	ErrNotSync    = errors.New("vfs: guard ctime mismatch")      // NFS3ERR_NOT_SYNC
	ErrBadCookie  = errors.New("vfs: readdir cookie invalid")    // NFS3ERR_BAD_COOKIE
	ErrNotSupp    = errors.New("vfs: operation not supported")   // NFS3ERR_NOTSUPP
	ErrBadType    = errors.New("vfs: object type not supported") // NFS3ERR_BADTYPE
	ErrNoExport   = errors.New("vfs: no such export")
	ErrNotAllowed = errors.New("vfs: client not allowed for this export") // NFS3ERR_ACCES, MNT3ERR_ACCES
)

// Grant is what an export's policy lets one client do.
type Grant uint8

const (
	GrantNone      Grant = iota // the export does not exist for the client
	GrantReadOnly               // reads only: changes fail with EROFS
	GrantReadWrite              // everything the caller's credentials allow
)

// Policy says what a client at an IP address may do with an export. It is
// consulted on every operation, so it must be cheap (a map lookup, not a
// parse) and safe for concurrent use. The zero netip.Addr is a client of
// unknown address. A nil Policy grants every client read-write.
type Policy func(client netip.Addr) Grant

type clientKey struct{}

// WithClient returns ctx carrying the address of the client the operations
// run for; the RPC server attaches it once per connection. Addresses that
// are not IP (or nil) make an unknown client.
func WithClient(ctx context.Context, addr net.Addr) context.Context {
	var ip netip.Addr
	switch a := addr.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	case *net.UDPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	case nil:
	default:
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			ip = ap.Addr()
		}
	}
	// A v4 client on a dual-stack socket is ::ffff:a.b.c.d; policies list
	// it as a.b.c.d.
	return context.WithValue(ctx, clientKey{}, ip.Unmap())
}

// ClientOf returns the client address WithClient put in ctx, or the zero
// netip.Addr.
func ClientOf(ctx context.Context) netip.Addr {
	ip, _ := ctx.Value(clientKey{}).(netip.Addr)
	return ip
}

// MaxHandleSize is the NFSv3 limit on file handles.
const MaxHandleSize = 64

// Handle is an opaque, persistent file handle of at most MaxHandleSize bytes.
type Handle []byte

// Cred is the caller's identity (AUTH_SYS), already mapped by any squashing.
type Cred struct {
	UID    uint32
	GID    uint32
	Groups []uint32
}

// FileType numbers match NFSv3 ftype3.
type FileType uint32

const (
	TypeRegular   FileType = 1
	TypeDirectory FileType = 2
	TypeBlock     FileType = 3
	TypeChar      FileType = 4
	TypeSymlink   FileType = 5
	TypeSocket    FileType = 6
	TypeFIFO      FileType = 7
)

// Attr is an object's attributes (NFSv3 fattr3).
type Attr struct {
	Type                 FileType
	Mode                 uint32 // permission bits including setuid, setgid, sticky (07777)
	Nlink                uint32
	UID                  uint32
	GID                  uint32
	Size                 uint64
	Used                 uint64 // bytes of disk actually allocated
	RdevMajor, RdevMinor uint32
	FSID                 uint64 // distinct per volume
	FileID               uint64
	Atime, Mtime, Ctime  time.Time
}

// WccAttr is the pre-operation subset of attributes (NFSv3 wcc_attr).
type WccAttr struct {
	Size         uint64
	Mtime, Ctime time.Time
}

// Wcc is weak cache consistency data: attributes before and after an
// operation. Either may be absent.
type Wcc struct {
	Before *WccAttr
	After  *Attr
	// Atomic: Before and After were read with nothing else changing the
	// object between them and the operation (NFSv4 change_info4.atomic,
	// which lets a client keep what it cached of a directory).
	Atomic bool
}

// TimeHow says how SetAttr changes a time.
type TimeHow uint32

const (
	TimeDontChange TimeHow = 0
	TimeServer     TimeHow = 1
	TimeClient     TimeHow = 2
)

// SetTime is one time in a SetAttr.
type SetTime struct {
	How  TimeHow
	Time time.Time // with TimeClient
}

// SetAttr lists the attributes to change; nil fields stay as they are.
type SetAttr struct {
	Mode  *uint32
	UID   *uint32
	GID   *uint32
	Size  *uint64
	Atime SetTime
	Mtime SetTime
}

// Stable is how durable a WRITE must be before its reply (NFSv3 stable_how).
type Stable uint32

const (
	Unstable Stable = 0
	DataSync Stable = 1
	FileSync Stable = 2
)

// CreateHow is the NFSv3 createmode3.
type CreateHow uint32

const (
	CreateUnchecked CreateHow = 0
	CreateGuarded   CreateHow = 1
	CreateExclusive CreateHow = 2
)

// Verifier is an 8-byte verifier (exclusive create, readdir cookies, writes).
type Verifier [8]byte

// DirEntry is one READDIR(PLUS) entry. Attr and Handle are filled for plus
// reads only (and may still be nil there if the entry vanished meanwhile).
type DirEntry struct {
	FileID uint64
	Name   string
	Cookie uint64
	Attr   *Attr
	Handle Handle
}

// FSStat is the dynamic state of a volume (NFSv3 FSSTAT).
type FSStat struct {
	TotalBytes, FreeBytes, AvailBytes uint64
	TotalFiles, FreeFiles, AvailFiles uint64
}

// Export is one exported volume.
type Export struct {
	Path string // "/<volume-id>", or "/" for a single-directory server
}

// Access bits (NFSv3 ACCESS3_*).
const (
	AccessRead    = 0x01
	AccessLookup  = 0x02
	AccessModify  = 0x04
	AccessExtend  = 0x08
	AccessDelete  = 0x10
	AccessExecute = 0x20
)

// FS is a set of exported volumes. Every handle names its own volume, so one
// FS serves every export of a server. Implementations are safe for
// concurrent use.
//
// Access control. An export may have a Policy; every call is made for the
// client ClientOf(ctx) and an implementation must apply the export's policy
// to it on every call, not only at Mount, so a change (a revoked client)
// takes effect on the next call:
//   - GrantNone: the export is invisible. Exports omits it, Mount fails
//     with ErrNotAllowed, and every operation on one of its handles fails
//     with ErrNotAllowed before anything about the handle (stale or not)
//     is revealed.
//   - GrantReadOnly: every operation that would change the export
//     (SetAttr, Write, Create, Mkdir, Symlink, Mknod, Remove, Rmdir,
//     Rename, Link) fails with EROFS, and Access grants no AccessModify,
//     AccessExtend or AccessDelete; reads work.
//   - GrantReadWrite: the caller's credentials decide.
//
// An export must never be reachable without its policy: it is installed
// when the export is added.
type FS interface {
	// Exports lists the exports the client in ctx may mount.
	Exports(ctx context.Context) []Export
	// Mount returns the root handle of the export at path for the client
	// in ctx, or ErrNoExport / ErrNotAllowed.
	Mount(ctx context.Context, path string) (Handle, error)

	GetAttr(ctx context.Context, h Handle) (Attr, error)
	// SetAttr applies sa; guard, if set, must equal the object's ctime.
	SetAttr(ctx context.Context, c Cred, h Handle, sa SetAttr, guard *time.Time) (Wcc, error)
	// Lookup resolves one name ("." and ".." included) in dir; dirAttr is
	// returned even on error when it is known.
	Lookup(ctx context.Context, c Cred, dir Handle, name string) (h Handle, attr Attr, dirAttr *Attr, err error)
	// Access reports which of the requested access bits c is granted.
	Access(ctx context.Context, c Cred, h Handle, want uint32) (granted uint32, attr Attr, err error)
	Readlink(ctx context.Context, c Cred, h Handle) (target string, attr *Attr, err error)
	// Read fills buf from off and reports bytes read and whether the end of
	// file was reached. buf is the reply buffer: implementations read into it
	// directly.
	Read(ctx context.Context, c Cred, h Handle, off uint64, buf []byte) (n int, eof bool, attr *Attr, err error)
	// Write writes data at off with at least the requested stability and
	// reports the stability achieved.
	Write(ctx context.Context, c Cred, h Handle, off uint64, data []byte, stable Stable) (n int, committed Stable, wcc Wcc, err error)
	// Create makes a regular file. For CreateExclusive, verf is stored so a
	// retransmission with the same verifier succeeds, and sa sets no times
	// (it holds an NFSv4.1 EXCLUSIVE4_1's attributes, applied to a file
	// the call makes, not to one a retransmission finds).
	Create(ctx context.Context, c Cred, dir Handle, name string, how CreateHow, sa SetAttr, verf Verifier) (h Handle, attr *Attr, dirWcc Wcc, err error)
	Mkdir(ctx context.Context, c Cred, dir Handle, name string, sa SetAttr) (h Handle, attr *Attr, dirWcc Wcc, err error)
	Symlink(ctx context.Context, c Cred, dir Handle, name, target string, sa SetAttr) (h Handle, attr *Attr, dirWcc Wcc, err error)
	// Mknod makes a FIFO, socket, or block or character device (major,
	// minor). Other types are ErrBadType. Devices are for callers the FS
	// trusts as much as a local CAP_MKNOD (EPERM otherwise, or when the FS
	// may not make them); numbers the FS cannot represent are EINVAL. An FS
	// never opens a device or FIFO for I/O: READ, WRITE, COMMIT and size
	// changes of one fail with EINVAL.
	Mknod(ctx context.Context, c Cred, dir Handle, name string, t FileType, sa SetAttr, major, minor uint32) (h Handle, attr *Attr, dirWcc Wcc, err error)
	Remove(ctx context.Context, c Cred, dir Handle, name string) (dirWcc Wcc, err error)
	Rmdir(ctx context.Context, c Cred, dir Handle, name string) (dirWcc Wcc, err error)
	Rename(ctx context.Context, c Cred, fromDir Handle, fromName string, toDir Handle, toName string) (fromWcc, toWcc Wcc, err error)
	Link(ctx context.Context, c Cred, h Handle, dir Handle, name string) (attr *Attr, dirWcc Wcc, err error)
	// ReadDir lists dir from cookie (0 = start). verf must be the verifier
	// returned with that cookie (or zero with cookie 0). emit is called per
	// entry and returns false when the reply is full; the entry it refused is
	// not consumed. eof is true when emit saw the last entry.
	ReadDir(ctx context.Context, c Cred, dir Handle, cookie uint64, verf Verifier, plus bool, emit func(DirEntry) bool) (newVerf Verifier, eof bool, dirAttr *Attr, err error)
	FSStat(ctx context.Context, h Handle) (FSStat, *Attr, error)
	// Commit makes earlier unstable writes to h durable.
	Commit(ctx context.Context, c Cred, h Handle, off uint64, count uint32) (Wcc, error)
	// WriteVerifier changes every time the server starts, so clients resend
	// uncommitted data after a crash.
	WriteVerifier() Verifier
}

// FileReader is an optional interface of an FS whose files are kernel
// files. The protocol layer detects it with a type assertion and uses it for
// large READs, so the data is read only as the reply is written, into a
// buffer the connection reuses, not held in replies waiting for a slow
// client. A file that has shrunk by then gives a short read with eof.
type FileReader interface {
	// ReadFile checks what Read checks and returns, instead of the data, a
	// new file descriptor open for reading h (the caller owns it and must
	// close it), the number of bytes n at off to send (at most count; 0 at
	// or beyond the end of file), whether they reach the end of file, and
	// the attributes Read would return. On error fd is -1. ErrNotSupp means
	// "use Read instead" (a wrapper around an FS without files, say).
	ReadFile(ctx context.Context, c Cred, h Handle, off uint64, count uint32) (fd int, n int, eof bool, attr *Attr, err error)
}

// Sparse is an optional interface of an FS whose files can have holes: it
// reserves and frees space inside a file and finds where data lies (the
// NFSv4.2 ALLOCATE, DEALLOCATE and SEEK operations). The protocol layer
// detects it with a type assertion; without it those operations are
// NOTSUPP. Each method works on regular files only (EISDIR for a
// directory, EINVAL for other types), checks what Write (Allocate,
// Deallocate) or Read (Seek) checks, and fails with ENOTSUP when the file
// system underneath cannot do it. Offsets and lengths past 2^63-1 are
// EINVAL, a range ending past it EFBIG, a zero length EINVAL.
type Sparse interface {
	// Allocate makes sure [off, off+length) of h is backed by disk space,
	// growing the file when the range ends past its size (fallocate mode
	// 0). The space it may allocate is charged to the export's quota
	// first: over the limit it fails with EDQUOT and allocates nothing.
	Allocate(ctx context.Context, c Cred, h Handle, off, length uint64) (Wcc, error)
	// Deallocate punches a hole: [off, off+length) reads as zeros after,
	// the space behind it is freed (and given back to the quota), and the
	// size does not change. A range past the end of the file is no error.
	Deallocate(ctx context.Context, c Cred, h Handle, off, length uint64) (Wcc, error)
	// Seek returns the first offset at or after off where data (hole
	// false) or a hole (hole true) starts, as lseek SEEK_DATA/SEEK_HOLE:
	// the end of the file counts as a hole, and ENXIO means there is none
	// (off at or past the end, or no data after off). attr is the file's,
	// also with ENXIO.
	Seek(ctx context.Context, c Cred, h Handle, off uint64, hole bool) (pos uint64, attr *Attr, err error)
}

// Holder is an optional interface of an FS that can keep a regular file
// usable after its last name is removed, as a local open file is: NFSv4
// OPEN takes a hold for each open it grants and drops it at CLOSE (or when
// the client's state ends), so a file deleted or renamed over by another
// client stays readable and writable through its handle until then. The
// hold is in the FS, so a removal by any protocol behaves the same.
//
// While a held object has no name left, its handle still resolves (only
// while held: an unheld removed object is stale as before), GetAttr shows
// Nlink 0, and its space and inode stay charged to the export's usage;
// the last Release frees it and gives the space back. Holds do not outlive
// the server: an FS releases them all when it closes, and a crash frees
// what they kept (usage must come back right after either).
type Holder interface {
	// Hold holds h's object, a regular file (EINVAL for any other type),
	// for the client in ctx, who needs read access to the export. An FS
	// bounds what holds can pin and fails past its limit with ENFILE; the
	// caller can then go without (the file is simply not preserved).
	Hold(ctx context.Context, h Handle) (Hold, error)
}

// Hold is one Holder.Hold.
type Hold interface {
	// Unlinked reports whether the object has no name left: it lives on
	// only through holds, and its space is still charged.
	Unlinked() bool
	// Release ends the hold; the last one of an unlinked object frees it.
	// Calls after the first do nothing.
	Release()
}
