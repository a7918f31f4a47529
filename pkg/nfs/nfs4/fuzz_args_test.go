package nfs4

import (
	"context"
	"runtime"
	"testing"

	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
)

// One fuzz target per argument type: the fuzzer mutates the arguments of a
// single operation, served in a valid context (after SEQUENCE and PUTFH of
// a file or directory that exists), so its effort goes into that decoder
// and the handler behind it rather than into getting past the COMPOUND
// header. Each call must answer without SERVERFAULT, stay within the
// session's reply size, and allocate no more than the largest legitimate
// request needs (a length taken from the input before checking it against
// a cap shows up here).

// maxCallAlloc bounds the bytes one call may allocate: a 1 MiB WRITE or
// READ reply, a 1 MiB file in the MemFS, and slack.
const maxCallAlloc = 8 << 20

type argFuzz struct {
	e        *env
	c        *tclient
	dir, reg []byte // the export root and a regular file in it, "f"
}

func newArgFuzz(f *testing.F) *argFuzz {
	e := newEnv(f, Options{})
	e.fs.MaxFileSize = 1 << 20
	a := &argFuzz{e: e, c: e.client()}
	a.c.minor = 2
	a.reset(f)
	return a
}

// reset (re)connects and makes sure the file is there: the fuzzed ops may
// destroy the session or remove the file.
func (a *argFuzz) reset(t testing.TB) {
	a.e.t, a.c.t = t, t
	a.c.connect("fuzz")
	a.dir = a.c.volRoot()
	if a.reg != nil {
		if _, err := a.e.fs.GetAttr(context.Background(), vol(a.reg)); err == nil {
			return
		}
	}
	sid, fh, st := a.c.open(a.dir, openArgs{access: ShareAccessBoth, owner: "fuzz", create: true, how: createUnchecked, name: "f"})
	if st != OK {
		t.Fatalf("OPEN f: %d", st)
	}
	a.c.must(putfh(fh), writeOp(sid, 0, []byte("some data")))
	a.reg = fh
}

// serve runs args (a COMPOUND4args) and checks the reply.
func (a *argFuzz) serve(t *testing.T, args []byte, nops uint32) *reply {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	st, res := a.e.serve(a.c.cred, ProcCompound, args)
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > maxCallAlloc {
		t.Fatalf("one call allocated %d bytes", n)
	}
	checkReply(t, st, res, nops)
	if st != rpc.Success {
		t.Fatalf("accept stat %s for a well-formed header", st)
	}
	if len(res) > channelSize {
		t.Fatalf("%d-byte reply past the session's %d", len(res), channelSize)
	}
	return parse(t, res)
}

// fuzzOp fuzzes the arguments of op num after SEQUENCE and PUTFH of the
// regular file (onDir false) or the export root. seeds are valid
// arguments (ops of number num).
func fuzzOp(f *testing.F, num uint32, onDir bool, seeds ...op) {
	a := newArgFuzz(f)
	for _, s := range seeds {
		f.Add(encodeOps(s)[4:])
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, args []byte) {
		a.e.t, a.c.t = t, t
		fh := a.reg
		if onDir {
			fh = a.dir
		}
		w := xdr.NewWriter(nil)
		w.String("f")
		w.Uint32(a.c.minor)
		w.Uint32(3)
		for _, o := range []op{a.c.seqOp(), putfh(fh)} {
			w.Uint32(o.num)
			o.args(w)
		}
		w.Uint32(num)
		if p := a.serve(t, append(w.Bytes(), args...), 3); p.next(OpSequence) != OK {
			a.reset(t)
		} else if _, err := a.e.fs.GetAttr(context.Background(), vol(a.reg)); err != nil {
			a.reset(t)
		}
	})
}

// fuzzAlone fuzzes the arguments of op num sent as the only op of a
// COMPOUND, as the sessionless ops come; seeds may use the fuzzing
// client's session.
func fuzzAlone(f *testing.F, num uint32, seeds func(c *tclient) []op) {
	a := newArgFuzz(f)
	for _, s := range seeds(a.c) {
		f.Add(encodeOps(s)[4:])
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, args []byte) {
		a.e.t, a.c.t = t, t
		w := xdr.NewWriter(nil)
		w.String("f")
		w.Uint32(a.c.minor)
		w.Uint32(1)
		w.Uint32(num)
		a.serve(t, append(w.Bytes(), args...), 1)
	})
}

// seedsOf are the seedOps of number num.
func seedsOf(num uint32) []op {
	var out []op
	for _, o := range seedOps(make([]byte, 20)) {
		if o.num == num {
			out = append(out, o)
		}
	}
	return out
}

func FuzzArgsAccess(f *testing.F)   { fuzzOp(f, OpAccess, false, seedsOf(OpAccess)...) }
func FuzzArgsClose(f *testing.F)    { fuzzOp(f, OpClose, false, seedsOf(OpClose)...) }
func FuzzArgsCommit(f *testing.F)   { fuzzOp(f, OpCommit, false, seedsOf(OpCommit)...) }
func FuzzArgsCreate(f *testing.F)   { fuzzOp(f, OpCreate, true, seedsOf(OpCreate)...) }
func FuzzArgsGetAttr(f *testing.F)  { fuzzOp(f, OpGetAttr, false, seedsOf(OpGetAttr)...) }
func FuzzArgsLink(f *testing.F)     { fuzzOp(f, OpLink, true, seedsOf(OpLink)...) }
func FuzzArgsLock(f *testing.F)     { fuzzOp(f, OpLock, false, seedsOf(OpLock)...) }
func FuzzArgsLockT(f *testing.F)    { fuzzOp(f, OpLockT, false, seedsOf(OpLockT)...) }
func FuzzArgsLockU(f *testing.F)    { fuzzOp(f, OpLockU, false, seedsOf(OpLockU)...) }
func FuzzArgsLookup(f *testing.F)   { fuzzOp(f, OpLookup, true, lookup("f"), lookup("..")) }
func FuzzArgsVerify(f *testing.F)   { fuzzOp(f, OpVerify, false, seedsOf(OpVerify)...) }
func FuzzArgsNVerify(f *testing.F)  { fuzzOp(f, OpNVerify, false, seedsOf(OpNVerify)...) }
func FuzzArgsOpen(f *testing.F)     { fuzzOp(f, OpOpen, true, seedsOf(OpOpen)...) }
func FuzzArgsPutFH(f *testing.F)    { fuzzOp(f, OpPutFH, false, seedsOf(OpPutFH)...) }
func FuzzArgsRead(f *testing.F)     { fuzzOp(f, OpRead, false, seedsOf(OpRead)...) }
func FuzzArgsReadDir(f *testing.F)  { fuzzOp(f, OpReadDir, true, seedsOf(OpReadDir)...) }
func FuzzArgsRemove(f *testing.F)   { fuzzOp(f, OpRemove, true, remove("nothing")) }
func FuzzArgsRename(f *testing.F)   { fuzzOp(f, OpRename, true, seedsOf(OpRename)...) }
func FuzzArgsSecInfo(f *testing.F)  { fuzzOp(f, OpSecInfo, true, seedsOf(OpSecInfo)...) }
func FuzzArgsSetAttr(f *testing.F)  { fuzzOp(f, OpSetAttr, false, seedsOf(OpSetAttr)...) }
func FuzzArgsWrite(f *testing.F)    { fuzzOp(f, OpWrite, false, seedsOf(OpWrite)...) }
func FuzzArgsAllocate(f *testing.F) { fuzzOp(f, OpAllocate, false, seedsOf(OpAllocate)...) }
func FuzzArgsSeek(f *testing.F)     { fuzzOp(f, OpSeek, false, seedsOf(OpSeek)...) }

func FuzzArgsDeallocate(f *testing.F) { fuzzOp(f, OpDeallocate, false, seedsOf(OpDeallocate)...) }
func FuzzArgsOpenDowngrade(f *testing.F) {
	fuzzOp(f, OpOpenDowngrade, false, seedsOf(OpOpenDowngrade)...)
}
func FuzzArgsTestStateID(f *testing.F) { fuzzOp(f, OpTestStateID, false, seedsOf(OpTestStateID)...) }
func FuzzArgsFreeStateID(f *testing.F) { fuzzOp(f, OpFreeStateID, false, seedsOf(OpFreeStateID)...) }
func FuzzArgsSecInfoNoName(f *testing.F) {
	fuzzOp(f, OpSecInfoNoName, true, seedsOf(OpSecInfoNoName)...)
}
func FuzzArgsReclaimComplete(f *testing.F) {
	fuzzOp(f, OpReclaimComplete, false, seedsOf(OpReclaimComplete)...)
}

// The sessionless ops and SEQUENCE itself come first in their COMPOUND.
func FuzzArgsExchangeID(f *testing.F) {
	fuzzAlone(f, OpExchangeID, func(*tclient) []op { return seedsOf(OpExchangeID) })
}
func FuzzArgsCreateSession(f *testing.F) {
	fuzzAlone(f, OpCreateSession, func(*tclient) []op { return seedsOf(OpCreateSession) })
}
func FuzzArgsDestroySession(f *testing.F) {
	fuzzAlone(f, OpDestroySession, func(*tclient) []op { return seedsOf(OpDestroySession) })
}
func FuzzArgsDestroyClientID(f *testing.F) {
	fuzzAlone(f, OpDestroyClientID, func(*tclient) []op { return seedsOf(OpDestroyClientID) })
}
func FuzzArgsBindConnToSession(f *testing.F) {
	fuzzAlone(f, OpBindConnToSession, func(*tclient) []op { return seedsOf(OpBindConnToSession) })
}
func FuzzArgsSequence(f *testing.F) {
	fuzzAlone(f, OpSequence, func(c *tclient) []op { return []op{c.seqOp()} })
}
