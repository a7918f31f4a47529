package nfs4

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

func TestStatusOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want uint32
		ok   bool
	}{
		{nil, OK, true},
		{vfs.ErrStale, ErrStale, true},
		{vfs.ErrNoExport, ErrStale, true},
		{vfs.ErrBadHandle, ErrBadHandle, true},
		{vfs.ErrBadCookie, ErrBadCookie, true},
		{vfs.ErrNotSupp, ErrNotSupp, true},
		{vfs.ErrBadType, ErrBadType, true},
		{vfs.ErrNotAllowed, ErrAccess, true},
		{context.Canceled, ErrDelay, true},
		{fmt.Errorf("wrapped: %w", syscall.ENOENT), ErrNoEnt, true},
		{syscall.EPERM, ErrPerm, true},
		{syscall.EIO, ErrIO, true},
		{syscall.ENODEV, ErrNXIO, true},
		{syscall.EACCES, ErrAccess, true},
		{syscall.EEXIST, ErrExist, true},
		{syscall.EXDEV, ErrXDev, true},
		{syscall.ENOTDIR, ErrNotDir, true},
		{syscall.EISDIR, ErrIsDir, true},
		{syscall.EINVAL, ErrInval, true},
		{syscall.ELOOP, ErrSymlink, true},
		{syscall.EFBIG, ErrFBig, true},
		{syscall.ENOSPC, ErrNoSpc, true},
		{syscall.EROFS, ErrROFS, true},
		{syscall.EMLINK, ErrMLink, true},
		{syscall.ENAMETOOLONG, ErrNameTooLong, true},
		{syscall.ENOTEMPTY, ErrNotEmpty, true},
		{syscall.EDQUOT, ErrDQuot, true},
		{syscall.ESTALE, ErrStale, true},
		{syscall.ENOTSUP, ErrNotSupp, true},
		{syscall.EAGAIN, ErrDelay, true},
		{syscall.EOVERFLOW, ErrServerFault, false},
		{errors.New("odd"), ErrServerFault, false},
	} {
		if got, ok := statusOf(tc.err); got != tc.want || ok != tc.ok {
			t.Errorf("statusOf(%v) = %d, %v; want %d, %v", tc.err, got, ok, tc.want, tc.ok)
		}
	}
}
