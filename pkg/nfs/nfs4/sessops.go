package nfs4

import (
	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
)

// Session and client operations (RFC 8881 section 18.35 onwards).

// State protection modes.
const (
	sp4None     = 0
	sp4MachCred = 1
	sp4SSV      = 2
)

func (h *Handler) exchangeID(x *compound) uint32 {
	r := &x.r
	var verf [8]byte
	copy(verf[:], r.Fixed(8))
	owner := r.Opaque(maxOpaque)
	flags := r.Uint32()
	how := r.Uint32()
	switch how {
	case sp4None:
	case sp4MachCred:
		// Must-enforce and must-allow op sets. With AUTH_SYS there is
		// no machine credential to bind: the reply enforces nothing.
		_, _, ok1 := decodeBitmap(r)
		_, _, ok2 := decodeBitmap(r)
		if !ok1 || !ok2 {
			return fail(x.w, ErrBadXDR)
		}
	case sp4SSV:
		return fail(x.w, ErrNotSupp)
	default:
		return fail(x.w, ErrBadXDR)
	}
	switch n := r.Uint32(); n {
	case 0:
	case 1:
		r.Opaque(maxOpaque) // nii_domain
		r.Opaque(maxOpaque) // nii_name
		r.Fixed(12)         // nii_date
	default:
		return fail(x.w, ErrBadXDR)
	}
	if x.bad() {
		return fail(x.w, ErrBadXDR)
	}
	if flags&^uint32(exchgidValidClientFlags) != 0 || len(owner) == 0 {
		return fail(x.w, ErrInval)
	}
	h.reapExpired() // bounds the records of clients that went away
	c, st := h.clients.exchangeID(owner, verf, flags&exchgidUpdConfirmedRecA != 0, h.now())
	if st != OK {
		return fail(x.w, st)
	}
	if l := h.log.V(1); l.Enabled() {
		l.Info("EXCHANGE_ID", "owner", string(owner), "verifier", verf, "clientID", c.id, "remote", x.rc.Remote)
	}
	h.clients.mu.Lock()
	seq, confirmed := c.csSeq+1, c.confirmed
	h.clients.mu.Unlock()
	w := x.w
	w.Uint32(OK)
	w.Uint64(c.id)
	w.Uint32(seq)
	rflags := uint32(exchgidUseNonPNFS)
	if confirmed {
		rflags |= exchgidConfirmedR
	}
	w.Uint32(rflags)
	w.Uint32(how)
	if how == sp4MachCred {
		encodeBitmap(w, bitmap{})
		encodeBitmap(w, bitmap{})
	}
	w.Uint64(0) // so_minor_id
	w.String(h.o.ServerOwner)
	w.String(h.o.ServerOwner) // server scope
	w.Uint32(0)               // no implementation id
	return OK
}

func decodeChannel(r *xdr.Reader) (channelAttrs, bool) {
	var c channelAttrs
	c.headerPad = r.Uint32()
	c.maxReq = r.Uint32()
	c.maxResp = r.Uint32()
	c.maxRespCached = r.Uint32()
	c.maxOps = r.Uint32()
	c.maxReqs = r.Uint32()
	switch r.Uint32() {
	case 0:
	case 1:
		r.Uint32() // RDMA is not served: dropped from the reply
	default:
		return c, false // an array of at most one
	}
	return c, true
}

func encodeChannel(w *xdr.Writer, c *channelAttrs) {
	w.Uint32(c.headerPad)
	w.Uint32(c.maxReq)
	w.Uint32(c.maxResp)
	w.Uint32(c.maxRespCached)
	w.Uint32(c.maxOps)
	w.Uint32(c.maxReqs)
	w.Uint32(0)
}

// minChannel is the smallest request or reply size a fore channel may
// have: less cannot carry a useful COMPOUND.
const minChannel = 1024

func (h *Handler) createSession(x *compound) uint32 {
	r := &x.r
	clientID := r.Uint64()
	seq := r.Uint32()
	flags := r.Uint32()
	fore, ok1 := decodeChannel(r)
	back, ok2 := decodeChannel(r)
	if !ok1 || !ok2 {
		return fail(x.w, ErrBadXDR)
	}
	r.Uint32() // cb_program: callbacks are not sent yet
	n := r.Uint32()
	if n > maxSecParms {
		return fail(x.w, ErrBadXDR)
	}
	for range n {
		switch r.Uint32() {
		case rpc.AuthNone:
		case rpc.AuthSys:
			r.Uint32()    // stamp
			r.Opaque(255) // machine name
			r.Uint32()    // uid
			r.Uint32()    // gid
			ng := r.Uint32()
			if ng > maxGIDs {
				return fail(x.w, ErrBadXDR)
			}
			for range ng {
				r.Uint32()
			}
		case 6: // RPCSEC_GSS
			r.Uint32()
			r.Opaque(maxOpaque)
			r.Opaque(maxOpaque)
		default:
			return fail(x.w, ErrBadXDR)
		}
	}
	if x.bad() {
		return fail(x.w, ErrBadXDR)
	}
	if fore.maxReqs == 0 || back.maxReqs == 0 {
		return fail(x.w, ErrInval)
	}
	if fore.maxReq < minChannel || fore.maxResp < minChannel {
		return fail(x.w, ErrTooSmall)
	}
	// The fore channel is negotiated down to what this server serves;
	// the back channel is taken as offered (the Linux client refuses
	// anything else), since callbacks are not sent yet.
	fore.headerPad = 0
	fore.maxReq = min(fore.maxReq, uint32(h.o.MaxRequest))
	fore.maxResp = min(fore.maxResp, uint32(h.o.MaxRequest))
	fore.maxRespCached = min(fore.maxRespCached, maxCachedReply)
	fore.maxOps = min(fore.maxOps, maxOps)
	fore.maxReqs = min(fore.maxReqs, uint32(h.o.MaxSlots))
	back.headerPad = 0
	rflags := flags & createSessionConnBack
	body, replaced, st := h.clients.createSession(clientID, seq, fore, back, rflags, func(s *session, seq uint32) []byte {
		w := xdr.NewWriter(make([]byte, 0, 96))
		w.Fixed(s.id[:])
		w.Uint32(seq)
		w.Uint32(s.flags)
		encodeChannel(w, &s.fore)
		encodeChannel(w, &s.back)
		return w.Bytes()
	})
	if st != OK {
		return fail(x.w, st)
	}
	if replaced != nil {
		h.states.DropClient(replaced.id)
	}
	// On disk before the client hears of its session, so before it can
	// have state to reclaim.
	h.recordClient(clientID)
	x.w.Uint32(OK)
	copy(x.w.Reserve(len(body)), body)
	return OK
}

func (h *Handler) sequence(x *compound) uint32 {
	r := &x.r
	sid := r.Fixed(sessionIDLen)
	seq := r.Uint32()
	slotID := r.Uint32()
	r.Uint32() // highest slot the client uses: informational
	r.Bool()   // cachethis: every reply that fits is cached anyway
	if x.bad() {
		return fail(x.w, ErrBadXDR)
	}
	s := h.clients.session(sid)
	if s == nil {
		return fail(x.w, ErrBadSession)
	}
	if x.nops > s.fore.maxOps {
		return fail(x.w, ErrTooManyOps)
	}
	if len(x.rc.Args) > int(s.fore.maxReq) {
		return fail(x.w, ErrReqTooBig)
	}
	// A retransmission is recognised by the ops after SEQUENCE: those
	// must be the same, SEQUENCE's own hints may differ.
	now := h.now()
	res, reply, st := h.clients.sequence(s, slotID, seq, x.r.Remaining(), now)
	if st != OK {
		return fail(x.w, st)
	}
	h.maybeSweepHolds(now)
	if res == seqReplay {
		x.replay = reply
		return OK
	}
	x.sess, x.slotID, x.inSlot = s, slotID, true
	w := x.w
	w.Uint32(OK)
	w.Fixed(s.id[:])
	w.Uint32(seq)
	w.Uint32(slotID)
	w.Uint32(uint32(len(s.slots) - 1)) // highest slot
	w.Uint32(uint32(len(s.slots) - 1)) // target highest slot
	w.Uint32(0)                        // status flags
	return OK
}

func (h *Handler) destroySession(x *compound) uint32 {
	sid := x.r.Fixed(sessionIDLen)
	if x.bad() {
		return fail(x.w, ErrBadXDR)
	}
	return fail(x.w, h.clients.destroySession(sid))
}

func (h *Handler) destroyClientID(x *compound) uint32 {
	id := x.r.Uint64()
	if x.bad() {
		return fail(x.w, ErrBadXDR)
	}
	c, st := h.clients.destroyClient(id)
	if st == OK {
		h.states.DropClient(c.id)
		h.syncRecord(c.owner)
	}
	return fail(x.w, st)
}

// Channel directions of BIND_CONN_TO_SESSION.
const (
	cdfcFore       = 1
	cdfcBack       = 2
	cdfcForeOrBoth = 3
	cdfcBackOrBoth = 7
	cdfsBoth       = 3
)

func (h *Handler) bindConn(x *compound) uint32 {
	sid := x.r.Fixed(sessionIDLen)
	dir := x.r.Uint32()
	x.r.Bool() // RDMA mode: not served
	if x.bad() {
		return fail(x.w, ErrBadXDR)
	}
	s := h.clients.session(sid)
	if s == nil {
		return fail(x.w, ErrBadSession)
	}
	switch dir {
	case cdfcFore, cdfcBack:
	case cdfcForeOrBoth, cdfcBackOrBoth:
		dir = cdfsBoth
	default:
		return fail(x.w, ErrInval)
	}
	// Every connection may carry every session's fore channel; the back
	// channel is not used yet, so there is nothing to record.
	w := x.w
	w.Uint32(OK)
	w.Fixed(s.id[:])
	w.Uint32(dir)
	w.Bool(false)
	return OK
}

func (h *Handler) reclaimComplete(x *compound) uint32 {
	oneFS := x.r.Bool()
	if x.bad() {
		return fail(x.w, ErrBadXDR)
	}
	if oneFS {
		return fail(x.w, OK) // reclaim is per server, not per file system
	}
	st := h.clients.reclaimComplete(x.sess.client)
	if st == OK {
		h.reclaimCompleted(x.sess.client)
	}
	return fail(x.w, st)
}

// encodeSecinfo writes the one flavor this server accepts.
func encodeSecinfo(w *xdr.Writer) {
	w.Uint32(OK)
	w.Uint32(1)
	w.Uint32(rpc.AuthSys)
}

func (h *Handler) secinfoNoName(x *compound) uint32 {
	style := x.r.Uint32()
	if x.bad() {
		return fail(x.w, ErrBadXDR)
	}
	if style > 1 {
		return fail(x.w, ErrInval)
	}
	if x.cur.empty() {
		return fail(x.w, ErrNoFileHandle)
	}
	encodeSecinfo(x.w)
	x.cur.clear() // SECINFO_NO_NAME consumes the current filehandle
	x.hasCurAttr, x.hasCurAccess = false, false
	return OK
}

func (h *Handler) secinfo(x *compound) uint32 {
	name := x.r.Opaque(MaxPath)
	if x.bad() {
		return fail(x.w, ErrBadXDR)
	}
	var child fhBuf
	if st := h.lookupName(x, name, &child); st != OK {
		return fail(x.w, st)
	}
	encodeSecinfo(x.w)
	x.cur.clear()
	x.hasCurAttr, x.hasCurAccess = false, false
	return OK
}
