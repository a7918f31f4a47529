package nfs4

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
	"github.com/hangar-csi/hangar/pkg/vfs"
	"github.com/hangar-csi/hangar/pkg/volume/localfs"
)

// Benchmarks of the COMPOUNDs the Linux client sends for the common file
// cycles, served in process (no RPC layer, so -benchmem counts the
// handler's allocations only) over localfs, on tmpfs when there is one
// (HANGAR_BENCH_DISK=1: on the test's temporary directory, so with the
// fsyncs a disk needs).

// linuxAttrs is the GETATTR bitmap the Linux client sends after OPEN,
// WRITE and CLOSE and with LOOKUP (nfs4_fattr_bitmap).
var linuxAttrs = bits(AttrType, AttrChange, AttrSize, AttrFSID, AttrFileID, AttrMode,
	AttrNumLinks, AttrOwner, AttrOwnerGroup, AttrRawDev, AttrSpaceUsed, AttrTimeAccess,
	AttrTimeMetadata, AttrTimeModify, AttrMountedOnFileID)

// benchServer is a Handler over a localfs export, called directly.
type benchServer struct {
	b    *testing.B
	dir  string // the export's directory
	h    *Handler
	c    *tclient
	w    *xdr.Writer
	r    xdr.Reader
	call rpc.Call
}

func newBenchServer(b *testing.B) *benchServer {
	base := b.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() && os.Getenv("HANGAR_BENCH_DISK") == "" {
		if d, err := os.MkdirTemp("/dev/shm", "hangar-bench"); err == nil {
			base = d
			b.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	dir := filepath.Join(base, "vol")
	if err := os.Mkdir(dir, 0o777); err != nil {
		b.Fatal(err)
	}
	fs, err := localfs.New(localfs.Options{KeyFile: filepath.Join(base, "key")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { fs.Close() })
	if err := fs.AddExport("/vol", dir, "vol", nil); err != nil {
		b.Fatal(err)
	}
	s := &benchServer{b: b, dir: dir, h: NewHandler(fs, discard(), Options{}), w: xdr.NewWriter(make([]byte, 0, 64<<10))}
	s.call = rpc.Call{XID: 1, Prog: Program, Vers: Version, Proc: ProcCompound,
		Cred:   rpc.Cred{Flavor: rpc.AuthSys, UID: uint32(os.Getuid()), GID: uint32(os.Getgid())},
		Remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 999}}
	s.c = &tclient{t: b, minor: 1, cred: s.call.Cred, seq: map[uint32]uint32{}}
	s.c.call = func(args []byte) []byte { return append([]byte(nil), s.serve(args)...) }
	s.c.connect("bench")
	return s
}

var benchCtx = vfs.WithClient(context.Background(), &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 999})

// serve runs one COMPOUND and returns its results (valid until the next).
func (s *benchServer) serve(args []byte) []byte {
	s.w.Reset(s.w.Bytes())
	s.call.Args = args
	if st := s.h.Serve(benchCtx, &s.call, s.w); st != rpc.Success {
		s.b.Fatalf("accept stat %s", st)
	}
	return s.w.Bytes()
}

// tmpl is a COMPOUND starting with SEQUENCE, encoded once; each send
// patches the sequence id and the placeholders (a name, a filehandle, a
// stateid: each of fixed width) in place, so the client side allocates
// nothing.
type tmpl struct {
	args []byte
	offs []int // of each placeholder, in compile's order
}

// seqidOff is where SEQUENCE's sequenceid is: tag "t" (8), minor (4),
// op count (4), op (4), session id (16).
const seqidOff = 8 + 4 + 4 + 4 + sessionIDLen

// compile encodes SEQUENCE + ops and finds the placeholders in them.
func (s *benchServer) compile(holders [][]byte, ops ...op) *tmpl {
	s.c.seq[0]-- // send advances it
	args := build("t", 1, append([]op{s.c.seqOp()}, ops...))
	t := &tmpl{args: args}
	for _, h := range holders {
		off := bytes.Index(args, h)
		if off < 0 {
			s.b.Fatal("placeholder not in the COMPOUND")
		}
		t.offs = append(t.offs, off)
	}
	return t
}

// send runs t with the session's next sequence id and vals in place of
// the placeholders, and checks that the COMPOUND succeeded.
func (s *benchServer) send(t *tmpl, vals ...[]byte) *xdr.Reader {
	s.c.seq[0]++
	binary.BigEndian.PutUint32(t.args[seqidOff:], s.c.seq[0])
	for i, v := range vals {
		copy(t.args[t.offs[i]:t.offs[i]+len(v)], v)
	}
	res := s.serve(t.args)
	if st := binary.BigEndian.Uint32(res); st != OK {
		s.b.Fatalf("COMPOUND status %d", st)
	}
	s.r.Reset(res)
	return &s.r
}

// sidBytes is a stateid as on the wire.
func sidBytes(buf []byte, sid stateid) []byte {
	buf = binary.BigEndian.AppendUint32(buf[:0], sid.seq)
	return append(buf, sid.other[:]...)
}

// placeholder stateid and filehandle, to be found in compiled COMPOUNDs.
var (
	sidHolder  = stateid{seq: 0x5eed5eed, other: [otherLen]byte{0xfe, 0xed, 0xfe, 0xed, 0xfe, 0xed, 0xfe, 0xed, 0xfe, 0xed, 0xfe, 0xed}}
	sidHolderB = sidBytes(nil, sidHolder)
)

func fhHolder(like []byte) []byte { return bytes.Repeat([]byte{0xa5}, len(like)) }

// openResult walks an OPEN reply (SEQUENCE, PUTFH, OPEN, GETFH, ...) to
// the stateid and filehandle.
func openResult(r *xdr.Reader) (stateid, []byte) {
	r.Uint32()
	r.String(maxTag)
	r.Uint32()
	r.Uint32() // OP_SEQUENCE
	r.Uint32()
	r.Fixed(sessionIDLen)
	for range 5 {
		r.Uint32()
	}
	r.Uint32() // OP_PUTFH
	r.Uint32()
	r.Uint32() // OP_OPEN
	r.Uint32()
	sid, _ := openOK(r)
	r.Uint32() // OP_GETFH
	r.Uint32()
	return sid, r.Opaque(MaxFHSize)
}

func benchName(buf []byte, i int) []byte { return fmt.Appendf(buf[:0], "f%08d", i) }

// BenchmarkOpenCreateWriteClose is one file of an untar: OPEN (create),
// WRITE of 4 KiB, CLOSE, each COMPOUND as the Linux client sends it.
// open(2) with O_EXCL (as tar does) is an EXCLUSIVE4_1 create, without
// it an UNCHECKED one.
func BenchmarkOpenCreateWriteClose(b *testing.B) {
	b.Run("unchecked", func(b *testing.B) { benchCreateWriteClose(b, createUnchecked) })
	b.Run("exclusive41", func(b *testing.B) { benchCreateWriteClose(b, createExclusive1) })
}

func benchCreateWriteClose(b *testing.B, how uint32) {
	s := newBenchServer(b)
	dir := s.c.volRoot()
	name0 := "f00000000"
	openT := s.compile([][]byte{[]byte(name0)}, putfh(dir),
		openOp(openArgs{access: ShareAccessBoth, owner: "open id:00000001", create: true, how: how, verf: [8]byte{1, 2, 3},
			name: name0, attrs: fattr(bits(AttrMode), func(w *xdr.Writer) { w.Uint32(0o644) })}),
		getfh(), access(vfs.AccessRead|vfs.AccessModify|vfs.AccessExtend), getattr(linuxAttrs))
	_, fh := openResult(s.send(openT, []byte("x0000000")))
	fhH := fhHolder(fh)
	// The Linux client's WRITE and CLOSE carry the open stateid.
	writeT := s.compile([][]byte{fhH, sidHolderB}, putfh(fhH), writeOp(sidHolder, 0, bytes.Repeat([]byte{'x'}, 4096)),
		getattr(bits(AttrChange, AttrSize, AttrTimeMetadata, AttrTimeModify)))
	closeT := s.compile([][]byte{fhH, sidHolderB}, putfh(fhH), closeOp(sidHolder), getattr(linuxAttrs))
	var name, sidB []byte
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		name = benchName(name, i)
		sid, fh := openResult(s.send(openT, name))
		if len(fh) != len(fhH) {
			b.Fatalf("filehandle of %d bytes, want %d", len(fh), len(fhH))
		}
		fh = append(fhH[:0:0], fh...) // s.send reuses the reply
		sidB = sidBytes(sidB, sid)
		s.send(writeT, fh, sidB)
		s.send(closeT, fh, sidB)
	}
}

// BenchmarkRemove is one file of an rm -r: REMOVE, then GETATTR of the
// directory. The files are made beforehand with open(2) and close(2)
// only, so a syscall count of the run is easy to correct for them.
func BenchmarkRemove(b *testing.B) {
	s := newBenchServer(b)
	dir := s.c.volRoot()
	var name []byte
	for i := range b.N {
		name = benchName(name, i)
		fd, err := unix.Open(filepath.Join(s.dir, string(name)), unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		unix.Close(fd)
	}
	removeT := s.compile([][]byte{[]byte("f00000000")}, putfh(dir), remove("f00000000"), getattr(linuxAttrs))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		name = benchName(name, i)
		s.send(removeT, name)
	}
}

// BenchmarkOpenReadClose is a stat + cat of a small file: LOOKUP with
// GETATTR, OPEN, READ of 4 KiB, CLOSE.
func BenchmarkOpenReadClose(b *testing.B) {
	s := newBenchServer(b)
	dir := s.c.volRoot()
	sid, fh, st := s.c.open(dir, openArgs{access: ShareAccessBoth, owner: "o", create: true, how: createGuarded, name: "file"})
	if st != OK {
		b.Fatalf("create: %d", st)
	}
	s.c.must(putfh(fh), writeOp(sid, 0, bytes.Repeat([]byte{'x'}, 4096)), closeOp(sid))
	lookupT := s.compile(nil, putfh(dir), lookup("file"), getfh(), getattr(linuxAttrs))
	openT := s.compile(nil, putfh(dir),
		openOp(openArgs{access: ShareAccessRead, owner: "open id:00000001", name: "file"}),
		getfh(), access(vfs.AccessRead), getattr(linuxAttrs))
	readT := s.compile([][]byte{sidHolderB}, putfh(fh), readOp(sidHolder, 0, 4096))
	closeT := s.compile([][]byte{sidHolderB}, putfh(fh), closeOp(sidHolder), getattr(linuxAttrs))
	var sidB []byte
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		s.send(lookupT)
		sid, _ := openResult(s.send(openT))
		sidB = sidBytes(sidB, sid)
		s.send(readT, sidB)
		s.send(closeT, sidB)
	}
}

// BenchmarkGetattr is the revalidation of a cached file: PUTFH + GETATTR.
func BenchmarkGetattr(b *testing.B) {
	s := newBenchServer(b)
	dir := s.c.volRoot()
	sid, fh, st := s.c.open(dir, openArgs{access: ShareAccessBoth, owner: "o", create: true, how: createGuarded, name: "file"})
	if st != OK {
		b.Fatalf("create: %d", st)
	}
	s.c.must(putfh(fh), closeOp(sid))
	t := s.compile(nil, putfh(fh), getattr(linuxAttrs))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		s.send(t)
	}
}

// TestGetattrAfterOp checks that a GETATTR following OPEN, WRITE, LOOKUP,
// SETATTR, CREATE or REMOVE in the same COMPOUND, which reuses their attributes, reports
// what a GETATTR of its own does, including after the changes OPEN makes
// (a mode set by an EXCLUSIVE4_1 create, a truncation).
func TestGetattrAfterOp(t *testing.T) {
	s := startWire(t)
	c := s.dial(t)
	c.connect("attrs")
	dir := c.volRoot()
	mode := func(m uint32) func(w *xdr.Writer) {
		return fattr(bits(AttrMode), func(w *xdr.Writer) { w.Uint32(m) })
	}
	// standalone is a GETATTR of fh in a COMPOUND of its own.
	standalone := func(fh []byte) []byte {
		p := c.must(putfh(fh), getattr(linuxAttrs))
		p.ok(OpPutFH)
		r := p.ok(OpGetAttr)
		decodeBitmap(r)
		return append([]byte(nil), r.Opaque(maxAttrVals)...)
	}
	inline := func(p *reply) ([]byte, []byte) {
		fh := append([]byte(nil), p.ok(OpGetFH).Opaque(MaxFHSize)...)
		r := p.ok(OpGetAttr)
		decodeBitmap(r)
		return fh, append([]byte(nil), r.Opaque(maxAttrVals)...)
	}
	same := func(what string, fh, got []byte) {
		t.Helper()
		if want := standalone(fh); !bytes.Equal(got, want) {
			t.Fatalf("%s: GETATTR in the COMPOUND %x, on its own %x", what, got, want)
		}
	}

	p := c.must(putfh(dir), openOp(openArgs{access: ShareAccessBoth, owner: "o", create: true, how: createExclusive1,
		verf: [8]byte{9}, name: "excl", attrs: mode(0o640)}), getfh(), getattr(linuxAttrs))
	p.ok(OpPutFH)
	p.ok(OpOpen)
	sid, _ := openOK(p.r)
	fh, got := inline(p)
	same("OPEN EXCLUSIVE4_1 with a mode", fh, got)
	vals := xdr.NewReader(got)
	vals.Uint32() // type
	vals.Uint64() // change
	vals.Uint64() // size
	vals.Fixed(16)
	vals.Uint64()
	if m := vals.Uint32(); m != 0o640 {
		t.Fatalf("mode %o after the create, want 640", m)
	}

	p = c.must(putfh(fh), writeOp(sid, 0, bytes.Repeat([]byte{'w'}, 5000)), getfh(), getattr(linuxAttrs))
	p.ok(OpPutFH)
	p.ok(OpWrite).Fixed(16)
	_, got = inline(p)
	same("WRITE", fh, got)
	c.must(putfh(fh), closeOp(sid))

	p = c.must(putfh(dir), openOp(openArgs{access: ShareAccessBoth, owner: "o", create: true, how: createUnchecked,
		name: "excl", attrs: fattr(bits(AttrSize), func(w *xdr.Writer) { w.Uint64(10) })}), getfh(), getattr(linuxAttrs))
	p.ok(OpPutFH)
	p.ok(OpOpen)
	skipResult(p, OpOpen)
	_, got = inline(p)
	same("OPEN UNCHECKED with a size", fh, got)

	p = c.must(putfh(dir), lookup("excl"), getfh(), getattr(linuxAttrs))
	p.ok(OpPutFH)
	p.ok(OpLookup)
	_, got = inline(p)
	same("LOOKUP", fh, got)

	p = c.must(putfh(fh), setattrOp(stateid{}, bits(AttrMode), func(w *xdr.Writer) { w.Uint32(0o604) }), getfh(), getattr(linuxAttrs))
	p.ok(OpPutFH)
	p.ok(OpSetAttr)
	skipResult(p, OpSetAttr)
	_, got = inline(p)
	same("SETATTR", fh, got)

	p = c.must(putfh(dir), mkdirOp("sub"), getfh(), getattr(linuxAttrs))
	p.ok(OpPutFH)
	p.ok(OpCreate)
	skipResult(p, OpCreate)
	sub, got := inline(p)
	same("CREATE of a directory", sub, got)

	p = c.must(putfh(dir), remove("excl"), getfh(), getattr(linuxAttrs))
	p.ok(OpPutFH)
	p.ok(OpRemove)
	skipResult(p, OpRemove)
	_, got = inline(p)
	same("REMOVE (the directory's)", dir, got)
}
