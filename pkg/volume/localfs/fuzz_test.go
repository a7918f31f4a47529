package localfs

import (
	"bytes"
	"errors"
	"testing"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

// FuzzResolveHandle feeds arbitrary handles to the resolver: it must never
// panic, and anything but a handle we minted must be refused.
func FuzzResolveHandle(f *testing.F) {
	env := newEnv(f)
	h := env.create(f, env.root, "file")
	d := env.mkdir(f, env.root, "dir")
	minted := [][]byte{env.root, h, d}
	for _, m := range minted {
		f.Add([]byte(m))
		f.Add(m[:len(m)-1])
		flipped := append([]byte(nil), m...)
		flipped[len(m)/2] ^= 0x10
		f.Add(flipped)
	}
	f.Add([]byte{})
	f.Add([]byte{handleVersion})
	f.Add(make([]byte, vfs.MaxHandleSize))
	f.Add(bytes.Repeat([]byte{0xff}, vfs.MaxHandleSize+1))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := env.fs.GetAttr(ctx, b)
		isMinted := false
		for _, m := range minted {
			isMinted = isMinted || bytes.Equal(b, m)
		}
		if isMinted {
			if err != nil {
				t.Fatalf("minted handle refused: %v", err)
			}
			return
		}
		if !errors.Is(err, vfs.ErrBadHandle) {
			t.Fatalf("handle %x: got %v, want ErrBadHandle", b, err)
		}
	})
}
