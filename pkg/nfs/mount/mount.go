// Package mount is the MOUNT protocol version 3 (RFC 1813 appendix I,
// program 100005) over a vfs.FS: it turns an export path into the root file
// handle and keeps the informational list of mounts that DUMP shows.
package mount

import (
	"context"
	"errors"
	"net"
	"sort"
	"sync"
	"syscall"

	"github.com/go-logr/logr"

	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
	"github.com/hangar-csi/hangar/pkg/vfs"
)

// Program and version numbers.
const (
	Program = 100005
	Version = 3
)

// Procedures.
const (
	ProcNull    = 0
	ProcMnt     = 1
	ProcDump    = 2
	ProcUmnt    = 3
	ProcUmntAll = 4
	ProcExport  = 5
)

// mountstat3 values.
const (
	StatusOK          = 0
	StatusPerm        = 1
	StatusNoEnt       = 2
	StatusIO          = 5
	StatusAcces       = 13
	StatusNotDir      = 20
	StatusInval       = 22
	StatusNameTooLong = 63
	StatusNotSupp     = 10004
	StatusServerFault = 10006
)

// Limits.
const (
	MaxPath = 1024 // MNTPATHLEN
	MaxName = 255  // MNTNAMLEN

	// MaxMounts bounds the DUMP list: it is informational only, and a
	// client looping over MNT must not grow server memory without bound.
	MaxMounts = 4096

	// maxDumpBytes bounds a DUMP reply; the list is informational, so a
	// truncated one is better than a reply clients refuse.
	maxDumpBytes = 512 << 10
)

// Idempotent reports whether a MOUNT procedure may be re-executed on
// retransmission: all of them may (MNT and UMNT only add to or remove from a
// set).
func Idempotent(proc uint32) bool { return true }

type entry struct{ host, dir string }

// Handler serves MOUNT v3. It is an rpc.Handler, safe for concurrent use.
type Handler struct {
	fs  vfs.FS
	log logr.Logger

	mu     sync.Mutex
	mounts map[entry]struct{}
}

// NewHandler returns a Handler resolving mounts through fs.
func NewHandler(fs vfs.FS, log logr.Logger) *Handler {
	return &Handler{fs: fs, log: log, mounts: map[entry]struct{}{}}
}

// Serve implements rpc.Handler.
func (h *Handler) Serve(ctx context.Context, c *rpc.Call, w *xdr.Writer) rpc.AcceptStat {
	r := xdr.NewReader(c.Args)
	switch c.Proc {
	case ProcNull:
		return rpc.Success
	case ProcMnt:
		// dirpath is string<MNTPATHLEN>; a longer one is still decoded so
		// the client learns NAMETOOLONG rather than GARBAGE_ARGS.
		p := r.Opaque(1 << 30)
		if r.Err() != nil {
			return rpc.GarbageArgs
		}
		if len(p) > MaxPath {
			w.Uint32(StatusNameTooLong)
			return rpc.Success
		}
		h.mnt(ctx, c, string(p), w)
		return rpc.Success
	case ProcDump:
		h.dump(ctx, w)
		return rpc.Success
	case ProcUmnt:
		p := r.Opaque(1 << 30)
		if r.Err() != nil {
			return rpc.GarbageArgs
		}
		if len(p) <= MaxPath {
			h.mu.Lock()
			delete(h.mounts, entry{hostOf(c.Remote), string(p)})
			h.mu.Unlock()
		}
		return rpc.Success
	case ProcUmntAll:
		host := hostOf(c.Remote)
		h.mu.Lock()
		for e := range h.mounts {
			if e.host == host {
				delete(h.mounts, e)
			}
		}
		h.mu.Unlock()
		return rpc.Success
	case ProcExport:
		// Only what this client may mount: the list of volumes is not
		// everyone's business.
		for _, e := range h.fs.Exports(ctx) {
			w.Uint32(1)
			w.String(e.Path)
			w.Uint32(0) // no groups (the FS applies its policy per call)
		}
		w.Uint32(0)
		return rpc.Success
	}
	return rpc.ProcUnavail
}

func (h *Handler) mnt(ctx context.Context, c *rpc.Call, path string, w *xdr.Writer) {
	fh, err := h.fs.Mount(ctx, path)
	if err != nil {
		switch {
		case errors.Is(err, vfs.ErrNoExport):
			w.Uint32(StatusNoEnt)
		case errors.Is(err, vfs.ErrNotAllowed):
			w.Uint32(StatusAcces)
		case errors.Is(err, syscall.ENOTDIR):
			w.Uint32(StatusNotDir)
		case errors.Is(err, syscall.ENOENT):
			w.Uint32(StatusNoEnt)
		case errors.Is(err, syscall.EACCES):
			w.Uint32(StatusAcces)
		default:
			h.log.Error(err, "mount failed", "path", path, "client", hostOf(c.Remote))
			w.Uint32(StatusServerFault)
		}
		return
	}
	w.Uint32(StatusOK)
	w.Opaque(fh)
	w.Uint32(2) // auth_flavors
	w.Uint32(rpc.AuthSys)
	w.Uint32(rpc.AuthNone)

	e := entry{hostOf(c.Remote), path}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.mounts[e]; !ok && len(h.mounts) >= MaxMounts {
		h.log.V(1).Info("mount list full, not recording", "client", e.host, "path", path)
		return
	}
	h.mounts[e] = struct{}{}
}

// dump lists the recorded mounts of the exports the caller may mount
// itself: the others' paths are not its business.
func (h *Handler) dump(ctx context.Context, w *xdr.Writer) {
	visible := map[string]bool{}
	for _, e := range h.fs.Exports(ctx) {
		visible[e.Path] = true
	}
	h.mu.Lock()
	list := make([]entry, 0, len(h.mounts))
	for e := range h.mounts {
		if visible[e.dir] {
			list = append(list, e)
		}
	}
	h.mu.Unlock()
	sort.Slice(list, func(i, j int) bool {
		if list[i].host != list[j].host {
			return list[i].host < list[j].host
		}
		return list[i].dir < list[j].dir
	})
	start := w.Len()
	for _, e := range list {
		if w.Len()-start+12+len(e.host)+len(e.dir)+8 > maxDumpBytes {
			break
		}
		w.Uint32(1)
		w.String(e.host)
		w.String(e.dir)
	}
	w.Uint32(0)
}

// hostOf names a client by its IP address; DUMP needs a hostname, and a
// reverse DNS lookup per MNT is not worth its latency.
func hostOf(a net.Addr) string {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.IP.String()
	case *net.UDPAddr:
		return a.IP.String()
	case nil:
		return "unknown"
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return truncate(a.String())
	}
	return truncate(host)
}

func truncate(s string) string {
	if len(s) > MaxName {
		return s[:MaxName]
	}
	return s
}
