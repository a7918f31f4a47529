package nfs4

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hangar-csi/hangar/pkg/nfs/mount"
	"github.com/hangar-csi/hangar/pkg/nfs/nfs3"
	"github.com/hangar-csi/hangar/pkg/nfs/nfsclient"
	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
	"github.com/hangar-csi/hangar/pkg/vfs"
	"github.com/hangar-csi/hangar/pkg/volume/localfs"
)

// wireServer serves NFSv3, MOUNT and NFSv4.1 on one TCP port over a real
// localfs, as pkg/nfs.NewServer does.
type wireServer struct {
	addr string
	fs   *localfs.FS
	dir  string
}

func startWire(t testing.TB) *wireServer {
	t.Helper()
	s, _ := startWireOn(t, t.TempDir(), "127.0.0.1:0", Options{})
	return s
}

// startWireOn starts a wire server on base (made on first use) and addr;
// stop ends it early, as a crash would.
func startWireOn(t testing.TB, base, addr string, o Options) (ws *wireServer, stop func()) {
	t.Helper()
	dir := filepath.Join(base, "vol")
	if err := os.Mkdir(dir, 0o777); err != nil && !errors.Is(err, os.ErrExist) {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	fs, err := localfs.New(localfs.Options{KeyFile: filepath.Join(base, "key")})
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.AddExport("/vol", dir, "vol", nil); err != nil {
		t.Fatal(err)
	}
	// As pkg/nfs.NewServer: calls carry their client's address.
	s := rpc.NewServer(rpc.Options{ConnContext: func(ctx context.Context, c net.Conn) context.Context {
		return vfs.WithClient(ctx, c.RemoteAddr())
	}})
	s.Register(nfs3.Program, nfs3.Version, nfs3.NewHandler(fs, discard()), nfs3.Idempotent)
	s.Register(mount.Program, mount.Version, mount.NewHandler(fs, discard()), mount.Idempotent)
	s.Register(Program, Version, NewHandler(fs, discard(), o), Idempotent)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			s.Close()
			<-done
			fs.Close()
		})
	}
	t.Cleanup(stop)
	return &wireServer{addr: l.Addr().String(), fs: fs, dir: dir}, stop
}

// dial returns a v4 client over its own TCP connection.
func (s *wireServer) dial(t testing.TB) *tclient {
	rc, err := rpc.Dial(context.Background(), s.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	c := &tclient{t: t, minor: 1, cred: rpc.Cred{Flavor: rpc.AuthSys, UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}, seq: map[uint32]uint32{}}
	var mu sync.Mutex // c.t may be swapped by subtests
	c.call = func(args []byte) []byte {
		res, err := rc.Call(context.Background(), Program, Version, ProcCompound, c.cred, args)
		if err != nil {
			mu.Lock()
			defer mu.Unlock()
			c.t.Fatalf("COMPOUND over the wire: %v", err)
		}
		return res
	}
	return c
}

func TestWireRoundTrip(t *testing.T) {
	s := startWire(t)
	c := s.dial(t)
	c.connect("wire")
	dir := c.volRoot()
	data := bytes.Repeat([]byte("0123456789abcdef"), 40000) // 640000 bytes
	p := c.must(putfh(dir),
		openOp(openArgs{access: ShareAccessBoth, owner: "o", create: true, how: createGuarded, name: "file",
			attrs: fattr(bits(AttrMode), func(w *xdr.Writer) { w.Uint32(0o644) })}),
		getfh(), writeOp(currentStateid, 0, data))
	p.ok(OpPutFH)
	p.ok(OpOpen)
	skipResult(p, OpOpen)
	fh := append([]byte(nil), p.ok(OpGetFH).Opaque(MaxFHSize)...)
	if n := p.ok(OpWrite).Uint32(); n != uint32(len(data)) {
		t.Fatalf("wrote %d", n)
	}
	// Read back in two READs over v4.
	var got []byte
	for off := 0; off < len(data); {
		p := c.must(putfh(fh), readOp(anonStateid, uint64(off), 1<<19))
		p.ok(OpPutFH)
		r := p.ok(OpRead)
		eof := r.Bool()
		b := r.Opaque(1 << 20)
		got = append(got, b...)
		off += len(b)
		if eof {
			break
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes that differ", len(got))
	}
	// A READ followed by another op is copied into the reply instead of
	// sent from the file: the same bytes.
	p = c.must(putfh(fh), readOp(anonStateid, 100000, 200000), getattr(bits(AttrSize)))
	p.ok(OpPutFH)
	r := p.ok(OpRead)
	r.Bool()
	if b := r.Opaque(1 << 20); !bytes.Equal(b, data[100000:300000]) {
		t.Fatal("copied READ differs")
	}
	// A READ sent from the file is not kept in the reply cache.
	req := build("t", 1, []op{c.seqOp(), putfh(fh), readOp(anonStateid, 0, 1<<17)})
	if p := parse(t, c.call(req)); p.status != OK {
		t.Fatal(p.status)
	}
	if p := parse(t, c.call(req)); p.status != ErrRetryUncachedRep {
		t.Fatalf("retransmitted file READ: %d", p.status)
	}
	// The same file over NFSv3 on the same port.
	v3, err := nfsclient.Dial(context.Background(), s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer v3.Close()
	root3, err := v3.Mount(context.Background(), "/vol")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(root3, dir[1:]) {
		t.Fatal("v3 and v4 disagree on the volume root handle")
	}
	h3, _, err := v3.Lookup(context.Background(), root3, "file")
	if err != nil || !bytes.Equal(h3, fh[1:]) {
		t.Fatalf("v3 LOOKUP: %v", err)
	}
	buf := make([]byte, 16)
	if n, _, err := v3.Read(context.Background(), h3, 16, buf); err != nil || !bytes.Equal(buf[:n], data[16:32]) {
		t.Fatalf("v3 READ: %v", err)
	}
	on, err := os.ReadFile(filepath.Join(s.dir, "file"))
	if err != nil || !bytes.Equal(on, data) {
		t.Fatalf("file on disk: %v", err)
	}
	// GETATTR of everything the Linux client asks for on a real disk.
	a := c.getattr(fh, supportedAttrs.andNot(writeOnlyAttrs))
	if a.set != supportedAttrs.andNot(writeOnlyAttrs) {
		t.Fatalf("attributes %v", a.set)
	}
	// Remove and see it gone.
	c.must(putfh(dir), remove("file"))
	if _, err := os.Stat(filepath.Join(s.dir, "file")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after REMOVE: %v", err)
	}
}

// Concurrent COMPOUNDs on several slots of one session and several
// clients, under -race.
func TestWireConcurrentSlots(t *testing.T) {
	s := startWire(t)
	var wg sync.WaitGroup
	for ci := range 3 {
		c := s.dial(t)
		c.connect(fmt.Sprintf("client-%d", ci))
		dir := c.volRoot()
		for slot := range uint32(4) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sc := *c
				sc.slot = slot
				sc.seq = map[uint32]uint32{slot: c.seq[slot]}
				sc.t = t
				for i := range 20 {
					name := fmt.Sprintf("c%d-s%d-%d", ci, slot, i)
					p := sc.do(putfh(dir), mkdirOp(name), getfh())
					if p.status != OK {
						t.Errorf("%s: %d", name, p.status)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	ents, err := os.ReadDir(s.dir)
	if err != nil || len(ents) != 3*4*20 {
		t.Fatalf("%d entries, %v", len(ents), err)
	}
}

// BenchmarkLoopback4 is pkg/nfs's BenchmarkLoopback over NFSv4.1: whole
// COMPOUNDs (SEQUENCE, PUTFH, op) over 127.0.0.1 into localfs, one at a
// time. The test client copies replies, which the v3 one does not.
func BenchmarkLoopback4(b *testing.B) {
	for _, bc := range []struct {
		name string
		size int
	}{{"GETATTR", 0}, {"READ-1MiB", 1 << 20}, {"WRITE-1MiB-unstable", -(1 << 20)}} {
		b.Run(bc.name, func(b *testing.B) {
			s := startWire(b)
			c := s.dial(b)
			c.connect("bench")
			dir := c.volRoot()
			sid, fh, st := c.open(dir, openArgs{access: ShareAccessBoth, owner: "o", create: true, how: createUnchecked, name: "bench"})
			if st != OK {
				b.Fatal(st)
			}
			buf := make([]byte, 1<<20)
			c.must(putfh(fh), writeOp(sid, 0, buf))
			var o op
			switch {
			case bc.size == 0:
				o = getattr(bits(AttrType, AttrChange, AttrSize, AttrFileID, AttrMode, AttrNumLinks, AttrOwner, AttrOwnerGroup, AttrSpaceUsed, AttrTimeAccess, AttrTimeMetadata, AttrTimeModify))
			case bc.size > 0:
				b.SetBytes(int64(bc.size))
				o = readOp(sid, 0, uint32(bc.size))
			default:
				b.SetBytes(int64(-bc.size))
				o = mkop(OpWrite, func(w *xdr.Writer) {
					encodeStateid(w, sid)
					w.Uint64(0)
					w.Uint32(uint32(vfs.Unstable))
					w.Opaque(buf)
				})
			}
			for b.Loop() {
				if p := c.do(putfh(fh), o); p.status != OK {
					b.Fatal(p.status)
				}
			}
		})
	}
}
