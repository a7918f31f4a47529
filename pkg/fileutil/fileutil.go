// Package fileutil writes whole files so a reader (or the next start after
// a crash) sees either the old content or the new, never a torn mix.
//
// Every writer in Hangar uses one of two functions: WriteFileAtomic when the
// file is a commit point and must survive power loss, WriteFileBestEffort
// when losing the newest version only costs a recomputation. Both write to a
// uniquely named temp file in the same directory (".<name>.tmp-<random>",
// so concurrent writers never share one) and rename it over the target; a
// crash can leave such a temp file behind, which readers of the directory
// should ignore or remove.
package fileutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// WriteFileAtomic replaces path with data, durably: temp file, write,
// fsync, rename, fsync of the directory. When it returns nil the new content
// survives a crash; when it fails path is unchanged and no temp file is
// left. perm is applied exactly, regardless of the umask.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	if err := write(path, data, perm, replaceSynced); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// CreateFileAtomic is WriteFileAtomic for a file that is written once: if
// path exists already it is left alone and the error is os.ErrExist, so of
// two racing creators exactly one wins and both can read the winner's
// content.
func CreateFileAtomic(path string, data []byte, perm os.FileMode) error {
	if err := write(path, data, perm, create); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// WriteFileBestEffort replaces path with data atomically but without
// fsync: after a crash path may hold the old content (or, on some file
// systems, be empty). Use it only for caches whose loss means redoing work.
func WriteFileBestEffort(path string, data []byte, perm os.FileMode) error {
	return write(path, data, perm, replace)
}

type how int

const (
	replace       how = iota // rename over path
	replaceSynced            // fsync, then rename over path
	create                   // fsync, then install only if path does not exist
)

func write(path string, data []byte, perm os.FileMode, how how) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil || how == create {
			os.Remove(tmp) // after link, the second name
		}
		if err != nil {
			err = fmt.Errorf("writing %s: %w", path, err)
		}
	}()
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil && how != replace {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if how != create {
		return os.Rename(tmp, path)
	}
	err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) {
		// No RENAME_NOREPLACE on this file system: link is as atomic and
		// refuses to replace too.
		err = unix.Link(tmp, path)
	}
	if errors.Is(err, unix.EEXIST) {
		return os.ErrExist
	}
	return err
}

// RemoveTemps removes the temp files a crash mid-write left in dir (see the
// package comment). Call it at start-up, before any writer runs.
func RemoveTemps(dir string) error {
	tmps, err := filepath.Glob(filepath.Join(dir, ".*.tmp-*"))
	if err != nil {
		return err
	}
	for _, p := range tmps {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing leftover temp file: %w", err)
		}
	}
	return nil
}

// SyncDir fsyncs directory dir, making the creation, rename or removal of
// its entries durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}
