package nfs4

import (
	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
)

// Inline implements rpc.Inliner: a COMPOUND is quick when every op in it is
// one of the everyday ones whose arguments are read here and none changes
// anything: a change may wait for a frozen volume (a snapshot being taken)
// or a directory fsync, and the node's client sends every volume's calls
// over one connection, so the calls behind it would wait too. Anything
// else (WRITE, OPEN, state management, ...) runs watched: the rpc server
// hands reading to another goroutine if it takes longer than a moment.
func (h *Handler) Inline(proc uint32, args []byte) bool {
	if proc != ProcCompound {
		return proc == ProcNull
	}
	var r xdr.Reader
	r.Reset(args)
	r.Opaque(maxTag)
	r.Uint32() // minorversion
	n := r.Uint32()
	if r.Err() != nil || n > maxOps {
		return false
	}
	for range n {
		switch r.Uint32() {
		case OpSequence:
			r.Fixed(sessionIDLen + 4*4)
		case OpPutFH:
			r.Opaque(MaxFHSize)
		case OpLookup:
			r.Opaque(MaxName)
		case OpPutRootFH, OpGetFH, OpSaveFH, OpRestoreFH, OpLookupP:
		case OpAccess:
			r.Uint32()
		case OpGetAttr:
			skipBitmap(&r)
		case OpRead:
			r.Fixed(4 + otherLen + 8 + 4) // stateid, offset, count
		default:
			return false
		}
		if r.Err() != nil {
			return false
		}
	}
	return true
}

func skipBitmap(r *xdr.Reader) {
	if n := r.Uint32(); n <= maxBitmap {
		r.Fixed(4 * int(n))
	} else {
		r.Fixed(1 << 30) // fails the reader
	}
}
