package rpc

import (
	"context"
	"encoding/binary"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
)

// BenchmarkServeUnderAbuse measures a well-behaved client's NULL latency
// (p50/p99, and calls that took over 5 s) while 100 abusive connections of
// one kind hold on, each from its own loopback address as 100 misbehaving
// nodes would, and how much the server's heap and the process's RSS grew:
//
//	go test -run '^$' -bench ServeUnderAbuse -benchtime 2000x ./pkg/nfs/rpc/
//
// Kinds: none; nonreader (64 calls for 60 KiB replies, never reading);
// idle; trickle (a record at 10 bytes a second); partial (1 MiB of a record,
// then nothing). The server runs with default options.
func BenchmarkServeUnderAbuse(b *testing.B) {
	for _, kind := range []string{"none", "nonreader", "idle", "trickle", "partial"} {
		b.Run(kind, func(b *testing.B) { benchAbuse(b, kind) })
	}
}

var benchBigReply = HandlerFunc(func(ctx context.Context, c *Call, w *xdr.Writer) AcceptStat {
	if c.Proc == 1 && len(c.Args) >= 4 {
		n := int(binary.BigEndian.Uint32(c.Args))
		if err := c.ReserveReply(ctx, n); err != nil {
			return SystemErr
		}
		w.Reserve(n)
	}
	return Success
})

func benchAbuse(b *testing.B, kind string) {
	const abusers = 100
	s := NewServer(Options{})
	s.Register(testProg, testVers, benchBigReply, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go s.Serve(l)
	defer s.Close()
	addr := l.Addr().String()

	runtime.GC()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	rssBefore := rssKiB()

	stop := make(chan struct{})
	defer close(stop)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range abusers {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(i+1))}}
		if kind == "nonreader" {
			d.Control = func(_, _ string, rc syscall.RawConn) error {
				rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
				return nil
			}
		}
		if kind == "none" {
			break
		}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
		switch kind {
		case "nonreader":
			var calls []byte
			for j := range 64 {
				calls = append(calls, frame(callMsg(uint32(j), 2, testProg, testVers, 1, AuthNone, nil, words(60<<10)))...)
			}
			c.Write(calls)
		case "trickle":
			go func() {
				msg := frame(callMsg(1, 2, testProg, testVers, 0, AuthNone, nil, make([]byte, 1000)))
				for _, by := range msg {
					select {
					case <-stop:
						return
					case <-time.After(100 * time.Millisecond):
					}
					if _, err := c.Write([]byte{by}); err != nil {
						return
					}
				}
			}()
		case "partial":
			part := make([]byte, 4+1<<20)
			binary.BigEndian.PutUint32(part, lastFrag|(1<<20+4<<10))
			go c.Write(part)
		}
	}
	time.Sleep(time.Second) // let the abuse settle in

	cl, err := Dial(context.Background(), addr)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	lat := make([]time.Duration, 0, b.N)
	slow := 0
	b.ResetTimer()
	for range b.N {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		t0 := time.Now()
		_, err := cl.Call(ctx, testProg, testVers, 0, Cred{}, nil)
		d := time.Since(t0)
		cancel()
		if err != nil {
			slow++
			if slow == 3 {
				break // starved: three 5 s waits say enough
			}
			if cl, err = Dial(context.Background(), addr); err != nil {
				b.Fatal(err)
			}
			continue
		}
		lat = append(lat, d)
	}
	b.StopTimer()
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return -1
		}
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds())
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(float64(slow), "failed")
	b.ReportMetric(float64(int64(after.HeapInuse)-int64(before.HeapInuse))/(1<<20), "heap-MiB")
	b.ReportMetric(float64(rssKiB()-rssBefore)/1024, "rss-MiB")
	b.ReportMetric(float64(s.numConns()), "conns")
}

// rssKiB is the process's resident set size.
func rssKiB() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	return 0
}
