package main

import (
	"context"
	"fmt"

	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
)

// Program numbers and the NFSv3 / MOUNTv3 procedures the load generator uses
// (RFC 1813).
const (
	progNFS   = 100003
	progMount = 100005

	procGetattr     = 1
	procLookup      = 3
	procRead        = 6
	procWrite       = 7
	procCreate      = 8
	procMkdir       = 9
	procRemove      = 12
	procReaddirplus = 17
	procFsinfo      = 19
	procCommit      = 21

	mountProcMnt = 1

	stableUnstable = 0
	stableFileSync = 2

	createGuarded = 1
)

// nfsError is a non-OK nfsstat3.
type nfsError struct {
	Proc   string
	Status uint32
}

func (e *nfsError) Error() string { return fmt.Sprintf("%s: nfsstat3 %d", e.Proc, e.Status) }

// attr is the subset of fattr3 the workloads check.
type attr struct {
	Type   uint32
	Size   uint64
	FileID uint64
}

func readFattr(r *xdr.Reader) attr {
	var a attr
	a.Type = r.Uint32()
	r.Uint32() // mode
	r.Uint32() // nlink
	r.Uint32() // uid
	r.Uint32() // gid
	a.Size = r.Uint64()
	r.Uint64() // used
	r.Uint64() // rdev
	r.Uint64() // fsid
	a.FileID = r.Uint64()
	r.Fixed(24) // atime, mtime, ctime
	return a
}

func readPostOpAttr(r *xdr.Reader) (attr, bool) {
	if r.Bool() {
		return readFattr(r), true
	}
	return attr{}, false
}

func readWcc(r *xdr.Reader) {
	if r.Bool() {
		r.Fixed(24)
	}
	readPostOpAttr(r)
}

func writeSattrMode(w *xdr.Writer, mode uint32) {
	w.Bool(true)
	w.Uint32(mode)
	w.Bool(false) // uid
	w.Bool(false) // gid
	w.Bool(false) // size
	w.Uint32(0)   // atime: don't change
	w.Uint32(0)   // mtime: don't change
}

// status reads an nfsstat3 and turns a non-OK one into an error.
func status(r *xdr.Reader, proc string) error {
	st := r.Uint32()
	if r.Err() != nil {
		return fmt.Errorf("%s: short reply: %w", proc, r.Err())
	}
	if st != 0 {
		return &nfsError{Proc: proc, Status: st}
	}
	return nil
}

func (c *caller) mount(ctx context.Context, path string) ([]byte, error) {
	w := c.begin(progMount, 3, mountProcMnt)
	w.String(path)
	r, err := c.do(ctx)
	if err != nil {
		return nil, fmt.Errorf("MNT %s: %w", path, err)
	}
	if err := status(r, "MNT"); err != nil {
		return nil, err
	}
	fh := append([]byte(nil), r.Opaque(64)...)
	return fh, r.Err()
}

func (c *caller) getattr(ctx context.Context, fh []byte) (attr, error) {
	w := c.begin(progNFS, 3, procGetattr)
	w.Opaque(fh)
	r, err := c.do(ctx)
	if err != nil {
		return attr{}, err
	}
	if err := status(r, "GETATTR"); err != nil {
		return attr{}, err
	}
	a := readFattr(r)
	return a, r.Err()
}

// fsinfo returns rtmax and wtmax.
func (c *caller) fsinfo(ctx context.Context, fh []byte) (rtmax, wtmax uint32, err error) {
	w := c.begin(progNFS, 3, procFsinfo)
	w.Opaque(fh)
	r, err := c.do(ctx)
	if err != nil {
		return 0, 0, err
	}
	if err := status(r, "FSINFO"); err != nil {
		readPostOpAttr(r)
		return 0, 0, err
	}
	readPostOpAttr(r)
	rtmax = r.Uint32()
	r.Uint32() // rtpref
	r.Uint32() // rtmult
	wtmax = r.Uint32()
	return rtmax, wtmax, r.Err()
}

func (c *caller) lookup(ctx context.Context, dir []byte, name string) ([]byte, error) {
	w := c.begin(progNFS, 3, procLookup)
	w.Opaque(dir)
	w.String(name)
	r, err := c.do(ctx)
	if err != nil {
		return nil, err
	}
	if err := status(r, "LOOKUP"); err != nil {
		return nil, err
	}
	fh := append([]byte(nil), r.Opaque(64)...)
	return fh, r.Err()
}

// create makes a file (GUARDED, mode 0644) or, with dir true, a directory,
// and returns its handle, looking it up when the server omits it.
func (c *caller) create(ctx context.Context, parent []byte, name string, dir bool) ([]byte, error) {
	fh, _, err := c.createAttr(ctx, parent, name, dir)
	return fh, err
}

// createAttr is create that also returns the new object's fileid (0 if the
// server sent no attributes).
func (c *caller) createAttr(ctx context.Context, parent []byte, name string, dir bool) ([]byte, uint64, error) {
	proc, pname := uint32(procCreate), "CREATE"
	if dir {
		proc, pname = procMkdir, "MKDIR"
	}
	w := c.begin(progNFS, 3, proc)
	w.Opaque(parent)
	w.String(name)
	if dir {
		writeSattrMode(w, 0o755)
	} else {
		w.Uint32(createGuarded)
		writeSattrMode(w, 0o644)
	}
	r, err := c.do(ctx)
	if err != nil {
		return nil, 0, err
	}
	if err := status(r, pname); err != nil {
		return nil, 0, err
	}
	var fh []byte
	if r.Bool() {
		fh = append([]byte(nil), r.Opaque(64)...)
	}
	a, _ := readPostOpAttr(r)
	if r.Err() != nil {
		return nil, 0, fmt.Errorf("%s: bad reply: %w", pname, r.Err())
	}
	if fh == nil {
		fh, err = c.lookup(ctx, parent, name)
	}
	return fh, a.FileID, err
}

func (c *caller) remove(ctx context.Context, parent []byte, name string) error {
	w := c.begin(progNFS, 3, procRemove)
	w.Opaque(parent)
	w.String(name)
	r, err := c.do(ctx)
	if err != nil {
		return err
	}
	return status(r, "REMOVE")
}

// write sends one WRITE and returns the stability and verifier the server
// answered with. A short write is an error: none of the servers under test
// has a reason to return one.
func (c *caller) write(ctx context.Context, fh []byte, off uint64, data []byte, stable uint32) (committed uint32, verf uint64, err error) {
	w := c.begin(progNFS, 3, procWrite)
	w.Opaque(fh)
	w.Uint64(off)
	w.Uint32(uint32(len(data)))
	w.Uint32(stable)
	w.Opaque(data)
	r, err := c.do(ctx)
	if err != nil {
		return 0, 0, err
	}
	if err := status(r, "WRITE"); err != nil {
		return 0, 0, err
	}
	readWcc(r)
	n := r.Uint32()
	committed = r.Uint32()
	verf = r.Uint64()
	if r.Err() != nil {
		return 0, 0, fmt.Errorf("WRITE: bad reply: %w", r.Err())
	}
	if int(n) != len(data) {
		return 0, 0, fmt.Errorf("WRITE at %d: short write %d of %d", off, n, len(data))
	}
	if committed < stable {
		return 0, 0, fmt.Errorf("WRITE at %d: asked stable %d, got %d", off, stable, committed)
	}
	return committed, verf, nil
}

// read reads up to count bytes at off. The returned slice aliases the
// caller's reply buffer and is valid until its next call.
func (c *caller) read(ctx context.Context, fh []byte, off uint64, count uint32) (data []byte, eof bool, err error) {
	w := c.begin(progNFS, 3, procRead)
	w.Opaque(fh)
	w.Uint64(off)
	w.Uint32(count)
	r, err := c.do(ctx)
	if err != nil {
		return nil, false, err
	}
	if err := status(r, "READ"); err != nil {
		return nil, false, err
	}
	readPostOpAttr(r)
	n := r.Uint32()
	eof = r.Bool()
	data = r.Opaque(int(count))
	if r.Err() != nil {
		return nil, false, fmt.Errorf("READ: bad reply: %w", r.Err())
	}
	if int(n) != len(data) {
		return nil, false, fmt.Errorf("READ: count %d but %d data bytes", n, len(data))
	}
	return data, eof, nil
}

func (c *caller) commit(ctx context.Context, fh []byte) (uint64, error) {
	w := c.begin(progNFS, 3, procCommit)
	w.Opaque(fh)
	w.Uint64(0)
	w.Uint32(0)
	r, err := c.do(ctx)
	if err != nil {
		return 0, err
	}
	if err := status(r, "COMMIT"); err != nil {
		return 0, err
	}
	readWcc(r)
	v := r.Uint64()
	return v, r.Err()
}

// dirEntry is one READDIRPLUS entry.
type dirEntry struct {
	Name    string
	FileID  uint64
	HasAttr bool
	HasFH   bool
}

// readdirplus reads a whole directory, calling fn per entry, and returns
// the number of RPCs it took.
func (c *caller) readdirplus(ctx context.Context, dir []byte, maxcount uint32, fn func(dirEntry)) (int, error) {
	var cookie, verf uint64
	for rpcs := 1; ; rpcs++ {
		w := c.begin(progNFS, 3, procReaddirplus)
		w.Opaque(dir)
		w.Uint64(cookie)
		w.Uint64(verf)
		w.Uint32(maxcount) // dircount
		w.Uint32(maxcount)
		r, err := c.do(ctx)
		if err != nil {
			return rpcs, err
		}
		if err := status(r, "READDIRPLUS"); err != nil {
			return rpcs, err
		}
		readPostOpAttr(r)
		verf = r.Uint64()
		n := 0
		for r.Bool() {
			var e dirEntry
			e.FileID = r.Uint64()
			e.Name = string(r.Opaque(255))
			cookie = r.Uint64()
			_, e.HasAttr = readPostOpAttr(r)
			if r.Bool() {
				e.HasFH = true
				r.Opaque(64)
			}
			if r.Err() != nil {
				break
			}
			fn(e)
			n++
		}
		eof := r.Bool()
		if r.Err() != nil {
			return rpcs, fmt.Errorf("READDIRPLUS: bad reply: %w", r.Err())
		}
		if eof {
			return rpcs, nil
		}
		if n == 0 {
			return rpcs, fmt.Errorf("READDIRPLUS: no entries and no eof")
		}
	}
}
