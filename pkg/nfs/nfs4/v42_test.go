package nfs4

import (
	"bytes"
	"math"
	"net/netip"
	"syscall"
	"testing"

	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
	"github.com/hangar-csi/hangar/pkg/vfs"
	"github.com/hangar-csi/hangar/pkg/volume/localfs"
)

const k64 = 64 << 10

func allocateOp(sid stateid, off, n uint64) op {
	return mkop(OpAllocate, func(w *xdr.Writer) { encodeStateid(w, sid); w.Uint64(off); w.Uint64(n) })
}

func deallocateOp(sid stateid, off, n uint64) op {
	return mkop(OpDeallocate, func(w *xdr.Writer) { encodeStateid(w, sid); w.Uint64(off); w.Uint64(n) })
}

func seekOp(sid stateid, off uint64, what uint32) op {
	return mkop(OpSeek, func(w *xdr.Writer) { encodeStateid(w, sid); w.Uint64(off); w.Uint32(what) })
}

// v42 returns a connected minor-version-2 client and an open file holding
// 4*64 KiB of 'a' (sid open for reading and writing).
func v42(t *testing.T, e *env) (c *tclient, dir, fh []byte, sid stateid) {
	t.Helper()
	c = e.client()
	c.minor = 2
	c.connect("v42")
	dir = c.volRoot()
	sid, fh, st := c.open(dir, openArgs{access: ShareAccessBoth, owner: "o", create: true, how: createUnchecked, name: "f"})
	if st != OK {
		t.Fatalf("OPEN: %d", st)
	}
	c.must(putfh(fh), writeOp(sid, 0, bytes.Repeat([]byte("a"), 4*k64)))
	return c, dir, fh, sid
}

// fhStatus runs PUTFH fh + o and returns o's status.
func (c *tclient) fhStatus(fh []byte, o op) uint32 {
	c.t.Helper()
	p := c.do(putfh(fh), o)
	p.ok(OpPutFH)
	return p.next(o.num)
}

// seekRes runs SEEK and returns its results.
func (c *tclient) seekRes(fh []byte, sid stateid, off uint64, what uint32) (eof bool, pos uint64) {
	c.t.Helper()
	p := c.must(putfh(fh), seekOp(sid, off, what))
	p.ok(OpPutFH)
	r := p.ok(OpSeek)
	eof, pos = r.Bool(), r.Uint64()
	if r.Err() != nil {
		c.t.Fatalf("SEEK result: %v", r.Err())
	}
	return eof, pos
}

func (c *tclient) sizeUsed(fh []byte) (size, used uint64) {
	c.t.Helper()
	a := c.getattr(fh, bits(AttrSize, AttrSpaceUsed))
	return a.vals.Uint64(), a.vals.Uint64()
}

func TestAllocateDeallocateSeek(t *testing.T) {
	e := newEnv(t, Options{})
	c, _, fh, sid := v42(t, e)

	// ALLOCATE past the end grows the file; GETATTR in the same COMPOUND
	// sees it, as the Linux client asks.
	p := c.must(putfh(fh), allocateOp(sid, 4*k64, k64), getattr(bits(AttrSize)))
	p.ok(OpPutFH)
	p.ok(OpAllocate)
	if size, used := c.sizeUsed(fh); size != 5*k64 || used != 5*k64 {
		t.Fatalf("after ALLOCATE: size %d used %d, want %d", size, used, 5*k64)
	}

	// DEALLOCATE punches a hole: zeros, same size, space back.
	if st := c.fhStatus(fh, deallocateOp(sid, k64, k64)); st != OK {
		t.Fatalf("DEALLOCATE: %d", st)
	}
	if size, used := c.sizeUsed(fh); size != 5*k64 || used != 4*k64 {
		t.Fatalf("after DEALLOCATE: size %d used %d, want %d and %d", size, used, 5*k64, 4*k64)
	}
	p = c.must(putfh(fh), readOp(sid, k64-1, 3))
	p.ok(OpPutFH)
	r := p.ok(OpRead)
	r.Bool()
	if got := r.Opaque(3); !bytes.Equal(got, []byte("a\x00\x00")) {
		t.Fatalf("READ across the hole's start: %q", got)
	}

	// SEEK: data, hole, the hole at the end of file.
	for _, s := range []struct {
		off     uint64
		what    uint32
		eof     bool
		wantPos uint64
	}{
		{0, contentData, false, 0},
		{0, contentHole, false, k64},
		{k64 + 1, contentData, false, 2 * k64},
		{k64 + 1, contentHole, false, k64 + 1},
		{2 * k64, contentHole, true, 5 * k64},
	} {
		if eof, pos := c.seekRes(fh, sid, s.off, s.what); eof != s.eof || pos != s.wantPos {
			t.Errorf("SEEK %d from %d: eof %v pos %d, want %v %d", s.what, s.off, eof, pos, s.eof, s.wantPos)
		}
	}
	// No data after a trailing hole: OK with sr_eof (RFC 7862 15.11.3).
	if st := c.fhStatus(fh, deallocateOp(sid, 4*k64, k64)); st != OK {
		t.Fatalf("DEALLOCATE of the tail: %d", st)
	}
	if eof, _ := c.seekRes(fh, sid, 4*k64, contentData); !eof {
		t.Errorf("SEEK data in a trailing hole: no eof")
	}
	// At or past the end of file: NXIO.
	for _, off := range []uint64{5 * k64, math.MaxUint64} {
		if st := c.fhStatus(fh, seekOp(sid, off, contentData)); st != ErrNXIO {
			t.Errorf("SEEK from %d, past the end: %d, want NXIO", off, st)
		}
	}
	if st := c.fhStatus(fh, seekOp(sid, 0, 2)); st != ErrUnionNotSupp {
		t.Errorf("SEEK for content 2: %d, want UNION_NOTSUPP", st)
	}
}

func TestV42Errors(t *testing.T) {
	e := newEnv(t, Options{})
	c, dir, fh, sid := v42(t, e)
	fifo := c.fh(putfh(dir), mkop(OpCreate, func(w *xdr.Writer) {
		w.Uint32(NF4FIFO)
		w.String("fifo")
		fattr(bitmap{}, nil)(w)
	}))
	_, other, _ := c.open(dir, openArgs{access: ShareAccessBoth, owner: "o", create: true, how: createUnchecked, name: "g"})
	rsid, _, _ := c.open(dir, openArgs{access: ShareAccessRead, owner: "r", name: "f"})
	bogus := sid
	bogus.other[0] ^= 0xff
	for _, tc := range []struct {
		name string
		fh   []byte
		op   op
		want uint32
	}{
		{"ALLOCATE with an unknown stateid", fh, allocateOp(bogus, 0, k64), ErrBadStateID},
		{"DEALLOCATE with an unknown stateid", fh, deallocateOp(bogus, 0, k64), ErrBadStateID},
		{"SEEK with an unknown stateid", fh, seekOp(bogus, 0, contentData), ErrBadStateID},
		{"ALLOCATE with another file's stateid", other, allocateOp(sid, 0, k64), ErrBadStateID},
		{"ALLOCATE through a read-only open", fh, allocateOp(rsid, 0, k64), ErrOpenMode},
		{"DEALLOCATE through a read-only open", fh, deallocateOp(rsid, 0, k64), ErrOpenMode},
		{"ALLOCATE of a directory", dir, allocateOp(anonStateid, 0, k64), ErrIsDir},
		{"SEEK in a directory", dir, seekOp(anonStateid, 0, contentData), ErrIsDir},
		{"DEALLOCATE of a FIFO", fifo, deallocateOp(anonStateid, 0, k64), ErrInval},
		{"SEEK in a FIFO", fifo, seekOp(anonStateid, 0, contentHole), ErrInval},
		{"ALLOCATE of length 0", fh, allocateOp(sid, 0, 0), ErrInval},
		{"ALLOCATE at 2^63", fh, allocateOp(sid, 1<<63, 1), ErrInval},
		{"DEALLOCATE of 2^64-1 bytes", fh, deallocateOp(sid, 1, math.MaxUint64), ErrInval},
		{"ALLOCATE ending past 2^63-1", fh, allocateOp(sid, math.MaxInt64-10, 100), ErrFBig},
		{"DEALLOCATE ending past 2^63-1", fh, deallocateOp(sid, 1<<62, 1<<62), ErrFBig},
	} {
		if st := c.fhStatus(tc.fh, tc.op); st != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, st, tc.want)
		}
	}
	// The pseudo-filesystem and no filehandle at all.
	if p := c.do(putrootfh(), allocateOp(anonStateid, 0, 1)); p.status != ErrIsDir {
		t.Errorf("ALLOCATE of the pseudo root: %d", p.status)
	}
	if p := c.do(seekOp(anonStateid, 0, contentData)); p.status != ErrNoFileHandle {
		t.Errorf("SEEK without a filehandle: %d", p.status)
	}
	// Truncated arguments.
	if p := c.do(putfh(fh), mkop(OpAllocate, func(w *xdr.Writer) { encodeStateid(w, sid); w.Uint64(0) })); p.status != ErrBadXDR {
		t.Errorf("ALLOCATE without a length: %d", p.status)
	}
	if p := c.do(putfh(fh), mkop(OpSeek, func(w *xdr.Writer) { encodeStateid(w, sid); w.Uint64(0) })); p.status != ErrBadXDR {
		t.Errorf("SEEK without what: %d", p.status)
	}
	if size, used := c.sizeUsed(fh); size != 4*k64 || used != 4*k64 {
		t.Errorf("refused operations changed the file: size %d used %d", size, used)
	}
}

// TestV42InMinor1: the operations do not exist in NFSv4.1 (RFC 8881
// section 16.2.3: an op number outside the minor version is OP_ILLEGAL).
func TestV42InMinor1(t *testing.T) {
	e := newEnv(t, Options{})
	c, _, fh, sid := v42(t, e)
	c.minor = 1
	for _, o := range []op{allocateOp(sid, 0, 5*k64), deallocateOp(sid, 0, k64), seekOp(sid, 0, contentHole)} {
		p := c.do(putfh(fh), o)
		p.ok(OpPutFH)
		if st := p.next(OpIllegal); st != ErrOpIllegal || p.status != ErrOpIllegal {
			t.Errorf("op %d in 4.1: %d, want OP_ILLEGAL", o.num, st)
		}
	}
	if size, used := c.sizeUsed(fh); size != 4*k64 || used != 4*k64 {
		t.Errorf("4.1 COMPOUNDs changed the file: size %d used %d", size, used)
	}
}

func TestV42ShareDenyAndReadOnly(t *testing.T) {
	e := newEnv(t, Options{})
	c, dir, fh, sid := v42(t, e)
	// Another client denies writes: anonymous-stateid changes are LOCKED,
	// SEEK (a read) is not.
	d := e.client()
	d.minor = 2
	d.connect("denier")
	if _, _, st := d.open(dir, openArgs{access: ShareAccessRead, deny: ShareDenyWrite, owner: "d", name: "f"}); st != ErrShareDenied {
		t.Fatalf("OPEN deny write over a writer: %d, want SHARE_DENIED", st)
	}
	c.must(putfh(fh), closeOp(sid))
	dsid, _, st := d.open(dir, openArgs{access: ShareAccessRead, deny: ShareDenyWrite, owner: "d", name: "f"})
	if st != OK {
		t.Fatalf("OPEN deny write: %d", st)
	}
	if st := c.fhStatus(fh, allocateOp(anonStateid, 0, 8*k64)); st != ErrLocked {
		t.Errorf("ALLOCATE against a deny-write open: %d, want LOCKED", st)
	}
	if st := c.fhStatus(fh, deallocateOp(anonStateid, 0, k64)); st != ErrLocked {
		t.Errorf("DEALLOCATE against a deny-write open: %d, want LOCKED", st)
	}
	if st := c.fhStatus(fh, seekOp(anonStateid, 0, contentHole)); st != OK {
		t.Errorf("SEEK against a deny-write open: %d", st)
	}
	d.must(putfh(fh), closeOp(dsid))

	// A read-only grant: changes are ROFS, SEEK works.
	if err := e.fs.SetPolicy("/vol", func(netip.Addr) vfs.Grant { return vfs.GrantReadOnly }); err != nil {
		t.Fatal(err)
	}
	if st := c.fhStatus(fh, allocateOp(anonStateid, 0, 8*k64)); st != ErrROFS {
		t.Errorf("ALLOCATE under a read-only grant: %d, want ROFS", st)
	}
	if st := c.fhStatus(fh, deallocateOp(anonStateid, 0, k64)); st != ErrROFS {
		t.Errorf("DEALLOCATE under a read-only grant: %d, want ROFS", st)
	}
	if st := c.fhStatus(fh, seekOp(anonStateid, 0, contentHole)); st != OK {
		t.Errorf("SEEK under a read-only grant: %d", st)
	}
	if size, used := c.sizeUsed(fh); size != 4*k64 || used != 4*k64 {
		t.Errorf("refused operations changed the file: size %d used %d", size, used)
	}
}

func TestV42Quota(t *testing.T) {
	e := newEnv(t, Options{})
	c, _, fh, sid := v42(t, e)
	used, _, err := e.fs.Usage("/vol")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.fs.SetLimits("/vol", used+k64, 0); err != nil {
		t.Fatal(err)
	}
	if st := c.fhStatus(fh, allocateOp(sid, 0, 6*k64)); st != ErrDQuot {
		t.Fatalf("ALLOCATE past the limit: %d, want DQUOT", st)
	}
	if size, u := c.sizeUsed(fh); size != 4*k64 || u != 4*k64 {
		t.Fatalf("a refused ALLOCATE changed the file: size %d used %d", size, u)
	}
	// Allocated ranges cost nothing; a punched hole gives its space back.
	if st := c.fhStatus(fh, allocateOp(sid, 0, 4*k64)); st != OK {
		t.Fatalf("ALLOCATE of allocated blocks at the limit: %d", st)
	}
	if st := c.fhStatus(fh, deallocateOp(sid, 0, 2*k64)); st != OK {
		t.Fatalf("DEALLOCATE: %d", st)
	}
	if st := c.fhStatus(fh, allocateOp(sid, 4*k64, 2*k64)); st != OK {
		t.Fatalf("ALLOCATE of the space given back: %d", st)
	}
}

// sparseless hides MemFS's vfs.Sparse: a file system without holes.
type sparseless struct{ vfs.FS }

func TestV42Unsupported(t *testing.T) {
	e := newEnv(t, Options{})
	e.h = NewHandler(sparseless{e.fs}, discard(), Options{})
	c, _, fh, sid := v42(t, e)
	for _, o := range []op{allocateOp(sid, 0, k64), deallocateOp(sid, 0, k64), seekOp(sid, 0, contentHole)} {
		if st := c.fhStatus(fh, o); st != ErrNotSupp {
			t.Errorf("op %d over an FS without holes: %d, want NOTSUPP", o.num, st)
		}
	}
	// An FS that has the calls on a disk that cannot (ENOTSUP).
	e2 := newEnv(t, Options{})
	c2, _, fh2, sid2 := v42(t, e2)
	e2.fs.Fault = func(op string) error {
		if op == "Allocate" || op == "Deallocate" {
			return syscall.ENOTSUP
		}
		return nil
	}
	for _, o := range []op{allocateOp(sid2, 0, k64), deallocateOp(sid2, 0, k64)} {
		if st := c2.fhStatus(fh2, o); st != ErrNotSupp {
			t.Errorf("op %d on a disk that cannot: %d, want NOTSUPP", o.num, st)
		}
	}
}

// TestWireV42 runs the operations over TCP against localfs on a real
// disk: the quota charges ALLOCATE before it allocates and gets back what
// DEALLOCATE frees, exactly as the disk counts it.
func TestWireV42(t *testing.T) {
	s := startWire(t)
	if err := s.fs.Configure("/vol", localfs.ExportConfig{MaxBytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	c := s.dial(t)
	c.minor = 2
	c.connect("wire42")
	dir := c.volRoot()
	sid, fh, st := c.open(dir, openArgs{access: ShareAccessBoth, owner: "o", create: true, how: createUnchecked, name: "f"})
	if st != OK {
		t.Fatalf("OPEN: %d", st)
	}
	usage := func() uint64 {
		u, err := s.fs.Usage("/vol")
		if err != nil {
			t.Fatal(err)
		}
		return u.Bytes
	}
	base := usage()
	if st := c.fhStatus(fh, allocateOp(sid, 0, 2<<20)); st != ErrDQuot {
		t.Fatalf("ALLOCATE of 2 MiB in a 1 MiB volume: %d, want DQUOT", st)
	}
	if u := usage(); u != base {
		t.Fatalf("usage %d after a refused ALLOCATE, was %d", u, base)
	}
	if st := c.fhStatus(fh, allocateOp(sid, 0, 512<<10)); st != OK {
		t.Fatalf("ALLOCATE of 512 KiB: %d", st)
	}
	if u := usage(); u < base+512<<10 {
		t.Fatalf("usage %d after ALLOCATE of 512 KiB, was %d", u, base)
	}
	if size, used := c.sizeUsed(fh); size != 512<<10 || used < 512<<10 {
		t.Fatalf("after ALLOCATE: size %d used %d", size, used)
	}
	c.must(putfh(fh), writeOp(sid, 0, bytes.Repeat([]byte("d"), 512<<10)))
	if st := c.fhStatus(fh, deallocateOp(sid, 128<<10, 256<<10)); st != OK {
		t.Fatalf("DEALLOCATE: %d", st)
	}
	if u := usage(); u > base+256<<10+8<<10 {
		t.Fatalf("usage %d after punching 256 KiB of 512, base %d", u, base)
	}
	if eof, pos := c.seekRes(fh, sid, 0, contentHole); eof || pos != 128<<10 {
		t.Errorf("SEEK hole from 0: eof %v pos %d, want 128 KiB", eof, pos)
	}
	if eof, pos := c.seekRes(fh, sid, 128<<10, contentData); eof || pos != 384<<10 {
		t.Errorf("SEEK data from 128 KiB: eof %v pos %d, want 384 KiB", eof, pos)
	}
	// The space given back is usable again.
	if st := c.fhStatus(fh, allocateOp(sid, 512<<10, 384<<10)); st != OK {
		t.Fatalf("ALLOCATE into the space given back: %d", st)
	}
}
