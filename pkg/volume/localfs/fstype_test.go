package localfs

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/volume/loopfs"
)

// A directory fsync makes new inodes durable on XFS and journaled ext4, so
// creates skip the inode's own fsync there; elsewhere they need it.
func TestDirSyncCoversInodes(t *testing.T) {
	mount := func(kind string) func(t *testing.T) string {
		return func(t *testing.T) string { return loopfs.Mount(t, kind, 300<<20) }
	}
	for _, c := range []struct {
		name string
		dir  func(t *testing.T) string
		want bool
	}{
		{"xfs", mount("xfs"), true},
		{"ext4", mount("ext4"), true},
		{"ext4-nojournal", func(t *testing.T) string { return ext4NoJournal.base(t) }, false},
		{"tmpfs", mount("tmpfs"), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			fd, err := unix.Open(c.dir(t), unix.O_RDONLY|unix.O_DIRECTORY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil {
				t.Fatal(err)
			}
			if got := dirSyncCoversInodes(fd, st.Dev); got != c.want {
				t.Errorf("dirSyncCoversInodes on %s = %v, want %v", c.name, got, c.want)
			}
		})
	}
}
