package nfs4

import (
	"context"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
	"github.com/hangar-csi/hangar/pkg/vfs"
	"github.com/hangar-csi/hangar/pkg/vfs/vfstest"
)

// This file is a small NFSv4.1 client for the tests: it builds COMPOUNDs
// byte by byte, so the tests check the wire format, not a shared codec.

const headerMark = 0xfeedf00d

// op is one operation of a COMPOUND request.
type op struct {
	num  uint32
	args func(w *xdr.Writer)
}

func mkop(num uint32, args func(w *xdr.Writer)) op { return op{num, args} }

func putrootfh() op         { return mkop(OpPutRootFH, nil) }
func getfh() op             { return mkop(OpGetFH, nil) }
func savefh() op            { return mkop(OpSaveFH, nil) }
func restorefh() op         { return mkop(OpRestoreFH, nil) }
func lookupp() op           { return mkop(OpLookupP, nil) }
func readlinkOp() op        { return mkop(OpReadlink, nil) }
func putfh(fh []byte) op    { return mkop(OpPutFH, func(w *xdr.Writer) { w.Opaque(fh) }) }
func lookup(name string) op { return mkop(OpLookup, func(w *xdr.Writer) { w.String(name) }) }
func remove(name string) op { return mkop(OpRemove, func(w *xdr.Writer) { w.String(name) }) }
func getattr(b bitmap) op   { return mkop(OpGetAttr, func(w *xdr.Writer) { encodeBitmap(w, b) }) }
func access(bits uint32) op { return mkop(OpAccess, func(w *xdr.Writer) { w.Uint32(bits) }) }
func rename(from, to string) op {
	return mkop(OpRename, func(w *xdr.Writer) { w.String(from); w.String(to) })
}
func link(name string) op { return mkop(OpLink, func(w *xdr.Writer) { w.String(name) }) }
func mkdirOp(name string) op {
	return mkop(OpCreate, func(w *xdr.Writer) {
		w.Uint32(NF4Dir)
		w.String(name)
		encodeBitmap(w, bitmap{})
		w.Uint32(0)
	})
}
func symlinkOp(name, target string) op {
	return mkop(OpCreate, func(w *xdr.Writer) {
		w.Uint32(NF4Lnk)
		w.String(target)
		w.String(name)
		encodeBitmap(w, bitmap{})
		w.Uint32(0)
	})
}
func readOp(sid stateid, off uint64, n uint32) op {
	return mkop(OpRead, func(w *xdr.Writer) { encodeStateid(w, sid); w.Uint64(off); w.Uint32(n) })
}
func writeOp(sid stateid, off uint64, data []byte) op {
	return mkop(OpWrite, func(w *xdr.Writer) {
		encodeStateid(w, sid)
		w.Uint64(off)
		w.Uint32(uint32(vfs.FileSync))
		w.Opaque(data)
	})
}
func closeOp(sid stateid) op {
	return mkop(OpClose, func(w *xdr.Writer) { w.Uint32(0); encodeStateid(w, sid) })
}

// fattr builds a fattr4 from attribute numbers and their encoded values.
func fattr(set bitmap, vals func(w *xdr.Writer)) func(w *xdr.Writer) {
	return func(w *xdr.Writer) {
		encodeBitmap(w, set)
		v := xdr.NewWriter(nil)
		if vals != nil {
			vals(v)
		}
		w.Opaque(v.Bytes())
	}
}

func setattrOp(sid stateid, set bitmap, vals func(w *xdr.Writer)) op {
	return mkop(OpSetAttr, func(w *xdr.Writer) { encodeStateid(w, sid); fattr(set, vals)(w) })
}

// openArgs describes an OPEN.
type openArgs struct {
	access, deny uint32
	owner        string
	create       bool
	how          uint32
	verf         [8]byte
	attrs        func(w *xdr.Writer) // fattr4 for the create modes that take one
	claim        uint32
	name         string
}

func openOp(a openArgs) op {
	return mkop(OpOpen, func(w *xdr.Writer) {
		w.Uint32(0)
		w.Uint32(a.access)
		w.Uint32(a.deny)
		w.Uint64(0)
		w.String(a.owner)
		if a.create {
			w.Uint32(1)
			w.Uint32(a.how)
			attrs := a.attrs
			if attrs == nil {
				attrs = fattr(bitmap{}, nil)
			}
			switch a.how {
			case createUnchecked, createGuarded:
				attrs(w)
			case createExclusive:
				w.Fixed(a.verf[:])
			case createExclusive1:
				w.Fixed(a.verf[:])
				attrs(w)
			}
		} else {
			w.Uint32(0)
		}
		w.Uint32(a.claim)
		switch a.claim {
		case claimNull:
			w.String(a.name)
		case claimPrevious:
			w.Uint32(0)
		}
	})
}

// env is a Handler over a MemFS with one export, /vol, served in process.
type env struct {
	t    testing.TB
	fs   *vfstest.MemFS
	h    *Handler
	root vfs.Handle
}

func newEnv(t testing.TB, o Options) *env {
	fs := vfstest.NewMemFS()
	root := fs.AddExport("/vol")
	return &env{t: t, fs: fs, root: root, h: NewHandler(fs, logr.Discard(), o)}
}

// serve runs one call and returns the accept status and results.
func (e *env) serve(cred rpc.Cred, proc uint32, args []byte) (rpc.AcceptStat, []byte) {
	w := xdr.NewWriter(make([]byte, 0, 512))
	w.Uint32(headerMark)
	c := &rpc.Call{XID: 1, Prog: Program, Vers: Version, Proc: proc, Cred: cred, Args: args,
		Remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 999}}
	st := e.h.Serve(context.Background(), c, w)
	b := w.Bytes()
	if len(b) < 4 || binary.BigEndian.Uint32(b) != headerMark {
		e.t.Fatal("handler clobbered the reply header")
	}
	return st, b[4:]
}

// tclient is one NFSv4.1 client with its session (slot 0 only, unless a
// test picks another).
type tclient struct {
	t        testing.TB
	call     func(args []byte) []byte
	cred     rpc.Cred
	minor    uint32
	clientID uint64
	sess     [sessionIDLen]byte
	seq      map[uint32]uint32
	slot     uint32
}

func (e *env) client() *tclient {
	c := &tclient{t: e.t, minor: 1, cred: rpc.Cred{Flavor: rpc.AuthSys, UID: 1000, GID: 1000}, seq: map[uint32]uint32{}}
	c.call = func(args []byte) []byte {
		st, res := e.serve(c.cred, ProcCompound, args)
		if st != rpc.Success {
			e.t.Fatalf("COMPOUND: accept stat %s", st)
		}
		return res
	}
	return c
}

// build encodes a COMPOUND.
func build(tag string, minor uint32, ops []op) []byte {
	w := xdr.NewWriter(nil)
	w.String(tag)
	w.Uint32(minor)
	w.Uint32(uint32(len(ops)))
	for _, o := range ops {
		w.Uint32(o.num)
		if o.args != nil {
			o.args(w)
		}
	}
	return w.Bytes()
}

// reply is a decoded COMPOUND4res being walked.
type reply struct {
	t      testing.TB
	status uint32
	tag    string
	n      uint32
	raw    []byte
	r      *xdr.Reader
}

func parse(t testing.TB, res []byte) *reply {
	t.Helper()
	r := xdr.NewReader(res)
	p := &reply{t: t, raw: res, r: r}
	p.status = r.Uint32()
	p.tag = r.String(maxTag)
	p.n = r.Uint32()
	if r.Err() != nil {
		t.Fatalf("COMPOUND4res does not decode: %v", r.Err())
	}
	return p
}

// next reads the header of the next result, which must be for op, and
// returns its status.
func (p *reply) next(op uint32) uint32 {
	p.t.Helper()
	got := p.r.Uint32()
	st := p.r.Uint32()
	if p.r.Err() != nil {
		p.t.Fatalf("no result for %s", OpName(op))
	}
	if got != op {
		p.t.Fatalf("result for %s, want %s", OpName(got), OpName(op))
	}
	return st
}

// ok is next for a result that must be NFS4_OK.
func (p *reply) ok(op uint32) *xdr.Reader {
	p.t.Helper()
	if st := p.next(op); st != OK {
		p.t.Fatalf("%s: status %d", OpName(op), st)
	}
	return p.r
}

// raw sends ops without a SEQUENCE.
func (c *tclient) raw(ops ...op) *reply {
	c.t.Helper()
	return parse(c.t, c.call(build("t", c.minor, ops)))
}

// seqOp is SEQUENCE on the client's slot with its next sequence id.
func (c *tclient) seqOp() op {
	c.seq[c.slot]++
	s, slot := c.seq[c.slot], c.slot
	return mkop(OpSequence, func(w *xdr.Writer) {
		w.Fixed(c.sess[:])
		w.Uint32(s)
		w.Uint32(slot)
		w.Uint32(slot)
		w.Bool(true)
	})
}

// do sends SEQUENCE + ops and checks the SEQUENCE result.
func (c *tclient) do(ops ...op) *reply {
	c.t.Helper()
	p := c.raw(append([]op{c.seqOp()}, ops...)...)
	r := p.ok(OpSequence)
	r.Fixed(sessionIDLen)
	r.Uint32()
	r.Uint32()
	r.Uint32()
	r.Uint32()
	r.Uint32()
	return p
}

// must is do for a COMPOUND that must succeed as a whole.
func (c *tclient) must(ops ...op) *reply {
	c.t.Helper()
	p := c.do(ops...)
	if p.status != OK {
		c.t.Fatalf("COMPOUND status %d", p.status)
	}
	return p
}

// connect runs EXCHANGE_ID and CREATE_SESSION.
func (c *tclient) connect(owner string) {
	c.t.Helper()
	p := c.raw(exchangeIDOp(owner, [8]byte{1}, 0))
	r := p.ok(OpExchangeID)
	c.clientID = r.Uint64()
	seq := r.Uint32()
	p = c.raw(createSessionOp(c.clientID, seq, 8))
	r = p.ok(OpCreateSession)
	copy(c.sess[:], r.Fixed(sessionIDLen))
	c.seq = map[uint32]uint32{}
}

func exchangeIDOp(owner string, verf [8]byte, flags uint32) op {
	return mkop(OpExchangeID, func(w *xdr.Writer) {
		w.Fixed(verf[:])
		w.String(owner)
		w.Uint32(flags)
		w.Uint32(sp4None)
		w.Uint32(0)
	})
}

// channelSize is what the test client asks for as maximum request and
// reply: 1 MiB of data and room for the rest, as Linux does.
const channelSize = 1<<20 + 8192

func channel(w *xdr.Writer, maxReqs uint32) {
	w.Uint32(0)
	w.Uint32(channelSize)
	w.Uint32(channelSize)
	w.Uint32(4096)
	w.Uint32(8)
	w.Uint32(maxReqs)
	w.Uint32(0)
}

func createSessionOp(id uint64, seq, slots uint32) op {
	return mkop(OpCreateSession, func(w *xdr.Writer) {
		w.Uint64(id)
		w.Uint32(seq)
		w.Uint32(createSessionConnBack)
		channel(w, slots)
		channel(w, 1)
		w.Uint32(0x40000000)
		w.Uint32(1)
		w.Uint32(rpc.AuthSys)
		w.Uint32(0)
		w.String("client")
		w.Uint32(0)
		w.Uint32(0)
		w.Uint32(0)
	})
}

// fh runs ops that end on an object and returns its handle.
func (c *tclient) fh(ops ...op) []byte {
	c.t.Helper()
	p := c.must(append(ops, getfh())...)
	for _, o := range ops {
		p.ok(o.num)
		skipResult(p, o.num)
	}
	return append([]byte(nil), p.ok(OpGetFH).Opaque(MaxFHSize)...)
}

// skipResult skips the body of an OK result of the ops that fh and tests
// chain (those with no body need nothing).
func skipResult(p *reply, num uint32) {
	r := p.r
	switch num {
	case OpCreate:
		skipChangeInfo(r)
		decodeBitmap(r)
	case OpOpen:
		decodeStateid(r)
		skipChangeInfo(r)
		r.Uint32()
		decodeBitmap(r)
		if r.Uint32() != 0 {
			p.t.Fatal("delegation granted")
		}
	case OpRemove, OpLink:
		skipChangeInfo(r)
	case OpSetAttr:
		decodeBitmap(r)
	case OpGetAttr:
		decodeBitmap(r)
		r.Opaque(maxAttrVals)
	}
}

func skipChangeInfo(r *xdr.Reader) {
	r.Bool()
	r.Uint64()
	r.Uint64()
}

// openOK reads an OPEN4resok up to its delegation: the open stateid and
// the delegation type.
func openOK(r *xdr.Reader) (stateid, uint32) {
	sid := decodeStateid(r)
	skipChangeInfo(r)
	r.Uint32() // rflags
	decodeBitmap(r)
	return sid, r.Uint32()
}

// open runs PUTFH dir + OPEN and returns the stateid and the file handle.
func (c *tclient) open(dir []byte, a openArgs) (stateid, []byte, uint32) {
	c.t.Helper()
	p := c.do(putfh(dir), openOp(a), getfh())
	p.ok(OpPutFH)
	st := p.next(OpOpen)
	if st != OK {
		return stateid{}, nil, st
	}
	sid, deleg := openOK(p.r)
	if deleg != 0 {
		c.t.Fatal("delegation granted")
	}
	fh := append([]byte(nil), p.ok(OpGetFH).Opaque(MaxFHSize)...)
	return sid, fh, OK
}

// volRoot is the filehandle of /vol through the pseudo-filesystem.
func (c *tclient) volRoot() []byte {
	c.t.Helper()
	return c.fh(putrootfh(), lookup("vol"))
}

// decoded attributes of a GETATTR.
type gotAttrs struct {
	set  bitmap
	vals *xdr.Reader
}

func (c *tclient) getattr(fh []byte, req bitmap) gotAttrs {
	c.t.Helper()
	p := c.must(putfh(fh), getattr(req))
	p.ok(OpPutFH)
	r := p.ok(OpGetAttr)
	set, _, _ := decodeBitmap(r)
	return gotAttrs{set: set, vals: xdr.NewReader(r.Opaque(maxAttrVals))}
}

func timeNow() time.Time { return time.Now() }

func discard() logr.Logger { return logr.Discard() }
