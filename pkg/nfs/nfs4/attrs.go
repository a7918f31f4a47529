package nfs4

import (
	"bytes"
	mbits "math/bits"
	"time"

	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
	"github.com/hangar-csi/hangar/pkg/vfs"
)

// Attribute sets.
var (
	// supportedAttrs is what supported_attrs advertises.
	supportedAttrs = bits(AttrSupportedAttrs, AttrType, AttrFHExpireType, AttrChange,
		AttrSize, AttrLinkSupport, AttrSymlinkSupport, AttrNamedAttr, AttrFSID,
		AttrUniqueHandles, AttrLeaseTime, AttrRdattrError, AttrCanSetTime,
		AttrCaseInsensitive, AttrCasePreserving, AttrChownRestricted, AttrFilehandle,
		AttrFileID, AttrFilesAvail, AttrFilesFree, AttrFilesTotal, AttrHomogeneous,
		AttrMaxFileSize, AttrMaxLink, AttrMaxName, AttrMaxRead, AttrMaxWrite, AttrMode,
		AttrNoTrunc, AttrNumLinks, AttrOwner, AttrOwnerGroup, AttrRawDev, AttrSpaceAvail,
		AttrSpaceFree, AttrSpaceTotal, AttrSpaceUsed, AttrTimeAccess, AttrTimeAccessSet,
		AttrTimeDelta, AttrTimeMetadata, AttrTimeModify, AttrTimeModifySet,
		AttrMountedOnFileID, AttrSuppAttrExclCreat)
	// writeOnlyAttrs can be set but never read.
	writeOnlyAttrs = bits(AttrTimeAccessSet, AttrTimeModifySet)
	// settableAttrs are what SETATTR, OPEN and CREATE accept.
	settableAttrs = bits(AttrSize, AttrMode, AttrOwner, AttrOwnerGroup, AttrTimeAccessSet, AttrTimeModifySet)
	// exclCreatAttrs may accompany an EXCLUSIVE4_1 create (the times are
	// left out: an exclusive create's verifier may live in them).
	exclCreatAttrs = bits(AttrSize, AttrMode, AttrOwner, AttrOwnerGroup)
	// statAttrs need an FSStat call.
	statAttrs = bits(AttrFilesAvail, AttrFilesFree, AttrFilesTotal, AttrSpaceAvail, AttrSpaceFree, AttrSpaceTotal)
)

// maxFileSize is what maxfilesize advertises (as NFSv3's FSINFO does).
const maxFileSize = 1<<63 - 1

// attrs is an object's attributes plus what fattr4 adds to vfs.Attr.
type attrs struct {
	a         vfs.Attr
	fh        []byte
	fsid      [2]uint64
	mountedOn uint64
	change    uint64
	st        vfs.FSStat // valid if statAttrs were requested
	rderr     uint32
	lease     uint32
}

// encodeFattr appends a fattr4 holding the attributes of req that this
// server can return.
func encodeFattr(w *xdr.Writer, req bitmap, s *attrs) {
	ret := req.and(supportedAttrs)
	ret = ret.andNot(writeOnlyAttrs)
	encodeBitmap(w, ret)
	lenOff := w.Len()
	w.Uint32(0)
	encodeAttrVals(w, ret, s)
	w.PatchUint32(lenOff, uint32(w.Len()-lenOff-4))
}

// encodeAttrVals appends the values of the attributes in ret, in order.
// Every attribute in ret must be readable and supported.
func encodeAttrVals(w *xdr.Writer, ret bitmap, s *attrs) {
	a := &s.a
	for word := range 3 {
		for v := ret[word]; v != 0; v &= v - 1 {
			n := word*32 + mbits.TrailingZeros32(v)
			switch n {
			case AttrSupportedAttrs:
				encodeBitmap(w, supportedAttrs)
			case AttrType:
				w.Uint32(uint32(a.Type))
			case AttrFHExpireType:
				w.Uint32(0) // FH4_PERSISTENT
			case AttrChange:
				w.Uint64(s.change)
			case AttrSize:
				w.Uint64(a.Size)
			case AttrLinkSupport, AttrSymlinkSupport, AttrUniqueHandles, AttrCanSetTime,
				AttrCasePreserving, AttrChownRestricted, AttrHomogeneous, AttrNoTrunc:
				w.Bool(true)
			case AttrNamedAttr, AttrCaseInsensitive:
				w.Bool(false)
			case AttrFSID:
				w.Uint64(s.fsid[0])
				w.Uint64(s.fsid[1])
			case AttrLeaseTime:
				w.Uint32(s.lease)
			case AttrRdattrError:
				w.Uint32(s.rderr)
			case AttrFilehandle:
				w.Opaque(s.fh)
			case AttrFileID:
				w.Uint64(a.FileID)
			case AttrFilesAvail:
				w.Uint64(s.st.AvailFiles)
			case AttrFilesFree:
				w.Uint64(s.st.FreeFiles)
			case AttrFilesTotal:
				w.Uint64(s.st.TotalFiles)
			case AttrMaxFileSize:
				w.Uint64(maxFileSize)
			case AttrMaxLink:
				w.Uint32(65000)
			case AttrMaxName:
				w.Uint32(MaxName)
			case AttrMaxRead:
				w.Uint64(MaxRead)
			case AttrMaxWrite:
				w.Uint64(MaxWrite)
			case AttrMode:
				w.Uint32(a.Mode & 07777)
			case AttrNumLinks:
				w.Uint32(a.Nlink)
			case AttrOwner:
				w.String(ownerString(a.UID))
			case AttrOwnerGroup:
				w.String(ownerString(a.GID))
			case AttrRawDev:
				w.Uint32(a.RdevMajor)
				w.Uint32(a.RdevMinor)
			case AttrSpaceAvail:
				w.Uint64(s.st.AvailBytes)
			case AttrSpaceFree:
				w.Uint64(s.st.FreeBytes)
			case AttrSpaceTotal:
				w.Uint64(s.st.TotalBytes)
			case AttrSpaceUsed:
				w.Uint64(a.Used)
			case AttrTimeAccess:
				encodeTime(w, a.Atime)
			case AttrTimeDelta:
				w.Uint64(0)
				w.Uint32(1) // nanosecond timestamps
			case AttrTimeMetadata:
				encodeTime(w, a.Ctime)
			case AttrTimeModify:
				encodeTime(w, a.Mtime)
			case AttrMountedOnFileID:
				w.Uint64(s.mountedOn)
			case AttrSuppAttrExclCreat:
				encodeBitmap(w, exclCreatAttrs)
			}
		}
	}
}

// setAttrs is a decoded fattr4 for SETATTR, OPEN or CREATE.
type setAttrs struct {
	sa             vfs.SetAttr
	set            bitmap // the attributes present
	mode, uid, gid uint32
	size           uint64
}

// decodeSetAttrs reads a fattr4 of attributes to set. The status is
// BADXDR for input that does not decode, ATTRNOTSUPP for attributes this
// server does not know and INVAL for ones it cannot set or values out of
// range.
func decodeSetAttrs(r *xdr.Reader, s *setAttrs) uint32 {
	*s = setAttrs{}
	bm, extra, ok := decodeBitmap(r)
	vals := r.Opaque(maxAttrVals)
	if !ok || r.Err() != nil {
		return ErrBadXDR
	}
	if extra || !bm.andNot(supportedAttrs).empty() {
		return ErrAttrNotSupp
	}
	if !bm.andNot(settableAttrs).empty() {
		return ErrInval
	}
	s.set = bm
	var vr xdr.Reader
	vr.Reset(vals)
	if bm.has(AttrSize) {
		s.size = vr.Uint64()
		s.sa.Size = &s.size
	}
	if bm.has(AttrMode) {
		s.mode = vr.Uint32()
		if s.mode > 07777 {
			return ErrInval
		}
		s.sa.Mode = &s.mode
	}
	if bm.has(AttrOwner) {
		id, ok := parseOwner(vr.Opaque(maxOpaque))
		if vr.Err() != nil {
			return ErrBadXDR
		}
		if !ok {
			return ErrBadOwner
		}
		s.uid = id
		s.sa.UID = &s.uid
	}
	if bm.has(AttrOwnerGroup) {
		id, ok := parseOwner(vr.Opaque(maxOpaque))
		if vr.Err() != nil {
			return ErrBadXDR
		}
		if !ok {
			return ErrBadOwner
		}
		s.gid = id
		s.sa.GID = &s.gid
	}
	if bm.has(AttrTimeAccessSet) {
		if st := decodeSetTime(&vr, &s.sa.Atime); st != OK {
			return st
		}
	}
	if bm.has(AttrTimeModifySet) {
		if st := decodeSetTime(&vr, &s.sa.Mtime); st != OK {
			return st
		}
	}
	if vr.Err() != nil || len(vr.Remaining()) != 0 {
		return ErrBadXDR
	}
	return OK
}

func decodeSetTime(r *xdr.Reader, t *vfs.SetTime) uint32 {
	switch r.Uint32() {
	case 0: // SET_TO_SERVER_TIME4
		*t = vfs.SetTime{How: vfs.TimeServer}
	case 1: // SET_TO_CLIENT_TIME4
		tm, ok := decodeTime(r)
		if !ok {
			return ErrInval
		}
		*t = vfs.SetTime{How: vfs.TimeClient, Time: tm}
	default:
		return ErrBadXDR
	}
	if r.Err() != nil {
		return ErrBadXDR
	}
	return OK
}

// verifyAttrs compares a fattr4 from VERIFY/NVERIFY with the object's
// attributes: OK if they match, ErrNotSame if not, or the status that
// makes the request invalid. load fills in the attributes for the bitmap.
func verifyAttrs(r *xdr.Reader, load func(bitmap) (*attrs, uint32)) uint32 {
	bm, extra, ok := decodeBitmap(r)
	vals := r.Opaque(maxAttrVals)
	if !ok || r.Err() != nil {
		return ErrBadXDR
	}
	if extra || !bm.andNot(supportedAttrs).empty() {
		return ErrAttrNotSupp
	}
	if bm.has(AttrRdattrError) || !bm.and(writeOnlyAttrs).empty() {
		return ErrInval
	}
	s, st := load(bm)
	if st != OK {
		return st
	}
	w := xdr.NewWriter(make([]byte, 0, 256))
	encodeAttrVals(w, bm, s)
	if !bytes.Equal(w.Bytes(), vals) {
		return ErrNotSame
	}
	return OK
}

// pseudoTime stands for every time of a pseudo-filesystem directory.
var pseudoTime = time.Now()
