package localfs

import (
	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

// Permission checks. The server runs as root, so the kernel checks nothing
// on the clients' behalf: every operation checks the caller's credentials
// against the mode bits here, as a local file system would, with knfsd's
// exceptions (the owner may read and write their own file whatever its
// mode, so a file created 0444 can still be written through the fd that
// created it).

// Permission bits for may.
const (
	permR = 4
	permW = 2
	permX = 1
)

// squash is an export's root squash mapping.
type squash struct{ uid, gid uint32 }

// noID is (uid_t)-1, which chown reads as "leave unchanged": no object can
// be owned by it, so an object made for a caller with it would stay the
// server's (root's).
const noID = 1<<32 - 1

// nobody is the anonymous identity of an export without root squash.
var nobody = squash{uid: 65534, gid: 65534}

// cred returns c as e's policy maps it: with root squash, uid 0 and gid 0
// (also among the supplementary groups) become the anonymous ids; noID
// becomes them always, as with knfsd.
func (e *export) cred(c vfs.Cred) vfs.Cred {
	anon, squashed := &nobody, false
	if s := e.squash.Load(); s != nil {
		anon, squashed = s, true
	}
	mapped := func(id uint32) bool { return id == noID || (squashed && id == 0) }
	if mapped(c.UID) {
		c.UID = anon.uid
	}
	if mapped(c.GID) {
		c.GID = anon.gid
	}
	for i, g := range c.Groups {
		if mapped(g) {
			groups := append([]uint32(nil), c.Groups...)
			for j := i; j < len(groups); j++ {
				if mapped(groups[j]) {
					groups[j] = anon.gid
				}
			}
			c.Groups = groups
			break
		}
	}
	return c
}

// classBits is the rwx c has on an object with attributes st: those of
// the owner, group or other class c falls in. Root has all of them, but
// execute only on a directory or on a file someone may execute.
func classBits(c *vfs.Cred, st *unix.Stat_t) uint32 {
	mode := st.Mode
	switch {
	case c.UID == 0:
		if mode&unix.S_IFMT != unix.S_IFDIR && mode&0o111 == 0 {
			return permR | permW
		}
		return permR | permW | permX
	case c.UID == st.Uid:
		return mode >> 6 & 7
	case inGroup(c, st.Gid):
		return mode >> 3 & 7
	}
	return mode & 7
}

// may reports whether c has all of the permission bits want on an object
// with attributes st.
func may(c *vfs.Cred, st *unix.Stat_t, want uint32) bool {
	return classBits(c, st)&want == want
}

// accessBits is the set of NFS access bits c has on an object with st. Bits
// that make no sense for the type (LOOKUP and DELETE on files, EXECUTE on
// directories) are never granted, as knfsd does.
func accessBits(c *vfs.Cred, st *unix.Stat_t) uint32 {
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	perm := classBits(c, st)
	var g uint32
	if perm&permR != 0 {
		g |= vfs.AccessRead
	}
	if perm&permW != 0 {
		g |= vfs.AccessModify | vfs.AccessExtend
		if isDir {
			g |= vfs.AccessDelete
		}
	}
	if perm&permX != 0 {
		if isDir {
			g |= vfs.AccessLookup
		} else {
			g |= vfs.AccessExecute
		}
	}
	return g
}

func inGroup(c *vfs.Cred, gid uint32) bool {
	if c.GID == gid {
		return true
	}
	for _, g := range c.Groups {
		if g == gid {
			return true
		}
	}
	return false
}

// mayDir checks write and search permission on a directory whose entries
// are about to change.
func mayDir(c *vfs.Cred, dst *unix.Stat_t) error {
	if !may(c, dst, permW|permX) {
		return unix.EACCES
	}
	return nil
}

// maySearch checks search permission on a directory.
func maySearch(c *vfs.Cred, dst *unix.Stat_t) error {
	if !may(c, dst, permX) {
		return unix.EACCES
	}
	return nil
}

// mayRead checks READ: read permission, or execute (knfsd lets clients read
// what they may execute, since the client does the exec), or ownership.
func mayRead(c *vfs.Cred, st *unix.Stat_t) error {
	if c.UID == st.Uid || may(c, st, permR) || (c.UID != 0 && may(c, st, permX)) {
		return nil
	}
	return unix.EACCES
}

// mayWrite checks WRITE and truncation: write permission or ownership.
func mayWrite(c *vfs.Cred, st *unix.Stat_t) error {
	if c.UID == st.Uid || may(c, st, permW) {
		return nil
	}
	return unix.EACCES
}

// mayUnlinkSticky applies the sticky bit: in a sticky directory only the
// owner of the entry, the owner of the directory or root may remove or
// rename it.
func mayUnlinkSticky(c *vfs.Cred, dst, victim *unix.Stat_t) error {
	if dst.Mode&unix.S_ISVTX == 0 || c.UID == 0 || c.UID == dst.Uid || c.UID == victim.Uid {
		return nil
	}
	return unix.EPERM
}

// checkSetAttr applies the POSIX rules for SETATTR by c on an object with
// attributes st. It may clear setgid from sa.Mode (a caller outside the
// file's group cannot set it), as chmod does.
func checkSetAttr(c *vfs.Cred, sa *vfs.SetAttr, st *unix.Stat_t) error {
	if err := checkOwnerIDs(sa); err != nil {
		return err
	}
	owner := c.UID == 0 || c.UID == st.Uid
	if sa.UID != nil && *sa.UID != st.Uid && c.UID != 0 {
		return unix.EPERM
	}
	if sa.UID != nil && *sa.UID == st.Uid && !owner {
		return unix.EPERM
	}
	gid := st.Gid
	if sa.GID != nil {
		if c.UID != 0 && (c.UID != st.Uid || (*sa.GID != st.Gid && !inGroup(c, *sa.GID))) {
			return unix.EPERM
		}
		gid = *sa.GID
	}
	if sa.Mode != nil {
		if !owner {
			return unix.EPERM
		}
		if c.UID != 0 && *sa.Mode&unix.S_ISGID != 0 && !inGroup(c, gid) {
			m := *sa.Mode &^ unix.S_ISGID
			sa.Mode = &m
		}
	}
	if sa.Size != nil {
		if err := mayWrite(c, st); err != nil {
			return err
		}
	}
	if sa.Atime.How == vfs.TimeClient || sa.Mtime.How == vfs.TimeClient {
		// Setting explicit times is for the owner only.
		if !owner {
			return unix.EPERM
		}
	} else if sa.Atime.How == vfs.TimeServer || sa.Mtime.How == vfs.TimeServer {
		// "touch": the owner or anyone who may write.
		if !owner && !may(c, st, permW) {
			return unix.EACCES
		}
	}
	return nil
}

// checkOwnerIDs refuses noID as a new owner: chown would silently leave
// the owner as it was.
func checkOwnerIDs(sa *vfs.SetAttr) error {
	if (sa.UID != nil && *sa.UID == noID) || (sa.GID != nil && *sa.GID == noID) {
		return unix.EINVAL
	}
	return nil
}

// killPrivs is the mode a write by c leaves on a file with mode: a
// non-root writer clears setuid, and setgid when group-executable, as the
// kernel does for writers without CAP_FSETID (which the server has, so it
// must do it itself). ok is false when nothing changes.
func killPrivs(c *vfs.Cred, mode uint32) (uint32, bool) {
	if c.UID == 0 {
		return 0, false
	}
	m := mode & 0o7777
	nm := m &^ unix.S_ISUID
	if m&unix.S_ISGID != 0 && m&0o010 != 0 {
		nm &^= unix.S_ISGID
	}
	return nm, nm != m
}
