package nfs4

import (
	"bytes"
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
	"github.com/hangar-csi/hangar/pkg/vfs"
	"github.com/hangar-csi/hangar/pkg/vfs/vfstest"
)

func readdirOp(cookie uint64, verf []byte, maxcount uint32, req bitmap) op {
	return mkop(OpReadDir, func(w *xdr.Writer) {
		w.Uint64(cookie)
		w.Fixed(verf)
		w.Uint32(maxcount)
		w.Uint32(maxcount)
		encodeBitmap(w, req)
	})
}

type dirent struct {
	cookie uint64
	name   string
	set    bitmap
	vals   []byte
}

// readdir lists dir in pages of maxcount bytes.
func (c *tclient) readdir(dir []byte, maxcount uint32, req bitmap) []dirent {
	c.t.Helper()
	var out []dirent
	cookie, verf := uint64(0), make([]byte, 8)
	for pages := 0; ; pages++ {
		if pages > 1000 {
			c.t.Fatal("READDIR does not end")
		}
		p := c.must(putfh(dir), readdirOp(cookie, verf, maxcount, req))
		p.ok(OpPutFH)
		r := p.ok(OpReadDir)
		verf = append([]byte(nil), r.Fixed(8)...)
		for r.Bool() {
			var d dirent
			d.cookie = r.Uint64()
			d.name = r.String(MaxName)
			d.set, _, _ = decodeBitmap(r)
			d.vals = append([]byte(nil), r.Opaque(maxAttrVals)...)
			out = append(out, d)
			cookie = d.cookie
		}
		if r.Bool() {
			return out
		}
		if r.Err() != nil {
			c.t.Fatal(r.Err())
		}
	}
}

func names(ds []dirent) []string {
	var n []string
	for _, d := range ds {
		n = append(n, d.name)
	}
	return n
}

func TestPseudoFS(t *testing.T) {
	mem := vfstest.NewMemFS()
	vol := mem.AddExport("/vol")
	mem.AddExport("/vol2")
	mem.AddExport("/secret")
	mem.AddExport("/deep/a")
	// An export this client may not mount, as an allow-list makes one.
	if err := mem.SetPolicy("/secret", func(netip.Addr) vfs.Grant { return vfs.GrantNone }); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, fs: mem, root: vol}
	e.h = NewHandler(mem, discard(), Options{})
	c := e.client()
	c.connect("pseudo")
	root := c.fh(putrootfh())
	if got := names(c.readdir(root, 4096, bits(AttrType, AttrFileID, AttrMountedOnFileID))); !slices.Equal(got, []string{"deep", "vol", "vol2"}) {
		t.Fatalf("pseudo root lists %q", got)
	}
	if p := c.do(putrootfh(), lookup("secret")); p.status != ErrNoEnt {
		t.Fatalf("LOOKUP of a hidden export: %d", p.status)
	}
	volFH := c.fh(putrootfh(), lookup("vol"))
	if !bytes.Equal(volFH[1:], vol) {
		t.Fatal("LOOKUP vol is not the volume root")
	}
	// fsid changes at the crossing; the volume root's parent is the root.
	a := c.getattr(root, bits(AttrFSID, AttrType))
	a.vals.Uint32()
	rootFSID := [2]uint64{a.vals.Uint64(), a.vals.Uint64()}
	a = c.getattr(volFH, bits(AttrFSID, AttrType))
	a.vals.Uint32()
	volFSID := [2]uint64{a.vals.Uint64(), a.vals.Uint64()}
	if rootFSID == volFSID || rootFSID != pseudoFSID {
		t.Fatalf("fsid root %v, vol %v", rootFSID, volFSID)
	}
	if up := c.fh(putfh(volFH), lookupp()); !bytes.Equal(up, root) {
		t.Fatalf("LOOKUPP from the volume root: %x, want %x", up, root)
	}
	if p := c.do(putrootfh(), lookupp()); p.status != ErrNoEnt {
		t.Fatalf("LOOKUPP of the root: %d", p.status)
	}
	// Nested: /deep is a pseudo directory holding volume a.
	deep := c.fh(putrootfh(), lookup("deep"))
	if got := names(c.readdir(deep, 4096, bits(AttrType))); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("/deep lists %q", got)
	}
	a2 := c.fh(putfh(deep), lookup("a"))
	if up := c.fh(putfh(a2), lookupp()); !bytes.Equal(up, deep) {
		t.Fatal("LOOKUPP from /deep/a")
	}
	if up := c.fh(putfh(deep), lookupp()); !bytes.Equal(up, root) {
		t.Fatal("LOOKUPP from /deep")
	}
	// Inside a volume, LOOKUPP walks up.
	sub := c.fh(putfh(volFH), mkdirOp("sub"))
	if up := c.fh(putfh(sub), lookupp()); !bytes.Equal(up, volFH) {
		t.Fatal("LOOKUPP inside the volume")
	}
	// The pseudo-filesystem is read-only.
	if p := c.do(putrootfh(), mkdirOp("x")); p.status != ErrROFS {
		t.Fatalf("CREATE in the pseudo root: %d", p.status)
	}
	if p := c.do(putrootfh(), openOp(openArgs{access: ShareAccessRead, owner: "o", create: true, name: "x"})); p.status != ErrROFS {
		t.Fatalf("OPEN create in the pseudo root: %d", p.status)
	}
	if p := c.do(putrootfh(), openOp(openArgs{access: ShareAccessRead, owner: "o", name: "vol"})); p.status != ErrIsDir {
		t.Fatalf("OPEN of a volume root: %d", p.status)
	}
	// A pseudo handle for a path that is not there is stale.
	var fake fhBuf
	fake.setPseudo("/nowhere")
	if p := c.do(putfh(fake.bytes()), getattr(bits(AttrType))); p.status != ErrStale {
		t.Fatalf("GETATTR of a vanished pseudo directory: %d", p.status)
	}
	for _, bad := range [][]byte{{}, {fhPseudo}, {fhPseudo, 'x'}, {7, 1, 2}, append([]byte{fhVol}, make([]byte, 65)...)} {
		if p := c.do(putfh(bad)); p.status != ErrBadHandle {
			t.Errorf("PUTFH %x: %d", bad, p.status)
		}
	}
}

func TestSingleRootExport(t *testing.T) {
	mem := vfstest.NewMemFS()
	root := mem.AddExport("/")
	e := &env{t: t, fs: mem, root: root, h: NewHandler(mem, discard(), Options{})}
	c := e.client()
	c.connect("single")
	if fh := c.fh(putrootfh()); !bytes.Equal(fh[1:], root) {
		t.Fatal("PUTROOTFH is not the export's root")
	}
	if p := c.do(putrootfh(), lookupp()); p.status != ErrNoEnt {
		t.Fatalf("LOOKUPP of the root: %d", p.status)
	}
}

// TestGetattrLayout checks the fattr4 encoding of every readable attribute
// byte by byte.
func TestGetattrLayout(t *testing.T) {
	e := newEnv(t, Options{LeaseTime: 45 * time.Second})
	c := e.client()
	c.connect("attrs")
	dir := c.volRoot()
	sid, fh, _ := c.open(dir, openArgs{access: ShareAccessBoth, owner: "o", create: true, how: createGuarded, name: "f",
		attrs: fattr(bits(AttrMode), func(w *xdr.Writer) { w.Uint32(0o4751) })})
	c.must(putfh(fh), writeOp(sid, 0, []byte("hello")))
	mt := time.Unix(1700000000, 123)
	c.must(putfh(fh), setattrOp(anonStateid, bits(AttrTimeModifySet), func(w *xdr.Writer) { w.Uint32(1); encodeTime(w, mt) }))
	a, _ := e.fs.GetAttr(context.Background(), vol(fh))

	readable := supportedAttrs.andNot(writeOnlyAttrs)
	got := c.getattr(fh, readable)
	if got.set != readable {
		t.Fatalf("returned %v, want %v", got.set, readable)
	}
	st, _, _ := e.fs.FSStat(context.Background(), vol(fh))
	w := xdr.NewWriter(nil)
	encodeBitmap(w, supportedAttrs)      // supported_attrs
	w.Uint32(NF4Reg)                     // type
	w.Uint32(0)                          // fh_expire_type: persistent
	w.Uint64(uint64(a.Ctime.UnixNano())) // change
	w.Uint64(5)                          // size
	w.Bool(true)                         // link_support
	w.Bool(true)                         // symlink_support
	w.Bool(false)                        // named_attr
	w.Uint64(a.FSID)                     // fsid
	w.Uint64(0)
	w.Bool(true)  // unique_handles
	w.Uint32(45)  // lease_time
	w.Uint32(0)   // rdattr_error
	w.Bool(true)  // cansettime
	w.Bool(false) // case_insensitive
	w.Bool(true)  // case_preserving
	w.Bool(true)  // chown_restricted
	w.Opaque(fh)  // filehandle
	w.Uint64(a.FileID)
	w.Uint64(st.AvailFiles)
	w.Uint64(st.FreeFiles)
	w.Uint64(st.TotalFiles)
	w.Bool(true)        // homogeneous
	w.Uint64(1<<63 - 1) // maxfilesize
	w.Uint32(65000)     // maxlink
	w.Uint32(255)       // maxname
	w.Uint64(1 << 20)   // maxread
	w.Uint64(1 << 20)   // maxwrite
	w.Uint32(0o4751)    // mode
	w.Bool(true)        // no_trunc
	w.Uint32(1)         // numlinks
	w.String("1000")    // owner
	w.String("1000")    // owner_group
	w.Uint32(0)         // rawdev
	w.Uint32(0)
	w.Uint64(st.AvailBytes)
	w.Uint64(st.FreeBytes)
	w.Uint64(st.TotalBytes)
	w.Uint64(a.Used)
	encodeTime(w, a.Atime)
	w.Uint64(0) // time_delta
	w.Uint32(1)
	encodeTime(w, a.Ctime)
	w.Uint64(1700000000) // time_modify
	w.Uint32(123)
	w.Uint64(a.FileID) // mounted_on_fileid
	encodeBitmap(w, exclCreatAttrs)
	if vals := got.vals.Remaining(); !bytes.Equal(vals, w.Bytes()) {
		t.Fatalf("attr_vals\n got %x\nwant %x", vals, w.Bytes())
	}
	// Unknown and write-only attributes are left out, not refused.
	got = c.getattr(fh, bitmap{1 << AttrType, 0, 1<<31 | 1<<(AttrTimeModifySet-32)})
	if got.set != bits(AttrType) {
		t.Fatalf("returned %v for unknown and write-only attributes", got.set)
	}
	if p := c.do(getattr(bits(AttrType))); p.status != ErrNoFileHandle {
		t.Fatalf("GETATTR without a filehandle: %d", p.status)
	}
}

func TestSetattr(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.client()
	c.connect("setattr")
	c2 := e.client()
	c2.connect("other")
	dir := c.volRoot()
	sid, fh, _ := c.open(dir, openArgs{access: ShareAccessRead, owner: "o", create: true, how: createUnchecked, name: "f"})
	set := func(sid stateid, b bitmap, vals func(w *xdr.Writer)) uint32 {
		t.Helper()
		p := c.do(putfh(fh), setattrOp(sid, b, vals))
		if p.status != OK {
			p.ok(OpPutFH)
			if st := p.next(OpSetAttr); st != p.status {
				t.Fatal("status mismatch")
			}
			if b, _, _ := decodeBitmap(p.r); !b.empty() {
				t.Fatal("attrsset on failure")
			}
		}
		return p.status
	}
	u32 := func(v uint32) func(w *xdr.Writer) { return func(w *xdr.Writer) { w.Uint32(v) } }
	str := func(s string) func(w *xdr.Writer) { return func(w *xdr.Writer) { w.String(s) } }
	u64 := func(v uint64) func(w *xdr.Writer) { return func(w *xdr.Writer) { w.Uint64(v) } }
	for _, tc := range []struct {
		name string
		sid  stateid
		b    bitmap
		vals func(w *xdr.Writer)
		want uint32
	}{
		{"mode", anonStateid, bits(AttrMode), u32(0o640), OK},
		{"mode too big", anonStateid, bits(AttrMode), u32(0o10000), ErrInval},
		{"owner", anonStateid, bits(AttrOwner), str("1000"), OK},
		{"group", anonStateid, bits(AttrOwnerGroup), str("42"), OK},
		{"named owner", anonStateid, bits(AttrOwner), str("alice@example.com"), ErrBadOwner},
		{"read-only attribute", anonStateid, bits(AttrType), u32(1), ErrInval},
		{"unknown attribute", anonStateid, bitmap{0, 0, 1 << 30}, nil, ErrAttrNotSupp},
		{"trailing bytes", anonStateid, bits(AttrMode), func(w *xdr.Writer) { w.Uint32(0o600); w.Uint32(0) }, ErrBadXDR},
		{"short value", anonStateid, bits(AttrSize), u32(0), ErrBadXDR},
		{"size via anonymous stateid", anonStateid, bits(AttrSize), u64(3), OK},
		{"size via read-only open", sid, bits(AttrSize), u64(3), ErrOpenMode},
		{"size via bad stateid", stateid{seq: 1, other: [12]byte{1, 2, 3}}, bits(AttrSize), u64(3), ErrBadStateID},
		{"bad nanoseconds", anonStateid, bits(AttrTimeAccessSet), func(w *xdr.Writer) { w.Uint32(1); w.Uint64(0); w.Uint32(1e9) }, ErrInval},
		{"server time", anonStateid, bits(AttrTimeAccessSet, AttrTimeModifySet), func(w *xdr.Writer) { w.Uint32(0); w.Uint32(0) }, OK},
	} {
		if got := set(tc.sid, tc.b, tc.vals); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	a, _ := e.fs.GetAttr(context.Background(), vol(fh))
	if a.Mode&0o7777 != 0o640 || a.GID != 42 || a.Size != 3 {
		t.Fatalf("after SETATTR: mode %o gid %d size %d", a.Mode, a.GID, a.Size)
	}
	// Another client's DENY_WRITE blocks a size change through the
	// anonymous stateid.
	if _, _, st := c2.open(dir, openArgs{access: ShareAccessRead, deny: ShareDenyWrite, owner: "x", name: "f"}); st != OK {
		t.Fatal(st)
	}
	if st := set(anonStateid, bits(AttrSize), u64(0)); st != ErrLocked {
		t.Fatalf("size change against DENY_WRITE: %d", st)
	}
}

func TestVerify(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.client()
	c.connect("verify")
	dir := c.volRoot()
	verify := func(neg bool, b bitmap, vals func(w *xdr.Writer)) uint32 {
		n := uint32(OpVerify)
		if neg {
			n = OpNVerify
		}
		return c.do(putfh(dir), mkop(n, fattr(b, vals))).status
	}
	dirType := func(w *xdr.Writer) { w.Uint32(NF4Dir) }
	regType := func(w *xdr.Writer) { w.Uint32(NF4Reg) }
	for _, tc := range []struct {
		neg  bool
		b    bitmap
		vals func(w *xdr.Writer)
		want uint32
	}{
		{false, bits(AttrType), dirType, OK},
		{false, bits(AttrType), regType, ErrNotSame},
		{true, bits(AttrType), dirType, ErrSame},
		{true, bits(AttrType), regType, OK},
		{false, bits(AttrType, AttrOwner), func(w *xdr.Writer) { w.Uint32(NF4Dir); w.String("0") }, OK},
		{false, bits(AttrRdattrError), func(w *xdr.Writer) { w.Uint32(0) }, ErrInval},
		{false, bits(AttrTimeModifySet), func(w *xdr.Writer) { w.Uint32(0) }, ErrInval},
		{false, bitmap{0, 0, 1 << 31}, nil, ErrAttrNotSupp},
	} {
		if got := verify(tc.neg, tc.b, tc.vals); got != tc.want {
			t.Errorf("verify(neg=%v, %v): %d, want %d", tc.neg, tc.b, got, tc.want)
		}
	}
}

func TestFilehandleOps(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.client()
	c.connect("fh")
	dir := c.volRoot()
	for _, o := range []op{getfh(), savefh(), lookup("x"), lookupp(), access(1), readlinkOp(), readdirOp(0, make([]byte, 8), 1000, bitmap{})} {
		if p := c.do(o); p.status != ErrNoFileHandle {
			t.Errorf("%s without a filehandle: %d", OpName(o.num), p.status)
		}
	}
	if p := c.do(restorefh()); p.status != ErrRestoreFH {
		t.Errorf("RESTOREFH without a saved one: %d", p.status)
	}
	// SAVEFH / RESTOREFH.
	sub := c.fh(putfh(dir), mkdirOp("sub"))
	if fh := c.fh(putfh(dir), savefh(), putfh(sub), restorefh()); !bytes.Equal(fh, dir) {
		t.Fatal("RESTOREFH")
	}
	// Names.
	for name, want := range map[string]uint32{
		"":                        ErrInval,
		".":                       ErrBadName,
		"..":                      ErrBadName,
		"a/b":                     ErrBadChar,
		"a\x00":                   ErrBadChar,
		string(make([]byte, 256)): ErrNameTooLong,
		"missing":                 ErrNoEnt,
	} {
		if p := c.do(putfh(dir), lookup(name)); p.status != want {
			t.Errorf("LOOKUP %q: %d, want %d", name, p.status, want)
		}
	}
	// A symlink is not a directory, and READLINK reads it.
	ln := c.fh(putfh(dir), symlinkOp("ln", "target/path"))
	if p := c.do(putfh(ln), lookup("x")); p.status != ErrSymlink {
		t.Errorf("LOOKUP in a symlink: %d", p.status)
	}
	p := c.must(putfh(ln), readlinkOp())
	p.ok(OpPutFH)
	if got := p.ok(OpReadlink).String(MaxPath); got != "target/path" {
		t.Errorf("READLINK: %q", got)
	}
	if p := c.do(putfh(dir), readlinkOp()); p.status != ErrInval {
		t.Errorf("READLINK of a directory: %d", p.status)
	}
	// ACCESS.
	p = c.must(putfh(dir), access(0xff))
	p.ok(OpPutFH)
	r := p.ok(OpAccess)
	if sup, got := r.Uint32(), r.Uint32(); sup != 0x3f || got&^sup != 0 || got&vfs.AccessLookup == 0 {
		t.Errorf("ACCESS: supported %#x granted %#x", sup, got)
	}
	p = c.must(putrootfh(), access(0x3f))
	p.ok(OpPutRootFH)
	r = p.ok(OpAccess)
	if r.Uint32() != 0x3f || r.Uint32() != vfs.AccessRead|vfs.AccessLookup|vfs.AccessExecute {
		t.Error("ACCESS of the pseudo root")
	}
}

func TestReaddirPages(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.client()
	c.connect("readdir")
	dir := c.volRoot()
	var want []string
	for i := range 40 {
		name := string(rune('a'+i%26)) + string(rune('a'+i/26)) + "-entry"
		c.must(putfh(dir), mkdirOp(name))
		want = append(want, name)
	}
	slices.Sort(want)
	req := bits(AttrType, AttrFileID, AttrFilehandle, AttrRdattrError, AttrMountedOnFileID)
	for _, maxcount := range []uint32{200, 1000, 64 << 10} {
		got := c.readdir(dir, maxcount, req)
		n := names(got)
		slices.Sort(n)
		if !slices.Equal(n, want) {
			t.Fatalf("maxcount %d: %d entries %q", maxcount, len(n), n)
		}
		for _, d := range got {
			if d.cookie < 3 {
				t.Fatalf("reserved cookie %d", d.cookie)
			}
			if d.set != req {
				t.Fatalf("entry attributes %v", d.set)
			}
			r := xdr.NewReader(d.vals)
			if r.Uint32() != NF4Dir {
				t.Fatal("entry type")
			}
			rderr := r.Uint32()
			fh := r.Opaque(MaxFHSize)
			fileid := r.Uint64()
			if rderr != OK || r.Uint64() != fileid || r.Err() != nil {
				t.Fatal("rdattr_error or mounted_on_fileid")
			}
			if got := c.fh(putfh(dir), lookup(d.name)); !bytes.Equal(got, fh) {
				t.Fatal("entry filehandle differs from LOOKUP's")
			}
		}
	}
	for _, cookie := range []uint64{1, 2} {
		if p := c.do(putfh(dir), readdirOp(cookie, make([]byte, 8), 4096, bitmap{})); p.status != ErrBadCookie {
			t.Errorf("cookie %d: %d", cookie, p.status)
		}
	}
	if p := c.do(putfh(dir), readdirOp(0, make([]byte, 8), 30, bits(AttrType))); p.status != ErrTooSmall {
		t.Errorf("maxcount 30: %d", p.status)
	}
	if p := c.do(putfh(dir), readdirOp(0, make([]byte, 8), 10, bits(AttrType))); p.status != ErrTooSmall {
		t.Errorf("maxcount 10: %d", p.status)
	}
	f := c.fh(putfh(dir), lookup(want[0]), mkdirOp("x"), lookupp(), lookupp())
	if !bytes.Equal(f, dir) {
		t.Fatal("LOOKUPP twice")
	}
}
