package nfs4

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
)

func TestNullAndUnknownProc(t *testing.T) {
	e := newEnv(t, Options{})
	cred := rpc.Cred{Flavor: rpc.AuthNone}
	if st, res := e.serve(cred, ProcNull, nil); st != rpc.Success || len(res) != 0 {
		t.Fatalf("NULL: %s, %d bytes", st, len(res))
	}
	if st, _ := e.serve(cred, 2, nil); st != rpc.ProcUnavail {
		t.Fatalf("proc 2: %s, want PROC_UNAVAIL", st)
	}
	if st, _ := e.serve(cred, ProcCompound, []byte{0, 0}); st != rpc.GarbageArgs {
		t.Fatalf("truncated COMPOUND header: %s, want GARBAGE_ARGS", st)
	}
	// A tag longer than the cap is refused before anything is allocated.
	w := xdr.NewWriter(nil)
	w.Uint32(1 << 30)
	if st, _ := e.serve(cred, ProcCompound, w.Bytes()); st != rpc.GarbageArgs {
		t.Fatalf("huge tag: %s, want GARBAGE_ARGS", st)
	}
}

func TestMinorVersion(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.client()
	for _, minor := range []uint32{0, 3, 1 << 31} {
		p := parse(t, c.call(build("my-tag", minor, []op{putrootfh()})))
		if p.status != ErrMinorVersMismatch || p.n != 0 || p.tag != "my-tag" {
			t.Errorf("minor %d: status %d, %d results, tag %q; want MINOR_VERS_MISMATCH, 0, echoed tag", minor, p.status, p.n, p.tag)
		}
	}
	// 1 and 2 are served.
	for _, minor := range []uint32{1, 2} {
		c.minor = minor
		p := c.raw(putrootfh())
		if p.status != ErrOpNotInSession || p.tag != "t" {
			t.Errorf("minor %d: status %d, want OP_NOT_IN_SESSION", minor, p.status)
		}
	}
}

func TestSequencePlacement(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.client()
	c.connect("placement")
	// Without SEQUENCE.
	if p := c.raw(putrootfh(), getfh()); p.status != ErrOpNotInSession || p.n != 1 || p.next(OpPutRootFH) != ErrOpNotInSession {
		t.Errorf("no SEQUENCE: %d", p.status)
	}
	// SEQUENCE second.
	second := mkop(OpSequence, func(w *xdr.Writer) { w.Fixed(c.sess[:]); w.Uint32(1); w.Uint32(1); w.Uint32(1); w.Bool(false) })
	p := c.do(second)
	if p.status != ErrSequencePos || p.next(OpSequence) != ErrSequencePos {
		t.Errorf("second SEQUENCE: %d", p.status)
	}
	// A sessionless op must be alone.
	p = c.raw(exchangeIDOp("x", [8]byte{}, 0), putrootfh())
	if p.status != ErrNotOnlyOp || p.n != 1 {
		t.Errorf("EXCHANGE_ID + PUTROOTFH: %d", p.status)
	}
	// ... but may follow SEQUENCE.
	p = c.do(exchangeIDOp("placement", [8]byte{1}, 0))
	if p.status != OK {
		t.Errorf("SEQUENCE + EXCHANGE_ID: %d", p.status)
	}
}

func TestIllegalAndUnsupportedOps(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.client()
	c.connect("ops")
	for _, tc := range []struct {
		minor, op uint32
		resOp     uint32
		want      uint32
	}{
		{1, 0, OpIllegal, ErrOpIllegal},
		{1, 2, OpIllegal, ErrOpIllegal},
		{1, 9999, OpIllegal, ErrOpIllegal},
		{1, OpIllegal, OpIllegal, ErrOpIllegal},
		{1, OpSeek, OpIllegal, ErrOpIllegal}, // a 4.2 op in 4.1
		{1, OpAllocate, OpIllegal, ErrOpIllegal},
		{2, OpCopy, OpCopy, ErrNotSupp},
		{2, OpReadPlus, OpReadPlus, ErrNotSupp},
		{2, 76, OpIllegal, ErrOpIllegal},
		{1, OpSetClientID, OpSetClientID, ErrNotSupp}, // 4.0 only
		{1, OpRenew, OpRenew, ErrNotSupp},
		{1, OpOpenConfirm, OpOpenConfirm, ErrNotSupp},
		{1, OpOpenAttr, OpOpenAttr, ErrNotSupp},
		{1, OpReleaseLockOwner, OpReleaseLockOwner, ErrNotSupp},
		{1, OpDelegReturn, OpDelegReturn, ErrNotSupp},
		{1, OpLayoutGet, OpLayoutGet, ErrNotSupp},
	} {
		c.minor = tc.minor
		p := c.do(mkop(tc.op, func(w *xdr.Writer) { w.Uint32(0) }), putrootfh())
		if p.status != tc.want || p.n != 2 {
			t.Errorf("minor %d op %d: status %d with %d results; want %d with 2", tc.minor, tc.op, p.status, p.n, tc.want)
			continue
		}
		if st := p.next(tc.resOp); st != tc.want {
			t.Errorf("minor %d op %d: result status %d", tc.minor, tc.op, st)
		}
	}
}

func TestTruncatedArgs(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.client()
	c.connect("trunc")
	// LOOKUP whose name runs past the end: BADXDR, and the COMPOUND stops.
	p := c.do(putrootfh(), mkop(OpLookup, func(w *xdr.Writer) { w.Uint32(100) }))
	if p.status != ErrBadXDR {
		t.Fatalf("status %d, want BADXDR", p.status)
	}
	p.ok(OpPutRootFH)
	if st := p.next(OpLookup); st != ErrBadXDR {
		t.Fatalf("LOOKUP: %d", st)
	}
	// An op array shorter than its count: the missing op is ILLEGAL/BADXDR.
	args := build("t", 1, []op{c.seqOp(), putrootfh()})
	binaryPatchCount(args, 3)
	p = parse(t, c.call(args))
	if p.status != ErrBadXDR || p.n != 3 {
		t.Fatalf("short op array: status %d, %d results", p.status, p.n)
	}
}

// binaryPatchCount rewrites the op count of a COMPOUND built with tag "t".
func binaryPatchCount(args []byte, n uint32) {
	w := xdr.NewWriter(args[:0])
	w.String("t")
	w.Uint32(1)
	w.Uint32(n)
}

func TestTooManyOps(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.client()
	c.connect("many")
	ops := []op{}
	for range 9 { // the session allows 8, as the Linux client asks
		ops = append(ops, putrootfh())
	}
	p := c.raw(append([]op{c.seqOp()}, ops...)...)
	if p.status != ErrTooManyOps || p.n != 1 {
		t.Fatalf("status %d, %d results; want TOO_MANY_OPS, 1", p.status, p.n)
	}
}

func TestExchangeIDAndCreateSession(t *testing.T) {
	e := newEnv(t, Options{MaxSlots: 4})
	c := e.client()
	p := c.raw(exchangeIDOp("owner-1", [8]byte{1}, 0))
	r := p.ok(OpExchangeID)
	id := r.Uint64()
	if seq := r.Uint32(); seq != 1 {
		t.Fatalf("first CREATE_SESSION sequence id %d, want 1", seq)
	}
	flags := r.Uint32()
	if flags&exchgidConfirmedR != 0 || flags&exchgidUseNonPNFS == 0 {
		t.Fatalf("new client flags %#x", flags)
	}
	if r.Uint32() != sp4None {
		t.Fatal("state protection")
	}
	// Same owner and verifier before confirmation: a new record.
	p = c.raw(exchangeIDOp("owner-1", [8]byte{1}, 0))
	id2 := p.ok(OpExchangeID).Uint64()
	seq := p.r.Uint32()
	if id2 == id {
		t.Fatal("unconfirmed record reused")
	}
	if p := c.raw(createSessionOp(id, seq, 16)); p.next(OpCreateSession) != ErrStaleClientID {
		t.Fatal("CREATE_SESSION of the replaced record")
	}
	if p := c.raw(createSessionOp(id2, seq+1, 16)); p.next(OpCreateSession) != ErrSeqMisordered {
		t.Fatal("CREATE_SESSION misordered")
	}
	p = c.raw(createSessionOp(id2, seq, 16))
	body := append([]byte(nil), p.raw...)
	r = p.ok(OpCreateSession)
	sid := r.Fixed(sessionIDLen)
	if r.Uint32() != seq || r.Uint32() != createSessionConnBack {
		t.Fatal("CREATE_SESSION seq or flags")
	}
	fore, _ := decodeChannel(r)
	back, _ := decodeChannel(r)
	if fore.maxReqs != 4 || fore.maxOps != 8 || fore.maxResp != channelSize || fore.maxReq != channelSize {
		t.Errorf("fore channel %+v", fore)
	}
	if back.maxReqs != 1 || back.maxOps != 8 || back.maxRespCached != 4096 {
		t.Errorf("back channel %+v not echoed", back)
	}
	// A retransmitted CREATE_SESSION gets the same session.
	p = c.raw(createSessionOp(id2, seq, 16))
	if !bytes.Equal(p.raw, body) {
		t.Fatal("CREATE_SESSION retransmission answered differently")
	}
	_ = sid
	// Confirmed now.
	p = c.raw(exchangeIDOp("owner-1", [8]byte{1}, 0))
	if r := p.ok(OpExchangeID); r.Uint64() != id2 || r.Uint32() != seq+1 || r.Uint32()&exchgidConfirmedR == 0 {
		t.Fatal("confirmed client not returned")
	}
	// Update with a wrong verifier, or of an unknown owner.
	if p := c.raw(exchangeIDOp("owner-1", [8]byte{2}, exchgidUpdConfirmedRecA)); p.next(OpExchangeID) != ErrNotSame {
		t.Error("update with another verifier")
	}
	if p := c.raw(exchangeIDOp("nobody", [8]byte{2}, exchgidUpdConfirmedRecA)); p.next(OpExchangeID) != ErrNoEnt {
		t.Error("update of an unknown owner")
	}
	if p := c.raw(exchangeIDOp("owner-1", [8]byte{1}, 0x8)); p.next(OpExchangeID) != ErrInval {
		t.Error("undefined flag accepted")
	}
	if p := c.raw(createSessionOp(id2, seq+1, 0)); p.next(OpCreateSession) != ErrInval {
		t.Error("zero slots accepted")
	}
}

func TestClientRestartDropsOldState(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.client()
	c.connect("restarting")
	dir := c.volRoot()
	sid, _, st := c.open(dir, openArgs{access: ShareAccessBoth, deny: ShareDenyWrite, owner: "o", create: true, how: createUnchecked, name: "f"})
	if st != OK {
		t.Fatal(st)
	}
	old := c.sess
	// The client reboots: new verifier, new record, new session.
	p := c.raw(exchangeIDOp("restarting", [8]byte{9}, 0))
	r := p.ok(OpExchangeID)
	id := r.Uint64()
	seq := r.Uint32()
	p = c.raw(createSessionOp(id, seq, 8))
	copy(c.sess[:], p.ok(OpCreateSession).Fixed(sessionIDLen))
	c.seq = map[uint32]uint32{}
	// Its old session and opens are gone: another owner may open with
	// write access again.
	if _, _, st := c.open(dir, openArgs{access: ShareAccessWrite, owner: "p", name: "f"}); st != OK {
		t.Fatalf("open after restart: %d", st)
	}
	if p := c.do(putfh(dir), mkop(OpTestStateID, func(w *xdr.Writer) { w.Uint32(1); encodeStateid(w, sid) })); p.status != OK {
		t.Fatal(p.status)
	} else {
		p.ok(OpPutFH)
		r := p.ok(OpTestStateID)
		if r.Uint32() != 1 || r.Uint32() != ErrBadStateID {
			t.Error("old stateid still valid")
		}
	}
	c.sess = old
	if p := c.raw(c.seqOp()); p.status != ErrBadSession {
		t.Errorf("old session: %d", p.status)
	}
}

func TestSequenceSlots(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.client()
	c.connect("slots")
	seqAt := func(slot, seq uint32) op {
		return mkop(OpSequence, func(w *xdr.Writer) {
			w.Fixed(c.sess[:])
			w.Uint32(seq)
			w.Uint32(slot)
			w.Uint32(slot)
			w.Bool(false)
		})
	}
	for _, tc := range []struct {
		slot, seq uint32
		want      uint32
	}{
		{0, 0, ErrSeqMisordered}, // never used: first is 1
		{0, 2, ErrSeqMisordered},
		{8, 1, ErrBadSlot},
		{0, 1, OK},
		{0, 1, OK}, // replay
		{0, 3, ErrSeqMisordered},
		{0, 2, OK},
		{1, 1, OK}, // slots are independent
		{0, 0xffffffff, ErrSeqMisordered},
	} {
		p := c.raw(seqAt(tc.slot, tc.seq))
		if p.status != tc.want {
			t.Errorf("slot %d seq %d: %d, want %d", tc.slot, tc.seq, p.status, tc.want)
		}
	}
	bad := c.sess
	bad[0] ^= 0xff
	p := c.raw(mkop(OpSequence, func(w *xdr.Writer) { w.Fixed(bad[:]); w.Uint32(1); w.Uint32(0); w.Uint32(0); w.Bool(false) }))
	if p.status != ErrBadSession {
		t.Errorf("unknown session: %d", p.status)
	}
}

// A retransmitted non-idempotent request is answered from the reply cache
// and not executed again.
func TestReplyCacheExactlyOnce(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.client()
	c.connect("once")
	root := c.volRoot()
	seq := c.seqOp()
	req := build("t", 1, []op{seq, putfh(root), mkdirOp("d"), getfh()})
	first := c.call(req)
	if p := parse(t, first); p.status != OK {
		t.Fatalf("CREATE: %d", p.status)
	}
	again := c.call(req)
	if !bytes.Equal(first, again) {
		t.Fatal("retransmission answered differently")
	}
	// A retransmission may change SEQUENCE's own hints (highest slot,
	// cachethis): still a replay.
	var seqArgs []byte
	{
		w := xdrWriter()
		seq.args(w)
		seqArgs = w.Bytes()
	}
	hinted := mkop(OpSequence, func(w *xdr.Writer) {
		b := append([]byte(nil), seqArgs...)
		b[len(b)-8+3] = 5 // highest slotid
		b[len(b)-1] = 0   // cachethis
		w.Fixed(b)
	})
	if again := c.call(build("t", 1, []op{hinted, putfh(root), mkdirOp("d"), getfh()})); !bytes.Equal(first, again) {
		t.Fatal("retransmission with other SEQUENCE hints answered differently")
	}
	// The same seqid with other arguments is a false retry.
	other := build("t", 1, []op{seq, putfh(root), mkdirOp("e")})
	if p := parse(t, c.call(other)); p.status != ErrSeqFalseRetry {
		t.Fatalf("false retry: %d", p.status)
	}
	// Executed again it would have failed with EXIST; and the directory
	// is there once.
	p := c.must(putfh(root), mkop(OpReadDir, func(w *xdr.Writer) {
		w.Uint64(0)
		w.Fixed(make([]byte, 8))
		w.Uint32(4096)
		w.Uint32(4096)
		encodeBitmap(w, bits(AttrType))
	}))
	p.ok(OpPutFH)
	r := p.ok(OpReadDir)
	r.Fixed(8)
	n := 0
	for r.Bool() {
		r.Uint64()
		r.String(MaxName)
		decodeBitmap(r)
		r.Opaque(maxAttrVals)
		n++
	}
	if n != 1 {
		t.Fatalf("%d entries after a retransmitted mkdir", n)
	}
}

func TestReplyCacheBounded(t *testing.T) {
	e := newEnv(t, Options{ReplyCacheBytes: 200})
	c := e.client()
	c.connect("bounded")
	root := c.volRoot() // its reply used up the budget
	req := build("t", 1, []op{c.seqOp(), putfh(root), mkdirOp("d"), getfh(), getattr(supportedAttrs)})
	if p := parse(t, c.call(req)); p.status != OK {
		t.Fatal(p.status)
	}
	if p := parse(t, c.call(req)); p.status != ErrRetryUncachedRep {
		t.Fatalf("retransmission of an uncached reply: %d", p.status)
	}
}

func TestReplyTooBigNotCached(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.client()
	c.connect("big")
	dir := c.volRoot()
	sid, fh, _ := c.open(dir, openArgs{access: ShareAccessBoth, owner: "o", create: true, how: createUnchecked, name: "big"})
	c.must(putfh(fh), writeOp(sid, 0, make([]byte, 64<<10)))
	req := build("t", 1, []op{c.seqOp(), putfh(fh), readOp(sid, 0, 64<<10)})
	if p := parse(t, c.call(req)); p.status != OK {
		t.Fatal(p.status)
	}
	if p := parse(t, c.call(req)); p.status != ErrRetryUncachedRep {
		t.Fatalf("retransmitted big READ: %d", p.status)
	}
}

func TestSlotBusy(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.client()
	c.connect("busy")
	s := e.h.clients.session(c.sess[:])
	if res, _, st := e.h.clients.sequence(s, 0, 1, []byte("a"), timeNow()); st != OK || res != seqNew {
		t.Fatal(st)
	}
	// While executing: the retransmission waits, a new seqid is misordered.
	if _, _, st := e.h.clients.sequence(s, 0, 1, []byte("a"), timeNow()); st != ErrDelay {
		t.Fatalf("retransmission during execution: %d", st)
	}
	if _, _, st := e.h.clients.sequence(s, 0, 2, []byte("b"), timeNow()); st != ErrSeqMisordered {
		t.Fatalf("next seqid during execution: %d", st)
	}
	e.h.clients.finish(s, 0, []byte("reply"))
	res, reply, st := e.h.clients.sequence(s, 0, 1, []byte("a"), timeNow())
	if st != OK || res != seqReplay || string(reply) != "reply" {
		t.Fatalf("replay: %d %d %q", st, res, reply)
	}
}

func TestDestroySessionAndClient(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.client()
	c.connect("destroy")
	if p := c.raw(mkop(OpDestroyClientID, func(w *xdr.Writer) { w.Uint64(c.clientID) })); p.status != ErrClientIDBusy {
		t.Errorf("DESTROY_CLIENTID with a session: %d", p.status)
	}
	bind := mkop(OpBindConnToSession, func(w *xdr.Writer) { w.Fixed(c.sess[:]); w.Uint32(cdfcForeOrBoth); w.Bool(false) })
	p := c.raw(bind)
	r := p.ok(OpBindConnToSession)
	if !bytes.Equal(r.Fixed(sessionIDLen), c.sess[:]) || r.Uint32() != cdfsBoth || r.Bool() {
		t.Error("BIND_CONN_TO_SESSION result")
	}
	if p := c.raw(mkop(OpDestroySession, func(w *xdr.Writer) { w.Fixed(c.sess[:]) })); p.status != OK {
		t.Fatalf("DESTROY_SESSION: %d", p.status)
	}
	if p := c.raw(c.seqOp()); p.status != ErrBadSession {
		t.Errorf("SEQUENCE on a destroyed session: %d", p.status)
	}
	if p := c.raw(bind); p.status != ErrBadSession {
		t.Errorf("BIND_CONN_TO_SESSION to a destroyed session: %d", p.status)
	}
	if p := c.raw(mkop(OpDestroySession, func(w *xdr.Writer) { w.Fixed(c.sess[:]) })); p.status != ErrBadSession {
		t.Errorf("second DESTROY_SESSION: %d", p.status)
	}
	if p := c.raw(mkop(OpDestroyClientID, func(w *xdr.Writer) { w.Uint64(c.clientID) })); p.status != OK {
		t.Errorf("DESTROY_CLIENTID: %d", p.status)
	}
	if p := c.raw(mkop(OpDestroyClientID, func(w *xdr.Writer) { w.Uint64(c.clientID) })); p.status != ErrStaleClientID {
		t.Errorf("second DESTROY_CLIENTID: %d", p.status)
	}
}

func TestReclaimCompleteAndSecinfo(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.client()
	c.connect("rc")
	rc := func(oneFS bool) op { return mkop(OpReclaimComplete, func(w *xdr.Writer) { w.Bool(oneFS) }) }
	if p := c.do(rc(false)); p.status != OK {
		t.Fatal(p.status)
	}
	if p := c.do(rc(false)); p.status != ErrCompleteAlready {
		t.Fatalf("second RECLAIM_COMPLETE: %d", p.status)
	}
	p := c.do(putrootfh(), mkop(OpSecInfoNoName, func(w *xdr.Writer) { w.Uint32(0) }), getfh())
	p.ok(OpPutRootFH)
	r := p.ok(OpSecInfoNoName)
	if r.Uint32() != 1 || r.Uint32() != rpc.AuthSys {
		t.Fatal("SECINFO_NO_NAME flavors")
	}
	if st := p.next(OpGetFH); st != ErrNoFileHandle {
		t.Fatalf("GETFH after SECINFO_NO_NAME: %d", st)
	}
	if p := c.do(mkop(OpSecInfoNoName, func(w *xdr.Writer) { w.Uint32(0) })); p.status != ErrNoFileHandle {
		t.Fatalf("SECINFO_NO_NAME without a filehandle: %d", p.status)
	}
	if p := c.do(putrootfh(), mkop(OpSecInfo, func(w *xdr.Writer) { w.String("vol") })); p.status != OK {
		t.Fatalf("SECINFO vol: %d", p.status)
	}
	if p := c.do(putrootfh(), mkop(OpSecInfo, func(w *xdr.Writer) { w.String("none") })); p.status != ErrNoEnt {
		t.Fatalf("SECINFO of a missing name: %d", p.status)
	}
}

func xdrWriter() *xdr.Writer { return xdr.NewWriter(nil) }

// Session ids are capabilities: consecutive ones must not be predictable
// from each other.
func TestSessionIDsUnpredictable(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.client()
	c.connect("ids")
	first := c.sess
	p := c.raw(createSessionOp(c.clientID, 2, 8))
	var second [sessionIDLen]byte
	copy(second[:], p.ok(OpCreateSession).Fixed(sessionIDLen))
	a, b := binary.BigEndian.Uint64(first[8:]), binary.BigEndian.Uint64(second[8:])
	if b-a < 1<<16 || a-b < 1<<16 {
		t.Fatalf("session ids %x and %x are close", first, second)
	}
	other := e.client()
	other.connect("ids-2")
	if x, y := uint32(c.clientID), uint32(other.clientID); y-x < 1<<8 || x-y < 1<<8 {
		t.Fatalf("client ids %x and %x are close", c.clientID, other.clientID)
	}
}
