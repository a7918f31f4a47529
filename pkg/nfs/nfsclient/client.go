// Package nfsclient is a small protocol-level NFSv3 and MOUNTv3 client.
//
// It speaks to one server address where both programs share a port (as
// Hangar's server does), pipelining calls over one rpc.Client, so it is
// safe for concurrent use. Health checks, tests and the benchmark load
// generator use it; it does no caching and no path walking beyond LOOKUP.
package nfsclient

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hangar-csi/hangar/pkg/nfs/mount"
	"github.com/hangar-csi/hangar/pkg/nfs/nfs3"
	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
	"github.com/hangar-csi/hangar/pkg/vfs"
)

// StatusError is a non-OK status in an NFS or MOUNT reply. Status is an
// nfsstat3 (or a mountstat3 for Proc "MNT").
type StatusError struct {
	Status uint32
	Proc   string
}

func (e *StatusError) Error() string {
	if e.Proc == "MNT" {
		return fmt.Sprintf("nfsclient: MNT: mountstat3 %d", e.Status)
	}
	return fmt.Sprintf("nfsclient: %s: %s", e.Proc, nfs3.StatusName(e.Status))
}

// IsStatus reports whether err is a *StatusError with status s.
func IsStatus(err error, s uint32) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Status == s
}

// ErrMalformed is returned for replies that do not decode.
var ErrMalformed = errors.New("nfsclient: malformed reply")

// Client is an NFSv3 + MOUNTv3 client, safe for concurrent use.
type Client struct {
	rc *rpc.Client

	mu   sync.RWMutex
	cred rpc.Cred
}

// Dial connects to a server serving both programs on addr.
func Dial(ctx context.Context, addr string) (*Client, error) {
	rc, err := rpc.Dial(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("nfsclient: dial %s: %w", addr, err)
	}
	return New(rc), nil
}

// New wraps an rpc.Client. Calls go out as root (AUTH_SYS 0/0) until
// SetCred says otherwise.
func New(rc *rpc.Client) *Client {
	return &Client{rc: rc, cred: rpc.Cred{Flavor: rpc.AuthSys, Machine: "hangar"}}
}

// SetCred sets the credential of later calls.
func (c *Client) SetCred(cr rpc.Cred) {
	c.mu.Lock()
	c.cred = cr
	c.mu.Unlock()
}

// Close closes the connection.
func (c *Client) Close() error { return c.rc.Close() }

func (c *Client) getCred() rpc.Cred {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.cred
}

// do makes one NFS call. ok decodes the results after an NFS3_OK status;
// other statuses come back as *StatusError.
func (c *Client) do(ctx context.Context, proc uint32, args func(*xdr.Writer), ok func(*xdr.Reader)) error {
	return c.rc.CallInto(ctx, nfs3.Program, nfs3.Version, proc, c.getCred(), args, func(r *xdr.Reader) error {
		st := r.Uint32()
		if r.Err() != nil {
			return fmt.Errorf("%w: %s: %v", ErrMalformed, nfs3.ProcName(proc), r.Err())
		}
		if st != nfs3.StatusOK {
			return &StatusError{Status: st, Proc: nfs3.ProcName(proc)}
		}
		if ok != nil {
			ok(r)
		}
		if r.Err() != nil {
			return fmt.Errorf("%w: %s: %v", ErrMalformed, nfs3.ProcName(proc), r.Err())
		}
		return nil
	})
}

func cloneHandle(b []byte) vfs.Handle {
	if b == nil {
		return nil
	}
	return append(vfs.Handle(nil), b...)
}

// Null pings the NFS program.
func (c *Client) Null(ctx context.Context) error {
	return c.rc.CallInto(ctx, nfs3.Program, nfs3.Version, nfs3.ProcNull, c.getCred(), nil, nil)
}

// Mount asks MOUNT for the root handle of the export at path.
func (c *Client) Mount(ctx context.Context, path string) (vfs.Handle, error) {
	var h vfs.Handle
	err := c.rc.CallInto(ctx, mount.Program, mount.Version, mount.ProcMnt, c.getCred(),
		func(w *xdr.Writer) { w.String(path) },
		func(r *xdr.Reader) error {
			st := r.Uint32()
			if r.Err() == nil && st != mount.StatusOK {
				return &StatusError{Status: st, Proc: "MNT"}
			}
			h = cloneHandle(r.Opaque(vfs.MaxHandleSize))
			n := r.Uint32()
			for i := uint32(0); i < n && r.Err() == nil && i < 64; i++ {
				r.Uint32()
			}
			if r.Err() != nil {
				return fmt.Errorf("%w: MNT: %v", ErrMalformed, r.Err())
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	return h, nil
}

// Unmount tells MOUNT the client no longer uses path.
func (c *Client) Unmount(ctx context.Context, path string) error {
	return c.rc.CallInto(ctx, mount.Program, mount.Version, mount.ProcUmnt, c.getCred(),
		func(w *xdr.Writer) { w.String(path) }, nil)
}

// UnmountAll removes every mount of this client from the server's list.
func (c *Client) UnmountAll(ctx context.Context) error {
	return c.rc.CallInto(ctx, mount.Program, mount.Version, mount.ProcUmntAll, c.getCred(), nil, nil)
}

// Export is one entry of MOUNT EXPORT.
type Export struct {
	Dir    string
	Groups []string
}

// MountEntry is one entry of MOUNT DUMP.
type MountEntry struct {
	Host, Dir string
}

// maxList bounds the lists this client decodes from a server.
const maxList = 1 << 16

// Exports lists the server's exports.
func (c *Client) Exports(ctx context.Context) ([]Export, error) {
	var out []Export
	err := c.rc.CallInto(ctx, mount.Program, mount.Version, mount.ProcExport, c.getCred(), nil,
		func(r *xdr.Reader) error {
			for i := 0; r.Bool() && i < maxList; i++ {
				e := Export{Dir: r.String(mount.MaxPath)}
				for j := 0; r.Bool() && j < maxList; j++ {
					e.Groups = append(e.Groups, r.String(mount.MaxName))
				}
				out = append(out, e)
			}
			if r.Err() != nil {
				return fmt.Errorf("%w: EXPORT: %v", ErrMalformed, r.Err())
			}
			return nil
		})
	return out, err
}

// Dump lists the mounts the server has recorded.
func (c *Client) Dump(ctx context.Context) ([]MountEntry, error) {
	var out []MountEntry
	err := c.rc.CallInto(ctx, mount.Program, mount.Version, mount.ProcDump, c.getCred(), nil,
		func(r *xdr.Reader) error {
			for i := 0; r.Bool() && i < maxList; i++ {
				host := r.String(mount.MaxName)
				dir := r.String(mount.MaxPath)
				out = append(out, MountEntry{Host: host, Dir: dir})
			}
			if r.Err() != nil {
				return fmt.Errorf("%w: DUMP: %v", ErrMalformed, r.Err())
			}
			return nil
		})
	return out, err
}

// GetAttr returns h's attributes.
func (c *Client) GetAttr(ctx context.Context, h vfs.Handle) (vfs.Attr, error) {
	var a vfs.Attr
	err := c.do(ctx, nfs3.ProcGetAttr, func(w *xdr.Writer) { w.Opaque(h) },
		func(r *xdr.Reader) { a = nfs3.DecodeFattr(r) })
	return a, err
}

// SetAttr changes h's attributes; guard, if set, must match its ctime.
func (c *Client) SetAttr(ctx context.Context, h vfs.Handle, sa vfs.SetAttr, guard *time.Time) (vfs.Wcc, error) {
	var wcc vfs.Wcc
	err := c.do(ctx, nfs3.ProcSetAttr, func(w *xdr.Writer) {
		w.Opaque(h)
		nfs3.EncodeSattr(w, &sa)
		if guard != nil {
			w.Uint32(1)
			nfs3.EncodeTime(w, *guard)
		} else {
			w.Uint32(0)
		}
	}, func(r *xdr.Reader) { wcc = nfs3.DecodeWcc(r) })
	return wcc, err
}

// Lookup resolves name in dir. The attributes are zero if the server sent
// none.
func (c *Client) Lookup(ctx context.Context, dir vfs.Handle, name string) (vfs.Handle, vfs.Attr, error) {
	var h vfs.Handle
	var a vfs.Attr
	err := c.do(ctx, nfs3.ProcLookup, dirop(dir, name), func(r *xdr.Reader) {
		h = cloneHandle(r.Opaque(vfs.MaxHandleSize))
		if p := nfs3.DecodePostOpAttr(r); p != nil {
			a = *p
		}
		nfs3.DecodePostOpAttr(r)
	})
	return h, a, err
}

func dirop(dir vfs.Handle, name string) func(*xdr.Writer) {
	return func(w *xdr.Writer) {
		w.Opaque(dir)
		w.String(name)
	}
}

// Access asks which of the ACCESS3 bits in want the caller has on h.
func (c *Client) Access(ctx context.Context, h vfs.Handle, want uint32) (uint32, error) {
	var granted uint32
	err := c.do(ctx, nfs3.ProcAccess, func(w *xdr.Writer) {
		w.Opaque(h)
		w.Uint32(want)
	}, func(r *xdr.Reader) {
		nfs3.DecodePostOpAttr(r)
		granted = r.Uint32()
	})
	return granted, err
}

// Readlink returns a symlink's target.
func (c *Client) Readlink(ctx context.Context, h vfs.Handle) (string, error) {
	var s string
	err := c.do(ctx, nfs3.ProcReadlink, func(w *xdr.Writer) { w.Opaque(h) }, func(r *xdr.Reader) {
		nfs3.DecodePostOpAttr(r)
		s = r.String(nfs3.MaxPath)
	})
	return s, err
}

// Read reads up to len(buf) bytes (at most nfs3.MaxRead) at off into buf.
func (c *Client) Read(ctx context.Context, h vfs.Handle, off uint64, buf []byte) (n int, eof bool, err error) {
	count := min(len(buf), nfs3.MaxRead)
	err = c.do(ctx, nfs3.ProcRead, func(w *xdr.Writer) {
		w.Opaque(h)
		w.Uint64(off)
		w.Uint32(uint32(count))
	}, func(r *xdr.Reader) {
		nfs3.DecodePostOpAttr(r)
		cnt := r.Uint32()
		eof = r.Bool()
		data := r.Opaque(count)
		if r.Err() == nil && int(cnt) != len(data) {
			r.Fixed(1 << 30) // count and data disagree: poison the reader
		}
		n = copy(buf, data)
	})
	if err != nil {
		return 0, false, err
	}
	return n, eof, nil
}

// Write writes data at off with the requested stability.
func (c *Client) Write(ctx context.Context, h vfs.Handle, off uint64, data []byte, stable vfs.Stable) (n int, committed vfs.Stable, verf vfs.Verifier, err error) {
	err = c.do(ctx, nfs3.ProcWrite, func(w *xdr.Writer) {
		w.Opaque(h)
		w.Uint64(off)
		w.Uint32(uint32(len(data)))
		w.Uint32(uint32(stable))
		w.Opaque(data)
	}, func(r *xdr.Reader) {
		nfs3.DecodeWcc(r)
		n = int(r.Uint32())
		committed = vfs.Stable(r.Uint32())
		copy(verf[:], r.Fixed(8))
	})
	return n, committed, verf, err
}

// Commit asks the server to make earlier unstable writes to h durable and
// returns the write verifier.
func (c *Client) Commit(ctx context.Context, h vfs.Handle) (vfs.Verifier, error) {
	var verf vfs.Verifier
	err := c.do(ctx, nfs3.ProcCommit, func(w *xdr.Writer) {
		w.Opaque(h)
		w.Uint64(0)
		w.Uint32(0)
	}, func(r *xdr.Reader) {
		nfs3.DecodeWcc(r)
		copy(verf[:], r.Fixed(8))
	})
	return verf, err
}

// newObject decodes a CREATE/MKDIR/SYMLINK/MKNOD result into h.
func newObject(h *vfs.Handle) func(*xdr.Reader) {
	return func(r *xdr.Reader) {
		*h = cloneHandle(nfs3.DecodePostOpFH(r))
		nfs3.DecodePostOpAttr(r)
		nfs3.DecodeWcc(r)
	}
}

// orLookup fills in a handle the server did not return.
func (c *Client) orLookup(ctx context.Context, h vfs.Handle, err error, dir vfs.Handle, name string) (vfs.Handle, error) {
	if err != nil || len(h) > 0 {
		return h, err
	}
	h, _, err = c.Lookup(ctx, dir, name)
	return h, err
}

func modeAttr(mode uint32) vfs.SetAttr { return vfs.SetAttr{Mode: &mode} }

// Create makes a regular file with mode. For vfs.CreateExclusive it uses a
// fresh random verifier; use CreateExclusive to choose it.
func (c *Client) Create(ctx context.Context, dir vfs.Handle, name string, mode uint32, how vfs.CreateHow) (vfs.Handle, error) {
	if how == vfs.CreateExclusive {
		var v vfs.Verifier
		rand.Read(v[:])
		return c.CreateExclusive(ctx, dir, name, v)
	}
	h, _, _, err := c.CreateAttr(ctx, dir, name, mode, how)
	return c.orLookup(ctx, h, err, dir, name)
}

// CreateAttr is an UNCHECKED or GUARDED Create that also returns what the
// reply holds: the handle (nil if the server sent none), the new file's
// attributes and the directory's wcc data.
func (c *Client) CreateAttr(ctx context.Context, dir vfs.Handle, name string, mode uint32, how vfs.CreateHow) (vfs.Handle, *vfs.Attr, vfs.Wcc, error) {
	sa := modeAttr(mode)
	var h vfs.Handle
	var attr *vfs.Attr
	var wcc vfs.Wcc
	err := c.do(ctx, nfs3.ProcCreate, func(w *xdr.Writer) {
		dirop(dir, name)(w)
		w.Uint32(uint32(how))
		nfs3.EncodeSattr(w, &sa)
	}, func(r *xdr.Reader) {
		h = cloneHandle(nfs3.DecodePostOpFH(r))
		attr = nfs3.DecodePostOpAttr(r)
		wcc = nfs3.DecodeWcc(r)
	})
	return h, attr, wcc, err
}

// CreateExclusive makes a regular file with an EXCLUSIVE create: repeating
// it with the same verifier succeeds with the same file.
func (c *Client) CreateExclusive(ctx context.Context, dir vfs.Handle, name string, verf vfs.Verifier) (vfs.Handle, error) {
	var h vfs.Handle
	err := c.do(ctx, nfs3.ProcCreate, func(w *xdr.Writer) {
		dirop(dir, name)(w)
		w.Uint32(uint32(vfs.CreateExclusive))
		w.Fixed(verf[:])
	}, newObject(&h))
	return c.orLookup(ctx, h, err, dir, name)
}

// Mkdir makes a directory.
func (c *Client) Mkdir(ctx context.Context, dir vfs.Handle, name string, mode uint32) (vfs.Handle, error) {
	sa := modeAttr(mode)
	var h vfs.Handle
	err := c.do(ctx, nfs3.ProcMkdir, func(w *xdr.Writer) {
		dirop(dir, name)(w)
		nfs3.EncodeSattr(w, &sa)
	}, newObject(&h))
	return c.orLookup(ctx, h, err, dir, name)
}

// Symlink makes a symbolic link to target.
func (c *Client) Symlink(ctx context.Context, dir vfs.Handle, name, target string) (vfs.Handle, error) {
	var h vfs.Handle
	err := c.do(ctx, nfs3.ProcSymlink, func(w *xdr.Writer) {
		dirop(dir, name)(w)
		nfs3.EncodeSattr(w, &vfs.SetAttr{})
		w.String(target)
	}, newObject(&h))
	return c.orLookup(ctx, h, err, dir, name)
}

// Mknod makes a special file of type t (devices use major and minor).
func (c *Client) Mknod(ctx context.Context, dir vfs.Handle, name string, t vfs.FileType, mode, major, minor uint32) (vfs.Handle, error) {
	sa := modeAttr(mode)
	var h vfs.Handle
	err := c.do(ctx, nfs3.ProcMknod, func(w *xdr.Writer) {
		dirop(dir, name)(w)
		w.Uint32(uint32(t))
		switch t {
		case vfs.TypeChar, vfs.TypeBlock:
			nfs3.EncodeSattr(w, &sa)
			w.Uint32(major)
			w.Uint32(minor)
		case vfs.TypeSocket, vfs.TypeFIFO:
			nfs3.EncodeSattr(w, &sa)
		}
	}, newObject(&h))
	return c.orLookup(ctx, h, err, dir, name)
}

// Remove removes a non-directory.
func (c *Client) Remove(ctx context.Context, dir vfs.Handle, name string) error {
	return c.do(ctx, nfs3.ProcRemove, dirop(dir, name), func(r *xdr.Reader) { nfs3.DecodeWcc(r) })
}

// Rmdir removes an empty directory.
func (c *Client) Rmdir(ctx context.Context, dir vfs.Handle, name string) error {
	return c.do(ctx, nfs3.ProcRmdir, dirop(dir, name), func(r *xdr.Reader) { nfs3.DecodeWcc(r) })
}

// Rename renames fromDir/fromName to toDir/toName, replacing any target.
func (c *Client) Rename(ctx context.Context, fromDir vfs.Handle, fromName string, toDir vfs.Handle, toName string) error {
	return c.do(ctx, nfs3.ProcRename, func(w *xdr.Writer) {
		dirop(fromDir, fromName)(w)
		dirop(toDir, toName)(w)
	}, func(r *xdr.Reader) {
		nfs3.DecodeWcc(r)
		nfs3.DecodeWcc(r)
	})
}

// Link makes dir/name a hard link to h.
func (c *Client) Link(ctx context.Context, h, dir vfs.Handle, name string) error {
	return c.do(ctx, nfs3.ProcLink, func(w *xdr.Writer) {
		w.Opaque(h)
		dirop(dir, name)(w)
	}, func(r *xdr.Reader) {
		nfs3.DecodePostOpAttr(r)
		nfs3.DecodeWcc(r)
	})
}

// Page is one READDIR or READDIRPLUS reply.
type Page struct {
	Entries []vfs.DirEntry
	Verf    vfs.Verifier
	EOF     bool
	DirAttr *vfs.Attr
}

// ReadDirPage makes one READDIR call.
func (c *Client) ReadDirPage(ctx context.Context, dir vfs.Handle, cookie uint64, verf vfs.Verifier, count uint32) (Page, error) {
	var p Page
	err := c.do(ctx, nfs3.ProcReadDir, func(w *xdr.Writer) {
		w.Opaque(dir)
		w.Uint64(cookie)
		w.Fixed(verf[:])
		w.Uint32(count)
	}, func(r *xdr.Reader) {
		p.DirAttr = nfs3.DecodePostOpAttr(r)
		copy(p.Verf[:], r.Fixed(8))
		for i := 0; r.Bool() && i < maxList; i++ {
			var e vfs.DirEntry
			e.FileID = r.Uint64()
			e.Name = r.String(nfs3.MaxName)
			e.Cookie = r.Uint64()
			p.Entries = append(p.Entries, e)
		}
		p.EOF = r.Bool()
	})
	return p, err
}

// ReadDirPlusPage makes one READDIRPLUS call.
func (c *Client) ReadDirPlusPage(ctx context.Context, dir vfs.Handle, cookie uint64, verf vfs.Verifier, dircount, maxcount uint32) (Page, error) {
	var p Page
	err := c.do(ctx, nfs3.ProcReadDirPlus, func(w *xdr.Writer) {
		w.Opaque(dir)
		w.Uint64(cookie)
		w.Fixed(verf[:])
		w.Uint32(dircount)
		w.Uint32(maxcount)
	}, func(r *xdr.Reader) {
		p.DirAttr = nfs3.DecodePostOpAttr(r)
		copy(p.Verf[:], r.Fixed(8))
		for i := 0; r.Bool() && i < maxList; i++ {
			var e vfs.DirEntry
			e.FileID = r.Uint64()
			e.Name = r.String(nfs3.MaxName)
			e.Cookie = r.Uint64()
			e.Attr = nfs3.DecodePostOpAttr(r)
			e.Handle = cloneHandle(nfs3.DecodePostOpFH(r))
			p.Entries = append(p.Entries, e)
		}
		p.EOF = r.Bool()
	})
	return p, err
}

// Page sizes of ReadDir and ReadDirPlus, as a Linux client asks them.
const (
	readDirCount = 64 << 10
	maxPages     = 1 << 20
)

// ReadDir lists dir, calling fn for each entry.
func (c *Client) ReadDir(ctx context.Context, dir vfs.Handle, fn func(vfs.DirEntry)) error {
	return c.walk(func(cookie uint64, verf vfs.Verifier) (Page, error) {
		return c.ReadDirPage(ctx, dir, cookie, verf, readDirCount)
	}, fn)
}

// ReadDirPlus lists dir with attributes and handles, calling fn for each
// entry.
func (c *Client) ReadDirPlus(ctx context.Context, dir vfs.Handle, fn func(vfs.DirEntry)) error {
	return c.walk(func(cookie uint64, verf vfs.Verifier) (Page, error) {
		return c.ReadDirPlusPage(ctx, dir, cookie, verf, readDirCount/8, readDirCount)
	}, fn)
}

func (c *Client) walk(page func(uint64, vfs.Verifier) (Page, error), fn func(vfs.DirEntry)) error {
	var cookie uint64
	var verf vfs.Verifier
	for range maxPages {
		p, err := page(cookie, verf)
		if err != nil {
			return err
		}
		for _, e := range p.Entries {
			fn(e)
		}
		if p.EOF {
			return nil
		}
		if len(p.Entries) == 0 {
			return fmt.Errorf("%w: empty directory page without eof", ErrMalformed)
		}
		cookie, verf = p.Entries[len(p.Entries)-1].Cookie, p.Verf
	}
	return fmt.Errorf("nfsclient: directory listing did not end after %d pages", maxPages)
}

// FSStat returns the dynamic state of h's volume.
func (c *Client) FSStat(ctx context.Context, h vfs.Handle) (vfs.FSStat, error) {
	var st vfs.FSStat
	err := c.do(ctx, nfs3.ProcFSStat, func(w *xdr.Writer) { w.Opaque(h) }, func(r *xdr.Reader) {
		nfs3.DecodePostOpAttr(r)
		st.TotalBytes = r.Uint64()
		st.FreeBytes = r.Uint64()
		st.AvailBytes = r.Uint64()
		st.TotalFiles = r.Uint64()
		st.FreeFiles = r.Uint64()
		st.AvailFiles = r.Uint64()
		r.Uint32() // invarsec
	})
	return st, err
}

// FSInfo is the static information of FSINFO.
type FSInfo struct {
	RTMax, RTPref, RTMult uint32
	WTMax, WTPref, WTMult uint32
	DTPref                uint32
	MaxFileSize           uint64
	TimeDelta             time.Duration
	Properties            uint32
}

// FSInfo returns the server's static limits for h's volume.
func (c *Client) FSInfo(ctx context.Context, h vfs.Handle) (FSInfo, error) {
	var fi FSInfo
	err := c.do(ctx, nfs3.ProcFSInfo, func(w *xdr.Writer) { w.Opaque(h) }, func(r *xdr.Reader) {
		nfs3.DecodePostOpAttr(r)
		fi.RTMax, fi.RTPref, fi.RTMult = r.Uint32(), r.Uint32(), r.Uint32()
		fi.WTMax, fi.WTPref, fi.WTMult = r.Uint32(), r.Uint32(), r.Uint32()
		fi.DTPref = r.Uint32()
		fi.MaxFileSize = r.Uint64()
		s, ns := r.Uint32(), r.Uint32()
		fi.TimeDelta = time.Duration(s)*time.Second + time.Duration(ns)
		fi.Properties = r.Uint32()
	})
	return fi, err
}

// PathConf is the PATHCONF information.
type PathConf struct {
	LinkMax, NameMax                                          uint32
	NoTrunc, ChownRestricted, CaseInsensitive, CasePreserving bool
}

// PathConf returns h's POSIX limits.
func (c *Client) PathConf(ctx context.Context, h vfs.Handle) (PathConf, error) {
	var pc PathConf
	err := c.do(ctx, nfs3.ProcPathConf, func(w *xdr.Writer) { w.Opaque(h) }, func(r *xdr.Reader) {
		nfs3.DecodePostOpAttr(r)
		pc.LinkMax, pc.NameMax = r.Uint32(), r.Uint32()
		pc.NoTrunc, pc.ChownRestricted = r.Bool(), r.Bool()
		pc.CaseInsensitive, pc.CasePreserving = r.Bool(), r.Bool()
	})
	return pc, err
}
