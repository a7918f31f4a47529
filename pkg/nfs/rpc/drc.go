package rpc

import (
	"hash/crc32"
	"net/netip"
	"sync"
	"time"

	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
)

// Duplicate request cache defaults. Replies of non-idempotent NFS
// procedures are small, so a few MiB hold a thousand of them.
const (
	drcMaxEntries = 1024
	drcMaxBytes   = 4 << 20
	drcMaxReply   = 64 << 10 // larger replies are not cached
	drcTTL        = 5 * time.Minute
	drcSumLen     = 256 // like knfsd, checksum only the start of the args
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// drcKey identifies a call: a retransmission has the same client address,
// xid and procedure, and the same argument bytes. The checksum guards
// against xid reuse by a client that rebooted or wrapped around.
type drcKey struct {
	addr                  netip.AddrPort
	xid, prog, vers, proc uint32
	argLen                uint32
	sum                   uint32
}

func makeDRCKey(addr netip.AddrPort, c *Call) drcKey {
	return drcKey{
		addr: addr, xid: c.XID, prog: c.Prog, vers: c.Vers, proc: c.Proc,
		argLen: uint32(len(c.Args)),
		sum:    crc32.Checksum(c.Args[:min(len(c.Args), drcSumLen)], castagnoli),
	}
}

type drcEntry struct {
	key        drcKey
	done       bool
	reply      []byte // whole reply record, mark included
	at         time.Time
	prev, next *drcEntry // LRU list of completed entries
}

type drcState int

const (
	drcNew        drcState = iota // caller must run the call and then finish
	drcInProgress                 // the original is still running: drop
	drcReplay                     // the cached reply was written to w
)

// drc is a duplicate request cache with LRU eviction of completed entries,
// bounded by count and bytes, and a TTL. Entries still in progress are not
// evicted; their number is bounded by the server's in-flight limit.
type drc struct {
	mu         sync.Mutex
	m          map[drcKey]*drcEntry
	head, tail *drcEntry // most and least recently used completed entries
	n, bytes   int
	maxEntries int
	maxBytes   int
	ttl        time.Duration
	now        func() time.Time
	free       *drcEntry // recycled entries, linked by next
}

func newDRC() *drc {
	return &drc{
		m:          make(map[drcKey]*drcEntry),
		maxEntries: drcMaxEntries,
		maxBytes:   drcMaxBytes,
		ttl:        drcTTL,
		now:        time.Now,
	}
}

// begin looks k up. For a fresh call it records k as in progress. For a
// completed one still in the cache it appends a copy of the reply to w.
func (d *drc) begin(k drcKey, w *xdr.Writer) drcState {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.m[k]; e != nil {
		if !e.done {
			return drcInProgress
		}
		if d.now().Sub(e.at) < d.ttl {
			d.unlink(e)
			d.pushFront(e)
			w.Fixed(e.reply) // records are whole XDR words: no padding added
			return drcReplay
		}
		d.remove(e)
	}
	e := d.free
	if e != nil {
		d.free = e.next
		e.next = nil
	} else {
		e = new(drcEntry)
	}
	e.key = k
	d.m[k] = e
	return drcNew
}

// finish completes k with reply (copied), or forgets it if keep is false or
// the reply is too big to cache.
func (d *drc) finish(k drcKey, reply []byte, keep bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.m[k]
	if e == nil || e.done {
		return
	}
	if !keep || len(reply) > drcMaxReply {
		delete(d.m, k)
		d.recycle(e)
		return
	}
	e.reply = append(e.reply[:0], reply...)
	e.done = true
	e.at = d.now()
	d.pushFront(e)
	d.n++
	d.bytes += cap(e.reply)
	for d.tail != nil && (d.n > d.maxEntries || d.bytes > d.maxBytes || e.at.Sub(d.tail.at) >= d.ttl) {
		d.remove(d.tail)
	}
}

func (d *drc) remove(e *drcEntry) {
	d.unlink(e)
	d.n--
	d.bytes -= cap(e.reply)
	delete(d.m, e.key)
	d.recycle(e)
}

func (d *drc) recycle(e *drcEntry) {
	reply := e.reply[:0]
	if cap(reply) > 4<<10 {
		reply = nil
	}
	*e = drcEntry{reply: reply, next: d.free}
	d.free = e
}

func (d *drc) pushFront(e *drcEntry) {
	e.prev, e.next = nil, d.head
	if d.head != nil {
		d.head.prev = e
	}
	d.head = e
	if d.tail == nil {
		d.tail = e
	}
}

func (d *drc) unlink(e *drcEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		d.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		d.tail = e.prev
	}
	e.prev, e.next = nil, nil
}
