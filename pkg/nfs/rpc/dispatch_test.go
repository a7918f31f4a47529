package rpc

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
)

// newTestConn returns a connection of s with no socket, for driving the
// dispatch path directly.
func newTestConn(s *Server) *conn {
	c := &conn{
		s:      s,
		remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 700},
		log:    s.log,
		slots:  make(chan struct{}, s.o.MaxInFlightPerConn),
		wake:   make(chan struct{}, 1),
	}
	c.addr = c.remote.(*net.TCPAddr).AddrPort()
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	// The test plays the writer and takes replies off the queue itself, so
	// a handler must never write its own (there is no socket).
	c.wmu.Lock()
	return c
}

// dispatchSync runs one record through the server like the reader,
// handler and writer goroutines do, and returns the queued reply (release
// it with c.release) or nil if the call was dropped.
func (c *conn) dispatchSync(t *testing.T, msg []byte) *task {
	s := c.s
	rec := append(getBuf(len(msg)), msg...)
	c.slots <- struct{}{}
	s.global <- struct{}{}
	if !s.bytes.acquire(c.ctx, len(rec)) {
		t.Fatal("byte budget")
	}
	tk := taskPool.Get().(*task)
	tk.rec, tk.nbytes, tk.running = rec, len(rec), true
	c.busy.Add(1)
	if v := c.prepare(tk); v != nil {
		c.handlers.Add(1)
		c.execute(tk, v.h)
	}
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if len(c.queue) == 0 {
		return nil
	}
	q := c.queue[0]
	c.queue = c.queue[:0]
	<-c.wake
	return q
}

// getattrHandler answers like NFSv3 GETATTR: it decodes a file handle and
// writes a status and an 84-byte fattr3.
var getattrHandler = HandlerFunc(func(_ context.Context, c *Call, w *xdr.Writer) AcceptStat {
	var r xdr.Reader
	r.Reset(c.Args)
	fh := r.Opaque(64)
	if r.Err() != nil {
		return GarbageArgs
	}
	w.Uint32(0)
	for i := range 21 {
		w.Uint32(uint32(i) + uint32(len(fh)))
	}
	return Success
})

func TestDispatchAllocs(t *testing.T) {
	skipAllocsUnderRace(t)
	s := NewServer(Options{})
	defer s.Close()
	s.Register(100003, 3, getattrHandler, func(proc uint32) bool { return proc != 9 })
	c := newTestConn(s)
	fh := bytes.Repeat([]byte{0xfe}, 40)
	args := append(words(uint32(len(fh))), fh...)
	cred := authSysBody("worker-node-1", 1000, 1000, 1000, 10, 20)
	msg := callMsg(1, 2, 100003, 3, 1, AuthSys, cred, args)

	var xid uint32
	run := func(proc uint32) func() {
		return func() {
			xid++
			binary.BigEndian.PutUint32(msg, xid)
			binary.BigEndian.PutUint32(msg[20:], proc)
			q := c.dispatchSync(t, msg)
			if reply := q.w.Bytes(); len(reply) != markLen+24+88 || binary.BigEndian.Uint32(reply[4:]) != xid {
				t.Fatalf("bad reply %x", reply)
			}
			c.release(q)
		}
	}
	idem := testing.AllocsPerRun(2000, run(1))
	t.Logf("GETATTR-sized call through dispatch: %v allocs/op", idem)
	if idem > 1 {
		t.Errorf("GETATTR-sized call allocates %v times, want at most 1", idem)
	}
	// Non-idempotent calls also go through the duplicate request cache.
	nonIdem := testing.AllocsPerRun(2000, run(9))
	t.Logf("same call through the duplicate request cache: %v allocs/op", nonIdem)
	if nonIdem > 3 {
		t.Errorf("call through the DRC allocates %v times, want at most 3", nonIdem)
	}
}

func TestReadReplyInPlace(t *testing.T) {
	skipAllocsUnderRace(t)
	// A 1 MiB READ reply is built in a pooled buffer: Reserve must not
	// allocate a megabyte per call.
	s := NewServer(Options{})
	defer s.Close()
	s.Register(testProg, testVers, HandlerFunc(func(_ context.Context, c *Call, w *xdr.Writer) AcceptStat {
		w.Uint32(0)
		w.Uint32(1 << 20)
		data := w.Reserve(1 << 20)
		data[0], data[len(data)-1] = 1, 2
		return Success
	}), nil)
	c := newTestConn(s)
	msg := callMsg(5, 2, testProg, testVers, 6, AuthNone, nil, nil)
	var xid uint32
	call := func() {
		xid++
		binary.BigEndian.PutUint32(msg, xid)
		q := c.dispatchSync(t, msg)
		if reply := q.w.Bytes(); len(reply) != replyHdrLen+8+1<<20 || reply[replyHdrLen+8] != 1 {
			t.Fatalf("bad reply of %d bytes", len(reply))
		}
		c.release(q)
	}
	allocs := testing.AllocsPerRun(50, call)
	const runs = 50
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		call()
	}
	runtime.ReadMemStats(&after)
	perCall := (after.TotalAlloc - before.TotalAlloc) / runs
	t.Logf("1 MiB READ-sized reply: %v allocs/op, %d bytes/op", allocs, perCall)
	// The one allocation is the 4 KiB starting buffer, outgrown and left
	// to the GC rather than recycled (see growReply).
	if allocs > 1 || perCall > 16<<10 {
		t.Errorf("1 MiB reply allocates %v times, %d bytes per call", allocs, perCall)
	}
}

func TestDRCEviction(t *testing.T) {
	d := newDRC()
	d.maxEntries = 3
	now := time.Unix(1000, 0)
	d.now = func() time.Time { return now }
	var w xdr.Writer
	key := func(xid uint32) drcKey { return drcKey{xid: xid} }
	for xid := uint32(1); xid <= 4; xid++ {
		if st := d.begin(key(xid), &w); st != drcNew {
			t.Fatalf("xid %d: %v", xid, st)
		}
		d.finish(key(xid), words(xid), true)
	}
	if len(d.m) != 3 || d.n != 3 {
		t.Fatalf("%d entries (%d listed), want 3", len(d.m), d.n)
	}
	// xid 1 was least recently used and is gone; 2 is replayed and
	// becomes most recently used.
	if st := d.begin(key(2), &w); st != drcReplay || !bytes.Equal(w.Bytes(), words(2)) {
		t.Fatalf("xid 2: state %v, reply %x", st, w.Bytes())
	}
	d.begin(key(5), &w)
	d.finish(key(5), words(5), true) // evicts 3, not 2
	w.Reset(nil)
	if st := d.begin(key(2), &w); st != drcReplay {
		t.Errorf("recently used entry evicted")
	}
	if st := d.begin(key(3), &w); st != drcNew {
		t.Errorf("least recently used entry kept")
	}
	// Entries expire.
	now = now.Add(drcTTL)
	if st := d.begin(key(4), &w); st != drcNew {
		t.Errorf("expired entry replayed")
	}
	// Failed calls are forgotten, so a retransmission runs again.
	d.finish(key(4), nil, false)
	if st := d.begin(key(4), &w); st != drcNew {
		t.Errorf("forgotten entry: %v", st)
	}
	// Big replies are not kept.
	d.finish(key(4), make([]byte, drcMaxReply+4), true)
	if st := d.begin(key(4), &w); st != drcNew {
		t.Errorf("oversized reply cached")
	}
}

func FuzzParseCall(f *testing.F) {
	f.Add(callMsg(1, 2, 100003, 3, 1, AuthNone, nil, []byte{0, 0, 0, 0}))
	f.Add(callMsg(2, 2, 100003, 3, 1, AuthSys, authSysBody("host", 1, 2, 3, 4), nil))
	f.Add(callMsg(3, 3, 100005, 3, 0, AuthSys, authSysBody(strings.Repeat("x", 255), 0, 0), nil))
	f.Add(callMsg(4, 2, 1, 1, 1, 6, make([]byte, 400), nil))
	f.Add(words(5, MsgReply, 0, 0))
	f.Add(words(6, MsgCall, 2, 1, 1, 1, AuthSys, 0xFFFFFFFF))
	f.Fuzz(func(t *testing.T, in []byte) {
		var c Call
		var cc credCache
		res := parseCall(in, &c, &cc)
		if res != parseOK {
			return
		}
		if len(c.Args) > len(in) || (len(c.Args) > 0 && &c.Args[len(c.Args)-1] != &in[len(in)-1]) {
			t.Fatalf("Args is not the tail of the record")
		}
		switch c.Cred.Flavor {
		case AuthNone:
			if c.Cred.UID != nobody || c.Cred.GID != nobody {
				t.Fatalf("AUTH_NONE cred %+v", c.Cred)
			}
		case AuthSys:
			if len(c.Cred.Machine) > maxMachine || len(c.Cred.GIDs) > maxGIDs {
				t.Fatalf("AUTH_SYS cred over limits: %+v", c.Cred)
			}
		default:
			t.Fatalf("flavor %d accepted", c.Cred.Flavor)
		}
	})
}

// FuzzDispatch runs arbitrary records through the whole dispatch path: it
// must never panic, and every reply must be a well-formed reply to the xid
// of the call.
func FuzzDispatch(f *testing.F) {
	f.Add(callMsg(1, 2, 100003, 3, 1, AuthSys, authSysBody("h", 1, 2), append(words(4), 1, 2, 3, 4)))
	f.Add(callMsg(2, 2, 100003, 3, 9, AuthNone, nil, words(0)))
	f.Add(callMsg(3, 2, 100003, 4, 1, AuthNone, nil, nil))
	f.Add(callMsg(4, 2, 7, 3, 1, AuthNone, nil, nil))
	f.Add(callMsg(5, 1, 100003, 3, 1, AuthNone, nil, nil))
	f.Add(callMsg(6, 2, 100003, 3, 1, 3, nil, nil))
	s := NewServer(Options{})
	defer s.Close()
	s.Register(100003, 3, getattrHandler, func(proc uint32) bool { return proc != 9 })
	c := newTestConn(s)
	f.Fuzz(func(t *testing.T, in []byte) {
		q := c.dispatchSync(t, in)
		if q == nil {
			return
		}
		defer c.release(q)
		reply := q.w.Bytes()
		var r xdr.Reader
		r.Reset(reply)
		mark := r.Uint32()
		if mark != lastFrag|uint32(len(reply)-markLen) {
			t.Fatalf("bad record mark %#x for %d bytes", mark, len(reply))
		}
		if len(in) < 4 || r.Uint32() != binary.BigEndian.Uint32(in) {
			t.Fatalf("reply xid does not match the call")
		}
		if r.Uint32() != MsgReply {
			t.Fatalf("not a reply")
		}
		if err := parseReply(xdr.NewReader(reply[markLen:])); err == errMalformedReply {
			t.Fatalf("malformed reply %x", reply)
		}
	})
}

func TestClientAllocs(t *testing.T) {
	skipAllocsUnderRace(t)
	_, addr := startServer(t, Options{Log: logr.Discard()}, func(s *Server) {
		s.Register(100003, 3, getattrHandler, nil)
	})
	cl, err := Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	fh := bytes.Repeat([]byte{0xfe}, 40)
	cred := Cred{Flavor: AuthSys, Machine: "bench", UID: 1000, GID: 1000, GIDs: []uint32{1000}}
	ctx := context.Background()
	var status uint32
	args := func(w *xdr.Writer) { w.Opaque(fh) }
	results := func(r *xdr.Reader) error { status = r.Uint32(); return r.Err() }
	allocs := testing.AllocsPerRun(500, func() {
		if err := cl.CallInto(ctx, 100003, 3, 1, cred, args, results); err != nil || status != 0 {
			t.Fatal(err, status)
		}
	})
	// Both ends run in this process: the count covers the client call and
	// the server's handler goroutine.
	t.Logf("GETATTR-sized CallInto over loopback, client and server together: %v allocs/op", allocs)
	if allocs > 8 {
		t.Errorf("%v allocs per GETATTR round trip", allocs)
	}
}

func skipAllocsUnderRace(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race: sync.Pool drops items on purpose")
	}
}
