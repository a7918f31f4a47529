package localfs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// inMemory reports whether fd's file system keeps everything in memory
// only (tmpfs, ramfs): fsync is a no-op there, as durable as it gets, so the
// server skips the syscalls.
func inMemory(fd int) bool {
	var sfs unix.Statfs_t
	return unix.Fstatfs(fd, &sfs) == nil && (sfs.Type == unix.TMPFS_MAGIC || sfs.Type == unix.RAMFS_MAGIC)
}

// dirSyncCoversInodes reports whether an fsync of a directory on the file
// system of fd (device dev) also makes every earlier metadata change of other
// inodes durable, so that new inodes need no fsync of their own.
//
// That holds for XFS: a create, link or rename changes the directory and
// the inode in one log transaction, and a directory's fsync forces the log
// through that transaction. It holds for ext4 with a journal: fsync commits
// the whole running jbd2 transaction (or a fast commit of every tracked
// inode). It does not hold for ext4 without a journal, where fsync writes
// only the inode's own buffers, nor in general; when in doubt the answer is
// false and new inodes are fsynced too, which costs an extra device flush
// per create.
func dirSyncCoversInodes(fd int, dev uint64) bool {
	var sfs unix.Statfs_t
	if unix.Fstatfs(fd, &sfs) != nil {
		return false
	}
	if sfs.Type == unix.XFS_SUPER_MAGIC {
		return true
	}
	if sfs.Type != unix.EXT4_SUPER_MAGIC {
		return false
	}
	link, err := os.Readlink(fmt.Sprintf("/sys/dev/block/%d:%d", unix.Major(dev), unix.Minor(dev)))
	if err != nil {
		return false
	}
	b, err := os.ReadFile(filepath.Join("/sys/fs/ext4", filepath.Base(link), "journal_task"))
	if err != nil {
		return false
	}
	task := strings.TrimSpace(string(b))
	return task != "" && task != "<none>"
}
