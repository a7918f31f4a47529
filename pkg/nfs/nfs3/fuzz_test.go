package nfs3

import (
	"encoding/binary"
	"testing"

	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
)

// FuzzServe feeds arbitrary arguments to every procedure over a memfs. The
// handler must never panic, must leave the reply header alone, and must
// either reject the call or produce a reply that starts with a status.
func FuzzServe(f *testing.F) {
	e := newEnv(f)
	e.fs.MaxFileSize = 1 << 20
	for proc, args := range e.validArgs() {
		f.Add(uint8(proc), args)
	}
	f.Fuzz(func(t *testing.T, proc uint8, args []byte) {
		e.t = t
		st, res := e.call(uint32(proc), args)
		switch {
		case st == rpc.ProcUnavail:
			if proc < numProcs {
				t.Fatalf("%s: PROC_UNAVAIL", ProcName(uint32(proc)))
			}
		case st == rpc.GarbageArgs:
		case st != rpc.Success:
			t.Fatalf("%s: accept stat %d", ProcName(uint32(proc)), st)
		case proc == ProcNull:
			if len(res) != 0 {
				t.Fatal("NULL with results")
			}
		case len(res) < 4:
			t.Fatalf("%s: %d-byte result", ProcName(uint32(proc)), len(res))
		default:
			if s := binary.BigEndian.Uint32(res); StatusName(s) == "NFS3ERR_?" || s == StatusServerFault {
				t.Fatalf("%s: status %d", ProcName(uint32(proc)), s)
			}
		}
		if len(res)%4 != 0 {
			t.Fatalf("%s: result of %d bytes is not XDR-aligned", ProcName(uint32(proc)), len(res))
		}
	})
}
