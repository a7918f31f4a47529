// Package rpc is an ONC RPC (RFC 5531) server over TCP with record marking.
//
// It knows nothing of NFS: programs register a Handler per (program,
// version) and get parsed calls with their credentials; the server owns
// framing, concurrency, reply ordering, buffer pooling and the duplicate
// request cache.
package rpc

import (
	"context"
	"net"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
)

// Message types, reply and accept states (RFC 5531 section 9).
const (
	MsgCall  = 0
	MsgReply = 1

	MsgAccepted = 0
	MsgDenied   = 1

	RPCMismatch = 0 // reject_stat
	AuthError   = 1
)

// AcceptStat is the accept_stat of an accepted reply.
type AcceptStat uint32

const (
	Success      AcceptStat = 0
	ProgUnavail  AcceptStat = 1
	ProgMismatch AcceptStat = 2
	ProcUnavail  AcceptStat = 3
	GarbageArgs  AcceptStat = 4
	SystemErr    AcceptStat = 5
)

// Authentication flavors and auth_stat values.
const (
	AuthNone  = 0
	AuthSys   = 1
	AuthShort = 2

	AuthOK           = 0
	AuthBadCred      = 1
	AuthRejectedCred = 2
	AuthBadVerf      = 3
	AuthTooWeak      = 5
)

// Cred is the caller's identity. For AUTH_NONE it is the anonymous user
// (Flavor AuthNone, UID/GID 65534). The server shares Machine and GIDs
// between calls of a connection and never modifies them, so a handler may
// keep them but must not modify GIDs.
type Cred struct {
	Flavor  uint32
	Machine string
	UID     uint32
	GID     uint32
	GIDs    []uint32 // supplementary groups, at most 16
}

// Call is one parsed RPC call. Args aliases a pooled buffer and is valid only
// until the handler returns.
type Call struct {
	XID    uint32
	Prog   uint32
	Vers   uint32
	Proc   uint32
	Cred   Cred
	Args   []byte
	Remote net.Addr

	file     fileTail // set by AttachFile
	conn     *conn    // for ReserveReply
	reserved int64    // reply bytes reserved in conn's backlog
	slotless bool     // gave up its server-wide slot in ReserveReply
}

// AttachFile appends n bytes of the open file fd, read from offset off, to
// the results, followed by XDR padding to a multiple of four bytes, and
// takes ownership of fd: the server closes it once the reply is written or
// dropped. The results must end with the data's XDR length if short is
// not nil. The server reads the bytes when it writes the reply (or when the
// handler returns, for a call in the duplicate request cache), into a
// pooled buffer rather than the reply, so that replies waiting for a slow
// client do not hold their data.
//
// Nothing may be written to the reply after AttachFile, and it only has an
// effect when the handler returns Success. The file is read before any of
// the reply is sent; if it then holds fewer than n bytes at off (it was
// truncated meanwhile), short patches the reply for what it held and the
// server the data's length; with a nil short the call gets SYSTEM_ERR.
func (c *Call) AttachFile(fd int, off int64, n int, short ShortFunc) {
	c.file.close()
	if n <= 0 {
		unix.Close(fd) // nothing to send
		return
	}
	c.file = fileTail{fd: fd, off: off, n: n, set: true, short: short}
}

// Handler serves one (program, version). It appends the procedure's results
// to w (the server has already written the reply header) and returns the
// accept status. For anything but Success the server discards what the
// handler wrote and sends the bare status.
type Handler interface {
	Serve(ctx context.Context, c *Call, w *xdr.Writer) AcceptStat
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, c *Call, w *xdr.Writer) AcceptStat

// Serve calls f.
func (f HandlerFunc) Serve(ctx context.Context, c *Call, w *xdr.Writer) AcceptStat {
	return f(ctx, c, w)
}
