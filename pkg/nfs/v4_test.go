package nfs_test

import (
	"context"
	"errors"
	"testing"

	"github.com/hangar-csi/hangar/pkg/nfs/nfs4"
	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
)

// NewServer serves NFSv4 beside NFSv3 on the same port.
func TestNFSv4Registered(t *testing.T) {
	s := start(t)
	ctx := context.Background()
	rc, err := rpc.Dial(ctx, s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	cred := rpc.Cred{Flavor: rpc.AuthSys, UID: 1000, GID: 1000}
	if _, err := rc.Call(ctx, nfs4.Program, nfs4.Version, nfs4.ProcNull, cred, nil); err != nil {
		t.Fatalf("v4 NULL: %v", err)
	}
	// A COMPOUND without a session: the v4 handler answers, in v4 terms.
	w := xdr.NewWriter(nil)
	w.String("tag")
	w.Uint32(1)
	w.Uint32(1)
	w.Uint32(nfs4.OpPutRootFH)
	res, err := rc.Call(ctx, nfs4.Program, nfs4.Version, nfs4.ProcCompound, cred, w.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	r := xdr.NewReader(res)
	if st := r.Uint32(); st != nfs4.ErrOpNotInSession || r.String(10) != "tag" {
		t.Fatalf("COMPOUND status %d", st)
	}
	// Versions 3 and 4 are both there.
	_, err = rc.Call(ctx, nfs4.Program, 2, 0, cred, nil)
	var ae *rpc.AcceptError
	if !errors.As(err, &ae) || ae.Stat != rpc.ProgMismatch || ae.Low != 3 || ae.High != 4 {
		t.Fatalf("version 2: %v", err)
	}
	// And v3 still works on the connection the test harness opened.
	if _, err := s.c.GetAttr(ctx, s.root); err != nil {
		t.Fatalf("v3 GETATTR: %v", err)
	}
}
