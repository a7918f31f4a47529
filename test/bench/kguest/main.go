// Command kguest is the guest side of the kernel-client benchmark
// (test/bench/kernel.sh): it makes a small-file tree to untar and runs an
// fs_mark-like create+write(+fsync)+close loop, timing itself, because the
// guest's busybox has no fs_mark and a shell loop would time fork+exec
// rather than the NFS server.
//
//	kguest tree DIR FILES          files of 0–16 KiB, 50 per directory
//	kguest fsmark DIR FILES SIZE [fsync]   prints "<seconds> <files/s>"
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kguest:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 3 {
		return fmt.Errorf("usage: kguest tree DIR FILES | fsmark DIR FILES SIZE [fsync]")
	}
	n, err := strconv.Atoi(args[2])
	if err != nil {
		return fmt.Errorf("FILES %q: %w", args[2], err)
	}
	switch args[0] {
	case "tree":
		return tree(args[1], n)
	case "fsmark":
		if len(args) < 4 {
			return fmt.Errorf("fsmark needs SIZE")
		}
		size, err := strconv.Atoi(args[3])
		if err != nil {
			return fmt.Errorf("SIZE %q: %w", args[3], err)
		}
		return fsmark(args[1], n, size, len(args) > 4 && args[4] == "fsync")
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// tree writes a source-tree-like shape: sizes cycle through small text-file
// sizes so the untar is dominated by per-file operations, not bytes.
func tree(dir string, n int) error {
	buf := make([]byte, 16<<10)
	for i := range buf {
		buf[i] = byte('a' + i%26)
	}
	sizes := []int{0, 120, 900, 2500, 4096, 7000, 16 << 10}
	for i := 0; i < n; i++ {
		d := filepath.Join(dir, fmt.Sprintf("d%03d", i/50))
		if i%50 == 0 {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("file%05d.c", i)), buf[:sizes[i%len(sizes)]], 0o644); err != nil {
			return err
		}
	}
	return nil
}

// fsmark is fs_mark's default loop in one directory: create, write SIZE
// bytes, optionally fsync, close.
func fsmark(dir string, n, size int, sync bool) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	buf := make([]byte, size)
	start := time.Now()
	for i := 0; i < n; i++ {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("f%06d", i)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		if _, err := f.Write(buf); err != nil {
			f.Close()
			return err
		}
		if sync {
			if err := f.Sync(); err != nil {
				f.Close()
				return err
			}
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	s := time.Since(start).Seconds()
	fmt.Printf("%.2f %.1f\n", s, float64(n)/s)
	return nil
}
