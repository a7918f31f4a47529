package localfs

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

func (env *testEnv) configure(t testing.TB, c ExportConfig) {
	t.Helper()
	if err := env.fs.Configure("/vol", c); err != nil {
		t.Fatal(err)
	}
}

func (env *testEnv) usage(t testing.TB) Usage {
	t.Helper()
	u, err := env.fs.Usage("/vol")
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// checkScan fails unless the accounted usage equals a fresh scan.
func (env *testEnv) checkScan(t testing.TB) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(env.dir, &st); err != nil {
		t.Fatal(err)
	}
	b, i, err := scanUsage(env.dir, st.Dev)
	if err != nil {
		t.Fatal(err)
	}
	if u := env.usage(t); u.Bytes != uint64(b) || u.Inodes != uint64(i) {
		t.Fatalf("accounted usage %d bytes %d inodes, scan says %d bytes %d inodes", u.Bytes, u.Inodes, b, i)
	}
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func (env *testEnv) readAll(t testing.TB, h vfs.Handle, n int) []byte {
	t.Helper()
	buf := make([]byte, n+1)
	m, _, _, err := env.fs.Read(ctx, user, h, 0, buf)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return buf[:m]
}

func TestQuotaWritePastLimit(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		const limit = 256 << 10
		env.configure(t, ExportConfig{MaxBytes: limit})
		f := env.fs
		h := env.create(t, env.root, "f")
		first := pattern(160<<10, 1)
		if _, _, _, err := f.Write(ctx, user, h, 0, first, vfs.FileSync); err != nil {
			t.Fatal(err)
		}
		// 128 KiB more cannot fit: refused whole, nothing written.
		_, _, wcc, err := f.Write(ctx, user, h, uint64(len(first)), pattern(128<<10, 2), vfs.FileSync)
		wantErr(t, "write past the limit", err, unix.EDQUOT)
		if wcc.After == nil || wcc.After.Size != uint64(len(first)) {
			t.Fatalf("size after refused write: %+v", wcc.After)
		}
		if got := env.readAll(t, h, len(first)); !bytes.Equal(got, first) {
			t.Fatal("data changed by a refused write")
		}
		// Overwriting what is allocated never fails, even at the limit.
		u := env.usage(t)
		if err := f.SetLimits("/vol", u.Bytes, 0); err != nil {
			t.Fatal(err)
		}
		second := pattern(len(first), 3)
		if _, _, _, err := f.Write(ctx, user, h, 0, second, vfs.FileSync); err != nil {
			t.Fatalf("overwrite at the limit: %v", err)
		}
		_, _, _, err = f.Write(ctx, user, h, uint64(len(first)), []byte("x"), vfs.FileSync)
		wantErr(t, "append at the limit", err, unix.EDQUOT)
		// Expansion applies to the live export and the same handle.
		if err := f.SetLimits("/vol", limit*2, 0); err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := f.Write(ctx, user, h, uint64(len(first)), pattern(128<<10, 4), vfs.FileSync); err != nil {
			t.Fatalf("write after expansion: %v", err)
		}
		got := env.readAll(t, h, len(first)+128<<10)
		if !bytes.Equal(got[:len(first)], second) || !bytes.Equal(got[len(first):], pattern(128<<10, 4)) {
			t.Fatal("data wrong after expansion")
		}
		env.checkScan(t)
	})
}

func TestQuotaFSStat(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		const limit = 1 << 20
		env.configure(t, ExportConfig{MaxBytes: limit, MaxInodes: 100})
		h := env.create(t, env.root, "f")
		env.write(t, h, 0, string(pattern(100<<10, 0)))
		s, _, err := env.fs.FSStat(ctx, env.root)
		if err != nil {
			t.Fatal(err)
		}
		u := env.usage(t)
		if u.Bytes < 100<<10 || u.Inodes != 2 {
			t.Fatalf("usage %+v", u)
		}
		want := vfs.FSStat{TotalBytes: limit, FreeBytes: limit - u.Bytes, AvailBytes: limit - u.Bytes, TotalFiles: 100, FreeFiles: 98, AvailFiles: 98}
		if s != want {
			t.Fatalf("fsstat %+v, want %+v", s, want)
		}
		// A quota larger than the disk: free space is the disk's.
		var sfs unix.Statfs_t
		if err := unix.Statfs(env.dir, &sfs); err != nil {
			t.Fatal(err)
		}
		huge := sfs.Blocks * uint64(sfs.Bsize) * 4
		if err := env.fs.SetLimits("/vol", huge, 0); err != nil {
			t.Fatal(err)
		}
		s, _, _ = env.fs.FSStat(ctx, env.root)
		if s.TotalBytes != huge || s.AvailBytes > sfs.Bavail*uint64(sfs.Bsize)+1<<20 || s.AvailBytes == 0 {
			t.Fatalf("fsstat with a quota above the disk: %+v", s)
		}
	})
}

func TestQuotaRestart(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		usageFile := filepath.Join(env.base, "usage.json")
		cfg := ExportConfig{MaxBytes: 1 << 20, MaxInodes: 1000, UsageFile: usageFile}
		env.configure(t, cfg)
		d := env.mkdir(t, env.root, "d")
		for i, name := range []string{"a", "b", "c"} {
			h := env.create(t, d, name)
			env.write(t, h, 0, string(pattern((i+1)*10000, byte(i))))
		}
		h, _ := env.lookup(t, d, "a")
		if _, _, err := env.fs.Link(ctx, user, h, env.root, "a-link"); err != nil {
			t.Fatal(err)
		}
		if _, err := env.fs.Remove(ctx, user, d, "b"); err != nil {
			t.Fatal(err)
		}
		before := env.usage(t)
		env.checkScan(t)
		env.open(t, Options{})
		if u, err := loadUsage(usageFile); err != nil || u != before {
			t.Fatalf("saved usage %+v (%v), want %+v", u, err, before)
		}
		env.configure(t, cfg)
		if after := env.usage(t); after != before {
			t.Fatalf("usage after restart %+v, before %+v", after, before)
		}
	})
}

func TestQuotaInodes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		f := env.fs
		env.configure(t, ExportConfig{MaxInodes: 4}) // the root and three more
		env.create(t, env.root, "a")
		env.mkdir(t, env.root, "d")
		if _, _, _, err := f.Symlink(ctx, user, env.root, "l", "a", vfs.SetAttr{}); err != nil {
			t.Fatal(err)
		}
		_, _, _, err := f.Create(ctx, user, env.root, "b", vfs.CreateGuarded, vfs.SetAttr{}, vfs.Verifier{})
		wantErr(t, "create past the inode limit", err, unix.EDQUOT)
		_, _, _, err = f.Create(ctx, user, env.root, "b", vfs.CreateUnchecked, vfs.SetAttr{}, vfs.Verifier{})
		wantErr(t, "unchecked create past the inode limit", err, unix.EDQUOT)
		// Opening an existing file with O_CREAT needs no inode.
		if _, _, _, err := f.Create(ctx, user, env.root, "a", vfs.CreateUnchecked, vfs.SetAttr{Size: u64(0)}, vfs.Verifier{}); err != nil {
			t.Fatalf("unchecked create of an existing file at the inode limit: %v", err)
		}
		_, _, _, err = f.Mkdir(ctx, user, env.root, "e", vfs.SetAttr{})
		wantErr(t, "mkdir past the inode limit", err, unix.EDQUOT)
		_, _, _, err = f.Mknod(ctx, user, env.root, "p", vfs.TypeFIFO, vfs.SetAttr{}, 0, 0)
		wantErr(t, "mknod past the inode limit", err, unix.EDQUOT)
		// A hard link is no new inode.
		ah, _ := env.lookup(t, env.root, "a")
		if _, _, err := f.Link(ctx, user, ah, env.root, "a2"); err != nil {
			t.Fatalf("link at the inode limit: %v", err)
		}
		if _, err := f.Rmdir(ctx, user, env.root, "d"); err != nil {
			t.Fatal(err)
		}
		env.create(t, env.root, "b")
		env.checkScan(t)
	})
}

func TestQuotaLinksAndSparse(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		f := env.fs
		const limit = 512 << 10
		env.configure(t, ExportConfig{MaxBytes: limit})
		h := env.create(t, env.root, "f")
		env.write(t, h, 0, string(pattern(64<<10, 1)))
		u0 := env.usage(t)
		if _, _, err := f.Link(ctx, user, h, env.root, "g"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Remove(ctx, user, env.root, "f"); err != nil {
			t.Fatal(err)
		}
		if u := env.usage(t); u.Bytes < u0.Bytes-4096 || u.Inodes != u0.Inodes {
			t.Fatalf("removing one of two links changed usage: %+v -> %+v", u0, u)
		}
		env.checkScan(t)
		if _, err := f.Remove(ctx, user, env.root, "g"); err != nil {
			t.Fatal(err)
		}
		if u := env.usage(t); u.Bytes >= u0.Bytes-64<<10+1 || u.Inodes != u0.Inodes-1 {
			t.Fatalf("removing the last link did not free: %+v -> %+v", u0, u)
		}
		env.checkScan(t)

		// Sparse: a size past the capacity is refused, within it allowed
		// and free.
		s := env.create(t, env.root, "sparse")
		_, err := f.SetAttr(ctx, user, s, vfs.SetAttr{Size: u64(limit + 1)}, nil)
		wantErr(t, "truncate past the capacity", err, unix.EDQUOT)
		if _, err := f.SetAttr(ctx, user, s, vfs.SetAttr{Size: u64(limit)}, nil); err != nil {
			t.Fatal(err)
		}
		// Fill blocks at both ends, then bring the limit down to usage:
		// overwrites of the filled blocks still succeed, writes into the
		// hole do not.
		env.write(t, s, 0, string(pattern(8192, 5)))
		env.write(t, s, limit-8192, string(pattern(8192, 6)))
		if err := f.SetLimits("/vol", env.usage(t).Bytes, 0); err != nil {
			t.Fatal(err)
		}
		env.write(t, s, 0, string(pattern(8192, 7)))
		env.write(t, s, limit-8192, string(pattern(8192, 8)))
		_, _, _, err = f.Write(ctx, user, s, 64<<10, []byte("hole"), vfs.FileSync)
		wantErr(t, "write into a hole at the limit", err, unix.EDQUOT)
		// Truncating frees.
		before := env.usage(t)
		if _, err := f.SetAttr(ctx, user, s, vfs.SetAttr{Size: u64(4096)}, nil); err != nil {
			t.Fatal(err)
		}
		if u := env.usage(t); u.Bytes+8192 > before.Bytes {
			t.Fatalf("truncate did not free: %+v -> %+v", before, u)
		}
		env.checkScan(t)
	})
}

func BenchmarkWriteQuota(b *testing.B) {
	for _, limited := range []bool{false, true} {
		name := "unlimited"
		if limited {
			name = "limited"
		}
		b.Run(name, func(b *testing.B) {
			env := newEnv(b)
			if limited {
				env.configure(b, ExportConfig{MaxBytes: 1 << 40, MaxInodes: 1 << 20})
			}
			h := env.create(b, env.root, "f")
			data := make([]byte, 32<<10)
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				// Appends within 64 MiB, then overwrites.
				off := uint64(i%2048) * uint64(len(data))
				if _, _, _, err := env.fs.Write(ctx, user, h, off, data, vfs.Unstable); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestQuotaConcurrent fills a volume from many writers at once: every
// write succeeds whole or fails with EDQUOT, usage never passes the limit
// by more than metadata, overwrites never fail, and the accounting equals
// a scan at the end.
func TestQuotaConcurrent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		f := env.fs
		const limit = 2 << 20
		const chunk = 32 << 10
		env.configure(t, ExportConfig{MaxBytes: limit})
		shared := env.create(t, env.root, "shared")
		env.write(t, shared, 0, string(pattern(chunk, 9)))
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		sizes := make([]uint64, 6)
		// Made first: a new name needs room for its directory to grow.
		own := make([]vfs.Handle, len(sizes))
		for w := range sizes {
			own[w] = shared
			if w%2 == 0 {
				own[w] = env.create(t, env.root, fmt.Sprintf("own%d", w))
			}
		}
		for w := range sizes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h := own[w]
				for i := 0; i < 200; i++ {
					var off uint64
					if w%2 == 0 {
						off = sizes[w]
					} else {
						// Interleaved slots of the shared file, past chunk 0.
						off = uint64(1+i*3+w/2) * chunk
					}
					n, _, _, err := f.Write(ctx, user, h, off, pattern(chunk, byte(w)), vfs.Unstable)
					if errors.Is(err, unix.EDQUOT) {
						if n != 0 {
							errs <- fmt.Errorf("EDQUOT after writing %d bytes", n)
						}
						return
					}
					if err != nil || n != chunk {
						errs <- fmt.Errorf("write: n=%d err=%v", n, err)
						return
					}
					sizes[w] = off + chunk
				}
				errs <- errors.New("volume never filled")
			}()
		}
		// Overwrites of allocated data never fail, however full.
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if _, _, _, err := f.Write(ctx, user, shared, 0, pattern(chunk, byte(i)), vfs.Unstable); err != nil {
					errs <- fmt.Errorf("overwrite: %v", err)
					return
				}
			}
		}()
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		for w := 0; w < len(sizes); w += 2 {
			h, a := env.lookup(t, env.root, fmt.Sprintf("own%d", w))
			if a.Size != sizes[w] || a.Size%chunk != 0 {
				t.Errorf("own%d: size %d, last good write ended at %d", w, a.Size, sizes[w])
			}
			_ = h
		}
		u := env.usage(t)
		if u.Bytes > limit+64<<10 {
			t.Errorf("usage %d passed the limit %d by more than metadata", u.Bytes, limit)
		}
		env.checkScan(t)
	})
}

// BenchmarkQuotaAccounting is the bookkeeping a WRITE adds, without the
// syscalls (which it shares with the write: the settling fstat doubles as
// the post-operation attributes).
func BenchmarkQuotaAccounting(b *testing.B) {
	q := &quota{maxBytes: 1 << 40, blockSize: 4096}
	a := &inode{}
	st := unix.Stat_t{Size: 1 << 20, Blocks: (1 << 20) / 512}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		est := q.writeEstimate(-1, &st, 1<<20, 4096, false)
		if err := q.reserve(est, 0); err != nil {
			b.Fatal(err)
		}
		a.mu.Lock()
		delta := st.Blocks + 8 - a.blocks
		a.blocks = st.Blocks + 8
		a.mu.Unlock()
		q.add(delta*512, 0)
		q.unreserve(est, 0)
	}
}

func TestVolumeStat(t *testing.T) {
	disk := unix.Statfs_t{Bsize: 4096, Blocks: 1000, Bfree: 500, Bavail: 400, Files: 100, Ffree: 50}
	for _, c := range []struct {
		u    Usage
		want vfs.FSStat
	}{
		// Unlimited: the disk's numbers.
		{Usage{}, vfs.FSStat{TotalBytes: 4096000, FreeBytes: 2048000, AvailBytes: 1638400, TotalFiles: 100, FreeFiles: 50, AvailFiles: 50}},
		// The quota is smaller than what is free.
		{Usage{Bytes: 4096, MaxBytes: 40960, Inodes: 1, MaxInodes: 10}, vfs.FSStat{TotalBytes: 40960, FreeBytes: 36864, AvailBytes: 36864, TotalFiles: 10, FreeFiles: 9, AvailFiles: 9}},
		// The disk has less free than the quota allows: the smaller wins.
		{Usage{Bytes: 0, MaxBytes: 1 << 30, Inodes: 1, MaxInodes: 1000}, vfs.FSStat{TotalBytes: 1 << 30, FreeBytes: 2048000, AvailBytes: 1638400, TotalFiles: 1000, FreeFiles: 50, AvailFiles: 50}},
		// Over the limit (metadata overshoot): nothing free, no underflow.
		{Usage{Bytes: 50000, MaxBytes: 40960}, vfs.FSStat{TotalBytes: 40960, TotalFiles: 100, FreeFiles: 50, AvailFiles: 50}},
	} {
		if got := volumeStat(&disk, c.u); got != c.want {
			t.Errorf("%+v: got %+v, want %+v", c.u, got, c.want)
		}
	}
	btrfs := disk
	btrfs.Files, btrfs.Ffree = 0, 0
	if got := volumeStat(&btrfs, Usage{Inodes: 3, MaxInodes: 10}); got.FreeFiles != 7 || got.AvailFiles != 7 {
		t.Errorf("without inode accounting on disk: %+v", got)
	}
}

// TestQuotaRemoveDuringWrite: a REMOVE that lands between a WRITE's pwrite
// and its settle (during the FILE_SYNC fsync, say) must not discharge
// blocks that were never charged. Otherwise each such race lowers usage by
// the write's size and a client can push the volume past its limit. The
// interleaving is replayed step by step with the pieces Write uses.
func TestQuotaRemoveDuringWrite(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		f := env.fs
		env.configure(t, ExportConfig{MaxBytes: 64 << 20})
		// Enough usage that an undercount cannot hide below zero.
		env.write(t, env.create(t, env.root, "keep"), 0, string(pattern(512<<10, 2)))
		h := env.create(t, env.root, "f")
		n, err := f.resolve(ctx, h, vfs.GrantReadOnly)
		if err != nil {
			t.Fatal(err)
		}
		fd, err := f.ioFd(n)
		if err != nil {
			t.Fatal(err)
		}
		// Write's pwrite has run...
		if _, err := unix.Pwrite(fd, pattern(256<<10, 1), 0); err != nil {
			t.Fatal(err)
		}
		// ...a REMOVE of the file runs now...
		if _, err := f.Remove(ctx, user, env.root, "f"); err != nil {
			t.Fatal(err)
		}
		// ...and then Write settles.
		f.settleQuiet(n)
		f.cache.release(n)
		env.checkScan(t)
	})
}
