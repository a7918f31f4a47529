// Package nfs4 is the NFSv4.1 protocol (RFC 8881, XDR from RFC 5662; minor
// version 2 of RFC 7862 is accepted, its new operations answer NOTSUPP)
// over a vfs.FS: program 100003 version 4, served beside NFSv3 on the
// same port.
//
// Like pkg/nfs/nfs3 it decodes arguments with the hand-written xdr Reader
// and encodes results into the pooled reply buffer the rpc server hands it.
// COMPOUND is decoded op by op as it executes, so a request costs no
// allocation proportional to its op count. Client, session and open state
// live in their own types (session.go, state.go).
package nfs4

import "fmt"

// Program and version numbers.
const (
	Program = 100003
	Version = 4

	ProcNull     = 0
	ProcCompound = 1
)

// Operation numbers (RFC 8881 section 16.2, RFC 7862 section 15).
const (
	OpAccess             = 3
	OpClose              = 4
	OpCommit             = 5
	OpCreate             = 6
	OpDelegPurge         = 7
	OpDelegReturn        = 8
	OpGetAttr            = 9
	OpGetFH              = 10
	OpLink               = 11
	OpLock               = 12
	OpLockT              = 13
	OpLockU              = 14
	OpLookup             = 15
	OpLookupP            = 16
	OpNVerify            = 17
	OpOpen               = 18
	OpOpenAttr           = 19
	OpOpenConfirm        = 20
	OpOpenDowngrade      = 21
	OpPutFH              = 22
	OpPutPubFH           = 23
	OpPutRootFH          = 24
	OpRead               = 25
	OpReadDir            = 26
	OpReadlink           = 27
	OpRemove             = 28
	OpRename             = 29
	OpRenew              = 30
	OpRestoreFH          = 31
	OpSaveFH             = 32
	OpSecInfo            = 33
	OpSetAttr            = 34
	OpSetClientID        = 35
	OpSetClientIDConfirm = 36
	OpVerify             = 37
	OpWrite              = 38
	OpReleaseLockOwner   = 39
	OpBackchannelCtl     = 40
	OpBindConnToSession  = 41
	OpExchangeID         = 42
	OpCreateSession      = 43
	OpDestroySession     = 44
	OpFreeStateID        = 45
	OpGetDirDelegation   = 46
	OpGetDeviceInfo      = 47
	OpGetDeviceList      = 48
	OpLayoutCommit       = 49
	OpLayoutGet          = 50
	OpLayoutReturn       = 51
	OpSecInfoNoName      = 52
	OpSequence           = 53
	OpSetSSV             = 54
	OpTestStateID        = 55
	OpWantDelegation     = 56
	OpDestroyClientID    = 57
	OpReclaimComplete    = 58
	// Minor version 2.
	OpAllocate      = 59
	OpCopy          = 60
	OpCopyNotify    = 61
	OpDeallocate    = 62
	OpIOAdvise      = 63
	OpLayoutError   = 64
	OpLayoutStats   = 65
	OpOffloadCancel = 66
	OpOffloadStatus = 67
	OpReadPlus      = 68
	OpSeek          = 69
	OpWriteSame     = 70
	OpClone         = 71
	OpGetXattr      = 72
	OpSetXattr      = 73
	OpListXattrs    = 74
	OpRemoveXattr   = 75

	OpIllegal = 10044

	lastOp41 = OpReclaimComplete
	lastOp42 = OpRemoveXattr
)

var opNames = [...]string{
	3: "ACCESS", "CLOSE", "COMMIT", "CREATE", "DELEGPURGE", "DELEGRETURN",
	"GETATTR", "GETFH", "LINK", "LOCK", "LOCKT", "LOCKU", "LOOKUP", "LOOKUPP",
	"NVERIFY", "OPEN", "OPENATTR", "OPEN_CONFIRM", "OPEN_DOWNGRADE", "PUTFH",
	"PUTPUBFH", "PUTROOTFH", "READ", "READDIR", "READLINK", "REMOVE", "RENAME",
	"RENEW", "RESTOREFH", "SAVEFH", "SECINFO", "SETATTR", "SETCLIENTID",
	"SETCLIENTID_CONFIRM", "VERIFY", "WRITE", "RELEASE_LOCKOWNER",
	"BACKCHANNEL_CTL", "BIND_CONN_TO_SESSION", "EXCHANGE_ID", "CREATE_SESSION",
	"DESTROY_SESSION", "FREE_STATEID", "GET_DIR_DELEGATION", "GETDEVICEINFO",
	"GETDEVICELIST", "LAYOUTCOMMIT", "LAYOUTGET", "LAYOUTRETURN",
	"SECINFO_NO_NAME", "SEQUENCE", "SET_SSV", "TEST_STATEID", "WANT_DELEGATION",
	"DESTROY_CLIENTID", "RECLAIM_COMPLETE", "ALLOCATE", "COPY", "COPY_NOTIFY",
	"DEALLOCATE", "IO_ADVISE", "LAYOUTERROR", "LAYOUTSTATS", "OFFLOAD_CANCEL",
	"OFFLOAD_STATUS", "READ_PLUS", "SEEK", "WRITE_SAME", "CLONE", "GETXATTR",
	"SETXATTR", "LISTXATTRS", "REMOVEXATTR",
}

// OpName returns the RFC name of op.
func OpName(op uint32) string {
	if op < uint32(len(opNames)) && opNames[op] != "" {
		return opNames[op]
	}
	if op == OpIllegal {
		return "ILLEGAL"
	}
	return fmt.Sprintf("OP(%d)", op)
}

// nfsstat4 values (RFC 8881 section 15.1). The errno-like ones and those
// shared with NFSv3 have the same numbers as there.
const (
	OK                   = 0
	ErrPerm              = 1
	ErrNoEnt             = 2
	ErrIO                = 5
	ErrNXIO              = 6
	ErrAccess            = 13
	ErrExist             = 17
	ErrXDev              = 18
	ErrNotDir            = 20
	ErrIsDir             = 21
	ErrInval             = 22
	ErrFBig              = 27
	ErrNoSpc             = 28
	ErrROFS              = 30
	ErrMLink             = 31
	ErrNameTooLong       = 63
	ErrNotEmpty          = 66
	ErrDQuot             = 69
	ErrStale             = 70
	ErrBadHandle         = 10001
	ErrBadCookie         = 10003
	ErrNotSupp           = 10004
	ErrTooSmall          = 10005
	ErrServerFault       = 10006
	ErrBadType           = 10007
	ErrDelay             = 10008
	ErrSame              = 10009
	ErrDenied            = 10010
	ErrExpired           = 10011
	ErrLocked            = 10012
	ErrGrace             = 10013
	ErrFHExpired         = 10014
	ErrShareDenied       = 10015
	ErrWrongSec          = 10016
	ErrClidInUse         = 10017
	ErrResource          = 10018 // NFSv4.0 only: never sent
	ErrMoved             = 10019
	ErrNoFileHandle      = 10020
	ErrMinorVersMismatch = 10021
	ErrStaleClientID     = 10022
	ErrStaleStateID      = 10023 // NFSv4.0 only: never sent
	ErrOldStateID        = 10024
	ErrBadStateID        = 10025
	ErrBadSeqID          = 10026
	ErrNotSame           = 10027
	ErrLockRange         = 10028
	ErrSymlink           = 10029
	ErrRestoreFH         = 10030
	ErrAttrNotSupp       = 10032
	ErrNoGrace           = 10033
	ErrReclaimBad        = 10034
	ErrReclaimConflict   = 10035
	ErrBadXDR            = 10036
	ErrLocksHeld         = 10037
	ErrOpenMode          = 10038
	ErrBadOwner          = 10039
	ErrBadChar           = 10040
	ErrBadName           = 10041
	ErrBadRange          = 10042
	ErrLockNotSupp       = 10043
	ErrOpIllegal         = 10044
	ErrDeadlock          = 10045
	ErrFileOpen          = 10046
	ErrAdminRevoked      = 10047
	ErrBadSession        = 10052
	ErrBadSlot           = 10053
	ErrCompleteAlready   = 10054
	ErrConnNotBound      = 10055
	ErrSeqMisordered     = 10063
	ErrSequencePos       = 10064
	ErrReqTooBig         = 10065
	ErrRepTooBig         = 10066
	ErrRepTooBigToCache  = 10067
	ErrRetryUncachedRep  = 10068
	ErrTooManyOps        = 10070
	ErrOpNotInSession    = 10071
	ErrClientIDBusy      = 10074
	ErrSeqFalseRetry     = 10076
	ErrBadHighSlot       = 10077
	ErrDeadSession       = 10078
	ErrNotOnlyOp         = 10081
	ErrWrongCred         = 10082
	ErrWrongType         = 10083
)

// File types (nfs_ftype4); 1 to 7 equal vfs.FileType.
const (
	NF4Reg      = 1
	NF4Dir      = 2
	NF4Blk      = 3
	NF4Chr      = 4
	NF4Lnk      = 5
	NF4Sock     = 6
	NF4FIFO     = 7
	NF4AttrDir  = 8
	NF4NamedAtt = 9
)

// Attribute numbers (RFC 8881 section 5).
const (
	AttrSupportedAttrs    = 0
	AttrType              = 1
	AttrFHExpireType      = 2
	AttrChange            = 3
	AttrSize              = 4
	AttrLinkSupport       = 5
	AttrSymlinkSupport    = 6
	AttrNamedAttr         = 7
	AttrFSID              = 8
	AttrUniqueHandles     = 9
	AttrLeaseTime         = 10
	AttrRdattrError       = 11
	AttrACL               = 12
	AttrACLSupport        = 13
	AttrCanSetTime        = 15
	AttrCaseInsensitive   = 16
	AttrCasePreserving    = 17
	AttrChownRestricted   = 18
	AttrFilehandle        = 19
	AttrFileID            = 20
	AttrFilesAvail        = 21
	AttrFilesFree         = 22
	AttrFilesTotal        = 23
	AttrHomogeneous       = 26
	AttrMaxFileSize       = 27
	AttrMaxLink           = 28
	AttrMaxName           = 29
	AttrMaxRead           = 30
	AttrMaxWrite          = 31
	AttrMode              = 33
	AttrNoTrunc           = 34
	AttrNumLinks          = 35
	AttrOwner             = 36
	AttrOwnerGroup        = 37
	AttrRawDev            = 41
	AttrSpaceAvail        = 42
	AttrSpaceFree         = 43
	AttrSpaceTotal        = 44
	AttrSpaceUsed         = 45
	AttrTimeAccess        = 47
	AttrTimeAccessSet     = 48
	AttrTimeDelta         = 51
	AttrTimeMetadata      = 52
	AttrTimeModify        = 53
	AttrTimeModifySet     = 54
	AttrMountedOnFileID   = 55
	AttrSuppAttrExclCreat = 75
)

// Share access and deny bits of OPEN.
const (
	ShareAccessRead  = 1
	ShareAccessWrite = 2
	ShareAccessBoth  = 3
	ShareDenyNone    = 0
	ShareDenyRead    = 1
	ShareDenyWrite   = 2
	ShareDenyBoth    = 3
)

// OPEN result flags.
const (
	openResultLockTypePOSIX    = 0x4
	openResultPreserveUnlinked = 0x8
)

// Create modes (createmode4) and claim types (open_claim_type4).
const (
	createUnchecked  = 0
	createGuarded    = 1
	createExclusive  = 2
	createExclusive1 = 3

	claimNull         = 0
	claimPrevious     = 1
	claimDelegateCur  = 2
	claimDelegatePrev = 3
	claimFH           = 4
	claimDelegCurFH   = 5
	claimDelegPrevFH  = 6
)

// EXCHANGE_ID flags.
const (
	exchgidSuppMovedRefer    = 0x1
	exchgidSuppMovedMigr     = 0x2
	exchgidBindPrincStateid  = 0x100
	exchgidUseNonPNFS        = 0x10000
	exchgidUsePNFSMDS        = 0x20000
	exchgidUsePNFSDS         = 0x40000
	exchgidMaskPNFS          = 0x70000
	exchgidUpdConfirmedRecA  = 0x40000000
	exchgidConfirmedR        = 0x80000000
	exchgidValidClientFlags  = exchgidSuppMovedRefer | exchgidSuppMovedMigr | exchgidBindPrincStateid | exchgidMaskPNFS | exchgidUpdConfirmedRecA
	createSessionFlagPersist = 0x1
	createSessionConnBack    = 0x2
	createSessionConnRDMA    = 0x4
)

// Limits. Sizes are checked before anything is allocated.
const (
	MaxName      = 255     // component4 bytes
	MaxPath      = 4095    // linktext4 bytes
	MaxFHSize    = 128     // NFS4_FHSIZE
	MaxRead      = 1 << 20 // maxread attribute
	MaxWrite     = 1 << 20 // maxwrite attribute
	MaxReadDir   = 1 << 20 // cap on a READDIR reply
	maxOpaque    = 1024    // NFS4_OPAQUE_LIMIT: owners, verifiers of identity
	maxTag       = 1024    // COMPOUND tag bytes
	maxOps       = 128     // ops in one COMPOUND, whatever a session allows
	maxBitmap    = 8       // bitmap4 words accepted
	maxAttrVals  = 64 << 10
	maxTestIDs   = 1024 // stateids in one TEST_STATEID
	maxSecParms  = 16   // callback security parameters in CREATE_SESSION
	maxGIDs      = 16
	sessionIDLen = 16
	otherLen     = 12 // stateid4 "other"
)
