package nfs4

import (
	"encoding/binary"
	"sync"
)

// States is the open state of the server: share reservations and the
// stateids that name them. The handler reaches it only through this
// interface, so byte-range locks, lease expiry and reclaim can be added
// (or the table swapped for a durable one) without touching the ops.
// Files are identified by their vfs handle.
type States interface {
	// Open opens file for owner (of clientID) with the given access and
	// deny bits, or upgrades owner's existing open of it. It returns the
	// open's stateid or ErrShareDenied.
	Open(clientID uint64, owner []byte, file string, access, deny uint32) (stateid, uint32)
	// Downgrade narrows an open to access and deny, which must be subsets
	// of what it has (ErrInval otherwise).
	Downgrade(clientID uint64, sid stateid, file string, access, deny uint32) (stateid, uint32)
	// Close ends an open.
	Close(clientID uint64, sid stateid, file string) uint32
	// Check validates a stateid presented for I/O on file: want is
	// ShareAccessRead or ShareAccessWrite. Special stateids are checked
	// against other clients' deny bits (ErrLocked).
	Check(clientID uint64, sid stateid, file string, want uint32) uint32
	// Test is TEST_STATEID's verdict on one stateid.
	Test(clientID uint64, sid stateid) uint32
	// Free is FREE_STATEID.
	Free(clientID uint64, sid stateid) uint32
	// DropClient forgets all of a client's state.
	DropClient(clientID uint64)
}

// openState is one open-owner's open of one file.
type openState struct {
	other        [otherLen]byte
	seq          uint32
	client       uint64
	owner        string
	file         string
	access, deny uint32
}

// stateTable is the in-memory States.
type stateTable struct {
	boot uint32
	max  int

	mu     sync.Mutex
	next   uint64
	byID   map[[otherLen]byte]*openState
	byFile map[string][]*openState
}

func newStateTable(boot uint32, max int) *stateTable {
	return &stateTable{
		boot:   boot,
		max:    max,
		byID:   make(map[[otherLen]byte]*openState),
		byFile: make(map[string][]*openState),
	}
}

func (t *stateTable) Open(clientID uint64, owner []byte, file string, access, deny uint32) (stateid, uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var mine *openState
	for _, o := range t.byFile[file] {
		if o.client == clientID && o.owner == string(owner) {
			mine = o
			continue
		}
		if access&o.deny != 0 || deny&o.access != 0 {
			return stateid{}, ErrShareDenied
		}
	}
	if mine != nil {
		mine.access |= access
		mine.deny |= deny
		mine.seq++
		return stateid{seq: mine.seq, other: mine.other}, OK
	}
	if len(t.byID) >= t.max {
		return stateid{}, ErrResource
	}
	t.next++
	o := &openState{seq: 1, client: clientID, owner: string(owner), file: file, access: access, deny: deny}
	binary.BigEndian.PutUint32(o.other[:], t.boot)
	binary.BigEndian.PutUint64(o.other[4:], t.next)
	t.byID[o.other] = o
	t.byFile[file] = append(t.byFile[file], o)
	return stateid{seq: 1, other: o.other}, OK
}

// findLocked resolves sid for clientID, checking its seqid (0 means the
// current one, RFC 8881 section 8.2.2).
func (t *stateTable) findLocked(clientID uint64, sid stateid) (*openState, uint32) {
	o := t.byID[sid.other]
	if o == nil || o.client != clientID {
		if binary.BigEndian.Uint32(sid.other[:]) != t.boot {
			return nil, ErrStaleStateID
		}
		return nil, ErrBadStateID
	}
	switch {
	case sid.seq == 0 || sid.seq == o.seq:
		return o, OK
	case seqBefore(sid.seq, o.seq):
		return nil, ErrOldStateID
	}
	return nil, ErrBadStateID
}

// seqBefore compares seqids with wraparound.
func seqBefore(a, b uint32) bool { return int32(a-b) < 0 }

func (t *stateTable) Downgrade(clientID uint64, sid stateid, file string, access, deny uint32) (stateid, uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	o, st := t.findLocked(clientID, sid)
	if st != OK {
		return stateid{}, st
	}
	if o.file != file {
		return stateid{}, ErrBadStateID
	}
	if access == 0 || access&^o.access != 0 || deny&^o.deny != 0 {
		return stateid{}, ErrInval
	}
	o.access, o.deny = access, deny
	o.seq++
	return stateid{seq: o.seq, other: o.other}, OK
}

func (t *stateTable) Close(clientID uint64, sid stateid, file string) uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	o, st := t.findLocked(clientID, sid)
	if st != OK {
		return st
	}
	if o.file != file {
		return ErrBadStateID
	}
	t.removeLocked(o)
	return OK
}

func (t *stateTable) removeLocked(o *openState) {
	delete(t.byID, o.other)
	list := t.byFile[o.file]
	for i, p := range list {
		if p == o {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(t.byFile, o.file)
	} else {
		t.byFile[o.file] = list
	}
}

func (t *stateTable) Check(clientID uint64, sid stateid, file string, want uint32) uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if sid.special() {
		for _, o := range t.byFile[file] {
			if o.deny&want != 0 {
				return ErrLocked
			}
		}
		return OK
	}
	o, st := t.findLocked(clientID, sid)
	if st != OK {
		return st
	}
	if o.file != file {
		return ErrBadStateID
	}
	// Reading through a write-only open is allowed: a client writing a
	// partial page reads the rest of it first.
	if want == ShareAccessWrite && o.access&ShareAccessWrite == 0 {
		return ErrOpenMode
	}
	return OK
}

func (t *stateTable) Test(clientID uint64, sid stateid) uint32 {
	if sid.special() || sid == currentStateid {
		return ErrBadStateID
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	_, st := t.findLocked(clientID, sid)
	return st
}

func (t *stateTable) Free(clientID uint64, sid stateid) uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, st := t.findLocked(clientID, sid)
	if st != OK {
		return st
	}
	// An open stateid is freed by CLOSE; while open it holds a share
	// reservation.
	return ErrLocksHeld
}

func (t *stateTable) DropClient(clientID uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, o := range t.byID {
		if o.client == clientID {
			t.removeLocked(o)
		}
	}
}
