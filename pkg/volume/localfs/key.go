package localfs

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/fileutil"
)

// keySize is the length of the per-server handle MAC key.
const keySize = 32

// loadOrCreateKey returns the key stored in path, creating it first if the
// file does not exist. The key never leaves this process except through the
// file, which must be readable by its owner only.
func loadOrCreateKey(path string) ([]byte, error) {
	key, err := readKey(path)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return key, err
	}
	if err := createKey(path); err != nil {
		return nil, err
	}
	// Read back what is on disk: another process may have won the race to
	// create it, and its key is the one every handle will be checked with.
	return readKey(path)
}

func readKey(path string) ([]byte, error) {
	// The path comes from the operator; a symlink (as in a mounted Secret)
	// is fine.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open key file", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("stat key file %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("key file %s is not a regular file", path)
	}
	if st.Mode&0o077 != 0 {
		return nil, fmt.Errorf("key file %s is accessible by group or others (mode %#o); want 0600", path, st.Mode&0o7777)
	}
	if st.Size != keySize {
		return nil, fmt.Errorf("key file %s has %d bytes, want %d", path, st.Size, keySize)
	}
	key := make([]byte, keySize)
	n, err := unix.Pread(fd, key, 0)
	if err != nil {
		return nil, fmt.Errorf("read key file %s: %w", path, err)
	}
	if n != keySize {
		return nil, fmt.Errorf("read key file %s: short read (%d bytes)", path, n)
	}
	return key, nil
}

// createKey writes a fresh random key to path atomically: a reader sees
// either no file or the complete key, also after a crash. If someone else
// created the key meanwhile, theirs wins and ours is discarded.
func createKey(path string) error {
	key := make([]byte, keySize)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("generate handle key: %w", err)
	}
	if err := fileutil.CreateFileAtomic(path, key, 0o600); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create handle key: %w", err)
	}
	return nil
}
