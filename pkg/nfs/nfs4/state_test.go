package nfs4

import (
	"bytes"
	"context"
	"net/netip"
	"syscall"
	"testing"

	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
	"github.com/hangar-csi/hangar/pkg/vfs"
	"github.com/hangar-csi/hangar/pkg/vfs/vfstest"
)

func TestOpenCreateModes(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.client()
	c.connect("create")
	dir := c.volRoot()
	open := func(a openArgs) uint32 {
		t.Helper()
		a.owner = "o"
		if a.access == 0 {
			a.access = ShareAccessBoth
		}
		_, _, st := c.open(dir, a)
		return st
	}
	if st := open(openArgs{name: "missing"}); st != ErrNoEnt {
		t.Errorf("NOCREATE of a missing file: %d", st)
	}
	if st := open(openArgs{create: true, how: createGuarded, name: "g"}); st != OK {
		t.Errorf("GUARDED: %d", st)
	}
	if st := open(openArgs{create: true, how: createGuarded, name: "g"}); st != ErrExist {
		t.Errorf("GUARDED over an existing file: %d", st)
	}
	// UNCHECKED keeps an existing file, truncating it if asked.
	sid, fh, _ := c.open(dir, openArgs{access: ShareAccessBoth, owner: "o", name: "g"})
	c.must(putfh(fh), writeOp(sid, 0, []byte("data")))
	if st := open(openArgs{create: true, how: createUnchecked, name: "g"}); st != OK {
		t.Errorf("UNCHECKED over an existing file: %d", st)
	}
	if a, _ := e.fs.GetAttr(context.Background(), vol(fh)); a.Size != 4 {
		t.Errorf("UNCHECKED without size changed the file: size %d", a.Size)
	}
	size0 := fattr(bits(AttrSize), func(w *xdr.Writer) { w.Uint64(0) })
	if st := open(openArgs{create: true, how: createUnchecked, name: "g", attrs: size0}); st != OK {
		t.Errorf("UNCHECKED with size 0: %d", st)
	}
	if a, _ := e.fs.GetAttr(context.Background(), vol(fh)); a.Size != 0 {
		t.Errorf("UNCHECKED with size 0 left size %d", a.Size)
	}
	// EXCLUSIVE4_1: a retransmission with the same verifier succeeds
	// (while no attributes were set: the vfs keeps the verifier until
	// then; retransmissions within a session come from the reply cache).
	x := openArgs{create: true, how: createExclusive1, verf: [8]byte{7}, name: "x"}
	if st := open(x); st != OK {
		t.Errorf("EXCLUSIVE4_1: %d", st)
	}
	if st := open(x); st != OK {
		t.Errorf("EXCLUSIVE4_1 again: %d", st)
	}
	x.verf = [8]byte{8}
	if st := open(x); st != ErrExist {
		t.Errorf("EXCLUSIVE4_1 with another verifier: %d", st)
	}
	mode := fattr(bits(AttrMode), func(w *xdr.Writer) { w.Uint32(0o600) })
	if st := open(openArgs{create: true, how: createExclusive1, verf: [8]byte{9}, name: "xm", attrs: mode}); st != OK {
		t.Errorf("EXCLUSIVE4_1 with a mode: %d", st)
	}
	x.name, x.attrs = "y", fattr(bits(AttrTimeModifySet), func(w *xdr.Writer) { w.Uint32(0) })
	if st := open(x); st != ErrInval {
		t.Errorf("EXCLUSIVE4_1 with an attribute outside suppattr_exclcreat: %d", st)
	}
	if st := open(openArgs{create: true, how: createExclusive, verf: [8]byte{1}, name: "e"}); st != OK {
		t.Errorf("EXCLUSIVE4: %d", st)
	}
	// Object types.
	c.must(putfh(dir), mkdirOp("d"))
	c.must(putfh(dir), symlinkOp("l", "g"))
	if st := open(openArgs{name: "d"}); st != ErrIsDir {
		t.Errorf("OPEN of a directory: %d", st)
	}
	if st := open(openArgs{name: "l"}); st != ErrSymlink {
		t.Errorf("OPEN of a symlink: %d", st)
	}
	// Claims and arguments.
	if st := open(openArgs{claim: claimPrevious}); st != ErrNoGrace {
		t.Errorf("CLAIM_PREVIOUS: %d", st)
	}
	if st := open(openArgs{access: 4, name: "g"}); st != ErrInval {
		t.Errorf("share access 4: %d", st)
	}
	if st := open(openArgs{deny: 4, name: "g"}); st != ErrInval {
		t.Errorf("share deny 4: %d", st)
	}
	// CLAIM_FH opens the current filehandle.
	p := c.must(putfh(fh), openOp(openArgs{access: ShareAccessRead, owner: "fh", claim: claimFH}), getfh())
	p.ok(OpPutFH)
	p.ok(OpOpen)
	skipResult(p, OpOpen)
	if got := p.ok(OpGetFH).Opaque(MaxFHSize); !bytes.Equal(got, fh) {
		t.Error("CLAIM_FH changed the filehandle")
	}
	// The creator's attributes and credentials.
	_, xf, _ := c.open(dir, openArgs{access: ShareAccessRead, owner: "o", name: "xm"})
	if a, _ := e.fs.GetAttr(context.Background(), vol(xf)); a.Mode&0o777 != 0o600 || a.UID != 1000 {
		t.Errorf("EXCLUSIVE4_1 file: mode %o uid %d", a.Mode, a.UID)
	}
}

func TestOpenPermissions(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.client()
	c.connect("perm")
	dir := c.volRoot()
	c.must(putfh(dir), setattrOp(anonStateid, bits(AttrMode), func(w *xdr.Writer) { w.Uint32(0o777) }))
	mode := fattr(bits(AttrMode), func(w *xdr.Writer) { w.Uint32(0o400) })
	// The creator opens for write a file its mode makes read-only.
	if _, _, st := c.open(dir, openArgs{access: ShareAccessBoth, owner: "o", create: true, how: createGuarded, name: "ro", attrs: mode}); st != OK {
		t.Fatalf("create read-only file for write: %d", st)
	}
	if _, _, st := c.open(dir, openArgs{access: ShareAccessWrite, owner: "o2", name: "ro"}); st != ErrAccess {
		t.Fatalf("open of a read-only file for write: %d", st)
	}
	if _, _, st := c.open(dir, openArgs{access: ShareAccessRead, owner: "o2", name: "ro"}); st != OK {
		t.Fatalf("open of a read-only file for read: %d", st)
	}
}

func TestShareReservations(t *testing.T) {
	e := newEnv(t, Options{})
	a, b := e.client(), e.client()
	a.connect("a")
	b.connect("b")
	dir := a.volRoot()
	sidA, fh, st := a.open(dir, openArgs{access: ShareAccessRead, deny: ShareDenyWrite, owner: "A", create: true, how: createUnchecked, name: "f"})
	if st != OK {
		t.Fatal(st)
	}
	for _, tc := range []struct {
		access, deny uint32
		want         uint32
	}{
		{ShareAccessWrite, ShareDenyNone, ErrShareDenied}, // A denies write
		{ShareAccessRead, ShareDenyRead, ErrShareDenied},  // A reads
		{ShareAccessRead, ShareDenyNone, OK},
	} {
		if _, _, st := b.open(dir, openArgs{access: tc.access, deny: tc.deny, owner: "B", name: "f"}); st != tc.want {
			t.Errorf("B opens access %d deny %d: %d, want %d", tc.access, tc.deny, st, tc.want)
		}
	}
	// A's own other owner is another open-owner: the deny applies too.
	if _, _, st := a.open(dir, openArgs{access: ShareAccessWrite, owner: "A2", name: "f"}); st != ErrShareDenied {
		t.Errorf("second owner of A: %d", st)
	}
	// The same owner upgrades its open: same other, next seqid.
	sidUp, _, st := a.open(dir, openArgs{access: ShareAccessBoth, owner: "A", name: "f"})
	if st != OK || sidUp.other != sidA.other || sidUp.seq != sidA.seq+1 {
		t.Fatalf("upgrade: %d, %+v after %+v", st, sidUp, sidA)
	}
	// The old seqid is old now; seqid 0 means the current one.
	for _, tc := range []struct {
		sid  stateid
		want uint32
	}{
		{sidA, ErrOldStateID},
		{stateid{seq: 0, other: sidA.other}, OK},
		{sidUp, OK},
		{stateid{seq: sidUp.seq + 1, other: sidA.other}, ErrBadStateID},
	} {
		p := a.must(putfh(fh), mkop(OpTestStateID, func(w *xdr.Writer) { w.Uint32(1); encodeStateid(w, tc.sid) }))
		p.ok(OpPutFH)
		r := p.ok(OpTestStateID)
		if r.Uint32() != 1 || r.Uint32() != tc.want {
			t.Errorf("TEST_STATEID %+v: want %d", tc.sid, tc.want)
		}
	}
	// Another client cannot use A's stateid.
	if p := b.do(putfh(fh), readOp(sidUp, 0, 10)); p.status != ErrBadStateID {
		t.Errorf("B reads with A's stateid: %d", p.status)
	}
	// Downgrade to read-only, deny none: B may now write.
	p := a.do(putfh(fh), mkop(OpOpenDowngrade, func(w *xdr.Writer) {
		encodeStateid(w, sidUp)
		w.Uint32(0)
		w.Uint32(ShareAccessRead)
		w.Uint32(ShareDenyNone)
	}))
	if p.status != OK {
		t.Fatalf("OPEN_DOWNGRADE: %d", p.status)
	}
	p.ok(OpPutFH)
	sidDown := decodeStateid(p.ok(OpOpenDowngrade))
	if sidDown.seq != sidUp.seq+1 {
		t.Fatal("OPEN_DOWNGRADE seqid")
	}
	sidB, _, st := b.open(dir, openArgs{access: ShareAccessWrite, owner: "B", name: "f"})
	if st != OK {
		t.Fatalf("B opens for write after the downgrade: %d", st)
	}
	// A downgrade may not widen.
	p = a.do(putfh(fh), mkop(OpOpenDowngrade, func(w *xdr.Writer) {
		encodeStateid(w, sidDown)
		w.Uint32(0)
		w.Uint32(ShareAccessBoth)
		w.Uint32(ShareDenyNone)
	}))
	if p.status != ErrInval {
		t.Errorf("widening OPEN_DOWNGRADE: %d", p.status)
	}
	// A holds only read now: writing with its stateid is OPENMODE.
	if p := a.do(putfh(fh), writeOp(sidDown, 0, []byte("x"))); p.status != ErrOpenMode {
		t.Errorf("write with a read-only open: %d", p.status)
	}
	// FREE_STATEID refuses an open stateid; CLOSE ends it.
	if p := a.do(mkop(OpFreeStateID, func(w *xdr.Writer) { encodeStateid(w, sidDown) })); p.status != ErrLocksHeld {
		t.Errorf("FREE_STATEID of an open: %d", p.status)
	}
	p = a.do(putfh(fh), closeOp(sidDown))
	if p.status != OK {
		t.Fatalf("CLOSE: %d", p.status)
	}
	p.ok(OpPutFH)
	if got := decodeStateid(p.ok(OpClose)); got != invalidStateid {
		t.Errorf("CLOSE returned %+v", got)
	}
	if p := a.do(putfh(fh), closeOp(sidDown)); p.status != ErrBadStateID {
		t.Errorf("second CLOSE: %d", p.status)
	}
	if p := a.do(mkop(OpFreeStateID, func(w *xdr.Writer) { encodeStateid(w, sidDown) })); p.status != ErrBadStateID {
		t.Errorf("FREE_STATEID after CLOSE: %d", p.status)
	}
	// CLOSE on another file than the open's.
	other := a.fh(putfh(dir), mkdirOp("d"))
	if p := b.do(putfh(other), closeOp(sidB)); p.status != ErrBadStateID {
		t.Errorf("CLOSE on the wrong file: %d", p.status)
	}
	// Special stateids are not testable.
	p = a.must(mkop(OpTestStateID, func(w *xdr.Writer) {
		w.Uint32(2)
		encodeStateid(w, anonStateid)
		encodeStateid(w, bypassStateid)
	}))
	r := p.ok(OpTestStateID)
	if r.Uint32() != 2 || r.Uint32() != ErrBadStateID || r.Uint32() != ErrBadStateID {
		t.Error("TEST_STATEID of special stateids")
	}
	if p := a.do(mkop(OpTestStateID, func(w *xdr.Writer) { w.Uint32(1 << 30) })); p.status != ErrBadXDR {
		t.Errorf("TEST_STATEID with a huge count: %d", p.status)
	}
}

func TestReadWriteCommit(t *testing.T) {
	e := newEnv(t, Options{})
	e.fs.SetWriteVerifier(vfs.Verifier{1, 2, 3, 4, 5, 6, 7, 8})
	a, b := e.client(), e.client()
	a.connect("a")
	b.connect("b")
	dir := a.volRoot()
	// OPEN, WRITE with the current stateid, CLOSE in one COMPOUND, as
	// clients do for small files.
	p := a.must(putfh(dir),
		openOp(openArgs{access: ShareAccessBoth, owner: "o", create: true, how: createUnchecked, name: "f"}),
		getfh(),
		writeOp(currentStateid, 0, []byte("hello, world")),
		closeOp(currentStateid))
	p.ok(OpPutFH)
	p.ok(OpOpen)
	skipResult(p, OpOpen)
	fh := append([]byte(nil), p.ok(OpGetFH).Opaque(MaxFHSize)...)
	r := p.ok(OpWrite)
	if n, how := r.Uint32(), r.Uint32(); n != 12 || how != uint32(vfs.FileSync) {
		t.Fatalf("WRITE: %d bytes, stable %d", n, how)
	}
	if v := r.Fixed(8); !bytes.Equal(v, []byte{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Fatalf("write verifier %x", v)
	}
	p.ok(OpClose)
	read := func(c *tclient, sid stateid, off uint64, n uint32) (string, bool, uint32) {
		p := c.do(putfh(fh), readOp(sid, off, n))
		if p.status != OK {
			return "", false, p.status
		}
		p.ok(OpPutFH)
		r := p.ok(OpRead)
		eof := r.Bool()
		return string(r.Opaque(1 << 20)), eof, OK
	}
	if got, eof, st := read(a, anonStateid, 0, 100); st != OK || got != "hello, world" || !eof {
		t.Fatalf("READ: %q %v %d", got, eof, st)
	}
	if got, eof, st := read(a, bypassStateid, 7, 3); st != OK || got != "wor" || eof {
		t.Fatalf("READ middle: %q %v %d", got, eof, st)
	}
	if got, eof, st := read(a, anonStateid, 100, 3); st != OK || got != "" || !eof {
		t.Fatalf("READ past the end: %q %v %d", got, eof, st)
	}
	if _, _, st := read(a, currentStateid, 0, 1); st != ErrBadStateID {
		t.Fatalf("READ with the current stateid and none set: %d", st)
	}
	// B denies read: A's anonymous READ is refused, B's own goes through.
	sidB, _, st := b.open(dir, openArgs{access: ShareAccessBoth, deny: ShareDenyRead, owner: "B", name: "f"})
	if st != OK {
		t.Fatal(st)
	}
	if _, _, st := read(a, anonStateid, 0, 1); st != ErrLocked {
		t.Fatalf("anonymous READ against DENY_READ: %d", st)
	}
	if got, _, st := read(b, sidB, 0, 5); st != OK || got != "hello" {
		t.Fatalf("READ with B's stateid: %q %d", got, st)
	}
	// UNSTABLE then COMMIT.
	p = b.must(putfh(fh), mkop(OpWrite, func(w *xdr.Writer) {
		encodeStateid(w, sidB)
		w.Uint64(0)
		w.Uint32(uint32(vfs.Unstable))
		w.Opaque([]byte("HELLO"))
	}), mkop(OpCommit, func(w *xdr.Writer) { w.Uint64(0); w.Uint32(0) }))
	p.ok(OpPutFH)
	p.ok(OpWrite)
	p.r.Uint32()
	p.r.Uint32()
	p.r.Fixed(8)
	if v := p.ok(OpCommit).Fixed(8); !bytes.Equal(v, []byte{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Fatalf("commit verifier %x", v)
	}
	if got, _, _ := read(b, sidB, 0, 12); got != "HELLO, world" {
		t.Fatalf("after the unstable write: %q", got)
	}
	// Bad arguments and objects.
	if p := b.do(putfh(fh), mkop(OpWrite, func(w *xdr.Writer) {
		encodeStateid(w, sidB)
		w.Uint64(0)
		w.Uint32(3)
		w.Opaque([]byte("x"))
	})); p.status != ErrBadXDR {
		t.Errorf("WRITE with stable_how 3: %d", p.status)
	}
	if p := b.do(putfh(dir), readOp(anonStateid, 0, 1)); p.status != ErrIsDir {
		t.Errorf("READ of a directory: %d", p.status)
	}
	if p := b.do(putrootfh(), readOp(anonStateid, 0, 1)); p.status != ErrIsDir {
		t.Errorf("READ of the pseudo root: %d", p.status)
	}
	if p := b.do(putfh(fh), writeOp(stateid{seq: 1, other: sidB.other}, 0, []byte("x"))); p.status != OK {
		t.Errorf("WRITE with B's first seqid: %d", p.status)
	}
	// A big READ is bounded by maxread.
	if p := b.do(putfh(fh), readOp(sidB, 0, 1<<30)); p.status != OK {
		t.Errorf("READ of 1 GiB: %d", p.status)
	}
}

func TestCreateRemoveRenameLink(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.client()
	c.connect("dirops")
	dir := c.volRoot()
	ctx := context.Background()
	sub := c.fh(putfh(dir), mkdirOp("sub"))
	if a, _ := e.fs.GetAttr(ctx, vol(sub)); a.Type != vfs.TypeDirectory || a.UID != 1000 {
		t.Fatalf("mkdir: %+v", a)
	}
	fifo := c.fh(putfh(dir), mkop(OpCreate, func(w *xdr.Writer) {
		w.Uint32(NF4FIFO)
		w.String("fifo")
		fattr(bits(AttrMode), func(w *xdr.Writer) { w.Uint32(0o620) })(w)
	}))
	if a, _ := e.fs.GetAttr(ctx, vol(fifo)); a.Type != vfs.TypeFIFO || a.Mode&0o777 != 0o620 {
		t.Fatalf("fifo: %+v", a)
	}
	if p := c.do(putfh(dir), mkop(OpCreate, func(w *xdr.Writer) { w.Uint32(NF4Reg) })); p.status != ErrBadType {
		t.Errorf("CREATE of a regular file: %d", p.status)
	}
	if p := c.do(putfh(dir), mkdirOp("sub")); p.status != ErrExist {
		t.Errorf("CREATE over an existing name: %d", p.status)
	}
	if p := c.do(putfh(dir), symlinkOp("l", "")); p.status != ErrInval {
		t.Errorf("symlink to nothing: %d", p.status)
	}
	if p := c.do(putfh(dir), symlinkOp("l", string(make([]byte, MaxPath+1)))); p.status != ErrNameTooLong {
		t.Errorf("symlink target too long: %d", p.status)
	}
	// CREATE's change_info and attrset.
	p := c.must(putfh(dir), mkop(OpCreate, func(w *xdr.Writer) {
		w.Uint32(NF4Dir)
		w.String("m")
		fattr(bits(AttrMode), func(w *xdr.Writer) { w.Uint32(0o700) })(w)
	}))
	p.ok(OpPutFH)
	r := p.ok(OpCreate)
	r.Bool()
	before, after := r.Uint64(), r.Uint64()
	if set, _, _ := decodeBitmap(r); set != bits(AttrMode) || after == 0 || before > after {
		t.Errorf("CREATE result: attrset %v, change %d -> %d", set, before, after)
	}
	// LINK: saved = file, current = directory.
	_, f, _ := c.open(dir, openArgs{access: ShareAccessRead, owner: "o", create: true, how: createUnchecked, name: "f"})
	c.must(putfh(f), savefh(), putfh(sub), link("f2"))
	if a, _ := e.fs.GetAttr(ctx, vol(f)); a.Nlink != 2 {
		t.Fatalf("nlink %d after LINK", a.Nlink)
	}
	if p := c.do(putfh(sub), link("x")); p.status != ErrNoFileHandle {
		t.Errorf("LINK without a saved filehandle: %d", p.status)
	}
	// RENAME: saved = source directory, current = target directory.
	c.must(putfh(sub), savefh(), putfh(dir), rename("f2", "g"))
	if got := c.fh(putfh(dir), lookup("g")); !bytes.Equal(got, f) {
		t.Fatal("RENAME did not move the file")
	}
	if p := c.do(putfh(dir), savefh(), putfh(dir), rename("nothing", "x")); p.status != ErrNoEnt {
		t.Errorf("RENAME of a missing name: %d", p.status)
	}
	if p := c.do(putrootfh(), savefh(), putfh(dir), rename("vol", "x")); p.status != ErrROFS {
		t.Errorf("RENAME out of the pseudo-filesystem: %d", p.status)
	}
	// REMOVE of files and directories.
	c.must(putfh(dir), remove("g"))
	c.must(putfh(dir), remove("m"))
	if p := c.do(putfh(dir), remove("m")); p.status != ErrNoEnt {
		t.Errorf("REMOVE of a missing name: %d", p.status)
	}
	c.must(putfh(sub), mkdirOp("inner"))
	if p := c.do(putfh(dir), remove("sub")); p.status != ErrNotEmpty {
		t.Errorf("REMOVE of a non-empty directory: %d", p.status)
	}
	c.must(putfh(sub), remove("inner"))
	if p := c.do(putfh(sub), lookup("inner")); p.status != ErrNoEnt {
		t.Errorf("LOOKUP of a removed directory: %d", p.status)
	}
	if p := c.do(putrootfh(), remove("vol")); p.status != ErrROFS {
		t.Errorf("REMOVE in the pseudo root: %d", p.status)
	}
}

// One client cannot take every stateid: past its own limit it gets
// RESOURCE while another client still opens files, and closing frees room.
func TestStateLimits(t *testing.T) {
	e := newEnv(t, Options{MaxClientStates: 3, MaxStates: 5})
	a, b := e.client(), e.client()
	a.connect("a")
	b.connect("b")
	dir := a.volRoot()
	var sids []stateid
	var fhs [][]byte
	for i := range 3 {
		sid, fh, st := a.open(dir, openArgs{access: ShareAccessRead, owner: "o", create: true, how: createUnchecked, name: string(rune('a' + i))})
		if st != OK {
			t.Fatal(st)
		}
		sids, fhs = append(sids, sid), append(fhs, fh)
	}
	if _, _, st := a.open(dir, openArgs{access: ShareAccessRead, owner: "o", create: true, how: createUnchecked, name: "x"}); st != ErrNoSpc {
		t.Fatalf("open past the client's limit: %d", st)
	}
	if st, _, _ := a.lockResult(fhs[0], lockNew(readLT, 0, 1, sids[0], "l")); st != ErrNoSpc {
		t.Fatalf("lock past the client's limit: %d", st)
	}
	// Upgrading an open takes no new stateid.
	if _, _, st := a.open(dir, openArgs{access: ShareAccessRead, owner: "o", name: "a"}); st != OK {
		t.Fatalf("upgrade at the limit: %d", st)
	}
	for i := range 2 {
		if _, _, st := b.open(dir, openArgs{access: ShareAccessRead, owner: "o", name: string(rune('a' + i))}); st != OK {
			t.Fatalf("other client: %d", st)
		}
	}
	// The server is full now (5).
	if _, _, st := b.open(dir, openArgs{access: ShareAccessRead, owner: "o", name: "c"}); st != ErrNoSpc {
		t.Fatalf("open past the server's limit: %d", st)
	}
	a.must(putfh(fhs[2]), closeOp(sids[2]))
	if _, _, st := b.open(dir, openArgs{access: ShareAccessRead, owner: "o", name: "c"}); st != OK {
		t.Fatalf("open after a CLOSE made room: %d", st)
	}
}

// racyFS reports a name missing on its first lookup, as when another
// client creates it between an OPEN's lookup and its create.
type racyFS struct {
	*vfstest.MemFS
	missed bool
}

func (f *racyFS) Lookup(ctx context.Context, c vfs.Cred, dir vfs.Handle, name string) (vfs.Handle, vfs.Attr, *vfs.Attr, error) {
	if name == "race" && !f.missed {
		f.missed = true
		return nil, vfs.Attr{}, nil, syscall.ENOENT
	}
	return f.MemFS.Lookup(ctx, c, dir, name)
}

// An UNCHECKED open that loses a race with another creator still checks
// permissions on the file it ends up opening.
func TestOpenUncheckedRace(t *testing.T) {
	mem := vfstest.NewMemFS()
	root := mem.AddExport("/vol")
	ctx := context.Background()
	mode := uint32(0o777)
	mem.SetAttr(ctx, vfs.Cred{}, root, vfs.SetAttr{Mode: &mode}, nil)
	private := uint32(0o600)
	if _, _, _, err := mem.Create(ctx, vfs.Cred{UID: 2000, GID: 2000}, root, "race", vfs.CreateGuarded, vfs.SetAttr{Mode: &private}, vfs.Verifier{}); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, fs: mem, root: root, h: NewHandler(&racyFS{MemFS: mem}, discard(), Options{})}
	c := e.client()
	c.connect("racer")
	dir := c.volRoot()
	if _, _, st := c.open(dir, openArgs{access: ShareAccessWrite, owner: "o", create: true, how: createUnchecked, name: "race"}); st != ErrAccess {
		t.Fatalf("UNCHECKED open of another user's 0600 file after a lost race: %d, want ACCESS", st)
	}
}

// Quota is the filesystem's: WRITE and CREATE past it get DQUOT.
func TestQuota(t *testing.T) {
	e := newEnv(t, Options{})
	if err := e.fs.SetLimits("/vol", 64<<10, 3); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	c.connect("quota")
	dir := c.volRoot()
	sid, fh, st := c.open(dir, openArgs{access: ShareAccessBoth, owner: "o", create: true, how: createUnchecked, name: "f"})
	if st != OK {
		t.Fatal(st)
	}
	if p := c.do(putfh(fh), writeOp(sid, 0, make([]byte, 32<<10))); p.status != OK {
		t.Fatalf("WRITE within quota: %d", p.status)
	}
	if p := c.do(putfh(fh), writeOp(sid, 32<<10, make([]byte, 64<<10))); p.status != ErrDQuot {
		t.Fatalf("WRITE past the byte quota: %d", p.status)
	}
	c.must(putfh(dir), mkdirOp("d"))
	if p := c.do(putfh(dir), mkdirOp("e")); p.status != ErrDQuot {
		t.Fatalf("CREATE past the inode quota: %d", p.status)
	}
	if _, _, st := c.open(dir, openArgs{access: ShareAccessBoth, owner: "o", create: true, how: createGuarded, name: "g"}); st != ErrDQuot {
		t.Fatalf("OPEN create past the inode quota: %d", st)
	}
}

// Export policies are the filesystem's: a read-only grant makes changes
// ROFS and leaves reads alone; a revoked client loses the export at once.
func TestExportPolicy(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.client()
	c.connect("policy")
	dir := c.volRoot()
	sid, fh, _ := c.open(dir, openArgs{access: ShareAccessBoth, owner: "o", create: true, how: createUnchecked, name: "f"})
	c.must(putfh(fh), writeOp(sid, 0, []byte("data")))
	if err := e.fs.SetPolicy("/vol", func(netip.Addr) vfs.Grant { return vfs.GrantReadOnly }); err != nil {
		t.Fatal(err)
	}
	if p := c.do(putfh(fh), writeOp(sid, 0, []byte("x"))); p.status != ErrROFS {
		t.Fatalf("WRITE under a read-only grant: %d", p.status)
	}
	if p := c.do(putfh(dir), mkdirOp("d")); p.status != ErrROFS {
		t.Fatalf("CREATE under a read-only grant: %d", p.status)
	}
	if p := c.do(putfh(fh), readOp(sid, 0, 4)); p.status != OK {
		t.Fatalf("READ under a read-only grant: %d", p.status)
	}
	if err := e.fs.SetPolicy("/vol", func(netip.Addr) vfs.Grant { return vfs.GrantNone }); err != nil {
		t.Fatal(err)
	}
	if p := c.do(putfh(fh), readOp(sid, 0, 4)); p.status != ErrAccess {
		t.Fatalf("READ after the grant was revoked: %d", p.status)
	}
	if p := c.do(putrootfh(), lookup("vol")); p.status != ErrNoEnt {
		t.Fatalf("LOOKUP of a revoked export: %d", p.status)
	}
}
