package localfs

import (
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

func BenchmarkGetAttr(b *testing.B) {
	env := newEnv(b)
	h := env.create(b, env.root, "f")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := env.fs.GetAttr(ctx, h); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetAttrPolicy is BenchmarkGetAttr for a client the export's
// policy must look up, with a policy shaped like the storage server's (an
// atomic pointer to an address map), to price the per-call check.
func BenchmarkGetAttrPolicy(b *testing.B) {
	env := newEnv(b)
	h := env.create(b, env.root, "f")
	client := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 700}
	var grants atomic.Pointer[map[netip.Addr]vfs.Grant]
	m := map[netip.Addr]vfs.Grant{}
	for i := range 64 {
		m[netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})] = vfs.GrantReadWrite
	}
	grants.Store(&m)
	if err := env.fs.SetPolicy("/vol", func(c netip.Addr) vfs.Grant { return (*grants.Load())[c] }); err != nil {
		b.Fatal(err)
	}
	cctx := vfs.WithClient(ctx, client)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := env.fs.GetAttr(cctx, h); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetAttrUncached resolves through open_by_handle_at every time.
func BenchmarkGetAttrUncached(b *testing.B) {
	env := newEnvIn(b, b.TempDir(), Options{MaxOpenFiles: 1})
	h := env.create(b, env.root, "f")
	other := env.create(b, env.root, "g")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := env.fs.GetAttr(ctx, h); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		env.getattr(b, other) // evicts h
		b.StartTimer()
	}
}

func BenchmarkRead4K(b *testing.B) {
	env := newEnv(b)
	h := env.create(b, env.root, "f")
	env.write(b, h, 0, string(make([]byte, 1<<20)))
	buf := make([]byte, 4096)
	b.ReportAllocs()
	b.SetBytes(4096)
	var off uint64
	for b.Loop() {
		if _, _, _, err := env.fs.Read(ctx, user, h, off, buf); err != nil {
			b.Fatal(err)
		}
		off = (off + 4096) % (1 << 20)
	}
}

func BenchmarkLookup(b *testing.B) {
	env := newEnv(b)
	env.create(b, env.root, "f")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, err := env.fs.Lookup(ctx, user, env.root, "f"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreate measures durable creates (directory fsync, plus the new
// inode's fsync where the file system needs it) in one directory, serially
// and from 16 goroutines, on every backend.
func BenchmarkCreate(b *testing.B) {
	for _, be := range backends {
		for _, par := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/goroutines=%d", be.name, par), func(b *testing.B) {
				env := newEnvIn(b, be.dir(b), Options{})
				var seq atomic.Int64
				b.ReportAllocs()
				runParallel(b, par, func() {
					name := fmt.Sprintf("f%d", seq.Add(1))
					if _, _, _, err := env.fs.Create(ctx, user, env.root, name, vfs.CreateGuarded, vfs.SetAttr{}, vfs.Verifier{}); err != nil {
						b.Error(err)
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
			})
		}
	}
}

// runParallel runs b.N calls of fn on exactly par goroutines.
func runParallel(b *testing.B, par int, fn func()) {
	var next atomic.Int64
	done := make(chan struct{})
	for g := 0; g < par; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for next.Add(1) <= int64(b.N) {
				fn()
			}
		}()
	}
	for g := 0; g < par; g++ {
		<-done
	}
}
