package nfs4

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
)

// TestOpenUncheckedExisting checks the answers of an UNCHECKED OPEN, which
// tries a create before it looks the name up, where the create fails and
// the name exists: a file the caller may open opens in a directory it may
// not write; one it may not open, or a new name there, is refused; a
// directory is not opened.
func TestOpenUncheckedExisting(t *testing.T) {
	s := startWire(t)
	locked := filepath.Join(s.dir, "locked")
	if err := os.Mkdir(locked, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{"open": 0o666, "secret": 0o600} {
		if err := os.WriteFile(filepath.Join(locked, name), []byte("x"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(locked, name), mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(s.dir, "sub"), 0o777); err != nil {
		t.Fatal(err)
	}
	c := s.dial(t)
	c.cred = rpc.Cred{Flavor: rpc.AuthSys, UID: 1000, GID: 1000}
	c.connect("unchecked")
	root := c.volRoot()
	dir := c.fh(putfh(root), lookup("locked"))
	for _, tc := range []struct {
		dir  []byte
		name string
		want uint32
	}{
		{dir, "open", OK},
		{dir, "secret", ErrAccess},
		{dir, "new", ErrAccess},
		{root, "sub", ErrIsDir},
	} {
		_, _, st := c.open(tc.dir, openArgs{access: ShareAccessBoth, owner: "o", create: true, how: createUnchecked, name: tc.name})
		if st != tc.want {
			t.Errorf("UNCHECKED OPEN of %s: status %d, want %d", tc.name, st, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(locked, "new")); !os.IsNotExist(err) {
		t.Errorf("refused create left a file: %v", err)
	}
}
