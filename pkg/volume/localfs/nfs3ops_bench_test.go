package localfs

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"testing"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/nfs/nfs3"
	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
	"github.com/hangar-csi/hangar/pkg/vfs"
)

// The BenchmarkNFS3 benchmarks serve single NFSv3 calls through the
// protocol handler on a localfs export, without a network, so that their
// allocations and system calls are the server's cost of one operation of
// the kinds untar, tar, rm -r and fs_mark send. The export is a tmpfs, as
// in test/bench/kernel.sh (HANGAR_OPBENCH_FS=disk or ext4-journal picks
// another backend). Each benchmark brackets its timed loop with two
// failing faccessat calls on /hangar-opbench-mark/{start,end}, so that a
// trace (strace -f -o out ./localfs.test -test.bench ...) can count the
// system calls of the loop alone.

type opEnv struct {
	env  *testEnv
	h    *nfs3.Handler
	cred rpc.Cred
	w    xdr.Writer
	buf  []byte
}

func newOpEnv(b *testing.B) *opEnv {
	be := tmpfs.base
	switch os.Getenv("HANGAR_OPBENCH_FS") {
	case "disk":
		be = func(t testing.TB) string { return t.TempDir() }
	case "ext4-journal":
		be = ext4Journal.base
	}
	env := newEnvIn(b, be(b), Options{})
	return &opEnv{
		env:  env,
		h:    nfs3.NewHandler(env.fs, logr.Discard()),
		cred: rpc.Cred{Flavor: rpc.AuthSys}, // root, as the guest benchmark runs
		buf:  make([]byte, 0, 1<<17),
	}
}

// restart replaces the server with a new one on the same export, which has
// no object open yet.
func (o *opEnv) restart(b *testing.B) {
	o.env.open(b, Options{})
	o.h = nfs3.NewHandler(o.env.fs, logr.Discard())
}

// serve runs one call and returns its NFS status.
func (o *opEnv) serve(b *testing.B, proc uint32, args []byte) uint32 {
	c := rpc.Call{Prog: nfs3.Program, Vers: nfs3.Version, Proc: proc, Cred: o.cred, Args: args}
	o.w.Reset(o.buf)
	if st := o.h.Serve(context.Background(), &c, &o.w); st != rpc.Success {
		b.Fatalf("%s: accept status %d", nfs3.ProcName(proc), st)
	}
	return binary.BigEndian.Uint32(o.w.Bytes())
}

// run times n prebuilt calls of proc, each of which must answer want.
func (o *opEnv) run(b *testing.B, proc uint32, want uint32, args func(i int) []byte) {
	all := make([][]byte, b.N)
	for i := range all {
		all[i] = args(i)
	}
	b.ReportAllocs()
	mark("start")
	b.ResetTimer()
	for i := range b.N {
		if st := o.serve(b, proc, all[i]); st != want {
			b.Fatalf("%s: status %d, want %d", nfs3.ProcName(proc), st, want)
		}
	}
	b.StopTimer()
	mark("end")
}

func mark(what string) { unix.Faccessat(unix.AT_FDCWD, "/hangar-opbench-mark/"+what, 0, 0) }

func args(fn func(w *xdr.Writer)) []byte {
	var w xdr.Writer
	fn(&w)
	return w.Bytes()
}

func fhArgs(h vfs.Handle) []byte { return args(func(w *xdr.Writer) { w.Opaque(h) }) }

func dirop(w *xdr.Writer, dir vfs.Handle, name string) {
	w.Opaque(dir)
	w.String(name)
}

func names(prefix string, n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return s
}

func BenchmarkNFS3(b *testing.B) {
	mode := uint32(0o644)
	b.Run("GETATTR", func(b *testing.B) {
		o := newOpEnv(b)
		f := o.env.create(b, o.env.root, "f")
		o.run(b, nfs3.ProcGetAttr, 0, func(int) []byte { return fhArgs(f) })
	})
	b.Run("LOOKUP", func(b *testing.B) {
		o := newOpEnv(b)
		o.env.create(b, o.env.root, "f")
		o.run(b, nfs3.ProcLookup, 0, func(int) []byte { return args(func(w *xdr.Writer) { dirop(w, o.env.root, "f") }) })
	})
	b.Run("LOOKUP-ENOENT", func(b *testing.B) {
		o := newOpEnv(b)
		o.run(b, nfs3.ProcLookup, nfs3.StatusNoEnt, func(int) []byte { return args(func(w *xdr.Writer) { dirop(w, o.env.root, "nope") }) })
	})
	b.Run("ACCESS", func(b *testing.B) {
		o := newOpEnv(b)
		f := o.env.create(b, o.env.root, "f")
		o.run(b, nfs3.ProcAccess, 0, func(int) []byte {
			return args(func(w *xdr.Writer) { w.Opaque(f); w.Uint32(0x3f) })
		})
	})
	for _, how := range []struct {
		name string
		how  vfs.CreateHow
	}{{"UNCHECKED", vfs.CreateUnchecked}, {"GUARDED", vfs.CreateGuarded}, {"EXCLUSIVE", vfs.CreateExclusive}} {
		b.Run("CREATE-"+how.name, func(b *testing.B) {
			o := newOpEnv(b)
			ns := names("f", b.N)
			o.run(b, nfs3.ProcCreate, 0, func(i int) []byte {
				return args(func(w *xdr.Writer) {
					dirop(w, o.env.root, ns[i])
					w.Uint32(uint32(how.how))
					if how.how == vfs.CreateExclusive {
						w.Uint64(uint64(i) + 1)
					} else {
						nfs3.EncodeSattr(w, &vfs.SetAttr{Mode: &mode})
					}
				})
			})
		})
	}
	setattr := func(name string, sa vfs.SetAttr) {
		b.Run("SETATTR-"+name, func(b *testing.B) {
			o := newOpEnv(b)
			f := o.env.create(b, o.env.root, "f")
			o.env.write(b, f, 0, "data")
			o.run(b, nfs3.ProcSetAttr, 0, func(int) []byte {
				return args(func(w *xdr.Writer) {
					w.Opaque(f)
					nfs3.EncodeSattr(w, &sa)
					w.Bool(false)
				})
			})
		})
	}
	setattr("mode", vfs.SetAttr{Mode: &mode})
	setattr("times", vfs.SetAttr{Atime: vfs.SetTime{How: vfs.TimeServer}, Mtime: vfs.SetTime{How: vfs.TimeServer}})
	// What Linux sends after an exclusive CREATE.
	setattr("mode+times", vfs.SetAttr{Mode: &mode, Atime: vfs.SetTime{How: vfs.TimeServer}, Mtime: vfs.SetTime{How: vfs.TimeServer}})
	size := uint64(0)
	setattr("size", vfs.SetAttr{Size: &size})
	data := make([]byte, 4096)
	for _, stable := range []struct {
		name string
		how  vfs.Stable
	}{{"UNSTABLE", vfs.Unstable}, {"FILE_SYNC", vfs.FileSync}} {
		b.Run("WRITE4K-"+stable.name, func(b *testing.B) {
			o := newOpEnv(b)
			f := o.env.create(b, o.env.root, "f")
			o.run(b, nfs3.ProcWrite, 0, func(i int) []byte {
				return args(func(w *xdr.Writer) {
					w.Opaque(f)
					w.Uint64(uint64(i%4096) * 4096) // appends, then overwrites
					w.Uint32(uint32(len(data)))
					w.Uint32(uint32(stable.how))
					w.Opaque(data)
				})
			})
		})
	}
	b.Run("COMMIT", func(b *testing.B) {
		o := newOpEnv(b)
		f := o.env.create(b, o.env.root, "f")
		o.env.write(b, f, 0, "data")
		o.run(b, nfs3.ProcCommit, 0, func(int) []byte {
			return args(func(w *xdr.Writer) { w.Opaque(f); w.Uint64(0); w.Uint32(0) })
		})
	})
	b.Run("READ4K", func(b *testing.B) {
		o := newOpEnv(b)
		f := o.env.create(b, o.env.root, "f")
		o.env.write(b, f, 0, string(make([]byte, 64<<10)))
		o.run(b, nfs3.ProcRead, 0, func(i int) []byte {
			return args(func(w *xdr.Writer) { w.Opaque(f); w.Uint64(uint64(i%16) * 4096); w.Uint32(4096) })
		})
	})
	for _, cold := range []bool{false, true} {
		name := "REMOVE"
		if cold {
			name += "-cold"
		}
		b.Run(name, func(b *testing.B) {
			o := newOpEnv(b)
			ns := names("f", b.N)
			for _, n := range ns {
				o.env.create(b, o.env.root, n)
			}
			if cold {
				o.restart(b) // no node open: as after a restart or eviction
			}
			o.run(b, nfs3.ProcRemove, 0, func(i int) []byte { return args(func(w *xdr.Writer) { dirop(w, o.env.root, ns[i]) }) })
		})
	}
	b.Run("READDIRPLUS-64-cold", func(b *testing.B) {
		o := newOpEnv(b)
		d := o.env.mkdir(b, o.env.root, "d")
		for _, n := range names("f", 64) {
			o.env.create(b, d, n)
		}
		o.restart(b)
		o.run(b, nfs3.ProcReadDirPlus, 0, func(int) []byte {
			return args(func(w *xdr.Writer) { w.Opaque(d); w.Uint64(0); w.Uint64(0); w.Uint32(32768); w.Uint32(65536) })
		})
	})
	b.Run("MKDIR", func(b *testing.B) {
		o := newOpEnv(b)
		ns := names("d", b.N)
		dmode := uint32(0o755)
		o.run(b, nfs3.ProcMkdir, 0, func(i int) []byte {
			return args(func(w *xdr.Writer) { dirop(w, o.env.root, ns[i]); nfs3.EncodeSattr(w, &vfs.SetAttr{Mode: &dmode}) })
		})
	})
	b.Run("RMDIR", func(b *testing.B) {
		o := newOpEnv(b)
		ns := names("d", b.N)
		for _, n := range ns {
			o.env.mkdir(b, o.env.root, n)
		}
		o.run(b, nfs3.ProcRmdir, 0, func(i int) []byte { return args(func(w *xdr.Writer) { dirop(w, o.env.root, ns[i]) }) })
	})
	b.Run("READDIRPLUS-64", func(b *testing.B) {
		o := newOpEnv(b)
		d := o.env.mkdir(b, o.env.root, "d")
		for _, n := range names("f", 64) {
			o.env.create(b, d, n)
		}
		o.run(b, nfs3.ProcReadDirPlus, 0, func(int) []byte {
			return args(func(w *xdr.Writer) { w.Opaque(d); w.Uint64(0); w.Uint64(0); w.Uint32(32768); w.Uint32(65536) })
		})
	})
	b.Run("FSSTAT", func(b *testing.B) {
		o := newOpEnv(b)
		o.run(b, nfs3.ProcFSStat, 0, func(int) []byte { return fhArgs(o.env.root) })
	})
}
