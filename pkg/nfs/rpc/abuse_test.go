package rpc

import (
	"context"
	"encoding/binary"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
)

// bigReply answers proc 1 with as many zero bytes as its argument asks
// (a READDIRPLUS of a big directory, say) and anything else with nothing.
var bigReply = HandlerFunc(func(ctx context.Context, c *Call, w *xdr.Writer) AcceptStat {
	if c.Proc == 1 && len(c.Args) >= 4 {
		n := int(binary.BigEndian.Uint32(c.Args))
		if err := c.ReserveReply(ctx, n); err != nil {
			return SystemErr
		}
		w.Reserve(n)
	}
	return Success
})

// dialSmallWindow connects with a tiny receive buffer, so that a client
// that does not read fills the server's socket quickly.
func dialSmallWindow(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		rc.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return err
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// connsBusy returns the calls dispatched and not yet written per connection.
func connsBusy(s *Server) []int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b []int32
	for c := range s.conns {
		b = append(b, c.busy.Load())
	}
	return b
}

// TestNonReadersDoNotStarveOthers: clients that send calls and never read
// the replies must not keep the server from serving anyone else. They used
// to hold server-wide call slots until the 5-minute write deadline, and 17
// of them hold all 1024.
func TestNonReadersDoNotStarveOthers(t *testing.T) {
	s, addr := startServer(t, Options{}, func(s *Server) { s.Register(testProg, testVers, bigReply, nil) })
	const abusers = 17
	var calls []byte
	for i := range 100 {
		calls = append(calls, frame(callMsg(uint32(i), 2, testProg, testVers, 1, AuthNone, nil, words(64<<10)))...)
	}
	for range abusers {
		c := dialSmallWindow(t, addr)
		writeAll(t, c, calls)
	}
	// Wait until every abuser has replies the server cannot write.
	waitFor(t, "the abusers to be stuck", func() bool {
		b := connsBusy(s)
		if len(b) < abusers {
			return false
		}
		for _, n := range b {
			if n < 16 {
				return false
			}
		}
		return true
	})
	good := dialRaw(t, addr)
	for i := range 3 {
		writeAll(t, good, frame(callMsg(uint32(1000+i), 2, testProg, testVers, 0, AuthNone, nil, nil)))
		if got := readReply(t, good); binary.BigEndian.Uint32(got) != uint32(1000+i) {
			t.Fatalf("bad reply %x", got)
		}
	}
}

// TestIdleConnsDoNotLockOut: connections that sit idle, or trickle a
// record a byte at a time, used to keep every new client out once they
// filled MaxConns, until the 5-minute idle timeout (or forever, trickling).
func TestIdleConnsDoNotLockOut(t *testing.T) {
	for _, trickle := range []bool{false, true} {
		name := "idle"
		if trickle {
			name = "trickling"
		}
		t.Run(name, func(t *testing.T) {
			const max = 8
			_, addr := startServer(t, Options{MaxConns: max}, func(s *Server) { s.Register(testProg, testVers, echo, nil) })
			stop := make(chan struct{})
			defer close(stop)
			for range max {
				c := dialRaw(t, addr)
				if trickle {
					go func() {
						msg := frame(callMsg(1, 2, testProg, testVers, 0, AuthNone, nil, make([]byte, 1000)))
						for _, b := range msg {
							select {
							case <-stop:
								return
							case <-time.After(20 * time.Millisecond):
							}
							if _, err := c.Write([]byte{b}); err != nil {
								return
							}
						}
					}()
				}
			}
			// Connect until the server serves us (a new connection may be
			// refused while the server is still accepting the others).
			deadline := time.Now().Add(failAfter)
			for {
				c := dialRaw(t, addr)
				c.Write(frame(callMsg(7, 2, testProg, testVers, 0, AuthNone, nil, nil)))
				if _, err := readReplyErr(c); err == nil {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("a new client was never served")
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// TestPartialRecordsWithinBudget: connections that each send most of a big
// record and stop used to pin a record-sized buffer each, outside the
// server's in-flight byte budget.
func TestPartialRecordsWithinBudget(t *testing.T) {
	const budget = 4 << 20
	_, addr := startServer(t, Options{MaxInFlightBytes: budget}, func(s *Server) { s.Register(testProg, testVers, echo, nil) })
	runtime.GC()
	runtime.GC() // twice: pooled buffers survive one
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	const conns = 40
	part := make([]byte, 4+300<<10)
	binary.BigEndian.PutUint32(part, lastFrag|1<<20)
	for range conns {
		c := dialRaw(t, addr)
		c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		c.Write(part) // may block once the server stops reading: fine
	}
	// Let the server read what it will; then look at what it holds.
	time.Sleep(500 * time.Millisecond)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	// The budget plus a first chunk per connection, with room for noise;
	// a record-sized buffer per connection is 40 MiB.
	limit := uint64(budget + conns*(64<<10) + 8<<20)
	grew := after.HeapInuse - min(after.HeapInuse, before.HeapInuse)
	t.Logf("heap grew by %d KiB", grew>>10)
	if grew > limit {
		t.Fatalf("server heap grew by %d MiB for %d partial records, budget %d MiB", grew>>20, conns, budget>>20)
	}
	// And a well-behaved client is still served.
	good := dialRaw(t, addr)
	writeAll(t, good, frame(callMsg(9, 2, testProg, testVers, 0, AuthNone, nil, []byte("ping"))))
	readReply(t, good)
}

// TestNonReadersReplyMemory: replies a client does not read are bounded by
// MaxReplyBacklog per connection, not MaxInFlightPerConn big replies each
// (READDIRPLUS replies of 1 MiB took a server from 30 MB to 1.39 GB).
func TestNonReadersReplyMemory(t *testing.T) {
	const backlog = 1 << 20
	s, addr := startServer(t, Options{MaxReplyBacklog: backlog}, func(s *Server) { s.Register(testProg, testVers, bigReply, nil) })
	runtime.GC()
	runtime.GC() // twice: pooled buffers survive one
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	const abusers = 4
	var calls []byte
	for i := range 64 {
		calls = append(calls, frame(callMsg(uint32(i), 2, testProg, testVers, 1, AuthNone, nil, words(1<<20)))...)
	}
	for range abusers {
		writeAll(t, dialSmallWindow(t, addr), calls)
	}
	waitFor(t, "the abusers to have replies waiting", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		n := 0
		for c := range s.conns {
			if c.unsent.Load() > 0 {
				n++
			}
		}
		return n == abusers
	})
	time.Sleep(300 * time.Millisecond) // let whatever would pile up pile up
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	grew := after.HeapInuse - min(after.HeapInuse, before.HeapInuse)
	t.Logf("heap grew by %d KiB", grew>>10)
	// A backlog and a reply being built per connection, with room for
	// noise; unbounded, it is 64 MiB per connection.
	if limit := uint64(abusers*(backlog+2<<20) + 8<<20); grew > limit {
		t.Fatalf("server heap grew by %d MiB for %d clients not reading 1 MiB replies", grew>>20, abusers)
	}
}

// TestStuckReaderClosed: a connection that takes no reply bytes for
// WriteTimeout is closed, which frees what its replies hold.
func TestStuckReaderClosed(t *testing.T) {
	s, addr := startServer(t, Options{WriteTimeout: 200 * time.Millisecond}, func(s *Server) { s.Register(testProg, testVers, bigReply, nil) })
	var calls []byte
	for i := range 64 {
		calls = append(calls, frame(callMsg(uint32(i), 2, testProg, testVers, 1, AuthNone, nil, words(256<<10)))...)
	}
	writeAll(t, dialSmallWindow(t, addr), calls)
	waitFor(t, "the server to close the connection", func() bool { return s.numConns() == 0 })
}

// TestRecordTimeout: a record trickled in slower than RecordTimeout closes
// the connection, though bytes keep arriving.
func TestRecordTimeout(t *testing.T) {
	_, addr := startServer(t, Options{RecordTimeout: 300 * time.Millisecond}, func(s *Server) { s.Register(testProg, testVers, echo, nil) })
	c := dialRaw(t, addr)
	msg := frame(callMsg(1, 2, testProg, testVers, 0, AuthNone, nil, make([]byte, 100)))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, b := range msg {
			time.Sleep(20 * time.Millisecond)
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
		}
	}()
	expectClosed(t, c)
	<-done
}
