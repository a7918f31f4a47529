// Package nfs3 is the NFSv3 protocol (RFC 1813, program 100003 version 3)
// over a vfs.FS.
//
// It decodes each call's arguments with the hand-written xdr Reader, calls
// the filesystem, and encodes the results into the pooled reply buffer the
// rpc server hands it. It knows nothing of disks; every decision about
// permissions, handles and durability belongs to the vfs.FS.
package nfs3

// Program and version numbers.
const (
	Program = 100003
	Version = 3
)

// Procedure numbers (RFC 1813 section 3).
const (
	ProcNull        = 0
	ProcGetAttr     = 1
	ProcSetAttr     = 2
	ProcLookup      = 3
	ProcAccess      = 4
	ProcReadlink    = 5
	ProcRead        = 6
	ProcWrite       = 7
	ProcCreate      = 8
	ProcMkdir       = 9
	ProcSymlink     = 10
	ProcMknod       = 11
	ProcRemove      = 12
	ProcRmdir       = 13
	ProcRename      = 14
	ProcLink        = 15
	ProcReadDir     = 16
	ProcReadDirPlus = 17
	ProcFSStat      = 18
	ProcFSInfo      = 19
	ProcPathConf    = 20
	ProcCommit      = 21

	numProcs = 22
)

var procNames = [numProcs]string{
	"NULL", "GETATTR", "SETATTR", "LOOKUP", "ACCESS", "READLINK", "READ",
	"WRITE", "CREATE", "MKDIR", "SYMLINK", "MKNOD", "REMOVE", "RMDIR",
	"RENAME", "LINK", "READDIR", "READDIRPLUS", "FSSTAT", "FSINFO",
	"PATHCONF", "COMMIT",
}

// ProcName returns the RFC name of proc, or "PROC?" if there is none.
func ProcName(proc uint32) string {
	if proc < numProcs {
		return procNames[proc]
	}
	return "PROC?"
}

// Idempotent reports whether proc may simply be re-executed when a client
// retransmits it. The others go through the rpc server's duplicate request
// cache: re-running a REMOVE or an exclusive CREATE would turn a lost reply
// into a spurious error (or worse).
func Idempotent(proc uint32) bool {
	switch proc {
	case ProcSetAttr, ProcCreate, ProcMkdir, ProcSymlink, ProcMknod,
		ProcRemove, ProcRmdir, ProcRename, ProcLink:
		return false
	}
	return true
}

// nfsstat3 values.
const (
	StatusOK          = 0
	StatusPerm        = 1
	StatusNoEnt       = 2
	StatusIO          = 5
	StatusNXIO        = 6
	StatusAcces       = 13
	StatusExist       = 17
	StatusXDev        = 18
	StatusNoDev       = 19
	StatusNotDir      = 20
	StatusIsDir       = 21
	StatusInval       = 22
	StatusFBig        = 27
	StatusNoSpc       = 28
	StatusROFS        = 30
	StatusMLink       = 31
	StatusNameTooLong = 63
	StatusNotEmpty    = 66
	StatusDQuot       = 69
	StatusStale       = 70
	StatusRemote      = 71
	StatusBadHandle   = 10001
	StatusNotSync     = 10002
	StatusBadCookie   = 10003
	StatusNotSupp     = 10004
	StatusTooSmall    = 10005
	StatusServerFault = 10006
	StatusBadType     = 10007
	StatusJukebox     = 10008
)

// StatusName returns the RFC name of an nfsstat3.
func StatusName(s uint32) string {
	switch s {
	case StatusOK:
		return "NFS3_OK"
	case StatusPerm:
		return "NFS3ERR_PERM"
	case StatusNoEnt:
		return "NFS3ERR_NOENT"
	case StatusIO:
		return "NFS3ERR_IO"
	case StatusNXIO:
		return "NFS3ERR_NXIO"
	case StatusAcces:
		return "NFS3ERR_ACCES"
	case StatusExist:
		return "NFS3ERR_EXIST"
	case StatusXDev:
		return "NFS3ERR_XDEV"
	case StatusNoDev:
		return "NFS3ERR_NODEV"
	case StatusNotDir:
		return "NFS3ERR_NOTDIR"
	case StatusIsDir:
		return "NFS3ERR_ISDIR"
	case StatusInval:
		return "NFS3ERR_INVAL"
	case StatusFBig:
		return "NFS3ERR_FBIG"
	case StatusNoSpc:
		return "NFS3ERR_NOSPC"
	case StatusROFS:
		return "NFS3ERR_ROFS"
	case StatusMLink:
		return "NFS3ERR_MLINK"
	case StatusNameTooLong:
		return "NFS3ERR_NAMETOOLONG"
	case StatusNotEmpty:
		return "NFS3ERR_NOTEMPTY"
	case StatusDQuot:
		return "NFS3ERR_DQUOT"
	case StatusStale:
		return "NFS3ERR_STALE"
	case StatusRemote:
		return "NFS3ERR_REMOTE"
	case StatusBadHandle:
		return "NFS3ERR_BADHANDLE"
	case StatusNotSync:
		return "NFS3ERR_NOT_SYNC"
	case StatusBadCookie:
		return "NFS3ERR_BAD_COOKIE"
	case StatusNotSupp:
		return "NFS3ERR_NOTSUPP"
	case StatusTooSmall:
		return "NFS3ERR_TOOSMALL"
	case StatusServerFault:
		return "NFS3ERR_SERVERFAULT"
	case StatusBadType:
		return "NFS3ERR_BADTYPE"
	case StatusJukebox:
		return "NFS3ERR_JUKEBOX"
	}
	return "NFS3ERR_?"
}

// Limits this server enforces and advertises.
const (
	MaxName    = 255     // filename3 bytes
	MaxPath    = 4095    // nfspath3 (symlink target) bytes: none in RFC 1813; Linux's PATH_MAX-1
	MaxRead    = 1 << 20 // rtmax
	MaxWrite   = 1 << 20 // wtmax
	MaxReadDir = 1 << 20 // cap on a READDIR(PLUS) reply, whatever the client asks
	PrefDir    = 64 << 10

	// maxOpaque bounds variable-length values whose real limit is checked
	// after decoding (so an over-long name gets NAMETOOLONG, not
	// GARBAGE_ARGS). The Reader checks lengths against the remaining input
	// before slicing, so this only has to avoid int overflow.
	maxOpaque = 1 << 30
)

// FSINFO properties.
const (
	FSFLink        = 0x0001
	FSFSymlink     = 0x0002
	FSFHomogeneous = 0x0008
	FSFCanSetTime  = 0x0010
)

// Sizes of fixed XDR structures, in bytes.
const (
	FattrSize   = 84 // fattr3
	wccAttrSize = 24 // wcc_attr
)
