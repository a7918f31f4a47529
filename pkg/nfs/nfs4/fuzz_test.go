package nfs4

import (
	"encoding/binary"
	"testing"

	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
)

// seedOps are valid arguments of every implemented operation, for the
// fuzz corpora. fh is a volume filehandle.
func seedOps(fh []byte) []op {
	sa := fattr(bits(AttrMode, AttrSize), func(w *xdr.Writer) { w.Uint32(0o644); w.Uint64(3) })
	return []op{
		putrootfh(), mkop(OpPutPubFH, nil), putfh(fh), getfh(), savefh(), restorefh(),
		lookup("vol"), lookupp(), getattr(supportedAttrs), access(0x3f), readlinkOp(),
		readdirOp(0, make([]byte, 8), 4096, bits(AttrType, AttrFileID)),
		setattrOp(anonStateid, bits(AttrMode), func(w *xdr.Writer) { w.Uint32(0o600) }),
		mkop(OpVerify, fattr(bits(AttrType), func(w *xdr.Writer) { w.Uint32(NF4Dir) })),
		mkop(OpNVerify, fattr(bits(AttrType), func(w *xdr.Writer) { w.Uint32(NF4Reg) })),
		openOp(openArgs{access: ShareAccessBoth, owner: "o", create: true, how: createUnchecked, name: "f", attrs: sa}),
		openOp(openArgs{access: ShareAccessRead, owner: "o", create: true, how: createExclusive1, name: "x", attrs: sa}),
		openOp(openArgs{access: ShareAccessRead, owner: "o", claim: claimFH}),
		mkop(OpOpenDowngrade, func(w *xdr.Writer) { encodeStateid(w, currentStateid); w.Uint32(0); w.Uint32(1); w.Uint32(0) }),
		closeOp(currentStateid),
		mkop(OpTestStateID, func(w *xdr.Writer) { w.Uint32(1); encodeStateid(w, currentStateid) }),
		mkop(OpFreeStateID, func(w *xdr.Writer) { encodeStateid(w, currentStateid) }),
		readOp(anonStateid, 0, 100), writeOp(anonStateid, 0, []byte("data")),
		mkop(OpCommit, func(w *xdr.Writer) { w.Uint64(0); w.Uint32(0) }),
		mkdirOp("d"), symlinkOp("l", "target"),
		mkop(OpCreate, func(w *xdr.Writer) {
			w.Uint32(NF4Chr)
			w.Uint32(1)
			w.Uint32(3)
			w.String("c")
			fattr(bitmap{}, nil)(w)
		}),
		remove("f"), rename("a", "b"), link("n"),
		mkop(OpSecInfo, func(w *xdr.Writer) { w.String("vol") }),
		mkop(OpSecInfoNoName, func(w *xdr.Writer) { w.Uint32(0) }),
		mkop(OpReclaimComplete, func(w *xdr.Writer) { w.Bool(false) }),
		mkop(OpBindConnToSession, func(w *xdr.Writer) { w.Fixed(make([]byte, 16)); w.Uint32(3); w.Bool(false) }),
		mkop(OpDestroySession, func(w *xdr.Writer) { w.Fixed(make([]byte, 16)) }),
		mkop(OpDestroyClientID, func(w *xdr.Writer) { w.Uint64(7) }),
		exchangeIDOp("fuzz", [8]byte{1}, 0),
		createSessionOp(7, 1, 4),
		lockNew(writeLT, 0, 100, currentStateid, "lo"), lockExist(readLT, 0, 1<<64-1, currentStateid),
		lockt(writeLT, 10, 10, "other"), locku(0, 50, currentStateid),
		allocateOp(anonStateid, 0, 4096), deallocateOp(currentStateid, 100, 1000),
		seekOp(anonStateid, 0, contentHole), seekOp(currentStateid, 10, contentData),
	}
}

func encodeOps(ops ...op) []byte {
	w := xdr.NewWriter(nil)
	for _, o := range ops {
		w.Uint32(o.num)
		if o.args != nil {
			o.args(w)
		}
	}
	return w.Bytes()
}

// checkReply checks what every COMPOUND reply must satisfy.
func checkReply(t *testing.T, st rpc.AcceptStat, res []byte, maxResults uint32) {
	t.Helper()
	if st == rpc.GarbageArgs {
		return
	}
	if st != rpc.Success {
		t.Fatalf("accept stat %s", st)
	}
	if len(res)%4 != 0 {
		t.Fatalf("%d-byte reply is not XDR-aligned", len(res))
	}
	r := xdr.NewReader(res)
	status := r.Uint32()
	r.Opaque(maxTag)
	n := r.Uint32()
	if r.Err() != nil {
		t.Fatalf("reply header: %v", r.Err())
	}
	if status == ErrServerFault {
		t.Fatal("SERVERFAULT")
	}
	if n > maxResults {
		t.Fatalf("%d results for at most %d ops", n, maxResults)
	}
	if n > 0 {
		// The first result starts with its op number and status.
		r.Uint32()
		if s := r.Uint32(); r.Err() != nil || (n == 1 && s != status) {
			t.Fatalf("first result status %d, COMPOUND status %d", s, status)
		}
	}
}

// FuzzCompound feeds arbitrary COMPOUND arguments, header included.
func FuzzCompound(f *testing.F) {
	e := newEnv(f, Options{})
	e.fs.MaxFileSize = 1 << 20
	fh := append([]byte{fhVol}, e.root...)
	for _, o := range seedOps(fh) {
		f.Add(build("seed", 1, []op{o}))
		f.Add(build("", 2, []op{o, getfh()}))
	}
	f.Add(build("", 0, []op{putrootfh()}))
	f.Fuzz(func(t *testing.T, args []byte) {
		e.t = t
		st, res := e.serve(rpc.Cred{Flavor: rpc.AuthSys, UID: 1000, GID: 1000}, ProcCompound, args)
		var n uint32
		if len(args) >= 4 {
			// The op count follows the tag.
			if tl := binary.BigEndian.Uint32(args); uint64(tl) < uint64(len(args)) {
				off := 4 + (int(tl)+3)&^3 + 4
				if off+4 <= len(args) {
					n = binary.BigEndian.Uint32(args[off:])
				}
			}
		}
		checkReply(t, st, res, n)
	})
}

// FuzzSessionOps feeds arbitrary operations after a valid SEQUENCE, so the
// fuzzer reaches every operation's decoder.
func FuzzSessionOps(f *testing.F) {
	e := newEnv(f, Options{})
	e.fs.MaxFileSize = 1 << 20
	c := e.client()
	c.connect("fuzz")
	fh := append([]byte{fhVol}, e.root...)
	for _, o := range seedOps(fh) {
		f.Add(uint8(2), encodeOps(putfh(fh), o))
		f.Add(uint8(3), encodeOps(putfh(fh), o, getattr(bits(AttrType, AttrSize))))
	}
	f.Fuzz(func(t *testing.T, nops uint8, ops []byte) {
		e.t = t
		c.t = t
		nops %= 8 // the session allows 8 ops, SEQUENCE included
		w := xdr.NewWriter(nil)
		w.String("f")
		w.Uint32(1)
		w.Uint32(uint32(nops) + 1)
		seq := c.seqOp()
		w.Uint32(seq.num)
		seq.args(w)
		st, res := e.serve(c.cred, ProcCompound, append(w.Bytes(), ops...))
		checkReply(t, st, res, uint32(nops)+1)
		if st != rpc.Success {
			t.Fatalf("accept stat %s after a valid SEQUENCE", st)
		}
		if p := parse(t, res); p.next(OpSequence) != OK {
			c.connect("fuzz") // the ops destroyed the session or client
		}
	})
}
