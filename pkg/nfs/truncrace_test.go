package nfs_test

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

// TestReadRacingTruncate races big READs (vfs.FileReader path) against
// SETATTR size truncations of the same file on one connection, as pods on
// one node share the kernel client's connection. The file always holds a
// prefix of one pattern (cut at page boundaries, then written back), so
// every READ must return pattern bytes, short only with eof, and the
// connection must survive: a reply promising more bytes than the file
// then held used to make the server drop it.
func TestReadRacingTruncate(t *testing.T) {
	s := start(t)
	ctx := context.Background()
	const size = 4 << 20
	pattern := make([]byte, size)
	for i := range pattern {
		pattern[i] = byte(i*131 + i>>12)
	}
	h, err := s.c.Create(ctx, s.root, "racy", 0o644, vfs.CreateUnchecked)
	if err != nil {
		t.Fatal(err)
	}
	writeBack := func(from int) {
		for off := from; off < size; off += 1 << 20 {
			if _, _, _, err := s.c.Write(ctx, h, uint64(off), pattern[off:min(size, off+1<<20)], vfs.Unstable); err != nil {
				t.Errorf("write at %d: %v", off, err)
				return
			}
		}
	}
	writeBack(0)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			cut := uint64((i * 37 % 1024) * 4096) // page-aligned, 0..4 MiB
			if _, err := s.c.SetAttr(ctx, h, vfs.SetAttr{Size: &cut}, nil); err != nil {
				t.Errorf("truncate to %d: %v", cut, err)
				return
			}
			writeBack(int(cut))
		}
	}()
	var short, full int
	var mu sync.Mutex
	var readers sync.WaitGroup
	for r := range 4 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			buf := make([]byte, 1<<20)
			for i := range 150 {
				off := ((r*150 + i) * 97 % 12) * (256 << 10) // 0..2.75 MiB
				n, eof, err := s.c.Read(ctx, h, uint64(off), buf)
				if err != nil {
					t.Errorf("read %d at %d: %v", len(buf), off, err)
					return
				}
				if !bytes.Equal(buf[:n], pattern[off:off+n]) {
					i := 0
					for buf[i] == pattern[off+i] {
						i++
					}
					t.Errorf("read at %d: %d bytes that the file never held, from byte %d (%x, want %x)", off, n, i, buf[i:i+8], pattern[off+i:off+i+8])
					return
				}
				if n < len(buf) && !eof {
					t.Errorf("read at %d: short (%d bytes) without eof", off, n)
					return
				}
				mu.Lock()
				if n < len(buf) {
					short++
				} else {
					full++
				}
				mu.Unlock()
			}
		}()
	}
	readers.Wait()
	close(stop)
	wg.Wait()
	t.Logf("%d full reads, %d short ones", full, short)
	if err := s.c.Null(ctx); err != nil {
		t.Fatalf("connection unusable after the race: %v", err)
	}
}
