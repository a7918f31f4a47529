package nfs4

import (
	"sync"
	"time"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

// Files removed while open (OPEN4_RESULT_PRESERVE_UNLINKED).
//
// Every open stateid holds its file through vfs.Holder, so a file another
// client removes or renames over stays readable and writable through the
// open, as a local open file does; the space is given back at the open's
// end: CLOSE, DESTROY_CLIENTID, a replaced client record, or the lease
// running out. The hold lives in the FS, so a v3 REMOVE is no different
// from a v4 one. Holds count nothing of their own against the limits: one
// per open stateid, and those are bounded per client and per server
// (Options.MaxClientStates, MaxStates); the FS bounds the files it keeps
// open across clients and, past that, OPEN goes on without the flag.
//
// Leases: an expired client keeps its state until it stands in someone's
// way (handler.go). A removed file it holds stands in everyone's way (its
// space stays charged to the volume, and nobody can open it to conflict),
// so those clients are reaped actively: on the first SEQUENCE after a
// quarter lease, and by a timer while holds exist, so an idle server (or
// one only v3 clients use) frees them too.

// holdTable maps open stateids to their holds.
type holdTable struct {
	fs vfs.Holder // nil: the FS keeps nothing, OPEN never sets the flag

	mu       sync.Mutex
	byClient map[uint64]map[[otherLen]byte]vfs.Hold
	n        int           // holds in the table
	timer    *time.Timer   // the sweep, armed while n > 0
	every    time.Duration // its period
}

func newHoldTable(fs vfs.FS, lease time.Duration) *holdTable {
	hr, _ := fs.(vfs.Holder)
	return &holdTable{fs: hr, every: lease / 2}
}

// holdingStates is a States whose opens' ends release their holds.
type holdingStates struct {
	States
	holds *holdTable
}

func (s holdingStates) Close(clientID uint64, sid stateid, file []byte) uint32 {
	st := s.States.Close(clientID, sid, file)
	if st == OK {
		s.holds.release(clientID, sid.other)
	}
	return st
}

func (s holdingStates) DropClient(clientID uint64) {
	s.States.DropClient(clientID)
	s.holds.dropClient(clientID)
}

// holdOpen holds file vh for the open sid of the compound's client and
// reports whether the file is kept if removed. An upgrade of an open keeps
// the hold it has.
//
// OPEN never says PRESERVE_UNLINKED, although held files are kept: holds
// live in memory, so a removed file does not survive a server restart,
// and a Linux client told its files are preserved stops silly-renaming
// the files it removes itself while it has them open. Renamed (.nfsXXXX)
// they survive restarts, which every server upgrade is. Files removed by
// another client, which a client cannot protect, are kept by the hold.
func (h *Handler) holdOpen(x *compound, sid stateid, vh vfs.Handle) bool {
	t := h.holds
	if t.fs == nil {
		return false
	}
	id := x.clientID()
	t.mu.Lock()
	_, ok := t.byClient[id][sid.other]
	t.mu.Unlock()
	if ok {
		return true
	}
	hd, err := t.fs.Hold(x.ctx, vh)
	if err != nil {
		h.log.V(1).Info("open not kept past a removal", "err", err)
		return false
	}
	if !t.add(id, sid.other, hd, h.sweep) {
		hd.Release()
		return true // another OPEN of the same stateid got there first
	}
	// A CLOSE or the client's end may have run between Open and add.
	if h.states.Test(id, stateid{other: sid.other}) != OK {
		t.release(id, sid.other)
		return false
	}
	return true
}

// add records hd for (client, other) unless one is there (then it
// reports false); the first hold arms the sweep.
func (t *holdTable) add(client uint64, other [otherLen]byte, hd vfs.Hold, sweep func()) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.byClient[client]
	if m[other] != nil {
		return false
	}
	if m == nil {
		if t.byClient == nil {
			t.byClient = make(map[uint64]map[[otherLen]byte]vfs.Hold)
		}
		m = make(map[[otherLen]byte]vfs.Hold)
		t.byClient[client] = m
	}
	m[other] = hd
	t.n++
	if t.timer == nil {
		t.timer = time.AfterFunc(t.every, sweep)
	}
	return true
}

func (t *holdTable) release(client uint64, other [otherLen]byte) {
	t.mu.Lock()
	hd := t.byClient[client][other]
	if hd != nil {
		// An emptied map stays for the client's next open; the client's
		// end (dropClient) removes it.
		delete(t.byClient[client], other)
		t.n--
	}
	t.mu.Unlock()
	if hd != nil {
		hd.Release() // may free a file: outside the lock
	}
}

func (t *holdTable) dropClient(client uint64) {
	t.mu.Lock()
	m := t.byClient[client]
	delete(t.byClient, client)
	t.n -= len(m)
	t.mu.Unlock()
	for _, hd := range m {
		hd.Release()
	}
}

// unlinkedHolders lists the clients holding a file with no name left.
func (t *holdTable) unlinkedHolders() []uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var ids []uint64
	for id, m := range t.byClient {
		for _, hd := range m {
			if hd.Unlinked() {
				ids = append(ids, id)
				break
			}
		}
	}
	return ids
}

// sweepInterval is how often a removed file's space is looked for among
// the expired clients (on the lease clock): a quarter lease, so it comes
// back at most 1.25 leases after its holder went silent.
func (h *Handler) sweepInterval() time.Duration { return h.o.LeaseTime / 4 }

// maybeSweepHolds runs sweepHolds if a sweep interval passed since the
// last one; SEQUENCE calls it, so this costs an atomic load per request.
func (h *Handler) maybeSweepHolds(now time.Time) {
	next := h.nextSweep.Load()
	if now.UnixNano() < next || !h.nextSweep.CompareAndSwap(next, now.Add(h.sweepInterval()).UnixNano()) {
		return
	}
	h.sweepHolds()
}

// sweepHolds ends the clients whose lease ran out while they hold a
// removed file, freeing its space, and re-arms its timer while holds
// remain.
func (h *Handler) sweepHolds() {
	now := h.now()
	for _, id := range h.holds.unlinkedHolders() {
		if c := h.clients.expireOne(id, now); c != nil {
			h.states.DropClient(id)
			h.syncRecord(c.owner) // as reapExpired: no reclaim for it after a restart
			h.log.V(1).Info("client lease expired holding a removed file; its state is released", "clientID", id)
		}
	}
	t := h.holds
	t.mu.Lock()
	if t.timer != nil {
		if t.n > 0 {
			t.timer.Reset(t.every)
		} else {
			t.timer.Stop()
			t.timer = nil
		}
	}
	t.mu.Unlock()
}

// expireOne removes and returns client id if its lease ran out by now.
func (t *clientTable) expireOne(id uint64, now time.Time) *client {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.byID[id]
	if c == nil || c.renewed.Load() >= now.Add(-t.o.LeaseTime).UnixNano() {
		return nil
	}
	t.removeClientLocked(c)
	return c
}
