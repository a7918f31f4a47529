package rpc

import (
	"context"
	"net"
	"testing"

	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
)

type peerKey struct{}

// TestConnContext: what Options.ConnContext attaches to a connection
// reaches every call on it, and the calls' context still ends with the
// server.
func TestConnContext(t *testing.T) {
	h := HandlerFunc(func(ctx context.Context, c *Call, w *xdr.Writer) AcceptStat {
		peer, _ := ctx.Value(peerKey{}).(string)
		if ctx.Done() == nil {
			peer = "no cancellation"
		}
		w.String(peer)
		return Success
	})
	o := Options{ConnContext: func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, peerKey{}, c.RemoteAddr().String())
	}}
	_, addr := startServer(t, o, func(s *Server) { s.Register(testProg, testVers, h, nil) })
	cl, err := Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for range 2 {
		res, err := cl.Call(context.Background(), testProg, testVers, 1, Cred{Flavor: AuthNone}, nil)
		if err != nil {
			t.Fatal(err)
		}
		r := xdr.NewReader(res)
		if got, want := r.String(100), cl.nc.LocalAddr().String(); got != want {
			t.Fatalf("call saw peer %q, want %q", got, want)
		}
	}
}
