package nfs4

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

// The grace period after a restart (RFC 8881 sections 8.4.2 and 18.51).
// Opens and locks live in memory; what survives a restart is the list of
// clients that may have held some (records.go). If that list is not
// empty, the server starts in a grace period of one lease: clients in the
// list take their opens and locks back (OPEN with CLAIM_PREVIOUS, LOCK
// with reclaim), and everything that could take state another client is
// about to reclaim (other OPENs and LOCKs, LOCKT, REMOVE, RENAME) waits
// with GRACE. The period ends as soon as every listed client has sent
// RECLAIM_COMPLETE, or after the lease; the records of clients that did
// not come back are dropped then.

type grace struct {
	active atomic.Bool // checked on every OPEN and LOCK: no lock after grace

	mu       sync.Mutex // after clientTable.mu
	end      time.Time
	recorded map[string]bool // owners of the records found at start
	waiting  map[string]bool // those of them that have not completed reclaim
	timer    *time.Timer
}

// startGrace reads the client records and, if there are any, starts the
// grace period. Without a StateDir there are no records and no grace:
// every reclaim gets NO_GRACE.
func (h *Handler) startGrace() {
	if h.o.StateDir == "" {
		return
	}
	r, owners, err := openRecords(h.o.StateDir, h.log)
	if err != nil {
		h.log.Error(err, "NFSv4 client records unavailable: after a restart clients cannot reclaim their opens and locks")
		return
	}
	h.records = r
	if len(owners) == 0 {
		return
	}
	g := &h.grace
	g.recorded = make(map[string]bool, len(owners))
	g.waiting = make(map[string]bool, len(owners))
	for _, o := range owners {
		g.recorded[o], g.waiting[o] = true, true
	}
	g.end = h.now().Add(h.o.LeaseTime)
	g.active.Store(true)
	// Without this, the records of clients that never return would go
	// only at the next request after the period.
	g.timer = time.AfterFunc(h.o.LeaseTime, func() { h.inGrace() })
	h.log.Info("NFSv4 grace period: known clients may reclaim their opens and locks", "clients", len(owners), "until", g.end)
}

// inGrace reports whether the grace period runs, ending it once its time
// is up.
func (h *Handler) inGrace() bool {
	g := &h.grace
	if !g.active.Load() {
		return false
	}
	g.mu.Lock()
	running := h.now().Before(g.end)
	g.mu.Unlock()
	if !running {
		h.endGrace("the grace period ran out")
	}
	return running
}

// endGrace ends the grace period and drops the records of the clients
// that did not reclaim.
func (h *Handler) endGrace(why string) {
	g := &h.grace
	g.mu.Lock()
	if !g.active.Load() {
		g.mu.Unlock()
		return
	}
	g.active.Store(false)
	gone := g.waiting
	g.waiting = nil
	if g.timer != nil {
		g.timer.Stop()
	}
	g.mu.Unlock()
	for o := range gone {
		h.syncRecord(o)
	}
	h.log.Info("NFSv4 grace period over: "+why, "clientsNotBack", len(gone))
}

// reclaimStatus says whether client c may reclaim state now: OK, or
// NO_GRACE outside the grace period or after c's RECLAIM_COMPLETE
// (section 18.51.3), or RECLAIM_BAD for a client the records do not know,
// which can have had nothing to reclaim (section 15.1.9.3; Linux's nfsd
// answers the same).
func (h *Handler) reclaimStatus(c *client) uint32 {
	if !h.inGrace() {
		return ErrNoGrace
	}
	g := &h.grace
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.waiting[c.owner]:
		return OK
	case g.recorded[c.owner]:
		return ErrNoGrace
	}
	return ErrReclaimBad
}

// graceStatus is the status of an operation that may not run during the
// grace period: GRACE during it, else OK.
func (h *Handler) graceStatus() uint32 {
	if h.inGrace() {
		return ErrGrace
	}
	return OK
}

// lockGrace is LOCK's check: a reclaim needs the grace period, anything
// else must wait for its end.
func (h *Handler) lockGrace(x *compound, reclaim bool) uint32 {
	if reclaim {
		return h.reclaimStatus(x.sess.client)
	}
	return h.graceStatus()
}

// reclaimCompleted notes c's RECLAIM_COMPLETE; the last one of the
// recorded clients ends the grace period.
func (h *Handler) reclaimCompleted(c *client) {
	g := &h.grace
	if !g.active.Load() {
		return
	}
	g.mu.Lock()
	delete(g.waiting, c.owner)
	left := len(g.waiting)
	g.mu.Unlock()
	if left == 0 {
		h.endGrace("every known client has reclaimed")
	}
}

// syncRecord makes owner's durable record match memory: it exists while a
// client of that owner is confirmed or may still reclaim. Callers call it
// after each change; the records' lock orders the files' changes as the
// decisions were made.
func (h *Handler) syncRecord(owner string) {
	r := h.records
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	h.clients.mu.Lock()
	want := h.clients.confirmed[owner] != nil
	h.clients.mu.Unlock()
	if !want {
		h.grace.mu.Lock()
		want = h.grace.waiting[owner]
		h.grace.mu.Unlock()
	}
	if err := r.setLocked(owner, want); err != nil {
		// The client keeps working; only its reclaim after a restart
		// is at stake.
		h.log.Error(err, "NFSv4 client record not updated", "owner", owner, "present", want)
	}
}

// recordClient records the client of a new session, if it is confirmed.
func (h *Handler) recordClient(clientID uint64) {
	h.clients.mu.Lock()
	c := h.clients.byID[clientID]
	h.clients.mu.Unlock()
	if c != nil {
		h.syncRecord(c.owner)
	}
}

// openReclaim is OPEN with CLAIM_PREVIOUS: the client had the current
// file open before the server restarted and takes that open back, with
// its owner, access and deny bits.
func (h *Handler) openReclaim(x *compound, owner []byte, acc, deny uint32) uint32 {
	if st := h.reclaimStatus(x.sess.client); st != OK {
		return fail(x.w, st)
	}
	vh, st := x.curVol(ErrIsDir)
	if st != OK {
		return fail(x.w, st)
	}
	a, err := h.fs.GetAttr(x.ctx, vh)
	if err != nil {
		return h.failErr(x, err)
	}
	if st := openableType(a.Type); st != OK {
		return fail(x.w, st)
	}
	// Permissions are checked again: a reclaim is an open, and the
	// records vouch only for the client, not for what it names.
	if _, st := h.openAccess(x, vh, acc); st != OK {
		return fail(x.w, st)
	}
	sid, st := h.states.Open(x.clientID(), owner, string(vh), acc, deny)
	if st == ErrShareDenied {
		st = ErrReclaimConflict // someone else reclaimed a conflicting open
	}
	if st != OK {
		return fail(x.w, st)
	}
	flags := uint32(openResultLockTypePOSIX)
	h.holdOpen(x, sid, vh)                              // a reclaimed open holds its file too (hold.go)
	encodeOpenOK(x.w, sid, &vfs.Wcc{}, flags, bitmap{}) // no directory was involved
	x.curSID, x.hasCurSID = sid, true
	return OK
}
