package localfs

import (
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// open_by_handle_at needs an fd only to name the mount a handle is
// resolved on; any fd on the export's mount does (the MAC'd handle, not the
// fd, confines a client to its volume). So the exports on one mount share
// one fd, rather than each keeping its root open: a server with 100,000
// idle volumes holds a handful of fds, not 100,000, and exporting or
// unexporting a volume opens or closes nothing that stays.

// mounts are the shared mount fds, by mount ID.
type mounts struct {
	mu sync.Mutex
	m  map[uint64]*mountRef
}

// mountRef is an fd on a mount, counted by the exports that use it.
type mountRef struct {
	fd     int
	id     uint64
	shared bool // in mounts.m (false when the kernel reports no mount ID)
	refs   int  // guarded by mounts.mu
}

// get returns a reference to an fd on the mount of dirFd, an open export
// directory dir; it takes ownership of dirFd.
func (t *mounts) get(dirFd int, dir string) *mountRef {
	id, ok := mountID(dirFd)
	if !ok {
		return &mountRef{fd: dirFd, refs: 1}
	}
	t.mu.Lock()
	if r := t.m[id]; r != nil {
		r.refs++
		t.mu.Unlock()
		unix.Close(dirFd)
		return r
	}
	t.mu.Unlock()
	// Prefer the parent (DATA/volumes for a storage server): an fd on the
	// export itself would keep its inode after the volume is deleted, for
	// as long as other volumes share the fd.
	fd := dirFd
	if pfd, err := unix.Open(filepath.Dir(dir), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
		if pid, ok := mountID(pfd); ok && pid == id {
			unix.Close(dirFd)
			fd = pfd
		} else {
			unix.Close(pfd)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.m[id]; r != nil { // another export of the mount came first
		r.refs++
		unix.Close(fd)
		return r
	}
	if t.m == nil {
		t.m = map[uint64]*mountRef{}
	}
	r := &mountRef{fd: fd, id: id, shared: true, refs: 1}
	t.m[id] = r
	return r
}

// put drops a reference taken by get, closing the fd with the last one.
func (t *mounts) put(r *mountRef) {
	t.mu.Lock()
	r.refs--
	last := r.refs == 0
	if last && r.shared {
		delete(t.m, r.id)
	}
	t.mu.Unlock()
	if last {
		unix.Close(r.fd)
	}
}

func (t *mounts) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// mountID is the ID of the mount fd is on (statx STATX_MNT_ID, Linux 5.8).
func mountID(fd int) (uint64, bool) {
	var stx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_STATX_DONT_SYNC, unix.STATX_MNT_ID, &stx); err != nil || stx.Mask&unix.STATX_MNT_ID == 0 {
		return 0, false
	}
	return stx.Mnt_id, true
}
