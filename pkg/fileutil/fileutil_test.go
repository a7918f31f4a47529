package fileutil

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFile(t *testing.T) {
	for name, write := range map[string]func(string, []byte, os.FileMode) error{
		"atomic":      WriteFileAtomic,
		"best-effort": WriteFileBestEffort,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "rec.json")
			if err := write(p, []byte("one"), 0o600); err != nil {
				t.Fatal(err)
			}
			// Rename over an existing file, with another mode: the umask
			// (022 at least) must not change it.
			if err := write(p, []byte("two"), 0o664); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(p)
			if err != nil || string(b) != "two" {
				t.Fatalf("content %q, %v", b, err)
			}
			fi, err := os.Stat(p)
			if err != nil || fi.Mode().Perm() != 0o664 {
				t.Fatalf("mode %v, %v", fi.Mode(), err)
			}
			ents, _ := os.ReadDir(dir)
			if len(ents) != 1 {
				t.Fatalf("directory holds %v, want only rec.json", ents)
			}
			// A missing directory is an error naming the file, not a panic
			// or a file written elsewhere.
			missing := filepath.Join(dir, "nope", "rec.json")
			if err := write(missing, []byte("x"), 0o600); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("write into missing directory: %v", err)
			}
		})
	}
}

// A write that fails after the temp file exists leaves no temp file and the
// old content in place.
func TestWriteFileFailureKeepsOld(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub")
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	// Renaming a file over a directory fails (EISDIR).
	if err := WriteFileAtomic(p, []byte("x"), 0o600); err == nil {
		t.Fatal("replacing a directory succeeded")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || !ents[0].IsDir() {
		t.Fatalf("directory holds %v after a failed write", ents)
	}
}

func TestCreateFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key")
	if err := CreateFileAtomic(p, []byte("first"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CreateFileAtomic(p, []byte("second"), 0o600); !errors.Is(err, os.ErrExist) {
		t.Fatalf("second create: %v, want os.ErrExist", err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "first" {
		t.Fatalf("content %q, %v: the first create must win", b, err)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("directory holds %v, want only key", ents)
	}
	if err := CreateFileAtomic(filepath.Join(dir, "nope", "key"), nil, 0o600); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("create in missing directory: %v", err)
	}
}
