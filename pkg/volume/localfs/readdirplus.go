package localfs

import (
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

// plusArena hands out the handles and attributes of one READDIRPLUS from
// a few slabs instead of several small allocations per entry (a 32 KiB
// reply holds about 200 entries).
type plusArena struct {
	handles []byte
	attrs   []vfs.Attr
}

func (a *plusArena) attr(e *export, st *unix.Stat_t) *vfs.Attr {
	if len(a.attrs) == cap(a.attrs) {
		a.attrs = make([]vfs.Attr, 0, 64)
	}
	a.attrs = append(a.attrs, toAttr(e, st))
	return &a.attrs[len(a.attrs)-1]
}

// handle builds a handle like keys.encodeHandle, in the arena.
func (a *plusArena) handle(k *keys, t tag, ktype int32, kfh []byte) (vfs.Handle, error) {
	if ktype < 0 || ktype > 0xff || len(kfh) == 0 || len(kfh) > maxKernelHandle {
		return nil, errKernelHandle
	}
	n := headerLen + len(kfh) + macLen
	if cap(a.handles)-len(a.handles) < n {
		a.handles = make([]byte, 0, 64*vfs.MaxHandleSize)
	}
	start := len(a.handles)
	a.handles = a.handles[:start+n]
	h := a.handles[start : start+n : start+n]
	h[0] = handleVersion
	copy(h[1:], t[:])
	h[1+tagLen] = byte(ktype)
	copy(h[headerLen:], kfh)
	body := n - macLen
	k.mac(h[body:], h[:body])
	return vfs.Handle(h), nil
}

// copyHandle copies handle key into the arena.
func (a *plusArena) copyHandle(key string) vfs.Handle {
	if cap(a.handles)-len(a.handles) < len(key) {
		a.handles = make([]byte, 0, 64*vfs.MaxHandleSize)
	}
	start := len(a.handles)
	a.handles = append(a.handles, key...)
	return vfs.Handle(a.handles[start:len(a.handles):len(a.handles)])
}

// kernelHandle is struct file_handle with room for MAX_HANDLE_SZ bytes.
type kernelHandle struct {
	bytes uint32
	typ   int32
	fh    [128]byte
}

// nameAt is a name in a getdents buffer: NUL-terminated by the kernel, so
// it can be passed to *at syscalls as is, without the copy that
// unix.BytePtrFromString makes.
type nameAt *byte

// emptyPath is "" for AT_EMPTY_PATH calls.
var emptyPath nameAt = &[]byte{0}[0]

func nameToHandleAt(dirfd int, name nameAt, kh *kernelHandle, flags int) error {
	kh.bytes = uint32(len(kh.fh))
	var mnt int32
	_, _, e := unix.Syscall6(unix.SYS_NAME_TO_HANDLE_AT, uintptr(dirfd), uintptr(unsafe.Pointer(name)),
		uintptr(unsafe.Pointer(kh)), uintptr(unsafe.Pointer(&mnt)), uintptr(flags), 0)
	if e != 0 {
		return e
	}
	return nil
}

func fstatatNoFollow(dirfd int, name nameAt, st *unix.Stat_t) error {
	_, _, e := unix.Syscall6(unix.SYS_NEWFSTATAT, uintptr(dirfd), uintptr(unsafe.Pointer(name)),
		uintptr(unsafe.Pointer(st)), unix.AT_SYMLINK_NOFOLLOW, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// cname is a client's name (one component, checked by checkName)
// NUL-terminated on the stack, for the *at calls of the hot paths without
// the allocation of unix.BytePtrFromString.
type cname [maxName + 1]byte

// at returns name in c as a nameAt, or ENAMETOOLONG; a NUL inside is
// EINVAL, as with unix.BytePtrFromString.
func (c *cname) at(name string) (nameAt, error) {
	switch {
	case len(name) > maxName:
		return nil, unix.ENAMETOOLONG
	case strings.IndexByte(name, 0) >= 0:
		return nil, unix.EINVAL
	}
	n := copy(c[:], name)
	c[n] = 0
	return &c[0], nil
}

// fstatatName is fstat of name in dirfd, never following it.
func fstatatName(dirfd int, name string, st *unix.Stat_t) error {
	var c cname
	p, err := c.at(name)
	if err != nil {
		return err
	}
	return fstatatNoFollow(dirfd, p, st)
}

// unlinkatName is unlinkat(dirfd, name, flags).
func unlinkatName(dirfd int, name string, flags int) error {
	var c cname
	p, err := c.at(name)
	if err != nil {
		return err
	}
	_, _, e := unix.Syscall(unix.SYS_UNLINKAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)), uintptr(flags))
	if e != 0 {
		return e
	}
	return nil
}

// openat2Name is openat2(dirfd, name, how).
func openat2Name(dirfd int, name string, how *unix.OpenHow) (int, error) {
	var c cname
	p, err := c.at(name)
	if err != nil {
		return -1, err
	}
	fd, _, e := unix.Syscall6(unix.SYS_OPENAT2, uintptr(dirfd), uintptr(unsafe.Pointer(p)),
		uintptr(unsafe.Pointer(how)), unsafe.Sizeof(*how), 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

// utimensFd is utimensat(fd, "", ts, AT_EMPTY_PATH|flags).
func utimensFd(fd int, ts *[2]unix.Timespec, flags int) error {
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), uintptr(unsafe.Pointer(emptyPath)),
		uintptr(unsafe.Pointer(ts)), uintptr(unix.AT_EMPTY_PATH|flags), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
