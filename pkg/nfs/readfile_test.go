package nfs_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/nfs"
	"github.com/hangar-csi/hangar/pkg/nfs/nfs4"
	"github.com/hangar-csi/hangar/pkg/nfs/nfsclient"
	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/vfs"
	"github.com/hangar-csi/hangar/pkg/vfs/vfstest"
)

// fileFS is memfs with vfs.FileReader: ReadFile hands out a memfd holding
// the range at its own offset, and closes nothing it gave away.
type fileFS struct {
	*vfstest.MemFS
	calls   atomic.Int32
	decline error // answered if set: ErrNotSupp, as a wrapper of an FS without files does
}

func (f *fileFS) ReadFile(ctx context.Context, c vfs.Cred, h vfs.Handle, off uint64, count uint32) (int, int, bool, *vfs.Attr, error) {
	f.calls.Add(1)
	if f.decline != nil {
		return -1, 0, false, nil, f.decline
	}
	buf := make([]byte, count)
	n, eof, a, err := f.MemFS.Read(ctx, c, h, off, buf)
	if err != nil {
		return -1, 0, false, a, err
	}
	fd, err := unix.MemfdCreate("readfile", unix.MFD_CLOEXEC)
	if err != nil {
		return -1, 0, false, nil, err
	}
	if _, err := unix.Pwrite(fd, buf[:n], int64(off)); err != nil {
		unix.Close(fd)
		return -1, 0, false, nil, err
	}
	return fd, n, eof, a, nil
}

// TestReadFromFile reads through the sendfile path (vfs.FileReader) and
// checks every byte, the count, eof and the XDR padding (a wrong pad
// desynchronises the client's next reply), at the start, middle and end
// of files of odd sizes and beyond their end.
func TestReadFromFile(t *testing.T) {
	t.Run("sendfile", func(t *testing.T) { testReadFromFile(t, nil) })
	// A declining FileReader leaves READ to Read, also when the decline
	// comes wrapped.
	t.Run("declined", func(t *testing.T) { testReadFromFile(t, vfs.ErrNotSupp) })
	t.Run("declined wrapped", func(t *testing.T) { testReadFromFile(t, fmt.Errorf("no files here: %w", vfs.ErrNotSupp)) })
}

func testReadFromFile(t *testing.T, decline error) {
	fs := &fileFS{MemFS: vfstest.NewMemFS(), decline: decline}
	fs.AddExport("/")
	srv := nfs.NewServer(fs, rpc.Options{}, nfs4.Options{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	ctx := context.Background()
	c, err := nfsclient.Dial(ctx, l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	root, err := c.Mount(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{0, 1, 3, 64<<10 + 1, 300<<10 + 2} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i ^ i>>8 ^ size)
		}
		h, err := c.Create(ctx, root, "f"+string(rune('a'+size%26))+string(rune('a'+size%7)), 0o644, vfs.CreateUnchecked)
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off < size; off += 1 << 20 {
			if _, _, _, err := c.Write(ctx, h, uint64(off), data[off:min(size, off+1<<20)], vfs.FileSync); err != nil {
				t.Fatal(err)
			}
		}
		for _, off := range []int{0, 1, size / 2, max(size-1, 0), size, size + 100} {
			for _, count := range []int{64 << 10, 128<<10 + 3, 1 << 20} {
				buf := bytes.Repeat([]byte{0xee}, count)
				n, eof, err := c.Read(ctx, h, uint64(off), buf)
				if err != nil {
					t.Fatalf("size %d: read %d at %d: %v", size, count, off, err)
				}
				want := data[min(off, size):min(off+count, size)]
				if n != len(want) || !bytes.Equal(buf[:n], want) {
					t.Fatalf("size %d: read %d at %d: got %d bytes, want %d (or contents differ)", size, count, off, n, len(want))
				}
				if wantEOF := off+count >= size; eof != wantEOF {
					t.Fatalf("size %d: read %d at %d: eof %v, want %v", size, count, off, eof, wantEOF)
				}
			}
		}
		// Small reads are copied as before, not served from a file.
		before := fs.calls.Load()
		buf := make([]byte, 4096)
		n, _, err := c.Read(ctx, h, 0, buf)
		if err != nil || !bytes.Equal(buf[:n], data[:min(size, 4096)]) {
			t.Fatalf("size %d: small read: %d bytes, %v", size, n, err)
		}
		if fs.calls.Load() != before {
			t.Fatalf("a 4 KiB READ went through ReadFile")
		}
	}
	if fs.calls.Load() == 0 {
		t.Fatal("ReadFile never used")
	}
	// Errors come back as NFS errors, as from Read.
	if _, _, err := c.Read(ctx, root, 0, make([]byte, 1<<20)); err == nil {
		t.Fatal("READ of a directory through ReadFile succeeded")
	}
}

// TestLargeReadsLocalfs reads big ranges of a localfs file (through
// vfs.FileReader and sendfile when localfs provides it) and checks every
// byte, the count and eof, also after the file shrinks.
func TestLargeReadsLocalfs(t *testing.T) {
	s := start(t)
	ctx := context.Background()
	h, err := s.c.Create(ctx, s.root, "big", 0o644, vfs.CreateUnchecked)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 3<<20+5)
	for i := range data {
		data[i] = byte(i*31 + i>>12)
	}
	for off := 0; off < len(data); off += 1 << 20 {
		if _, _, _, err := s.c.Write(ctx, h, uint64(off), data[off:min(len(data), off+1<<20)], vfs.Unstable); err != nil {
			t.Fatal(err)
		}
	}
	check := func(data []byte) {
		t.Helper()
		size := len(data)
		for _, off := range []int{0, 7, 1 << 20, max(size-(1<<20)+1, 0), size - 3, size, size + 4096} {
			buf := make([]byte, 1<<20)
			n, eof, err := s.c.Read(ctx, h, uint64(off), buf)
			if err != nil {
				t.Fatalf("read at %d: %v", off, err)
			}
			want := data[min(off, size):min(off+len(buf), size)]
			if n != len(want) || !bytes.Equal(buf[:n], want) || eof != (off+len(buf) >= size) {
				t.Fatalf("read at %d of %d: n %d eof %v, want n %d", off, size, n, eof, len(want))
			}
		}
	}
	check(data)
	if err := os.Truncate(filepath.Join(s.dir1, "big"), 200<<10+1); err != nil {
		t.Fatal(err)
	}
	check(data[:200<<10+1])
}
