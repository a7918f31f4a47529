package nfs3

import (
	"context"
	"errors"
	"syscall"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

// StatusOf maps an error from the vfs.FS to an nfsstat3. The second result
// is false for errors this layer did not expect (they become SERVERFAULT and
// are worth a log line).
//
// Choices the RFC leaves open:
//   - ELOOP (a symlink where the server refuses to follow one, or too many
//     levels) → NFS3ERR_INVAL: NFSv3 has no "is a symlink" status, and the
//     Linux client maps INVAL to EINVAL, which is what a local open with
//     O_NOFOLLOW on a symlink-as-file operation looks like to callers; ACCES
//     would wrongly suggest a permission problem.
//   - vfs.ErrNoExport (a handle naming an export that was removed) → STALE,
//     so clients drop the handle instead of retrying.
//   - vfs.ErrNotAllowed (the export's policy grants this client nothing,
//     e.g. its node was unpublished) → ACCES, not STALE: the handle is
//     still good and works again once the node is published again, and a
//     revoked pod sees "Permission denied", which says what happened.
//   - EAGAIN/EWOULDBLOCK, EINTR and context cancellation → JUKEBOX: the
//     operation may succeed if retried later.
func StatusOf(err error) (status uint32, expected bool) {
	if err == nil {
		return StatusOK, true
	}
	if errno, ok := err.(syscall.Errno); ok {
		// The common case (ENOENT of a LOOKUP), without the allocation
		// of errors.As: a bare errno is none of the sentinels below.
		return errnoResult(errno)
	}
	switch {
	case errors.Is(err, vfs.ErrStale), errors.Is(err, vfs.ErrNoExport):
		return StatusStale, true
	case errors.Is(err, vfs.ErrBadHandle):
		return StatusBadHandle, true
	case errors.Is(err, vfs.ErrNotSync):
		return StatusNotSync, true
	case errors.Is(err, vfs.ErrBadCookie):
		return StatusBadCookie, true
	case errors.Is(err, vfs.ErrNotSupp):
		return StatusNotSupp, true
	case errors.Is(err, vfs.ErrBadType):
		return StatusBadType, true
	case errors.Is(err, vfs.ErrNotAllowed):
		return StatusAcces, true
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return StatusJukebox, true
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errnoResult(errno)
	}
	return StatusServerFault, false
}

func errnoResult(e syscall.Errno) (uint32, bool) {
	if s, ok := errnoStatus(e); ok {
		return s, true
	}
	return StatusServerFault, false
}

func errnoStatus(e syscall.Errno) (uint32, bool) {
	switch e {
	case syscall.EPERM:
		return StatusPerm, true
	case syscall.ENOENT:
		return StatusNoEnt, true
	case syscall.EIO:
		return StatusIO, true
	case syscall.ENXIO:
		return StatusNXIO, true
	case syscall.EACCES:
		return StatusAcces, true
	case syscall.EEXIST:
		return StatusExist, true
	case syscall.EXDEV:
		return StatusXDev, true
	case syscall.ENODEV:
		return StatusNoDev, true
	case syscall.ENOTDIR:
		return StatusNotDir, true
	case syscall.EISDIR:
		return StatusIsDir, true
	case syscall.EINVAL, syscall.ELOOP:
		return StatusInval, true
	case syscall.EFBIG:
		return StatusFBig, true
	case syscall.ENOSPC:
		return StatusNoSpc, true
	case syscall.EROFS:
		return StatusROFS, true
	case syscall.EMLINK:
		return StatusMLink, true
	case syscall.ENAMETOOLONG:
		return StatusNameTooLong, true
	case syscall.ENOTEMPTY:
		return StatusNotEmpty, true
	case syscall.EDQUOT:
		return StatusDQuot, true
	case syscall.ESTALE:
		return StatusStale, true
	case syscall.ENOTSUP: // == EOPNOTSUPP on Linux
		return StatusNotSupp, true
	case syscall.EAGAIN, syscall.EINTR:
		return StatusJukebox, true
	}
	return 0, false
}
