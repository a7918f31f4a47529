package nfs3

import (
	"encoding/binary"
	"errors"
	"math"
	"time"

	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
	"github.com/hangar-csi/hangar/pkg/vfs"
)

// This file holds the XDR codecs of the NFSv3 structures shared by several
// procedures. Both directions are exported so the protocol-level client
// (pkg/nfs/nfsclient) speaks exactly the layout the server does.

var errEnum = errors.New("nfs3: enum value out of range")

// timeToNFS converts t to nfstime3, clamping to the representable range
// (unsigned 32-bit seconds since the epoch).
func timeToNFS(t time.Time) (sec, nsec uint32) {
	if t.IsZero() {
		return 0, 0
	}
	s := t.Unix()
	switch {
	case s < 0:
		return 0, 0
	case s > math.MaxUint32:
		return math.MaxUint32, 999999999
	}
	return uint32(s), uint32(t.Nanosecond())
}

func timeFromNFS(sec, nsec uint32) time.Time {
	return time.Unix(int64(sec), int64(nsec))
}

// PutFattr writes a's fattr3 encoding into b, which must hold FattrSize
// bytes. It exists (beside EncodeFattr) so replies can patch attributes into
// a slot reserved before the attributes were known.
func PutFattr(b []byte, a *vfs.Attr) {
	_ = b[FattrSize-1]
	be := binary.BigEndian
	be.PutUint32(b[0:], uint32(a.Type))
	be.PutUint32(b[4:], a.Mode&07777)
	be.PutUint32(b[8:], a.Nlink)
	be.PutUint32(b[12:], a.UID)
	be.PutUint32(b[16:], a.GID)
	be.PutUint64(b[20:], a.Size)
	be.PutUint64(b[28:], a.Used)
	be.PutUint32(b[36:], a.RdevMajor)
	be.PutUint32(b[40:], a.RdevMinor)
	be.PutUint64(b[44:], a.FSID)
	be.PutUint64(b[52:], a.FileID)
	putTime(b[60:], a.Atime)
	putTime(b[68:], a.Mtime)
	putTime(b[76:], a.Ctime)
}

func putTime(b []byte, t time.Time) {
	s, ns := timeToNFS(t)
	binary.BigEndian.PutUint32(b, s)
	binary.BigEndian.PutUint32(b[4:], ns)
}

// EncodeFattr appends a fattr3.
func EncodeFattr(w *xdr.Writer, a *vfs.Attr) { PutFattr(w.Reserve(FattrSize), a) }

// EncodePostOpAttr appends a post_op_attr; nil means "no attributes".
func EncodePostOpAttr(w *xdr.Writer, a *vfs.Attr) {
	if a == nil {
		w.Uint32(0)
		return
	}
	w.Uint32(1)
	EncodeFattr(w, a)
}

// EncodePreOpAttr appends a pre_op_attr.
func EncodePreOpAttr(w *xdr.Writer, a *vfs.WccAttr) {
	if a == nil {
		w.Uint32(0)
		return
	}
	w.Uint32(1)
	b := w.Reserve(wccAttrSize)
	binary.BigEndian.PutUint64(b, a.Size)
	putTime(b[8:], a.Mtime)
	putTime(b[16:], a.Ctime)
}

// EncodeWcc appends a wcc_data.
func EncodeWcc(w *xdr.Writer, wcc *vfs.Wcc) {
	EncodePreOpAttr(w, wcc.Before)
	EncodePostOpAttr(w, wcc.After)
}

// EncodePostOpFH appends a post_op_fh3; an empty handle means "none".
func EncodePostOpFH(w *xdr.Writer, h vfs.Handle) {
	if len(h) == 0 {
		w.Uint32(0)
		return
	}
	w.Uint32(1)
	w.Opaque(h)
}

// DecodeFattr reads a fattr3.
func DecodeFattr(r *xdr.Reader) vfs.Attr {
	var a vfs.Attr
	a.Type = vfs.FileType(r.Uint32())
	a.Mode = r.Uint32()
	a.Nlink = r.Uint32()
	a.UID = r.Uint32()
	a.GID = r.Uint32()
	a.Size = r.Uint64()
	a.Used = r.Uint64()
	a.RdevMajor = r.Uint32()
	a.RdevMinor = r.Uint32()
	a.FSID = r.Uint64()
	a.FileID = r.Uint64()
	a.Atime = decodeTime(r)
	a.Mtime = decodeTime(r)
	a.Ctime = decodeTime(r)
	return a
}

func decodeTime(r *xdr.Reader) time.Time {
	s := r.Uint32()
	ns := r.Uint32()
	return timeFromNFS(s, ns)
}

// DecodePostOpAttr reads a post_op_attr.
func DecodePostOpAttr(r *xdr.Reader) *vfs.Attr {
	if !r.Bool() {
		return nil
	}
	a := DecodeFattr(r)
	if r.Err() != nil {
		return nil
	}
	return &a
}

// DecodeWcc reads a wcc_data.
func DecodeWcc(r *xdr.Reader) vfs.Wcc {
	var wcc vfs.Wcc
	if r.Bool() {
		var b vfs.WccAttr
		b.Size = r.Uint64()
		b.Mtime = decodeTime(r)
		b.Ctime = decodeTime(r)
		wcc.Before = &b
	}
	wcc.After = DecodePostOpAttr(r)
	return wcc
}

// DecodePostOpFH reads a post_op_fh3. The handle aliases r's input.
func DecodePostOpFH(r *xdr.Reader) vfs.Handle {
	if !r.Bool() {
		return nil
	}
	return vfs.Handle(r.Opaque(vfs.MaxHandleSize))
}

// DecodeSattr reads a sattr3. The result's pointers point into st, which
// the caller provides so that decoding does not allocate. It reports an
// out-of-range time_how (an enum without default, so undecodable); short
// input is left in r.Err().
func DecodeSattr(r *xdr.Reader, sa *vfs.SetAttr, st *SattrStorage) error {
	*sa = vfs.SetAttr{}
	if r.Bool() {
		st.mode = r.Uint32()
		sa.Mode = &st.mode
	}
	if r.Bool() {
		st.uid = r.Uint32()
		sa.UID = &st.uid
	}
	if r.Bool() {
		st.gid = r.Uint32()
		sa.GID = &st.gid
	}
	if r.Bool() {
		st.size = r.Uint64()
		sa.Size = &st.size
	}
	var ok1, ok2 bool
	sa.Atime, ok1 = decodeSetTime(r)
	sa.Mtime, ok2 = decodeSetTime(r)
	if !ok1 || !ok2 {
		return errEnum
	}
	return nil
}

// SattrStorage backs the optional fields of a decoded vfs.SetAttr.
type SattrStorage struct {
	mode, uid, gid uint32
	size           uint64
}

func decodeSetTime(r *xdr.Reader) (vfs.SetTime, bool) {
	how := vfs.TimeHow(r.Uint32())
	switch how {
	case vfs.TimeDontChange, vfs.TimeServer:
		return vfs.SetTime{How: how}, true
	case vfs.TimeClient:
		return vfs.SetTime{How: how, Time: decodeTime(r)}, true
	}
	return vfs.SetTime{}, false
}

// EncodeSattr appends a sattr3.
func EncodeSattr(w *xdr.Writer, sa *vfs.SetAttr) {
	if sa.Mode != nil {
		w.Uint32(1)
		w.Uint32(*sa.Mode)
	} else {
		w.Uint32(0)
	}
	if sa.UID != nil {
		w.Uint32(1)
		w.Uint32(*sa.UID)
	} else {
		w.Uint32(0)
	}
	if sa.GID != nil {
		w.Uint32(1)
		w.Uint32(*sa.GID)
	} else {
		w.Uint32(0)
	}
	if sa.Size != nil {
		w.Uint32(1)
		w.Uint64(*sa.Size)
	} else {
		w.Uint32(0)
	}
	encodeSetTime(w, sa.Atime)
	encodeSetTime(w, sa.Mtime)
}

func encodeSetTime(w *xdr.Writer, st vfs.SetTime) {
	w.Uint32(uint32(st.How))
	if st.How == vfs.TimeClient {
		s, ns := timeToNFS(st.Time)
		w.Uint32(s)
		w.Uint32(ns)
	}
}

// EncodeTime appends an nfstime3.
func EncodeTime(w *xdr.Writer, t time.Time) {
	s, ns := timeToNFS(t)
	w.Uint32(s)
	w.Uint32(ns)
}

// DecodeTime reads an nfstime3.
func DecodeTime(r *xdr.Reader) time.Time { return decodeTime(r) }
