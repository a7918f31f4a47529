package rpc

import "sync"

// Buffer size classes. The middle one holds a 64 KiB directory listing (the
// dtpref clients use) with its headers; the largest a whole 1 MiB WRITE
// call or READ reply with its headers, so the data path never allocates a
// megabyte.
var sizeClasses = [...]int{4 << 10, 68 << 10, 1<<20 + 64<<10}

// DefaultMaxRecordSize fits a 1 MiB WRITE plus its RPC and NFS headers.
const DefaultMaxRecordSize = 1<<20 + 64<<10

var bufPools [len(sizeClasses)]sync.Pool

// getBuf returns an empty buffer with capacity at least n, pooled when n
// fits a size class.
func getBuf(n int) []byte {
	for i, sz := range sizeClasses {
		if n <= sz {
			if p, ok := bufPools[i].Get().(*[]byte); ok {
				b := (*p)[:0]
				*p = nil
				ptrPool.Put(p)
				return b
			}
			return make([]byte, 0, sz)
		}
	}
	return make([]byte, 0, n)
}

// putBuf returns b to its pool. Buffers whose capacity is not exactly a size
// class (foreign or oversized ones) are left to the garbage collector.
func putBuf(b []byte) {
	c := cap(b)
	for i, sz := range sizeClasses {
		if c == sz {
			p, _ := ptrPool.Get().(*[]byte)
			if p == nil {
				p = new([]byte)
			}
			*p = b[:0]
			bufPools[i].Put(p)
			return
		}
	}
}

// bufCap is the capacity of the buffer getBuf(n) returns.
func bufCap(n int) int {
	for _, sz := range sizeClasses {
		if n <= sz {
			return sz
		}
	}
	return n
}

// ptrPool recycles the *[]byte boxes that sync.Pool needs, so that Get/Put
// pairs do not allocate.
var ptrPool sync.Pool

// growReply is the xdr.GrowFunc of reply and request writers: it moves b
// into a pooled buffer with room for n more bytes,
// but the outgrown buffer is left to the garbage collector, because a
// handler may still hold a slice of it (from Reserve, say); recycling it
// would let a stale write land in another call's buffer. It is usually a
// 4 KiB buffer, and only replies bigger than that grow.
func growReply(b []byte, n int) []byte {
	need := len(b) + n
	if need < 2*cap(b) {
		need = 2 * cap(b) // amortise growth beyond the largest class
	}
	nb := getBuf(need)[:len(b)]
	copy(nb, b)
	return nb
}
