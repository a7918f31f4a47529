package rpc

import (
	"encoding/binary"
	"slices"

	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
)

// Limits from RFC 5531: opaque_auth bodies are at most 400 bytes; AUTH_SYS
// carries a machine name of at most 255 bytes and at most 16 extra groups.
const (
	maxAuthBody = 400
	maxMachine  = 255
	maxGIDs     = 16

	nobody = 65534
)

// parseResult says how a call header parsed and, if not, which reply it
// deserves.
type parseResult int

const (
	parseOK          parseResult = iota
	parseDrop                    // not a call, or cut short before the auth fields: no reply
	parseRPCMismatch             // rpcvers != 2
	parseBadCred                 // malformed credential
	parseBadVerf                 // malformed verifier
	parseTooWeak                 // a flavor we do not accept
)

func (p parseResult) String() string {
	switch p {
	case parseOK:
		return "ok"
	case parseDrop:
		return "not a call or truncated header"
	case parseRPCMismatch:
		return "rpc version mismatch"
	case parseBadCred:
		return "malformed credential"
	case parseBadVerf:
		return "malformed verifier"
	case parseTooWeak:
		return "unsupported auth flavor"
	}
	return "unknown"
}

// credCache remembers a connection's last machine name and group list, so
// the usual case (every call from one client carries the same credential)
// allocates nothing. Values handed out are never modified afterwards, so
// handlers may keep them.
type credCache struct {
	machine string
	gids    []uint32
}

// parseCall parses an RPC call message header from rec into c. On success
// c.Args aliases rec. For parseRPCMismatch and the auth failures, c.XID is
// set so that a rejection can be sent.
func parseCall(rec []byte, c *Call, cc *credCache) parseResult {
	var r xdr.Reader
	r.Reset(rec)
	c.XID = r.Uint32()
	mtype := r.Uint32()
	if r.Err() != nil || mtype != MsgCall {
		return parseDrop
	}
	rpcvers := r.Uint32()
	c.Prog = r.Uint32()
	c.Vers = r.Uint32()
	c.Proc = r.Uint32()
	if r.Err() != nil {
		return parseDrop
	}
	if rpcvers != 2 {
		return parseRPCMismatch
	}
	flavor := r.Uint32()
	body := r.Opaque(maxAuthBody)
	if r.Err() != nil {
		return parseBadCred
	}
	switch flavor {
	case AuthNone:
		c.Cred = Cred{Flavor: AuthNone, UID: nobody, GID: nobody}
	case AuthSys:
		if !parseAuthSys(body, &c.Cred, cc) {
			return parseBadCred
		}
	default:
		return parseTooWeak
	}
	r.Uint32() // verifier flavor: we neither check nor return it
	r.Opaque(maxAuthBody)
	if r.Err() != nil {
		return parseBadVerf
	}
	c.Args = r.Remaining()
	return parseOK
}

// parseAuthSys parses an authsys_parms body, which must be used exactly.
func parseAuthSys(body []byte, cred *Cred, cc *credCache) bool {
	var r xdr.Reader
	r.Reset(body)
	r.Uint32() // stamp
	machine := r.Opaque(maxMachine)
	uid := r.Uint32()
	gid := r.Uint32()
	n := r.Uint32()
	if r.Err() != nil || n > maxGIDs {
		return false
	}
	var gids [maxGIDs]uint32
	for i := range n {
		gids[i] = r.Uint32()
	}
	if r.Err() != nil || len(r.Remaining()) != 0 {
		return false
	}
	if string(machine) != cc.machine {
		cc.machine = string(machine)
	}
	if !slices.Equal(gids[:n], cc.gids) {
		if n == 0 {
			cc.gids = nil
		} else {
			cc.gids = slices.Clone(gids[:n])
		}
	}
	*cred = Cred{Flavor: AuthSys, Machine: cc.machine, UID: uid, GID: gid, GIDs: cc.gids}
	return true
}

// Reply layout as built by the server: a 4-byte record mark, then
//
//	xid, REPLY, MSG_ACCEPTED, verf{AUTH_NONE, 0}, accept_stat, results...
const (
	markLen     = 4
	statOff     = markLen + 5*4
	replyHdrLen = statOff + 4
)

// startAccepted writes the record mark placeholder and an accepted reply
// header with accept_stat SUCCESS, to be patched by setStat.
func startAccepted(w *xdr.Writer, xid uint32) {
	w.Uint32(0) // record mark, patched by finishRecord
	w.Uint32(xid)
	w.Uint32(MsgReply)
	w.Uint32(MsgAccepted)
	w.Uint32(AuthNone)
	w.Uint32(0)
	w.Uint32(uint32(Success))
}

// setStat discards any results and sets the accept_stat.
func setStat(w *xdr.Writer, st AcceptStat) {
	w.Truncate(replyHdrLen)
	w.PatchUint32(statOff, uint32(st))
}

// writeDenied writes a whole rejected reply (record mark included).
func writeDenied(w *xdr.Writer, xid uint32, p parseResult) {
	w.Uint32(0)
	w.Uint32(xid)
	w.Uint32(MsgReply)
	w.Uint32(MsgDenied)
	switch p {
	case parseRPCMismatch:
		w.Uint32(RPCMismatch)
		w.Uint32(2)
		w.Uint32(2)
	case parseBadCred:
		w.Uint32(AuthError)
		w.Uint32(AuthBadCred)
	case parseBadVerf:
		w.Uint32(AuthError)
		w.Uint32(AuthBadVerf)
	default:
		w.Uint32(AuthError)
		w.Uint32(AuthTooWeak)
	}
}

// finishRecord patches the record mark of a single-fragment record.
func finishRecord(b []byte) {
	binary.BigEndian.PutUint32(b, lastFrag|uint32(len(b)-markLen))
}
