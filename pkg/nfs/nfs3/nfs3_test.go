package nfs3

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
	"github.com/hangar-csi/hangar/pkg/vfs"
	"github.com/hangar-csi/hangar/pkg/vfs/vfstest"
)

// headerMark stands in for the RPC reply header the server writes before
// the handler runs; every reply must leave it alone.
const headerMark = 0xfeedf00d

type env struct {
	t    testing.TB
	fs   *vfstest.MemFS
	h    *Handler
	root vfs.Handle
	cred rpc.Cred
}

func newEnv(t testing.TB) *env {
	fs := vfstest.NewMemFS()
	root := fs.AddExport("/vol")
	return &env{t: t, fs: fs, h: NewHandler(fs, logr.Discard()), root: root,
		cred: rpc.Cred{Flavor: rpc.AuthSys, UID: 1000, GID: 1000}}
}

func enc(f func(w *xdr.Writer)) []byte {
	w := xdr.NewWriter(nil)
	f(w)
	return w.Bytes()
}

// call serves one call and returns the accept status and the results.
func (e *env) call(proc uint32, args []byte) (rpc.AcceptStat, []byte) {
	e.t.Helper()
	w := xdr.NewWriter(make([]byte, 0, 512))
	w.Uint32(headerMark)
	c := &rpc.Call{XID: 1, Prog: Program, Vers: Version, Proc: proc, Cred: e.cred, Args: args,
		Remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 999}}
	st := e.h.Serve(context.Background(), c, w)
	b := w.Bytes()
	if len(b) < 4 || binary.BigEndian.Uint32(b) != headerMark {
		e.t.Fatalf("%s: handler clobbered the reply header", ProcName(proc))
	}
	return st, b[4:]
}

// ok serves a call that must succeed with NFS3_OK and returns a reader
// positioned after the status.
func (e *env) ok(proc uint32, args []byte) *xdr.Reader {
	e.t.Helper()
	st, res := e.call(proc, args)
	if st != rpc.Success {
		e.t.Fatalf("%s: accept stat %d", ProcName(proc), st)
	}
	r := xdr.NewReader(res)
	if s := r.Uint32(); s != StatusOK {
		e.t.Fatalf("%s: status %s", ProcName(proc), StatusName(s))
	}
	return r
}

// status serves a call that must be accepted and returns its nfsstat3 and
// the whole result.
func (e *env) status(proc uint32, args []byte) (uint32, []byte) {
	e.t.Helper()
	st, res := e.call(proc, args)
	if st != rpc.Success {
		e.t.Fatalf("%s: accept stat %d", ProcName(proc), st)
	}
	if len(res) < 4 {
		e.t.Fatalf("%s: %d-byte result", ProcName(proc), len(res))
	}
	return binary.BigEndian.Uint32(res), res
}

func dirop(dir vfs.Handle, name string) func(*xdr.Writer) {
	return func(w *xdr.Writer) {
		w.Opaque(dir)
		w.String(name)
	}
}

func (e *env) create(dir vfs.Handle, name string) vfs.Handle {
	e.t.Helper()
	r := e.ok(ProcCreate, enc(func(w *xdr.Writer) {
		dirop(dir, name)(w)
		w.Uint32(uint32(vfs.CreateGuarded))
		EncodeSattr(w, &vfs.SetAttr{})
	}))
	h := DecodePostOpFH(r)
	if len(h) == 0 {
		e.t.Fatal("CREATE returned no handle")
	}
	return append(vfs.Handle(nil), h...)
}

func (e *env) write(h vfs.Handle, off uint64, data []byte) {
	e.t.Helper()
	e.ok(ProcWrite, enc(func(w *xdr.Writer) {
		w.Opaque(h)
		w.Uint64(off)
		w.Uint32(uint32(len(data)))
		w.Uint32(uint32(vfs.FileSync))
		w.Opaque(data)
	}))
}

func TestGetAttrLayout(t *testing.T) {
	e := newEnv(t)
	fh := e.create(e.root, "f")
	e.write(fh, 0, []byte("hello"))
	mode := uint32(07755)
	at := time.Unix(1000, 5)
	mt := time.Unix(2000, 7)
	e.ok(ProcSetAttr, enc(func(w *xdr.Writer) {
		w.Opaque(fh)
		EncodeSattr(w, &vfs.SetAttr{Mode: &mode,
			Atime: vfs.SetTime{How: vfs.TimeClient, Time: at},
			Mtime: vfs.SetTime{How: vfs.TimeClient, Time: mt}})
		w.Uint32(0)
	}))
	st, res := e.call(ProcGetAttr, enc(func(w *xdr.Writer) { w.Opaque(fh) }))
	if st != rpc.Success || len(res) != 4+84 {
		t.Fatalf("GETATTR: stat %d, %d bytes; want 88", st, len(res))
	}
	be := binary.BigEndian
	a, _ := e.fs.GetAttr(context.Background(), fh)
	want := map[int]uint64{
		0:  StatusOK,
		4:  uint64(vfs.TypeRegular),
		8:  07755, // setuid, setgid, sticky survive
		12: 1,     // nlink
		24: 5,     // size (hyper)
		32: 5,     // used
		48: a.FSID,
		56: a.FileID,
		64: 1000, 68: 5, // atime
		72: 2000, 76: 7, // mtime
		80: uint64(a.Ctime.Unix()),
	}
	for off, v := range want {
		var got uint64
		switch off {
		case 24, 32, 48, 56:
			got = be.Uint64(res[off:])
		default:
			got = uint64(be.Uint32(res[off:]))
		}
		if got != v {
			t.Errorf("offset %d: got %d want %d", off, got, v)
		}
	}
	r := xdr.NewReader(res[4:])
	if got := DecodeFattr(r); got.Mode != 07755 || !got.Atime.Equal(at) || !got.Mtime.Equal(mt) || got.FileID != a.FileID {
		t.Errorf("DecodeFattr round trip: %+v", got)
	}
}

func TestFixedReplyLayouts(t *testing.T) {
	e := newEnv(t)
	fh := func(w *xdr.Writer) { w.Opaque(e.root) }
	// FSSTAT: status 4 + post_op_attr 4+84 + six hypers 48 + invarsec 4.
	_, res := e.status(ProcFSStat, enc(fh))
	if len(res) != 144 {
		t.Errorf("FSSTAT result is %d bytes, want 144", len(res))
	}
	if got := binary.BigEndian.Uint64(res[92:]); got != 1<<30 {
		t.Errorf("FSSTAT tbytes %d", got)
	}
	if got := binary.BigEndian.Uint32(res[140:]); got != 0 {
		t.Errorf("FSSTAT invarsec %d", got)
	}
	// FSINFO: 4 + 88 + 7 uint32 + maxfilesize 8 + time_delta 8 + properties 4.
	_, res = e.status(ProcFSInfo, enc(fh))
	if len(res) != 140 {
		t.Fatalf("FSINFO result is %d bytes, want 140", len(res))
	}
	be := binary.BigEndian
	for i, want := range []uint32{1 << 20, 1 << 20, 4096, 1 << 20, 1 << 20, 4096, 64 << 10} {
		if got := be.Uint32(res[92+4*i:]); got != want {
			t.Errorf("FSINFO field %d: %d want %d", i, got, want)
		}
	}
	if got := be.Uint64(res[120:]); got != 1<<63-1 {
		t.Errorf("maxfilesize %x", got)
	}
	if s, ns := be.Uint32(res[128:]), be.Uint32(res[132:]); s != 0 || ns != 1 {
		t.Errorf("time_delta %d.%d", s, ns)
	}
	if got := be.Uint32(res[136:]); got != 0x1b {
		t.Errorf("properties %#x want LINK|SYMLINK|HOMOGENEOUS|CANSETTIME", got)
	}
	// PATHCONF: 4 + 88 + linkmax, name_max + 4 bools.
	_, res = e.status(ProcPathConf, enc(fh))
	want := []uint32{65000, 255, 1, 1, 0, 1}
	if len(res) != 92+4*len(want) {
		t.Fatalf("PATHCONF result is %d bytes", len(res))
	}
	for i, w := range want {
		if got := be.Uint32(res[92+4*i:]); got != w {
			t.Errorf("PATHCONF field %d: %d want %d", i, got, w)
		}
	}
	// NULL has no results.
	if st, res := e.call(ProcNull, nil); st != rpc.Success || len(res) != 0 {
		t.Errorf("NULL: %d, %d bytes", st, len(res))
	}
}

func TestStatusOf(t *testing.T) {
	cases := []struct {
		err  error
		want uint32
		exp  bool
	}{
		{syscall.EPERM, StatusPerm, true},
		{syscall.ENOENT, StatusNoEnt, true},
		{syscall.EIO, StatusIO, true},
		{syscall.ENXIO, StatusNXIO, true},
		{syscall.EACCES, StatusAcces, true},
		{syscall.EEXIST, StatusExist, true},
		{syscall.EXDEV, StatusXDev, true},
		{syscall.ENODEV, StatusNoDev, true},
		{syscall.ENOTDIR, StatusNotDir, true},
		{syscall.EISDIR, StatusIsDir, true},
		{syscall.EINVAL, StatusInval, true},
		{syscall.EFBIG, StatusFBig, true},
		{syscall.ENOSPC, StatusNoSpc, true},
		{syscall.EROFS, StatusROFS, true},
		{syscall.EMLINK, StatusMLink, true},
		{syscall.ENAMETOOLONG, StatusNameTooLong, true},
		{syscall.ENOTEMPTY, StatusNotEmpty, true},
		{syscall.EDQUOT, StatusDQuot, true},
		{syscall.ESTALE, StatusStale, true},
		{syscall.ELOOP, StatusInval, true},
		{syscall.ENOTSUP, StatusNotSupp, true},
		{syscall.EOPNOTSUPP, StatusNotSupp, true},
		{syscall.EAGAIN, StatusJukebox, true},
		{vfs.ErrStale, StatusStale, true},
		{vfs.ErrBadHandle, StatusBadHandle, true},
		{vfs.ErrNotSync, StatusNotSync, true},
		{vfs.ErrBadCookie, StatusBadCookie, true},
		{vfs.ErrNotSupp, StatusNotSupp, true},
		{vfs.ErrBadType, StatusBadType, true},
		{vfs.ErrNoExport, StatusStale, true},
		{context.Canceled, StatusJukebox, true},
		{fmt.Errorf("openat: %w", syscall.EDQUOT), StatusDQuot, true},
		{&net.OpError{Op: "x", Err: syscall.ENOENT}, StatusNoEnt, true},
		{fmt.Errorf("wrapped: %w", vfs.ErrStale), StatusStale, true},
		{syscall.EBADF, StatusServerFault, false},
		{errors.New("boom"), StatusServerFault, false},
		{nil, StatusOK, true},
	}
	for _, c := range cases {
		got, exp := StatusOf(c.err)
		if got != c.want || exp != c.exp {
			t.Errorf("StatusOf(%v) = %s,%v want %s,%v", c.err, StatusName(got), exp, StatusName(c.want), c.exp)
		}
	}
}

// validArgs returns well-formed arguments for every procedure.
func (e *env) validArgs() map[uint32][]byte {
	f := e.create(e.root, "file")
	fh := func(w *xdr.Writer) { w.Opaque(f) }
	mode := uint32(0o600)
	sa := vfs.SetAttr{Mode: &mode, Mtime: vfs.SetTime{How: vfs.TimeClient, Time: time.Unix(5, 6)}}
	var v vfs.Verifier
	return map[uint32][]byte{
		ProcGetAttr: enc(fh),
		ProcSetAttr: enc(func(w *xdr.Writer) {
			fh(w)
			EncodeSattr(w, &sa)
			w.Uint32(1)
			EncodeTime(w, time.Unix(1, 2))
		}),
		ProcLookup:   enc(dirop(e.root, "file")),
		ProcAccess:   enc(func(w *xdr.Writer) { fh(w); w.Uint32(0x3f) }),
		ProcReadlink: enc(fh),
		ProcRead:     enc(func(w *xdr.Writer) { fh(w); w.Uint64(0); w.Uint32(100) }),
		ProcWrite: enc(func(w *xdr.Writer) {
			fh(w)
			w.Uint64(0)
			w.Uint32(3)
			w.Uint32(2)
			w.Opaque([]byte("abc"))
		}),
		ProcCreate: enc(func(w *xdr.Writer) { dirop(e.root, "new")(w); w.Uint32(2); w.Fixed(v[:]) }),
		ProcMkdir:  enc(func(w *xdr.Writer) { dirop(e.root, "d")(w); EncodeSattr(w, &sa) }),
		ProcSymlink: enc(func(w *xdr.Writer) {
			dirop(e.root, "l")(w)
			EncodeSattr(w, &sa)
			w.String("target")
		}),
		ProcMknod: enc(func(w *xdr.Writer) {
			dirop(e.root, "dev")(w)
			w.Uint32(uint32(vfs.TypeChar))
			EncodeSattr(w, &sa)
			w.Uint32(1)
			w.Uint32(3)
		}),
		ProcRemove: enc(dirop(e.root, "x")),
		ProcRmdir:  enc(dirop(e.root, "x")),
		ProcRename: enc(func(w *xdr.Writer) { dirop(e.root, "a")(w); dirop(e.root, "b")(w) }),
		ProcLink:   enc(func(w *xdr.Writer) { fh(w); dirop(e.root, "hard")(w) }),
		ProcReadDir: enc(func(w *xdr.Writer) {
			w.Opaque(e.root)
			w.Uint64(0)
			w.Fixed(v[:])
			w.Uint32(4096)
		}),
		ProcReadDirPlus: enc(func(w *xdr.Writer) {
			w.Opaque(e.root)
			w.Uint64(0)
			w.Fixed(v[:])
			w.Uint32(512)
			w.Uint32(4096)
		}),
		ProcFSStat:   enc(fh),
		ProcFSInfo:   enc(fh),
		ProcPathConf: enc(fh),
		ProcCommit:   enc(func(w *xdr.Writer) { fh(w); w.Uint64(0); w.Uint32(0) }),
	}
}

func TestTruncatedArgsAreGarbage(t *testing.T) {
	e := newEnv(t)
	all := e.validArgs()
	if len(all) != numProcs-1 {
		t.Fatalf("have args for %d procs", len(all))
	}
	for proc, args := range all {
		if st, _ := e.call(proc, args); st != rpc.Success {
			t.Errorf("%s: full args: accept stat %d", ProcName(proc), st)
		}
		for n := 0; n < len(args); n++ {
			if st, _ := e.call(proc, args[:n]); st != rpc.GarbageArgs {
				t.Errorf("%s: args cut to %d of %d bytes: accept stat %d, want GARBAGE_ARGS", ProcName(proc), n, len(args), st)
				break
			}
		}
	}
}

func TestBadEnumsAndHandles(t *testing.T) {
	e := newEnv(t)
	f := e.create(e.root, "f")
	long := bytes.Repeat([]byte{1}, 65)
	cases := map[string]struct {
		proc uint32
		args []byte
	}{
		"handle of 65 bytes": {ProcGetAttr, enc(func(w *xdr.Writer) { w.Opaque(long) })},
		"huge handle length": {ProcGetAttr, enc(func(w *xdr.Writer) { w.Uint32(0xfffffff0) })},
		"createmode 3":       {ProcCreate, enc(func(w *xdr.Writer) { dirop(e.root, "x")(w); w.Uint32(3) })},
		"stable_how 3": {ProcWrite, enc(func(w *xdr.Writer) {
			w.Opaque(f)
			w.Uint64(0)
			w.Uint32(1)
			w.Uint32(3)
			w.Opaque([]byte{1})
		})},
		"write count > data": {ProcWrite, enc(func(w *xdr.Writer) {
			w.Opaque(f)
			w.Uint64(0)
			w.Uint32(2)
			w.Uint32(0)
			w.Opaque([]byte{1})
		})},
		"time_how 3": {ProcSetAttr, enc(func(w *xdr.Writer) {
			w.Opaque(f)
			for range 4 {
				w.Uint32(0)
			}
			w.Uint32(3)
		})},
		"bool 2": {ProcSetAttr, enc(func(w *xdr.Writer) { w.Opaque(f); w.Uint32(2) })},
	}
	for name, c := range cases {
		if st, _ := e.call(c.proc, c.args); st != rpc.GarbageArgs {
			t.Errorf("%s: accept stat %d, want GARBAGE_ARGS", name, st)
		}
	}
	if st, _ := e.call(22, nil); st != rpc.ProcUnavail {
		t.Errorf("proc 22: %d, want PROC_UNAVAIL", st)
	}
	if st, _ := e.call(1<<31, nil); st != rpc.ProcUnavail {
		t.Errorf("proc 2^31: %d, want PROC_UNAVAIL", st)
	}
	if s, res := e.status(ProcGetAttr, enc(func(w *xdr.Writer) { w.Opaque(nil) })); s != StatusBadHandle || len(res) != 4 {
		t.Errorf("empty handle: %s", StatusName(s))
	}
	stale := append(vfs.Handle(nil), f...)
	stale[15] ^= 0x40
	if s, _ := e.status(ProcGetAttr, enc(func(w *xdr.Writer) { w.Opaque(stale) })); s != StatusStale {
		t.Errorf("unknown handle: %s", StatusName(s))
	}
}

func TestNameLimits(t *testing.T) {
	e := newEnv(t)
	n255 := strings.Repeat("a", 255)
	n256 := strings.Repeat("a", 256)
	createArgs := func(name string) []byte {
		return enc(func(w *xdr.Writer) {
			dirop(e.root, name)(w)
			w.Uint32(uint32(vfs.CreateUnchecked))
			EncodeSattr(w, &vfs.SetAttr{})
		})
	}
	if s, _ := e.status(ProcCreate, createArgs(n255)); s != StatusOK {
		t.Errorf("255-byte name: %s", StatusName(s))
	}
	s, res := e.status(ProcCreate, createArgs(n256))
	if s != StatusNameTooLong || len(res) != 12 { // status + empty wcc_data
		t.Errorf("256-byte name: %s (%d bytes)", StatusName(s), len(res))
	}
	if s, res := e.status(ProcLookup, enc(dirop(e.root, n256))); s != StatusNameTooLong || len(res) != 8 {
		t.Errorf("LOOKUP 256-byte name: %s", StatusName(s))
	}
	for _, bad := range []string{"", "a/b", "a\x00"} {
		if s, _ := e.status(ProcCreate, createArgs(bad)); s != StatusAcces {
			t.Errorf("CREATE %q: %s, want ACCES", bad, StatusName(s))
		}
	}
	for _, dot := range []string{".", ".."} {
		if s, _ := e.status(ProcMkdir, enc(func(w *xdr.Writer) { dirop(e.root, dot)(w); EncodeSattr(w, &vfs.SetAttr{}) })); s != StatusExist {
			t.Errorf("MKDIR %q: %s", dot, StatusName(s))
		}
		if s, _ := e.status(ProcRemove, enc(dirop(e.root, dot))); s != StatusInval {
			t.Errorf("REMOVE %q: %s", dot, StatusName(s))
		}
	}
	symlink := func(target string) uint32 {
		s, _ := e.status(ProcSymlink, enc(func(w *xdr.Writer) {
			dirop(e.root, "l"+fmt.Sprint(len(target)))(w)
			EncodeSattr(w, &vfs.SetAttr{})
			w.String(target)
		}))
		return s
	}
	// No 1024-byte MOUNT path limit on symlink targets: Linux's PATH_MAX-1.
	if s := symlink(strings.Repeat("p", 4095)); s != StatusOK {
		t.Errorf("4095-byte target: %s", StatusName(s))
	}
	if s := symlink(strings.Repeat("p", 4096)); s != StatusNameTooLong {
		t.Errorf("4096-byte target: %s", StatusName(s))
	}
}

func TestLookupAndAccess(t *testing.T) {
	e := newEnv(t)
	f := e.create(e.root, "f")
	r := e.ok(ProcLookup, enc(dirop(e.root, "f")))
	if h := r.Opaque(64); !bytes.Equal(h, f) {
		t.Errorf("LOOKUP handle %x want %x", h, f)
	}
	if a := DecodePostOpAttr(r); a == nil || a.Type != vfs.TypeRegular {
		t.Errorf("LOOKUP object attrs %+v", a)
	}
	if a := DecodePostOpAttr(r); a == nil || a.Type != vfs.TypeDirectory {
		t.Errorf("LOOKUP dir attrs %+v", a)
	}
	s, res := e.status(ProcLookup, enc(dirop(e.root, "missing")))
	if s != StatusNoEnt || len(res) != 4+88 {
		t.Errorf("LOOKUP missing: %s, %d bytes (want dir attrs)", StatusName(s), len(res))
	}
	// The owner of a 0644 file may read and write it, not execute it;
	// LOOKUP and DELETE are for directories.
	r = e.ok(ProcAccess, enc(func(w *xdr.Writer) { w.Opaque(f); w.Uint32(AccessAll) }))
	DecodePostOpAttr(r)
	if g := r.Uint32(); g != vfs.AccessRead|vfs.AccessModify|vfs.AccessExtend {
		t.Errorf("ACCESS granted %#x", g)
	}
}

const AccessAll = vfs.AccessRead | vfs.AccessLookup | vfs.AccessModify | vfs.AccessExtend | vfs.AccessDelete | vfs.AccessExecute

// credFS records the credential of ACCESS calls.
type credFS struct {
	*vfstest.MemFS
	got vfs.Cred
}

func (c *credFS) Access(ctx context.Context, cr vfs.Cred, h vfs.Handle, want uint32) (uint32, vfs.Attr, error) {
	c.got = cr
	return c.MemFS.Access(ctx, cr, h, want)
}

func TestCredMapping(t *testing.T) {
	e := newEnv(t)
	cf := &credFS{MemFS: e.fs}
	e.h = NewHandler(cf, logr.Discard())
	args := enc(func(w *xdr.Writer) { w.Opaque(e.root); w.Uint32(1) })
	e.cred = rpc.Cred{Flavor: rpc.AuthNone}
	e.ok(ProcAccess, args)
	if cf.got.UID != 65534 || cf.got.GID != 65534 || len(cf.got.Groups) != 0 {
		t.Errorf("AUTH_NONE mapped to %+v", cf.got)
	}
	e.cred = rpc.Cred{Flavor: rpc.AuthSys, UID: 7, GID: 8, GIDs: []uint32{9, 10}}
	e.ok(ProcAccess, args)
	if cf.got.UID != 7 || cf.got.GID != 8 || len(cf.got.Groups) != 2 || cf.got.Groups[1] != 10 {
		t.Errorf("AUTH_SYS mapped to %+v", cf.got)
	}
}

func readArgs(h vfs.Handle, off uint64, count uint32) []byte {
	return enc(func(w *xdr.Writer) { w.Opaque(h); w.Uint64(off); w.Uint32(count) })
}

func TestReadWrite(t *testing.T) {
	e := newEnv(t)
	f := e.create(e.root, "f")
	data := make([]byte, 3<<19) // 1.5 MiB
	for i := range data {
		data[i] = byte(i * 7)
	}
	for off := 0; off < len(data); off += 1 << 20 {
		e.write(f, uint64(off), data[off:min(off+1<<20, len(data))])
	}
	// A 2 MiB request is capped at rtmax.
	r := e.ok(ProcRead, readArgs(f, 0, 2<<20))
	if a := DecodePostOpAttr(r); a == nil || a.Size != uint64(len(data)) {
		t.Fatalf("READ attrs %+v", a)
	}
	n, eof := r.Uint32(), r.Bool()
	got := r.Opaque(1 << 21)
	if r.Err() != nil || n != 1<<20 || eof || !bytes.Equal(got, data[:1<<20]) {
		t.Fatalf("READ 0: n=%d eof=%v err=%v", n, eof, r.Err())
	}
	// Unaligned tail read: data padded with zeros, eof set.
	_, res := e.call(ProcRead, readArgs(f, uint64(len(data)-5), 100))
	r = xdr.NewReader(res)
	r.Uint32()
	DecodePostOpAttr(r)
	n, eof = r.Uint32(), r.Bool()
	got = r.Opaque(100)
	if n != 5 || !eof || !bytes.Equal(got, data[len(data)-5:]) || len(r.Remaining()) != 0 {
		t.Errorf("tail READ: n=%d eof=%v rest=%d", n, eof, len(r.Remaining()))
	}
	if !bytes.Equal(res[len(res)-3:], []byte{0, 0, 0}) {
		t.Errorf("padding not zero: %x", res[len(res)-8:])
	}
	// WRITE reply: wcc, count, committed, verifier.
	e.fs.SetWriteVerifier(vfs.Verifier{1, 2, 3, 4, 5, 6, 7, 8})
	r = e.ok(ProcWrite, enc(func(w *xdr.Writer) {
		w.Opaque(f)
		w.Uint64(1)
		w.Uint32(2)
		w.Uint32(uint32(vfs.Unstable))
		w.Opaque([]byte("xy"))
	}))
	wcc := DecodeWcc(r)
	if wcc.Before == nil || wcc.After == nil || wcc.Before.Size != uint64(len(data)) {
		t.Errorf("WRITE wcc %+v", wcc)
	}
	if n, c, v := r.Uint32(), r.Uint32(), r.Fixed(8); n != 2 || c != uint32(vfs.FileSync) || !bytes.Equal(v, []byte{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Errorf("WRITE result n=%d committed=%d verf=%x", n, c, v)
	}
	r = e.ok(ProcCommit, enc(func(w *xdr.Writer) { w.Opaque(f); w.Uint64(0); w.Uint32(0) }))
	DecodeWcc(r)
	if v := r.Fixed(8); !bytes.Equal(v, []byte{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Errorf("COMMIT verf %x", v)
	}
	// Errors: READ of a directory carries its attributes; the header is
	// rewritten, not appended to.
	s, res := e.status(ProcRead, readArgs(e.root, 0, 1<<20))
	if s != StatusIsDir || len(res) != 4+88 {
		t.Errorf("READ dir: %s, %d bytes", StatusName(s), len(res))
	}
}

// noAttrFS returns no attributes with reads and directory listings, which
// makes the handler shrink the attribute slot it reserved.
type noAttrFS struct{ *vfstest.MemFS }

func (f noAttrFS) Read(ctx context.Context, c vfs.Cred, h vfs.Handle, off uint64, buf []byte) (int, bool, *vfs.Attr, error) {
	n, eof, _, err := f.MemFS.Read(ctx, c, h, off, buf)
	return n, eof, nil, err
}

func (f noAttrFS) ReadDir(ctx context.Context, c vfs.Cred, dir vfs.Handle, cookie uint64, verf vfs.Verifier, plus bool, emit func(vfs.DirEntry) bool) (vfs.Verifier, bool, *vfs.Attr, error) {
	v, eof, _, err := f.MemFS.ReadDir(ctx, c, dir, cookie, verf, plus, emit)
	return v, eof, nil, err
}

func TestReplyWithoutAttributes(t *testing.T) {
	e := newEnv(t)
	f := e.create(e.root, "f")
	e.write(f, 0, []byte("hello world"))
	e.h = NewHandler(noAttrFS{e.fs}, logr.Discard())
	_, res := e.call(ProcRead, readArgs(f, 0, 100))
	want := enc(func(w *xdr.Writer) {
		w.Uint32(StatusOK)
		w.Uint32(0)
		w.Uint32(11)
		w.Bool(true)
		w.Opaque([]byte("hello world"))
	})
	if !bytes.Equal(res, want) {
		t.Errorf("READ without attrs:\n got %x\nwant %x", res, want)
	}
	var v vfs.Verifier
	_, res = e.call(ProcReadDir, enc(func(w *xdr.Writer) { w.Opaque(e.root); w.Uint64(0); w.Fixed(v[:]); w.Uint32(4096) }))
	r := xdr.NewReader(res)
	if r.Uint32() != StatusOK || DecodePostOpAttr(r) != nil {
		t.Fatal("READDIR: want OK without attrs")
	}
	r.Fixed(8)
	if !r.Bool() || r.Uint64() != 2 || r.String(255) != "f" {
		t.Errorf("READDIR entry wrong: %x", res)
	}
	r.Uint64()
	if r.Bool() || !r.Bool() || len(r.Remaining()) != 0 || r.Err() != nil {
		t.Errorf("READDIR tail wrong: %x", res)
	}
}

// Filesystem errors reach the client as their status for every procedure,
// with a reply that still decodes (checked by the fuzz target's invariants
// and the per-procedure tests).
func TestFaultStatuses(t *testing.T) {
	e := newEnv(t)
	all := e.validArgs()
	e.fs.Fault = func(op string) error { return syscall.EDQUOT }
	for proc, args := range all {
		if s, _ := e.status(proc, args); s != StatusDQuot {
			t.Errorf("%s: %s want DQUOT", ProcName(proc), StatusName(s))
		}
	}
}

func TestMknod(t *testing.T) {
	e := newEnv(t)
	mk := func(name string, typ vfs.FileType) uint32 {
		s, _ := e.status(ProcMknod, enc(func(w *xdr.Writer) {
			dirop(e.root, name)(w)
			w.Uint32(uint32(typ))
			switch typ {
			case vfs.TypeChar, vfs.TypeBlock:
				EncodeSattr(w, &vfs.SetAttr{})
				w.Uint32(1)
				w.Uint32(3)
			case vfs.TypeFIFO, vfs.TypeSocket:
				EncodeSattr(w, &vfs.SetAttr{})
			}
		}))
		return s
	}
	for _, c := range []struct {
		t    vfs.FileType
		want uint32
	}{
		{vfs.TypeFIFO, StatusOK}, {vfs.TypeSocket, StatusOK},
		// Devices are the filesystem's to refuse; MemFS, like localfs,
		// makes them for root only and the caller here is uid 1000.
		{vfs.TypeChar, StatusPerm}, {vfs.TypeBlock, StatusPerm},
		{vfs.TypeRegular, StatusBadType}, {vfs.TypeDirectory, StatusBadType},
		{vfs.TypeSymlink, StatusBadType}, {99, StatusBadType},
	} {
		if s := mk(fmt.Sprint("n", c.t), c.t); s != c.want {
			t.Errorf("MKNOD type %d: %s want %s", c.t, StatusName(s), StatusName(c.want))
		}
	}
	_, a, _, err := e.fs.Lookup(context.Background(), vfs.Cred{}, e.root, "n7")
	if err != nil || a.Type != vfs.TypeFIFO {
		t.Errorf("fifo not created: %v %+v", err, a)
	}
}

func TestCreateModesAndWcc(t *testing.T) {
	e := newEnv(t)
	create := func(name string, how vfs.CreateHow, verf byte) (uint32, *xdr.Reader) {
		st, res := e.call(ProcCreate, enc(func(w *xdr.Writer) {
			dirop(e.root, name)(w)
			w.Uint32(uint32(how))
			if how == vfs.CreateExclusive {
				w.Fixed([]byte{verf, 0, 0, 0, 0, 0, 0, 0})
			} else {
				m := uint32(0o640)
				EncodeSattr(w, &vfs.SetAttr{Mode: &m})
			}
		}))
		if st != rpc.Success {
			t.Fatalf("CREATE accept %d", st)
		}
		r := xdr.NewReader(res)
		return r.Uint32(), r
	}
	s, r := create("g", vfs.CreateGuarded, 0)
	if s != StatusOK {
		t.Fatal(StatusName(s))
	}
	h := DecodePostOpFH(r)
	a := DecodePostOpAttr(r)
	wcc := DecodeWcc(r)
	if len(h) == 0 || a == nil || a.Mode != 0o640 || wcc.Before == nil || wcc.After == nil || r.Err() != nil || len(r.Remaining()) != 0 {
		t.Errorf("CREATE result: h=%x a=%+v wcc=%+v", h, a, wcc)
	}
	if s, r := create("g", vfs.CreateGuarded, 0); s != StatusExist {
		t.Errorf("GUARDED over existing: %s", StatusName(s))
	} else if wcc := DecodeWcc(r); wcc.After == nil || len(r.Remaining()) != 0 {
		t.Errorf("failed CREATE wcc %+v", wcc)
	}
	if s, _ := create("x", vfs.CreateExclusive, 1); s != StatusOK {
		t.Errorf("EXCLUSIVE: %s", StatusName(s))
	}
	if s, _ := create("x", vfs.CreateExclusive, 1); s != StatusOK {
		t.Errorf("EXCLUSIVE retransmission: %s", StatusName(s))
	}
	if s, _ := create("x", vfs.CreateExclusive, 2); s != StatusExist {
		t.Errorf("EXCLUSIVE other verifier: %s", StatusName(s))
	}
}

func TestIdempotent(t *testing.T) {
	non := map[uint32]bool{ProcSetAttr: true, ProcCreate: true, ProcMkdir: true, ProcSymlink: true,
		ProcMknod: true, ProcRemove: true, ProcRmdir: true, ProcRename: true, ProcLink: true}
	for p := uint32(0); p < numProcs; p++ {
		if Idempotent(p) == non[p] {
			t.Errorf("Idempotent(%s) = %v", ProcName(p), Idempotent(p))
		}
	}
}

// Only calls that never wait for a disk flush may run on the reader.
func TestInline(t *testing.T) {
	write := func(fh []byte, stable vfs.Stable) []byte {
		w := xdr.NewWriter(nil)
		w.Opaque(fh)
		w.Uint64(0)
		w.Uint32(1)
		w.Uint32(uint32(stable))
		w.Opaque([]byte{1})
		return w.Bytes()
	}
	h := NewHandler(vfstest.NewMemFS(), logr.Discard())
	for _, c := range []struct {
		name string
		proc uint32
		args []byte
		want bool
	}{
		{"getattr", ProcGetAttr, nil, true},
		{"lookup", ProcLookup, nil, true},
		{"readdirplus", ProcReadDirPlus, nil, true},
		// Changes may wait for a frozen volume or a directory fsync.
		{"create", ProcCreate, nil, false},
		{"remove", ProcRemove, nil, false},
		{"setattr", ProcSetAttr, nil, false},
		{"commit", ProcCommit, nil, false},
		{"unstable write", ProcWrite, write(make([]byte, 30), vfs.Unstable), false},
		{"file_sync write", ProcWrite, write(make([]byte, 30), vfs.FileSync), false},
		{"unknown proc", 99, nil, false},
	} {
		if got := h.Inline(c.proc, c.args); got != c.want {
			t.Errorf("%s: Inline = %v, want %v", c.name, got, c.want)
		}
	}
}
