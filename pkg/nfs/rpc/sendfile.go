package rpc

import (
	"encoding/binary"
	"io"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// fileTail is file data attached to a reply (Call.AttachFile).
type fileTail struct {
	fd  int
	off int64
	n   int
	set bool
}

// pad is the XDR padding after the file data.
func (f *fileTail) pad() int { return (4 - f.n&3) & 3 }

// close releases the file, if any.
func (f *fileTail) close() {
	if f.set {
		unix.Close(f.fd)
		*f = fileTail{}
	}
}

var zeros [4]byte

// finishRecordTail patches the record mark of a single-fragment record
// made of b followed by tail bytes sent separately.
func finishRecordTail(b []byte, tail int) {
	binary.BigEndian.PutUint32(b, lastFrag|uint32(len(b)-markLen+tail))
}

// materialize reads t's attached file into its reply buffer, for paths that
// cannot send from the file (no socket descriptor, or the reply must be
// kept in the duplicate request cache). A file shorter than promised makes
// the call SYSTEM_ERR.
func materialize(t *task) AcceptStat {
	f := &t.call.file
	defer f.close()
	buf := t.w.Reserve(f.n + f.pad())
	data := buf[:f.n]
	for done := 0; done < len(data); {
		m, err := unix.Pread(f.fd, data[done:], f.off+int64(done))
		if err == unix.EINTR {
			continue
		}
		if err != nil || m == 0 {
			return SystemErr
		}
		done += m
	}
	clear(buf[f.n:])
	return Success
}

// sendState is the writer goroutine's sendfile progress. It lives in the
// conn so that the RawConn callback is a method value made once, not a
// closure allocated per reply.
type sendState struct {
	raw    syscall.RawConn // nil: the connection has no descriptor
	hdr    [][]byte        // bytes to send before the file's
	fd     int
	off    int64
	remain int
	err    error
	step   func(uintptr) bool
}

// sendStep is the RawConn.Write callback: it sends as much as the socket
// takes and returns false to wait for it to drain.
func (s *sendState) sendStep(sock uintptr) bool {
	for len(s.hdr) > 0 {
		// MSG_MORE: the headers share segments with the file data that
		// follows instead of going out as a small packet of their own.
		m, err := unix.SendmsgBuffers(int(sock), s.hdr, nil, nil, unix.MSG_MORE|unix.MSG_NOSIGNAL)
		switch {
		case err == unix.EAGAIN:
			return false
		case err == unix.EINTR:
			continue
		case err != nil:
			s.err = err
			return true
		}
		for m > 0 && len(s.hdr) > 0 {
			k := min(m, len(s.hdr[0]))
			s.hdr[0] = s.hdr[0][k:]
			m -= k
			if len(s.hdr[0]) == 0 {
				s.hdr = s.hdr[1:]
			}
		}
	}
	for s.remain > 0 {
		m, err := unix.Sendfile(int(sock), s.fd, &s.off, min(s.remain, 1<<30))
		switch {
		case err == unix.EAGAIN:
			return false
		case err == unix.EINTR:
			continue
		case err != nil:
			s.err = err
			return true
		case m == 0:
			// The file ended early (truncated since the handler looked).
			s.err = io.ErrUnexpectedEOF
			return true
		}
		s.remain -= m
	}
	return true
}

// sendFile sends hdr and then f's bytes on the connection (the padding is
// written by the caller with the next batch). It consumes hdr's elements.
func (c *conn) sendFile(hdr [][]byte, f *fileTail) error {
	s := &c.sf
	s.hdr, s.fd, s.off, s.remain, s.err = hdr, f.fd, f.off, f.n, nil
	err := s.raw.Write(s.step)
	s.hdr = nil
	if err != nil {
		return err
	}
	return s.err
}

// SendfileConn is implemented by net.Conn wrappers that only observe a
// connection (a connection counter, say) and let the server write to the
// connection underneath directly, with sendfile(2), bypassing the wrapper's
// Write. Wrappers that transform the byte stream, such as TLS, must not
// implement it: the server would send plaintext around them.
type SendfileConn interface {
	net.Conn
	SendfileConn() net.Conn // the wrapped connection
}

// initSendfile finds the connection's descriptor for sendfile: a TCP or
// Unix socket, possibly under SendfileConn wrappers. Any other connection
// (TLS included) gets attached files copied into the reply.
func (c *conn) initSendfile() {
	nc := c.nc
	for range 8 {
		switch t := nc.(type) {
		case *net.TCPConn, *net.UnixConn:
			if raw, err := t.(syscall.Conn).SyscallConn(); err == nil {
				c.sf.raw = raw
				c.sf.step = c.sf.sendStep
			}
			return
		case SendfileConn:
			nc = t.SendfileConn()
		default:
			return
		}
	}
}
