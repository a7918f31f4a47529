package server

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/nfs/nfsclient"
	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
)

// A cluster of 1,000 nodes keeps one connection per node to a storage
// server: with the default limits (per-address fairness included), the
// server holds 1,000 concurrent connections and answers on every one.
// The clients come from 16 loopback addresses (all of 127.0.0.0/8 is
// local), under the per-address limit of 64.
func TestThousandConnections(t *testing.T) {
	const conns, addrs = 1000, 16
	// Both ends of every connection are in this process.
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < 2*conns+200 {
		old := lim
		lim.Cur = min(lim.Max, 2*conns+1000)
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < 2*conns+200 {
			t.Skipf("open-file limit %d (hard %d) is too low for %d connections: %v", old.Cur, old.Max, conns, err)
		}
		t.Cleanup(func() { unix.Setrlimit(unix.RLIMIT_NOFILE, &old) })
	}
	srv, _, stop := start(t, t.TempDir(), "127.0.0.1:0")
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	clients := make([]*nfsclient.Client, 0, conns)
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for i := range conns {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%addrs))}}
		nc, err := d.DialContext(ctx, "tcp", srv.NFSListenAddr())
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		c := nfsclient.New(rpc.NewClient(nc))
		clients = append(clients, c)
		if err := c.Null(ctx); err != nil {
			t.Fatalf("connection %d from %s: NULL: %v", i, nc.LocalAddr(), err)
		}
	}
	// Every connection is still held: none was closed to make room.
	for i, c := range clients {
		if err := c.Null(ctx); err != nil {
			t.Fatalf("connection %d after all %d were open: %v", i, conns, fmt.Errorf("NULL: %w", err))
		}
	}
}
