package nfs4

import (
	"cmp"
	"encoding/binary"
	"math"
	"slices"
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
	Close(clientID uint64, sid stateid, file []byte) uint32
	// Check validates a stateid presented for I/O on file: want is
	// ShareAccessRead or ShareAccessWrite. Special stateids are checked
	// against other clients' deny bits (ErrLocked).
	Check(clientID uint64, sid stateid, file []byte, want uint32) uint32
	// Test is TEST_STATEID's verdict on one stateid.
	Test(clientID uint64, sid stateid) uint32
	// Free is FREE_STATEID.
	Free(clientID uint64, sid stateid) uint32
	// DropClient forgets all of a client's state.
	DropClient(clientID uint64)

	// Lock takes or changes a byte-range lock (POSIX semantics: a lock
	// owner's locks merge, split and change type in place). On conflict
	// it returns ErrDenied and the conflicting lock.
	Lock(clientID uint64, req *LockRequest) (stateid, *LockDenied, uint32)
	// LockTest reports a lock that would conflict with req, without
	// taking one (LOCKT).
	LockTest(clientID uint64, owner []byte, file string, r LockRange) (*LockDenied, uint32)
	// Unlock releases a range of a lock stateid's locks (LOCKU).
	Unlock(clientID uint64, sid stateid, file string, r LockRange) (stateid, uint32)
}

// Lock types of a LockRange.
const (
	ReadLock  = 1
	WriteLock = 2
)

// LockRange is a byte range [Start, End] (End inclusive; MaxUint64 is
// "to the end of the file") with a lock type.
type LockRange struct {
	Start, End uint64
	Type       uint32
}

func (r LockRange) overlaps(o LockRange) bool { return r.Start <= o.End && o.Start <= r.End }

// LockRequest is a LOCK: either a new lock owner with the open it locks
// under, or an existing lock stateid.
type LockRequest struct {
	NewOwner bool
	Open     stateid // with NewOwner
	Owner    []byte  // with NewOwner
	LockSID  stateid // without NewOwner
	File     string
	Range    LockRange
}

// LockDenied describes the lock that refused a LOCK or LOCKT.
type LockDenied struct {
	Range    LockRange
	ClientID uint64
	Owner    string
}

// openState is one open-owner's open of one file.
type openState struct {
	other        [otherLen]byte
	seq          uint32
	client       uint64
	owner        string
	file         string
	access, deny uint32
	locks        []*lockState // lock stateids opened under this open
}

// lockState is one lock-owner's locks on one file, under one open.
type lockState struct {
	other  [otherLen]byte
	seq    uint32
	client uint64
	owner  string
	open   *openState
	ranges []LockRange // sorted, disjoint, adjacent ones of a type merged
}

// maxRanges bounds the ranges of one lock owner on one file.
const maxRanges = 4096

// errStateLimit answers a request for state past a limit. RESOURCE is not
// an NFSv4.1 status and DELAY would have the client retry for ever; NOSPC
// reaches the application as ENOSPC, a clear "no room".
const errStateLimit = ErrNoSpc

// stateTable is the in-memory States.
type stateTable struct {
	boot      uint32
	max       int // stateids in the table
	maxClient int // stateids of one client, so one cannot starve the rest

	mu     sync.Mutex
	next   uint64
	byID   map[[otherLen]byte]*openState
	locks  map[[otherLen]byte]*lockState
	byFile map[string][]*openState
	count  map[uint64]int // stateids per client
}

func newStateTable(boot uint32, max, maxClient int) *stateTable {
	return &stateTable{
		boot:      boot,
		max:       max,
		maxClient: maxClient,
		count:     make(map[uint64]int),
		byID:      make(map[[otherLen]byte]*openState),
		locks:     make(map[[otherLen]byte]*lockState),
		byFile:    make(map[string][]*openState),
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
	if !t.reserveLocked(clientID) {
		return stateid{}, errStateLimit
	}
	o := &openState{seq: 1, client: clientID, owner: string(owner), file: file, access: access, deny: deny, other: t.newOther()}
	t.byID[o.other] = o
	t.byFile[file] = append(t.byFile[file], o)
	return stateid{seq: 1, other: o.other}, OK
}

// reserveLocked counts a new stateid of clientID, if the limits allow.
func (t *stateTable) reserveLocked(clientID uint64) bool {
	if len(t.byID)+len(t.locks) >= t.max || t.count[clientID] >= t.maxClient {
		return false
	}
	t.count[clientID]++
	return true
}

func (t *stateTable) releaseLocked(clientID uint64) {
	if t.count[clientID]--; t.count[clientID] <= 0 {
		delete(t.count, clientID)
	}
}

func (t *stateTable) newOther() [otherLen]byte {
	var other [otherLen]byte
	t.next++
	binary.BigEndian.PutUint32(other[:], t.boot)
	binary.BigEndian.PutUint64(other[4:], t.next)
	return other
}

// checkSeq checks a stateid's seqid against the current one.
func checkSeq(got, cur uint32) uint32 {
	switch {
	case got == 0 || got == cur:
		return OK
	case seqBefore(got, cur):
		return ErrOldStateID
	}
	return ErrBadStateID
}

// notFound is the status of a stateid that names nothing of clientID's,
// whether from this server instance or an earlier one: NFSv4.1 replaced
// STALE_STATEID by BAD_STATEID (RFC 8881), and the Linux
// client treats the old status as a reason to recover the whole client.
func (t *stateTable) notFound(sid stateid) uint32 { return ErrBadStateID }

// findAnyLocked resolves sid to an open or a lock stateid.
func (t *stateTable) findAnyLocked(clientID uint64, sid stateid) (*openState, *lockState, uint32) {
	if l := t.locks[sid.other]; l != nil && l.client == clientID {
		if st := checkSeq(sid.seq, l.seq); st != OK {
			return nil, nil, st
		}
		return l.open, l, OK
	}
	o, st := t.findLocked(clientID, sid)
	return o, nil, st
}

// findLocked resolves sid for clientID, checking its seqid (0 means the
// current one, RFC 8881 section 8.2.2).
func (t *stateTable) findLocked(clientID uint64, sid stateid) (*openState, uint32) {
	o := t.byID[sid.other]
	if o == nil || o.client != clientID {
		return nil, t.notFound(sid)
	}
	if st := checkSeq(sid.seq, o.seq); st != OK {
		return nil, st
	}
	return o, OK
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

func (t *stateTable) Close(clientID uint64, sid stateid, file []byte) uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	o, st := t.findLocked(clientID, sid)
	if st != OK {
		return st
	}
	if o.file != string(file) {
		return ErrBadStateID
	}
	t.removeLocked(o)
	return OK
}

// removeLocked ends an open and the locks taken under it.
func (t *stateTable) removeLocked(o *openState) {
	for _, l := range o.locks {
		delete(t.locks, l.other)
		t.releaseLocked(l.client)
	}
	o.locks = nil
	delete(t.byID, o.other)
	t.releaseLocked(o.client)
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

func (t *stateTable) Check(clientID uint64, sid stateid, file []byte, want uint32) uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if sid.special() {
		for _, o := range t.byFile[string(file)] {
			if o.deny&want != 0 {
				return ErrLocked
			}
		}
		return OK
	}
	o, _, st := t.findAnyLocked(clientID, sid)
	if st != OK {
		return st
	}
	if o.file != string(file) {
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
	_, _, st := t.findAnyLocked(clientID, sid)
	return st
}

func (t *stateTable) Free(clientID uint64, sid stateid) uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, l, st := t.findAnyLocked(clientID, sid)
	if st != OK {
		return st
	}
	// An open stateid is freed by CLOSE (while open it holds a share
	// reservation), a lock stateid once it holds no locks.
	if l == nil || len(l.ranges) > 0 {
		return ErrLocksHeld
	}
	t.dropLockLocked(l)
	return OK
}

func (t *stateTable) dropLockLocked(l *lockState) {
	delete(t.locks, l.other)
	t.releaseLocked(l.client)
	o := l.open
	for i, p := range o.locks {
		if p == l {
			o.locks = append(o.locks[:i], o.locks[i+1:]...)
			break
		}
	}
}

// conflictLocked finds a lock of another owner on file that conflicts
// with r.
func (t *stateTable) conflictLocked(clientID uint64, owner, file string, r LockRange) *LockDenied {
	for _, o := range t.byFile[file] {
		for _, l := range o.locks {
			if l.client == clientID && l.owner == owner {
				continue
			}
			for _, h := range l.ranges {
				if h.overlaps(r) && (h.Type == WriteLock || r.Type == WriteLock) {
					return &LockDenied{Range: h, ClientID: l.client, Owner: l.owner}
				}
			}
		}
	}
	return nil
}

func (t *stateTable) Lock(clientID uint64, req *LockRequest) (stateid, *LockDenied, uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var l *lockState
	if req.NewOwner {
		o, st := t.findLocked(clientID, req.Open)
		if st != OK {
			return stateid{}, nil, st
		}
		if o.file != req.File {
			return stateid{}, nil, ErrBadStateID
		}
		for _, p := range o.locks {
			if p.owner == string(req.Owner) {
				l = p // the owner locked under this open before
			}
		}
		if l == nil {
			if st := t.lockModeLocked(o, req.Range.Type); st != OK {
				return stateid{}, nil, st
			}
			if d := t.conflictLocked(clientID, string(req.Owner), req.File, req.Range); d != nil {
				return stateid{}, d, ErrDenied
			}
			if !t.reserveLocked(clientID) {
				return stateid{}, nil, errStateLimit
			}
			l = &lockState{other: t.newOther(), client: clientID, owner: string(req.Owner), open: o}
			t.locks[l.other] = l
			o.locks = append(o.locks, l)
		}
	} else {
		p := t.locks[req.LockSID.other]
		if p == nil || p.client != clientID {
			return stateid{}, nil, t.notFound(req.LockSID)
		}
		if st := checkSeq(req.LockSID.seq, p.seq); st != OK {
			return stateid{}, nil, st
		}
		if p.open.file != req.File {
			return stateid{}, nil, ErrBadStateID
		}
		l = p
	}
	if st := t.lockModeLocked(l.open, req.Range.Type); st != OK {
		return stateid{}, nil, st
	}
	if d := t.conflictLocked(clientID, l.owner, req.File, req.Range); d != nil {
		return stateid{}, d, ErrDenied
	}
	ranges := setRange(l.ranges, req.Range)
	if len(ranges) > maxRanges {
		return stateid{}, nil, errStateLimit
	}
	l.ranges = ranges
	l.seq++
	return stateid{seq: l.seq, other: l.other}, nil, OK
}

// lockModeLocked checks that open o allows a lock of type typ: a read
// lock needs read access, a write lock write access.
func (t *stateTable) lockModeLocked(o *openState, typ uint32) uint32 {
	if typ == ReadLock && o.access&ShareAccessRead == 0 || typ == WriteLock && o.access&ShareAccessWrite == 0 {
		return ErrOpenMode
	}
	return OK
}

func (t *stateTable) LockTest(clientID uint64, owner []byte, file string, r LockRange) (*LockDenied, uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if d := t.conflictLocked(clientID, string(owner), file, r); d != nil {
		return d, ErrDenied
	}
	return nil, OK
}

func (t *stateTable) Unlock(clientID uint64, sid stateid, file string, r LockRange) (stateid, uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.locks[sid.other]
	if l == nil || l.client != clientID {
		return stateid{}, t.notFound(sid)
	}
	if st := checkSeq(sid.seq, l.seq); st != OK {
		return stateid{}, st
	}
	if l.open.file != file {
		return stateid{}, ErrBadStateID
	}
	r.Type = 0
	ranges := setRange(l.ranges, r)
	if len(ranges) > maxRanges {
		// Unlocking the middle of a range splits it.
		return stateid{}, errStateLimit
	}
	l.ranges = ranges
	l.seq++
	return stateid{seq: l.seq, other: l.other}, OK
}

// setRange returns rs with r applied: the part of every range that r
// covers is replaced by r (Type 0 unlocks it), and neighbours of one type
// merge.
func setRange(rs []LockRange, r LockRange) []LockRange {
	out := make([]LockRange, 0, len(rs)+2)
	for _, h := range rs {
		if !h.overlaps(r) {
			out = append(out, h)
			continue
		}
		if h.Start < r.Start {
			out = append(out, LockRange{h.Start, r.Start - 1, h.Type})
		}
		if h.End > r.End {
			out = append(out, LockRange{r.End + 1, h.End, h.Type})
		}
	}
	if r.Type != 0 {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b LockRange) int { return cmp.Compare(a.Start, b.Start) })
	merged := out[:0]
	for _, h := range out {
		if n := len(merged); n > 0 && merged[n-1].Type == h.Type && merged[n-1].End != math.MaxUint64 && merged[n-1].End+1 == h.Start {
			merged[n-1].End = h.End
			continue
		}
		merged = append(merged, h)
	}
	return merged
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
