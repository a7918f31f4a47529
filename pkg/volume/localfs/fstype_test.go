package localfs

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/volume/loopfs"
)

// A directory fsync makes new inodes durable on XFS and journaled ext4, so
// creates skip the inode's own fsync there; elsewhere they need it.
func TestDirSyncCoversInodes(t *testing.T) {
	for _, c := range []struct {
		kind string
		want bool
	}{{"xfs", true}, {"ext4", true}, {"tmpfs", false}} {
		t.Run(c.kind, func(t *testing.T) {
			dir := loopfs.Mount(t, c.kind, 300<<20)
			fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil {
				t.Fatal(err)
			}
			if got := dirSyncCoversInodes(fd, st.Dev); got != c.want {
				t.Errorf("dirSyncCoversInodes on %s = %v, want %v", c.kind, got, c.want)
			}
		})
	}
	t.Run("ext4-nojournal", func(t *testing.T) {
		dir := ext4NoJournal.base(t)
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			t.Fatal(err)
		}
		if dirSyncCoversInodes(fd, st.Dev) {
			t.Error("dirSyncCoversInodes on ext4 without a journal = true")
		}
	})
}
