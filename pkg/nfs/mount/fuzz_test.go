package mount

import (
	"context"
	"net"
	"testing"

	"github.com/go-logr/logr"

	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
	"github.com/hangar-csi/hangar/pkg/vfs/vfstest"
)

// FuzzServe feeds arbitrary arguments to every MOUNT procedure.
func FuzzServe(f *testing.F) {
	fs := vfstest.NewMemFS()
	fs.AddExport("/a")
	h := NewHandler(fs, logr.Discard())
	f.Add(uint8(ProcMnt), path("/a"))
	f.Add(uint8(ProcUmnt), path("/a"))
	f.Add(uint8(ProcExport), []byte(nil))
	f.Fuzz(func(t *testing.T, proc uint8, args []byte) {
		w := xdr.NewWriter(nil)
		c := &rpc.Call{Prog: Program, Vers: Version, Proc: uint32(proc), Args: args,
			Remote: &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 1}}
		st := h.Serve(context.Background(), c, w)
		switch {
		case proc > ProcExport:
			if st != rpc.ProcUnavail {
				t.Fatalf("proc %d: %d", proc, st)
			}
		case st != rpc.Success && st != rpc.GarbageArgs:
			t.Fatalf("proc %d: accept stat %d", proc, st)
		}
		if w.Len()%4 != 0 {
			t.Fatalf("proc %d: unaligned reply", proc)
		}
		if proc == ProcMnt && st == rpc.Success {
			if s := xdr.NewReader(w.Bytes()).Uint32(); s == StatusServerFault {
				t.Fatal("MNT: server fault")
			}
		}
	})
}
