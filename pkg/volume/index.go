package volume

import "math/rand/v2"

// idIndex is the set of volume IDs in order, so ListVolumes can page from
// any ID in O(log n + page) without sorting every volume per call: a skip
// list (insert and delete O(log n) expected, no rebalancing, ~50 bytes an
// ID).
type idIndex struct {
	head  skipNode
	level int
	n     int
}

const maxLevel = 24 // enough for 4^24 IDs with p = 1/4

type skipNode struct {
	id   string
	next []*skipNode
}

// path fills prev with, at every level, the last node whose ID is < id.
func (x *idIndex) path(id string, prev *[maxLevel]*skipNode) *skipNode {
	if x.head.next == nil {
		x.head.next = make([]*skipNode, maxLevel)
	}
	n := &x.head
	for l := x.level - 1; l >= 0; l-- {
		for n.next[l] != nil && n.next[l].id < id {
			n = n.next[l]
		}
		prev[l] = n
	}
	return n.next[0]
}

func (x *idIndex) insert(id string) {
	var prev [maxLevel]*skipNode
	if at := x.path(id, &prev); at != nil && at.id == id {
		return
	}
	lvl := 1
	for lvl < maxLevel && rand.IntN(4) == 0 {
		lvl++
	}
	for ; x.level < lvl; x.level++ {
		prev[x.level] = &x.head
	}
	nn := &skipNode{id: id, next: make([]*skipNode, lvl)}
	for l := range lvl {
		nn.next[l] = prev[l].next[l]
		prev[l].next[l] = nn
	}
	x.n++
}

func (x *idIndex) delete(id string) {
	var prev [maxLevel]*skipNode
	at := x.path(id, &prev)
	if at == nil || at.id != id {
		return
	}
	for l := range at.next {
		prev[l].next[l] = at.next[l]
	}
	for x.level > 0 && x.head.next[x.level-1] == nil {
		x.level--
	}
	x.n--
}

// after calls f with the IDs greater than after, in order, until f returns
// false.
func (x *idIndex) after(after string, f func(id string) bool) {
	var prev [maxLevel]*skipNode
	for n := x.path(after, &prev); n != nil; n = n.next[0] {
		if n.id > after && !f(n.id) {
			return
		}
	}
}
