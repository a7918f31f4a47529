package localfs

import (
	"bytes"
	"testing"

	"github.com/hangar-csi/hangar/pkg/vfs"
	"golang.org/x/sys/unix"
)

// An EXCLUSIVE4_1 create's attributes (a size among them) are applied
// without losing the verifier kept in the times: a retransmission still
// finds its file, another verifier still gets EEXIST.
func TestExclusiveCreateAttrsKeepVerifier(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		f := env.fs
		v := vfs.Verifier{0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04}
		for i, sa := range []vfs.SetAttr{{Size: u64(0)}, {Size: u64(5)}, {Size: u64(5), Mode: u32(0o600)}} {
			name := string(rune('a' + i))
			h, _, _, err := f.Create(ctx, user, env.root, name, vfs.CreateExclusive, sa, v)
			if err != nil {
				t.Fatalf("exclusive create %+v: %v", sa, err)
			}
			h2, _, _, err := f.Create(ctx, user, env.root, name, vfs.CreateExclusive, sa, v)
			if err != nil || !bytes.Equal(h, h2) {
				t.Errorf("retransmitted exclusive create with %+v: %v", sa, err)
			}
			v2 := v
			v2[7]++
			_, _, _, err = f.Create(ctx, user, env.root, name, vfs.CreateExclusive, sa, v2)
			wantErr(t, "exclusive create, other verifier", err, unix.EEXIST)
		}
	})
}
