package nfs4

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// Client records and sessions (RFC 8881 sections 2.4 and 2.10). Everything
// here is in memory: a restart forgets every client, which then gets
// STALE_CLIENTID / BADSESSION and starts over; which clients to expect
// back is kept on disk (records.go, grace.go).

// channelAttrs is a channel_attrs4.
type channelAttrs struct {
	headerPad, maxReq, maxResp, maxRespCached, maxOps, maxReqs uint32
}

// slot is one entry of a session's slot table with its reply cache.
type slot struct {
	seq      uint32
	used     bool   // a request has been served on it
	busy     bool   // a request is executing on it
	cached   bool   // reply holds the last reply
	argsHash uint64 // of the last request, to spot a false retry
	reply    []byte
}

type session struct {
	id     [sessionIDLen]byte
	client *client
	fore   channelAttrs
	back   channelAttrs
	flags  uint32

	mu    sync.Mutex // after clientTable.mu
	dead  bool       // destroyed: keep no more replies
	slots []slot
}

type client struct {
	id        uint64
	owner     string
	verf      [8]byte
	confirmed bool
	created   time.Time
	renewed   atomic.Int64 // unix nanoseconds of the last SEQUENCE (or creation)

	csSeq   uint32 // last CREATE_SESSION sequence id accepted
	csReply []byte // its result, for a retransmission

	sessions    map[[sessionIDLen]byte]*session
	reclaimDone bool
}

// clientTable holds every client and session of a Handler.
type clientTable struct {
	o    *Options
	boot uint32 // server instance: in client ids, session ids and stateids

	mu        sync.Mutex
	byID      map[uint64]*client
	confirmed map[string]*client // by owner
	pending   map[string]*client // unconfirmed, by owner
	sessions  map[[sessionIDLen]byte]*session
	cacheUsed atomic.Int64 // bytes of cached replies, bounded by o.ReplyCacheBytes
}

func newClientTable(o *Options, boot uint32) *clientTable {
	return &clientTable{
		o:         o,
		boot:      boot,
		byID:      make(map[uint64]*client),
		confirmed: make(map[string]*client),
		pending:   make(map[string]*client),
		sessions:  make(map[[sessionIDLen]byte]*session),
	}
}

// exchangeID is EXCHANGE_ID's client-record logic (RFC 8881 section
// 18.35.5, without principals: AUTH_SYS gives no principal worth
// checking). It returns the record and whether it is confirmed.
func (t *clientTable) exchangeID(owner []byte, verf [8]byte, update bool, now time.Time) (*client, uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	conf := t.confirmed[string(owner)]
	if update {
		switch {
		case conf == nil:
			return nil, ErrNoEnt
		case conf.verf != verf:
			return nil, ErrNotSame
		}
		return conf, OK
	}
	if conf != nil && conf.verf == verf {
		return conf, OK
	}
	// A new client, or one that restarted (new verifier): an unconfirmed
	// record replaces any earlier unconfirmed one. The confirmed record of
	// a restarted client goes when the new one is confirmed.
	if old := t.pending[string(owner)]; old != nil {
		delete(t.byID, old.id)
		delete(t.pending, old.owner)
	}
	if len(t.byID) >= t.o.MaxClients {
		// Full of live clients (the caller reaped expired ones).
		return nil, ErrDelay
	}
	c := &client{
		id:       t.newClientIDLocked(),
		owner:    string(owner),
		verf:     verf,
		created:  now,
		sessions: make(map[[sessionIDLen]byte]*session),
	}
	c.renewed.Store(now.UnixNano())
	t.byID[c.id] = c
	t.pending[c.owner] = c
	return c, OK
}

// expire removes the clients whose lease has run out and returns them,
// for the caller to drop their state and records.
func (t *clientTable) expire(now time.Time) []*client {
	t.mu.Lock()
	defer t.mu.Unlock()
	var gone []*client
	deadline := now.Add(-t.o.LeaseTime).UnixNano()
	for _, c := range t.byID {
		if c.renewed.Load() < deadline {
			t.removeClientLocked(c)
			gone = append(gone, c)
		}
	}
	return gone
}

// newClientIDLocked returns an unused client id: the server instance and
// a random number, so that one client cannot guess another's id (and
// destroy it, or create sessions on it).
func (t *clientTable) newClientIDLocked() uint64 {
	for {
		id := uint64(t.boot)<<32 | uint64(randUint32())
		if t.byID[id] == nil && uint32(id) != 0 {
			return id
		}
	}
}

func randUint32() uint32 {
	var b [4]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

// createSession is CREATE_SESSION (RFC 8881 section 18.36.4). encode
// writes the result body of a new session, which is kept for a
// retransmission. It returns that body, or a status. replaced is the
// confirmed record of a restarted client that this confirmation replaced:
// the caller drops its state.
func (t *clientTable) createSession(clientID uint64, seq uint32, fore, back channelAttrs, flags uint32,
	encode func(s *session, seq uint32) []byte) (body []byte, replaced *client, status uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.byID[clientID]
	if c == nil {
		return nil, nil, ErrStaleClientID
	}
	switch seq {
	case c.csSeq:
		if c.csReply == nil {
			return nil, nil, ErrSeqMisordered
		}
		return c.csReply, nil, OK
	case c.csSeq + 1:
	default:
		return nil, nil, ErrSeqMisordered
	}
	if len(t.sessions) >= t.o.MaxSessions || len(c.sessions) >= maxSessionsPerClient {
		return nil, nil, ErrNoSpc
	}
	s := &session{client: c, fore: fore, back: back, flags: flags, slots: make([]slot, fore.maxReqs)}
	// The client id and 8 random bytes: a session id is a capability
	// (whoever presents it acts as that client), so it must not be
	// guessable.
	binary.BigEndian.PutUint64(s.id[:], c.id)
	for {
		rand.Read(s.id[8:])
		if t.sessions[s.id] == nil {
			break
		}
	}
	if !c.confirmed {
		// Confirming a restarted client's new record ends the old one
		// and its state (RFC 8881 section 18.35.5, case 5).
		if old := t.confirmed[c.owner]; old != nil {
			t.removeClientLocked(old)
			replaced = old
		}
		delete(t.pending, c.owner)
		c.confirmed = true
		t.confirmed[c.owner] = c
	}
	t.sessions[s.id] = s
	c.sessions[s.id] = s
	c.csSeq = seq
	c.csReply = encode(s, seq)
	return c.csReply, replaced, OK
}

const maxSessionsPerClient = 16

func (t *clientTable) removeClientLocked(c *client) {
	for id, s := range c.sessions {
		t.dropSessionLocked(s)
		delete(t.sessions, id)
	}
	delete(t.byID, c.id)
	if t.confirmed[c.owner] == c {
		delete(t.confirmed, c.owner)
	}
	if t.pending[c.owner] == c {
		delete(t.pending, c.owner)
	}
}

// dropSessionLocked returns the session's cached replies to the budget.
func (t *clientTable) dropSessionLocked(s *session) {
	s.mu.Lock()
	s.dead = true
	for i := range s.slots {
		t.cacheUsed.Add(-int64(len(s.slots[i].reply)))
		s.slots[i].reply = nil
		s.slots[i].cached = false
	}
	s.mu.Unlock()
	delete(s.client.sessions, s.id)
}

func (t *clientTable) session(id []byte) *session {
	var k [sessionIDLen]byte
	copy(k[:], id)
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sessions[k]
}

func (t *clientTable) destroySession(id []byte) uint32 {
	var k [sessionIDLen]byte
	copy(k[:], id)
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.sessions[k]
	if s == nil {
		return ErrBadSession
	}
	t.dropSessionLocked(s)
	delete(t.sessions, k)
	return OK
}

// destroyClient is DESTROY_CLIENTID. It returns the client removed, whose
// state the caller drops.
func (t *clientTable) destroyClient(id uint64) (*client, uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.byID[id]
	switch {
	case c == nil:
		return nil, ErrStaleClientID
	case len(c.sessions) > 0:
		return nil, ErrClientIDBusy
	}
	t.removeClientLocked(c)
	return c, OK
}

func (t *clientTable) reclaimComplete(c *client) uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c.reclaimDone {
		return ErrCompleteAlready
	}
	c.reclaimDone = true
	return OK
}

// seqResult is what SEQUENCE decided for a request.
type seqResult int

const (
	seqNew    seqResult = iota // execute it
	seqReplay                  // send the cached reply
)

// sequence applies SEQUENCE's slot rules (RFC 8881 section 2.10.6.1). For
// seqNew the slot is marked busy until finish; for seqReplay reply holds a
// copy of the cached reply.
func (t *clientTable) sequence(s *session, slotID, seq uint32, args []byte, now time.Time) (res seqResult, reply []byte, status uint32) {
	h := hashArgs(args)
	s.mu.Lock()
	defer s.mu.Unlock()
	if slotID >= uint32(len(s.slots)) {
		return 0, nil, ErrBadSlot
	}
	sl := &s.slots[slotID]
	switch {
	case sl.busy:
		if seq == sl.seq {
			return 0, nil, ErrDelay // the original is still executing
		}
		return 0, nil, ErrSeqMisordered
	case sl.used && seq == sl.seq:
		if h != sl.argsHash {
			return 0, nil, ErrSeqFalseRetry
		}
		if !sl.cached {
			return 0, nil, ErrRetryUncachedRep
		}
		return seqReplay, bytes.Clone(sl.reply), OK
	case seq == sl.seq+1:
	default:
		return 0, nil, ErrSeqMisordered
	}
	s.client.renewed.Store(now.UnixNano())
	t.cacheUsed.Add(-int64(len(sl.reply)))
	*sl = slot{seq: seq, used: true, busy: true, argsHash: h, reply: sl.reply[:0]}
	return seqNew, nil, OK
}

// finish records the reply to the request executing on slotID and frees
// the slot. Replies beyond the per-reply cap or the server's budget, or
// nil (a reply that cannot be kept), are not kept: a retransmission of
// them gets RETRY_UNCACHED_REP.
func (t *clientTable) finish(s *session, slotID uint32, reply []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sl := &s.slots[slotID]
	sl.busy = false
	n := int64(len(reply))
	if reply == nil || n > maxCachedReply {
		sl.reply = nil
		return
	}
	if s.dead || t.cacheUsed.Add(n) > t.o.ReplyCacheBytes {
		if !s.dead {
			t.cacheUsed.Add(-n)
		}
		sl.reply = nil
		return
	}
	sl.reply = append(sl.reply[:0], reply...)
	sl.cached = true
}

// maxCachedReply bounds one cached reply: enough for any reply but READ
// and READDIR data, which are safe to re-execute anyway.
const maxCachedReply = 8 << 10

// hashArgs fingerprints a request for false-retry detection (which RFC
// 8881 leaves optional): its length and first 4 KiB, which hold every
// argument but bulk data. Hashing a 1 MiB WRITE whole would cost more
// than a tenth of serving it.
func hashArgs(b []byte) uint64 {
	return maphash.Bytes(argsSeed, b[:min(len(b), 4096)]) ^ uint64(len(b))
}

var argsSeed = maphash.MakeSeed()
