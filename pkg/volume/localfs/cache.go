package localfs

import (
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// node is an open file system object: the fds that stand for one handle.
// A node is shared by every request using its handle; it is only closed
// once no request holds it (refs == 0) and the cache has evicted it.
type node struct {
	key string  // the handle bytes
	exp *export // the volume the handle belongs to
	fd  int     // O_PATH fd (or any fd of the inode): metadata operations
	typ uint32  // S_IFMT bits; an inode never changes type
	ino uint64

	// io is a lazily opened fd for data: O_RDWR (or O_RDONLY if the inode
	// cannot be opened for writing) for regular files, O_RDONLY for
	// directories (fsync). -1 until opened; set once, under ioMu.
	io     atomic.Int32
	ioMu   sync.Mutex
	ioErr  error // why io is read-only, if it is
	ioOnly bool  // io is the same fd as fd

	dirSync syncer // coalesces fsyncs of a directory

	acct *inode // the inode's accounting state

	// Guarded by cache.mu.
	refs       int
	dead       bool // removed from the map; close when refs drops to 0
	prev, next *node
}

func (n *node) close() {
	n.exp.inodeUnref(n.acct)
	if io := int(n.io.Load()); io >= 0 && !n.ioOnly {
		unix.Close(io)
	}
	unix.Close(n.fd)
}

// cache maps handle bytes to open nodes with a bounded LRU of idle nodes.
// Nodes in use are not on the LRU list, so eviction never closes an fd that
// a request is using.
type cache struct {
	mu    sync.Mutex
	m     map[string]*node
	idle  node // sentinel of the idle list; idle.next is the most recent
	nidle int  // nodes on it
	max   int  // of idle nodes: nodes in use (held ones too) are not counted
}

func newCache(max int) *cache {
	c := &cache{m: make(map[string]*node), max: max}
	c.idle.next, c.idle.prev = &c.idle, &c.idle
	return c
}

func (c *cache) unlinkIdle(n *node) {
	n.prev.next, n.next.prev = n.next, n.prev
	n.prev, n.next = nil, nil
	c.nidle--
}

// get returns the node for handle h with a reference, or nil.
func (c *cache) get(h []byte) *node {
	c.mu.Lock()
	n := c.m[string(h)] // no copy of h: a map index
	c.refLocked(n)
	c.mu.Unlock()
	return n
}

// getKey is get by the handle as a string.
func (c *cache) getKey(k string) *node {
	c.mu.Lock()
	n := c.m[k]
	c.refLocked(n)
	c.mu.Unlock()
	return n
}

// refLocked takes a reference to n, if not nil.
func (c *cache) refLocked(n *node) {
	if n != nil {
		if n.refs == 0 {
			c.unlinkIdle(n)
		}
		n.refs++
	}
}

// add inserts n (which has no references yet) and returns the node to use
// with a reference: n itself, or the node that another request inserted for
// the same handle first, in which case the caller must close n.
func (c *cache) add(n *node) (*node, bool) {
	c.mu.Lock()
	if old := c.m[n.key]; old != nil {
		if old.refs == 0 {
			c.unlinkIdle(old)
		}
		old.refs++
		c.mu.Unlock()
		return old, false
	}
	n.refs = 1
	c.m[n.key] = n
	victims := c.evictLocked()
	c.mu.Unlock()
	closeAll(victims)
	return n, true
}

// release drops a reference taken by get or add.
func (c *cache) release(n *node) {
	c.mu.Lock()
	n.refs--
	if n.refs > 0 {
		c.mu.Unlock()
		return
	}
	if n.dead {
		c.mu.Unlock()
		n.close()
		return
	}
	// Most recently used goes first.
	n.next, n.prev = c.idle.next, &c.idle
	c.idle.next.prev = n
	c.idle.next = n
	c.nidle++
	victims := c.evictLocked()
	c.mu.Unlock()
	closeAll(victims)
}

// forget removes n from the map so no new request finds it; it is closed
// when its last reference goes.
func (c *cache) forget(n *node) {
	c.mu.Lock()
	closeNow := c.forgetLocked(n)
	c.mu.Unlock()
	if closeNow {
		n.close()
	}
}

// forgetKey is forget for the node with handle h, if cached. It tells the
// cache that h's inode may be gone, so the fds must not keep it alive.
func (c *cache) forgetKey(h []byte) { c.forgetString(string(h)) }

// forgetString is forgetKey by the handle as a string.
func (c *cache) forgetString(k string) {
	c.mu.Lock()
	n := c.m[k]
	closeNow := n != nil && c.forgetLocked(n)
	c.mu.Unlock()
	if closeNow {
		n.close()
	}
}

// forgetLocked marks n dead and reports whether the caller must close it
// (once c.mu is released): closing the last fd of an unlinked inode frees
// the inode there and then, which takes long enough (a tenth of a
// millisecond on ext4) that doing it under c.mu serialised every REMOVE and
// stalled every other request of the server behind it.
func (c *cache) forgetLocked(n *node) bool {
	if n.dead {
		return false
	}
	n.dead = true
	delete(c.m, n.key)
	if n.refs == 0 {
		c.unlinkIdle(n)
		return true
	}
	return false
}

// forgetExport drops every node of e.
func (c *cache) forgetExport(e *export) {
	var victims []*node
	c.mu.Lock()
	for _, n := range c.m {
		if n.exp == e && c.forgetLocked(n) {
			victims = append(victims, n)
		}
	}
	c.mu.Unlock()
	closeAll(victims)
}

func (c *cache) evictLocked() []*node {
	var victims []*node
	for c.nidle > c.max {
		n := c.idle.prev
		c.unlinkIdle(n)
		delete(c.m, n.key)
		n.dead = true
		victims = append(victims, n)
	}
	return victims
}

func closeAll(ns []*node) {
	for _, n := range ns {
		n.close()
	}
}

// closeAllNodes closes every node; for FS.Close, when no request runs.
func (c *cache) closeAllNodes() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, n := range c.m {
		delete(c.m, k)
		n.dead = true
		if n.refs == 0 {
			c.unlinkIdle(n)
			n.close()
		}
	}
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
