package vfstest

import (
	"errors"
	"math"
	"strings"
	"syscall"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

// The vfs.Sparse cases. Ranges are multiples of 64 KiB, so a file system
// that allocates and punches whole blocks (up to 64 KiB) agrees with the
// byte-exact MemFS.

const k64 = 64 << 10

// sparse returns the FS as a vfs.Sparse, or skips a case it cannot run.
func (x *tester) sparse() vfs.Sparse {
	x.Helper()
	s, ok := x.FS.(vfs.Sparse)
	if !ok {
		x.Skip("the FS has no holes (not a vfs.Sparse)")
	}
	return s
}

// punch deallocates [off, off+n) of h; a file system that cannot is the
// only reason to skip.
func (x *tester) punch(h vfs.Handle, off, n uint64) {
	x.Helper()
	w, err := x.sparse().Deallocate(ctx, Cred, h, off, n)
	if errors.Is(err, syscall.ENOTSUP) {
		x.Skip("the file system under the FS cannot punch holes")
	}
	x.noErr("deallocate", err)
	x.wantWcc("deallocate", w)
}

func (x *tester) seek(h vfs.Handle, off uint64, hole bool) (uint64, error) {
	x.Helper()
	pos, a, err := x.sparse().Seek(ctx, Cred, h, off, hole)
	if a == nil {
		x.Fatalf("seek from %d: no attributes (error %v)", off, err)
	}
	return pos, err
}

func (x *tester) wantSeek(h vfs.Handle, off uint64, hole bool, want uint64) {
	x.Helper()
	pos, err := x.seek(h, off, hole)
	x.noErr("seek", err)
	if pos != want {
		x.Fatalf("seek (hole %v) from %d = %d, want %d", hole, off, pos, want)
	}
}

var sparseCases = []testCase{
	{"allocate grows the file, keeps its data and reads zeros", func(x *tester) {
		s := x.sparse()
		f := x.create(x.Root, "f")
		x.write(f, 0, "abc")
		w, err := s.Allocate(ctx, Cred, f, 0, 2*k64)
		x.noErr("allocate", err)
		x.wantWcc("allocate", w)
		if w.Before.Size != 3 || w.After.Size != 2*k64 {
			x.Fatalf("wcc sizes %d -> %d, want 3 -> %d", w.Before.Size, w.After.Size, 2*k64)
		}
		if a := x.attr(f); a.Size != 2*k64 || a.Used < 2*k64 {
			x.Fatalf("after allocating %d bytes: size %d used %d", 2*k64, a.Size, a.Used)
		}
		if got := x.read(f); got != "abc"+strings.Repeat("\x00", 2*k64-3) {
			x.Fatalf("data after allocate is not the old data and zeros")
		}
		// Inside the file the size stays.
		_, err = s.Allocate(ctx, Cred, f, 0, k64)
		x.noErr("allocate inside", err)
		if a := x.attr(f); a.Size != 2*k64 {
			x.Fatalf("size %d after allocating inside the file", a.Size)
		}
	}},
	{"deallocate punches a hole, keeps the size, frees the space", func(x *tester) {
		f := x.create(x.Root, "f")
		x.write(f, 0, strings.Repeat("a", 4*k64))
		before := x.attr(f)
		x.punch(f, k64, k64)
		a := x.attr(f)
		if a.Size != 4*k64 {
			x.Fatalf("size %d after punching, want %d", a.Size, 4*k64)
		}
		if a.Used+k64 > before.Used {
			x.Fatalf("used %d -> %d after punching %d bytes", before.Used, a.Used, k64)
		}
		want := strings.Repeat("a", k64) + strings.Repeat("\x00", k64) + strings.Repeat("a", 2*k64)
		if x.read(f) != want {
			x.Fatalf("data after punching is not zeros in the hole and the rest as written")
		}
		// Past the end of the file: nothing to do, no error, no growth.
		x.punch(f, 8*k64, k64)
		if a := x.attr(f); a.Size != 4*k64 {
			x.Fatalf("size %d after punching past the end", a.Size)
		}
		// A write fills the hole again.
		x.write(f, k64, strings.Repeat("b", k64))
		if a := x.attr(f); a.Used < before.Used {
			x.Fatalf("used %d after refilling the hole, was %d", a.Used, before.Used)
		}
	}},
	{"seek finds data and holes", func(x *tester) {
		f := x.create(x.Root, "f")
		x.write(f, 0, strings.Repeat("a", 4*k64))
		x.punch(f, k64, k64)
		x.wantSeek(f, 0, false, 0)
		x.wantSeek(f, 0, true, k64)
		x.wantSeek(f, k64+5, false, 2*k64)
		x.wantSeek(f, k64+5, true, k64+5)
		x.wantSeek(f, 2*k64, true, 4*k64) // the end of file is a hole
		if _, err := x.seek(f, 4*k64, false); !errors.Is(err, syscall.ENXIO) {
			x.Fatalf("seek data at the end of file: error %v, want ENXIO", err)
		}
		if _, err := x.seek(f, 4*k64, true); !errors.Is(err, syscall.ENXIO) {
			x.Fatalf("seek hole at the end of file: error %v, want ENXIO", err)
		}
		if _, err := x.seek(f, math.MaxUint64, false); !errors.Is(err, syscall.ENXIO) {
			x.Fatalf("seek data at 2^64-1: error %v, want ENXIO", err)
		}
		// No data after the last hole.
		x.punch(f, 3*k64, k64)
		if _, err := x.seek(f, 3*k64, false); !errors.Is(err, syscall.ENXIO) {
			x.Fatalf("seek data in a trailing hole: error %v, want ENXIO", err)
		}
		x.wantSeek(f, 2*k64, true, 3*k64)
	}},
	{"only regular files", func(x *tester) {
		s := x.sparse()
		p := x.mknod(x.Root, "p", vfs.TypeFIFO)
		for _, c := range []struct {
			h    vfs.Handle
			want error
		}{{x.Root, syscall.EISDIR}, {p, syscall.EINVAL}} {
			_, err := s.Allocate(ctx, Cred, c.h, 0, k64)
			x.wantErr("allocate", err, c.want)
			_, err = s.Deallocate(ctx, Cred, c.h, 0, k64)
			x.wantErr("deallocate", err, c.want)
			_, _, err = s.Seek(ctx, Cred, c.h, 0, false)
			x.wantErr("seek", err, c.want)
		}
	}},
	{"bad ranges", func(x *tester) {
		s := x.sparse()
		f := x.create(x.Root, "f")
		x.write(f, 0, "data")
		for _, c := range []struct {
			off, n uint64
			want   error
		}{
			{0, 0, syscall.EINVAL},
			{1 << 63, 1, syscall.EINVAL},
			{0, 1 << 63, syscall.EINVAL},
			{math.MaxInt64, 1, syscall.EFBIG},
			{1 << 62, 1<<62 + 1<<61 + 1<<60, syscall.EFBIG},
		} {
			_, err := s.Allocate(ctx, Cred, f, c.off, c.n)
			x.wantErr("allocate of a bad range", err, c.want)
			_, err = s.Deallocate(ctx, Cred, f, c.off, c.n)
			x.wantErr("deallocate of a bad range", err, c.want)
		}
		if got := x.read(f); got != "data" {
			x.Fatalf("data %q after refused ranges", got)
		}
	}},
	{"allocate past the byte limit allocates nothing; deallocate gives space back", func(x *tester) {
		s := x.sparse()
		x.limit(4*k64, 10)
		f := x.create(x.Root, "f")
		x.write(f, 0, strings.Repeat("a", 3*k64))
		_, err := s.Allocate(ctx, Cred, f, 3*k64, 2*k64)
		x.wantErr("allocate past the limit", err, syscall.EDQUOT)
		if a := x.attr(f); a.Size != 3*k64 || a.Used > 3*k64+k64/2 {
			x.Fatalf("after a refused allocate: size %d used %d", a.Size, a.Used)
		}
		_, err = s.Allocate(ctx, Cred, f, 0, 3*k64)
		x.noErr("allocate of allocated blocks at the limit", err)
		x.punch(f, 0, 2*k64)
		_, err = s.Allocate(ctx, Cred, f, 3*k64, 2*k64)
		x.noErr("allocate after the space was given back", err)
		if a := x.attr(f); a.Size != 5*k64 {
			x.Fatalf("size %d after allocating to %d", a.Size, 5*k64)
		}
	}},
	{"a reader changes nothing but may seek", func(x *tester) {
		s := x.sparse()
		f := x.create(x.Root, "f")
		x.write(f, 0, strings.Repeat("a", 2*k64))
		x.policy(testPolicy)
		_, err := s.Allocate(reader, Cred, f, 0, 4*k64)
		x.wantErr("allocate by a reader", err, syscall.EROFS)
		_, err = s.Deallocate(reader, Cred, f, 0, k64)
		x.wantErr("deallocate by a reader", err, syscall.EROFS)
		_, _, err = s.Seek(reader, Cred, f, 0, true)
		x.noErr("seek by a reader", err)
		_, _, err = s.Seek(denied, Cred, f, 0, true)
		x.wantErr("seek by a client without a grant", err, vfs.ErrNotAllowed)
		if got := x.read(f); got != strings.Repeat("a", 2*k64) {
			x.Fatalf("data changed by a reader")
		}
	}},
}
