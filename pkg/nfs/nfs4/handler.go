package nfs4

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"

	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
	"github.com/hangar-csi/hangar/pkg/vfs"
)

// Anonymous identity for AUTH_NONE callers (as in NFSv3).
const (
	AnonUID = 65534
	AnonGID = 65534
)

// Options configure a Handler. Zero values mean the defaults.
type Options struct {
	// LeaseTime is how long a client's state lives without a renewal
	// (any SEQUENCE renews it). Longer leases ride out longer network
	// trouble; shorter ones free a dead client's opens and locks sooner.
	// Default 90s, as Linux's nfsd.
	LeaseTime       time.Duration
	MaxClients      int   // client records, default 4096
	MaxSessions     int   // sessions in the server, default 4096
	MaxSlots        int   // slots per session (ca_maxrequests), default 64
	MaxStates       int   // open and lock stateids in the server, default 1<<20
	MaxClientStates int   // of one client, default 1<<16
	ReplyCacheBytes int64 // bytes of cached replies across sessions, default 64 MiB
	// ServerOwner identifies this server to clients (server_owner4 and
	// server scope); default the host name.
	ServerOwner string
	// MaxRequest bounds a COMPOUND request (the rpc server's record limit);
	// default rpc.DefaultMaxRecordSize.
	MaxRequest int
	// StateDir holds the durable client records (created if missing):
	// with it, clients reclaim their opens and locks after a restart,
	// in a grace period of one lease. Empty: no records, and a restart
	// loses every client's state.
	StateDir string
}

func (o *Options) setDefaults() {
	if o.LeaseTime <= 0 {
		o.LeaseTime = 90 * time.Second
	}
	if o.MaxClients <= 0 {
		o.MaxClients = 4096
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = 4096
	}
	if o.MaxSlots <= 0 {
		o.MaxSlots = 64
	}
	if o.MaxStates <= 0 {
		o.MaxStates = 1 << 20
	}
	if o.MaxClientStates <= 0 {
		o.MaxClientStates = 1 << 16
	}
	if o.ReplyCacheBytes <= 0 {
		o.ReplyCacheBytes = 64 << 20
	}
	if o.ServerOwner == "" {
		o.ServerOwner, _ = os.Hostname()
		if o.ServerOwner == "" {
			o.ServerOwner = "hangar"
		}
	}
	if o.MaxRequest <= 0 {
		o.MaxRequest = rpc.DefaultMaxRecordSize
	}
}

// Handler serves NFSv4.1 over a vfs.FS. It is an rpc.Handler and safe for
// concurrent use.
type Handler struct {
	fs      vfs.FS
	fr      vfs.FileReader // fs, if it hands out files for READ
	log     logr.Logger
	o       Options
	clients *clientTable
	states  States
	now     func() time.Time // the clock leases run on; tests replace it
	records *clientRecords   // nil without Options.StateDir
	grace   grace

	holds     *holdTable   // open stateids' file holds (hold.go)
	sweep     func()       // h.sweepHolds, made once: a method value allocates
	nextSweep atomic.Int64 // lease-clock time of the next sweep of holds
}

// NewHandler returns a Handler serving fs. If Options.StateDir holds
// client records of an earlier run, it starts in a grace period.
func NewHandler(fs vfs.FS, log logr.Logger, o Options) *Handler {
	return newHandler(fs, log, o, time.Now)
}

func newHandler(fs vfs.FS, log logr.Logger, o Options, now func() time.Time) *Handler {
	o.setDefaults()
	var b [4]byte
	rand.Read(b[:])
	boot := binary.BigEndian.Uint32(b[:]) | 1 // never 0: stateids of all zeros are special
	fr, _ := fs.(vfs.FileReader)
	holds := newHoldTable(fs, o.LeaseTime)
	h := &Handler{
		fs:      fs,
		fr:      fr,
		log:     log,
		o:       o,
		clients: newClientTable(&o, boot),
		states:  holdingStates{newStateTable(boot, o.MaxStates, o.MaxClientStates), holds},
		now:     now,
		holds:   holds,
	}
	h.sweep = h.sweepHolds
	h.startGrace()
	return h
}

// reapExpired ends the clients whose lease ran out, with their sessions
// and state, and reports whether there were any. It runs when state
// conflicts (and on EXCHANGE_ID): an expired client keeps its opens and
// locks until they stand in someone's way, so a client that was only
// partitioned for a while and nobody waited for loses nothing.
func (h *Handler) reapExpired() bool {
	gone := h.clients.expire(h.now())
	for _, c := range gone {
		h.states.DropClient(c.id)
		h.syncRecord(c.owner)
		h.log.V(1).Info("client lease expired; its state is released", "clientID", c.id)
	}
	return len(gone) > 0
}

// Idempotent reports that no procedure goes through the rpc server's
// duplicate request cache: NFSv4.1 sessions have their own, exact one.
func Idempotent(proc uint32) bool { return true }

// fhBuf holds a filehandle without allocating.
type fhBuf struct {
	n int
	b [MaxFHSize]byte
}

func (f *fhBuf) bytes() []byte   { return f.b[:f.n] }
func (f *fhBuf) set(fh []byte)   { f.n = copy(f.b[:], fh) }
func (f *fhBuf) empty() bool     { return f.n == 0 }
func (f *fhBuf) clear()          { f.n = 0 }
func (f *fhBuf) setVol(h []byte) { f.b[0] = fhVol; f.n = 1 + copy(f.b[1:], h) }

// compound is one COMPOUND being served.
type compound struct {
	ctx   context.Context
	rc    *rpc.Call
	r     xdr.Reader
	w     *xdr.Writer
	cred  vfs.Cred
	minor uint32
	start int // w.Len() before the COMPOUND4res
	nops  uint32

	cur, saved             fhBuf
	curSID, savedSID       stateid
	hasCurSID, hasSavedSID bool // whether curSID / savedSID are set

	// curAttr is the current file's attributes as the op before left
	// them (OPEN, LOOKUP, WRITE), so that the GETATTR the Linux client
	// sends after each does not stat the file again. Only GETFH, ACCESS
	// and GETATTR, which change nothing, keep it for the op after them.
	curAttr    vfs.Attr
	hasCurAttr bool
	// curAccess is, kept the same way, the access bits (of every kind)
	// an OPEN found its caller has to the file it opened, for the ACCESS
	// the Linux client sends after it.
	curAccess    uint32
	hasCurAccess bool

	// Room for OPEN's decoded attributes and new filehandle, which would
	// otherwise be allocated for every OPEN (they reach the FS).
	openSA setAttrs
	openFH fhBuf

	i        uint32 // index of the op being served
	sess     *session
	slotID   uint32
	inSlot   bool // a new request on sess's slot slotID: finish it
	replay   []byte
	attached bool // READ data follows the reply from a file: not cacheable
}

// Serve implements rpc.Handler.
func (h *Handler) Serve(ctx context.Context, c *rpc.Call, w *xdr.Writer) rpc.AcceptStat {
	switch c.Proc {
	case ProcNull:
		return rpc.Success
	case ProcCompound:
		x := compounds.Get().(*compound)
		*x = compound{ctx: ctx, rc: c, w: w, start: w.Len(), cred: cred(&c.Cred)}
		x.r.Reset(c.Args)
		st := h.compound(x)
		*x = compound{} // drop the references to the call
		compounds.Put(x)
		return st
	}
	return rpc.ProcUnavail
}

// compounds recycles compound structs, which escape to the heap and are
// large (two filehandles, attributes).
var compounds = sync.Pool{New: func() any { return new(compound) }}

func cred(c *rpc.Cred) vfs.Cred {
	if c.Flavor == rpc.AuthNone {
		return vfs.Cred{UID: AnonUID, GID: AnonGID}
	}
	return vfs.Cred{UID: c.UID, GID: c.GID, Groups: c.GIDs}
}

// sessionless ops may come without SEQUENCE, as the only op.
func sessionless(op uint32) bool {
	switch op {
	case OpExchangeID, OpCreateSession, OpDestroySession, OpDestroyClientID, OpBindConnToSession:
		return true
	}
	return false
}

func (h *Handler) compound(x *compound) rpc.AcceptStat {
	r, w := &x.r, x.w
	tag := r.Opaque(maxTag)
	x.minor = r.Uint32()
	x.nops = r.Uint32()
	if r.Err() != nil {
		return rpc.GarbageArgs
	}
	statusOff := w.Len()
	w.Uint32(OK)
	w.Opaque(tag)
	countOff := w.Len()
	w.Uint32(0)
	if x.minor != 1 && x.minor != 2 {
		w.PatchUint32(statusOff, ErrMinorVersMismatch)
		return rpc.Success
	}
	defer func() {
		if x.inSlot {
			reply := w.Bytes()[x.start:]
			if x.attached {
				reply = nil
			}
			h.clients.finish(x.sess, x.slotID, reply)
		}
	}()
	status := uint32(OK)
	var n uint32
	for i := uint32(0); i < x.nops; i++ {
		op := r.Uint32()
		if r.Err() != nil {
			if i == 0 {
				return rpc.GarbageArgs
			}
			// The op array ends early: say so in a result of its own.
			op = OpIllegal
		}
		n++
		x.i = i
		status = h.op(x, i, op)
		if x.replay != nil {
			// SEQUENCE found this request in the reply cache.
			w.Truncate(x.start)
			copy(w.Reserve(len(x.replay)), x.replay)
			return rpc.Success
		}
		// Ops past the first run only after SEQUENCE, which bounds their
		// number by the session's ca_maxoperations.
		if status != OK {
			break
		}
	}
	w.PatchUint32(statusOff, status)
	w.PatchUint32(countOff, n)
	return rpc.Success
}

// op serves operation number i of the COMPOUND: it writes the resop and
// returns its status.
func (h *Handler) op(x *compound, i, op uint32) uint32 {
	w := x.w
	last := uint32(lastOp41)
	if x.minor >= 2 {
		last = lastOp42
	}
	if op < OpAccess || op > last || x.r.Err() != nil {
		st := uint32(ErrOpIllegal)
		if x.r.Err() != nil {
			st = ErrBadXDR
		}
		w.Uint32(OpIllegal)
		w.Uint32(st)
		return st
	}
	w.Uint32(op)
	switch {
	case i == 0 && op == OpSequence:
	case i == 0 && sessionless(op):
		if x.nops != 1 {
			return fail(w, ErrNotOnlyOp)
		}
	case i == 0:
		return fail(w, ErrOpNotInSession)
	case op == OpSequence:
		return fail(w, ErrSequencePos)
	}
	switch op {
	case OpGetAttr, OpGetFH, OpAccess:
	default:
		x.hasCurAttr, x.hasCurAccess = false, false
	}
	st := h.dispatch(x, op)
	if st != OK {
		if l := h.log.V(2); l.Enabled() {
			l.Info("operation failed", "op", OpName(op), "status", st, "index", i)
		}
	}
	return st
}

func fail(w *xdr.Writer, st uint32) uint32 {
	w.Uint32(st)
	return st
}

func (h *Handler) dispatch(x *compound, op uint32) uint32 {
	switch op {
	case OpSequence:
		return h.sequence(x)
	case OpExchangeID:
		return h.exchangeID(x)
	case OpCreateSession:
		return h.createSession(x)
	case OpDestroySession:
		return h.destroySession(x)
	case OpDestroyClientID:
		return h.destroyClientID(x)
	case OpBindConnToSession:
		return h.bindConn(x)
	case OpReclaimComplete:
		return h.reclaimComplete(x)
	case OpSecInfoNoName:
		return h.secinfoNoName(x)
	case OpSecInfo:
		return h.secinfo(x)
	case OpPutRootFH, OpPutPubFH:
		return h.putRootFH(x)
	case OpPutFH:
		return h.putFH(x)
	case OpGetFH:
		return h.getFH(x)
	case OpSaveFH:
		return h.saveFH(x)
	case OpRestoreFH:
		return h.restoreFH(x)
	case OpLookup:
		return h.lookup(x)
	case OpLookupP:
		return h.lookupp(x)
	case OpGetAttr:
		return h.getattr(x)
	case OpSetAttr:
		return h.setattr(x)
	case OpVerify:
		return h.verify(x, false)
	case OpNVerify:
		return h.verify(x, true)
	case OpAccess:
		return h.access(x)
	case OpReadlink:
		return h.readlink(x)
	case OpReadDir:
		return h.readdir(x)
	case OpOpen:
		return h.open(x)
	case OpOpenDowngrade:
		return h.openDowngrade(x)
	case OpClose:
		return h.close(x)
	case OpTestStateID:
		return h.testStateID(x)
	case OpFreeStateID:
		return h.freeStateID(x)
	case OpRead:
		return h.read(x)
	case OpWrite:
		return h.write(x)
	case OpCommit:
		return h.commit(x)
	case OpCreate:
		return h.create(x)
	case OpRemove:
		return h.remove(x)
	case OpRename:
		return h.rename(x)
	case OpLink:
		return h.link(x)
	case OpLock:
		return h.lock(x)
	case OpLockT:
		return h.lockt(x)
	case OpLockU:
		return h.locku(x)
	}
	if x.minor >= 2 {
		switch op {
		case OpAllocate:
			return h.allocate(x)
		case OpDeallocate:
			return h.deallocate(x)
		case OpSeek:
			return h.seek(x)
		}
	}
	// Everything else, including the NFSv4.0-only operations that RFC 8881
	// section 18 says a 4.1 server answers with NOTSUPP. Its arguments
	// are not decoded, which is fine: the COMPOUND stops here.
	return fail(x.w, ErrNotSupp)
}

// statusOf maps an error from the vfs.FS to an nfsstat4. The second result
// is false for errors this layer did not expect (SERVERFAULT, worth a log
// line).
func statusOf(err error) (uint32, bool) {
	if err == nil {
		return OK, true
	}
	switch {
	case errors.Is(err, vfs.ErrStale), errors.Is(err, vfs.ErrNoExport):
		return ErrStale, true
	case errors.Is(err, vfs.ErrBadHandle):
		return ErrBadHandle, true
	case errors.Is(err, vfs.ErrBadCookie):
		return ErrBadCookie, true
	case errors.Is(err, vfs.ErrNotSupp):
		return ErrNotSupp, true
	case errors.Is(err, vfs.ErrBadType):
		return ErrBadType, true
	case errors.Is(err, vfs.ErrNotAllowed):
		return ErrAccess, true
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return ErrDelay, true
	}
	var e syscall.Errno
	if !errors.As(err, &e) {
		return ErrServerFault, false
	}
	switch e {
	case syscall.EPERM:
		return ErrPerm, true
	case syscall.ENOENT:
		return ErrNoEnt, true
	case syscall.EIO:
		return ErrIO, true
	case syscall.ENXIO, syscall.ENODEV:
		return ErrNXIO, true
	case syscall.EACCES:
		return ErrAccess, true
	case syscall.EEXIST:
		return ErrExist, true
	case syscall.EXDEV:
		return ErrXDev, true
	case syscall.ENOTDIR:
		return ErrNotDir, true
	case syscall.EISDIR:
		return ErrIsDir, true
	case syscall.EINVAL:
		return ErrInval, true
	case syscall.ELOOP:
		return ErrSymlink, true
	case syscall.EFBIG:
		return ErrFBig, true
	case syscall.ENOSPC:
		return ErrNoSpc, true
	case syscall.EROFS:
		return ErrROFS, true
	case syscall.EMLINK:
		return ErrMLink, true
	case syscall.ENAMETOOLONG:
		return ErrNameTooLong, true
	case syscall.ENOTEMPTY:
		return ErrNotEmpty, true
	case syscall.EDQUOT:
		return ErrDQuot, true
	case syscall.ESTALE:
		return ErrStale, true
	case syscall.ENOTSUP:
		return ErrNotSupp, true
	case syscall.EAGAIN, syscall.EINTR:
		return ErrDelay, true
	}
	return ErrServerFault, false
}

// status maps err, logging the unexpected.
func (h *Handler) status(err error) uint32 {
	s, ok := statusOf(err)
	if !ok {
		h.log.Error(err, "unexpected filesystem error")
	}
	return s
}

// failErr writes err's status as an op result.
func (h *Handler) failErr(x *compound, err error) uint32 { return fail(x.w, h.status(err)) }

func (x *compound) bad() bool { return x.r.Err() != nil }

// clientID is the client of the COMPOUND's session (0 without one).
func (x *compound) clientID() uint64 {
	if x.sess == nil {
		return 0
	}
	return x.sess.client.id
}
