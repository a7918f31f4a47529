package rpc

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// fileTail is file data attached to a reply (Call.AttachFile).
type fileTail struct {
	fd    int
	off   int64
	n     int
	set   bool
	short ShortFunc
}

// ShortFunc fixes a reply whose attached file held only n of the bytes the
// handler promised when they were read: reply is the whole reply record as
// the handler wrote it, ending with the XDR length of the data (which the
// server patches itself). Called at most once, with n below the promise.
type ShortFunc func(reply []byte, n int)

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

// shorten makes reply, whose file tail was promised as f.n bytes, say got
// bytes instead; it reports false if the handler gave no way to.
func (f *fileTail) shorten(reply []byte, got int) bool {
	if f.short == nil || len(reply) < markLen+4 {
		return false
	}
	f.short(reply, got)
	binary.BigEndian.PutUint32(reply[len(reply)-4:], uint32(got))
	f.n = got
	finishRecordTail(reply, f.n+f.pad())
	return true
}

// preadFull reads up to len(b) bytes at off; fewer only at the end of the
// file. Linux does not make a read atomic with a truncate: pages being cut
// off may be read as zeros the file never held. So the size is looked at
// again after the read, and what lies beyond it now is not returned: the
// read then took effect after the truncate.
func preadFull(fd int, b []byte, off int64) (int, error) {
	done := 0
	for done < len(b) {
		m, err := unix.Pread(fd, b[done:], off+int64(done))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return done, err
		}
		if m == 0 {
			break
		}
		done += m
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return done, err
	}
	if end := off + int64(done); st.Size < end {
		done = int(max(st.Size-off, 0))
	}
	return done, nil
}

// materialize reads t's attached file into its reply buffer, for paths that
// cannot send from the file (no socket descriptor, or the reply must be
// kept in the duplicate request cache). A file that shrank gives a short
// reply through the handler's ShortFunc, or SYSTEM_ERR without one.
func materialize(t *task) AcceptStat {
	f := &t.call.file
	defer f.close()
	hdr := t.w.Len()
	got, err := preadFull(f.fd, t.w.Reserve(f.n), f.off)
	if err != nil {
		return SystemErr
	}
	if got < f.n {
		t.w.Truncate(hdr)
		if !f.shorten(t.w.Bytes(), got) {
			return SystemErr
		}
		t.w.Reserve(got) // the bytes read are still there; pads anew
	}
	return Success
}

// readTail reads t's attached file into a pooled buffer for the writer,
// patching t's reply if the file shrank since the handler looked. If the
// reply cannot say what the file holds (a read error, or a short file and
// no ShortFunc), it becomes a bare SYSTEM_ERR: nothing has been sent yet,
// and the connection, which a client's mounts share, stays up. Copying,
// rather than splicing page references to the socket, is what keeps a
// truncate racing the read from sending bytes the file never held: Linux
// zeroes the cut-off part of a page in place, under references still
// queued for the socket.
func readTail(t *task) []byte {
	f := &t.call.file
	buf := getBuf(f.n)[:f.n]
	got, err := preadFull(f.fd, buf, f.off)
	if err != nil || got < f.n && !f.shorten(t.w.Bytes(), got) {
		putBuf(buf)
		setStat(&t.w, SystemErr)
		finishRecord(t.w.Bytes())
		f.n = 0
		return nil
	}
	return buf[:got]
}
