package nfs4

import (
	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
	"github.com/hangar-csi/hangar/pkg/vfs"
)

// Inline implements rpc.Inliner: a COMPOUND is quick when every op in it is
// one of the everyday ones whose arguments are read here and none waits for
// a flush: no COMMIT, no WRITE but UNSTABLE ones. Anything else (OPEN,
// session and state management, ...) runs on its own goroutine.
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
		case OpLookup, OpRemove:
			r.Opaque(MaxName)
		case OpPutRootFH, OpGetFH, OpSaveFH, OpRestoreFH, OpLookupP:
		case OpAccess:
			r.Uint32()
		case OpGetAttr:
			skipBitmap(&r)
		case OpRead:
			r.Fixed(4 + otherLen + 8 + 4) // stateid, offset, count
		case OpWrite:
			r.Fixed(4 + otherLen + 8) // stateid, offset
			if stable := r.Uint32(); stable != uint32(vfs.Unstable) {
				return false
			}
			r.Opaque(MaxWrite)
		case OpSetAttr:
			r.Fixed(4 + otherLen)
			skipBitmap(&r)
			r.Opaque(maxAttrVals)
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
