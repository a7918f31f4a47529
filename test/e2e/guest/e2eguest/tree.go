package main

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// treeMain implements the integrity smoke test pieces:
//
//	tree gen [--files N] DIR      generate a tree (files, hard links, symlinks, ~200-byte names)
//	tree pack DIR TARFILE         tar DIR (hard links as link entries, PAX long names)
//	tree unpack TARFILE DIR       untar into DIR (modes, mtimes, links)
//	tree compare A B              diff -r semantics plus modes, link counts and symlink targets
//
// --jobs N lets unpack write file bodies and compare hash files with N
// workers: on a high-latency mount that keeps N NFS requests in flight,
// as N pods would, instead of one at a time.
func treeMain(args []string) error {
	if len(args) < 1 {
		return errors.New("usage: tree gen|pack|unpack|compare [flags]")
	}
	fset := flag.NewFlagSet("tree", flag.ExitOnError)
	files := fset.Int("files", 10000, "number of regular files for gen")
	seed := fset.Uint64("seed", 1, "generator seed")
	jobs := fset.Int("jobs", 1, "parallel workers for unpack (file bodies) and compare (hashing)")
	fset.Parse(args[1:])
	a := fset.Args()
	t0 := time.Now()
	var err error
	switch {
	case args[0] == "gen" && len(a) == 1:
		err = genTree(a[0], *files, *seed)
	case args[0] == "pack" && len(a) == 2:
		err = packTree(a[0], a[1])
	case args[0] == "unpack" && len(a) == 2:
		err = unpackTree(a[0], a[1], max(1, *jobs))
	case args[0] == "compare" && len(a) == 2:
		err = compareTrees(a[0], a[1], max(1, *jobs))
	default:
		return fmt.Errorf("bad tree command %q %q", args[0], a)
	}
	if err == nil {
		fmt.Printf("tree %s ok in %.2fs\n", args[0], time.Since(t0).Seconds())
	}
	return err
}

// longName makes a name of about n bytes that is unique per i.
func longName(r *rand.Rand, i, n int) string {
	const alpha = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.="
	prefix := fmt.Sprintf("f%05d-", i)
	b := []byte(prefix)
	for len(b) < n {
		b = append(b, alpha[r.IntN(len(alpha))])
	}
	return string(b)
}

func genTree(root string, nfiles int, seed uint64) error {
	r := rand.New(rand.NewPCG(seed, 42))
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	const perDir = 100
	var regular []string
	modes := []os.FileMode{0o644, 0o600, 0o755, 0o640, 0o444, 0o700}
	buf := make([]byte, 8192+8)
	for i := 0; i < nfiles; i++ {
		d := filepath.Join(root, fmt.Sprintf("d%03d", i/perDir))
		if i%perDir == 0 {
			if err := os.Mkdir(d, []os.FileMode{0o755, 0o750, 0o700}[(i/perDir)%3]); err != nil {
				return err
			}
		}
		var name string
		switch {
		case i%5 == 0:
			name = longName(r, i, 190+r.IntN(40)) // 190..229 bytes
		default:
			name = longName(r, i, 8+r.IntN(24))
		}
		size := r.IntN(4096)
		if i%97 == 0 {
			size = 64<<10 + r.IntN(64<<10) // a few multi-page files
		}
		if i%101 == 0 {
			size = 0
		}
		p := filepath.Join(d, name)
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		for left := size; left > 0; {
			n := min(left, len(buf))
			for j := 0; j < n; j += 8 {
				binary.LittleEndian.PutUint64(buf[j:], r.Uint64())
			}
			if _, err := f.Write(buf[:n]); err != nil {
				return err
			}
			left -= n
		}
		if err := f.Close(); err != nil {
			return err
		}
		if err := os.Chmod(p, modes[r.IntN(len(modes))]); err != nil {
			return err
		}
		mt := time.Unix(1_600_000_000+int64(r.IntN(100_000_000)), 0)
		if err := os.Chtimes(p, mt, mt); err != nil {
			return err
		}
		regular = append(regular, p)
	}
	// Hard links: some files get one extra name, some two, across directories.
	links := filepath.Join(root, "links")
	if err := os.Mkdir(links, 0o755); err != nil {
		return err
	}
	for i := 0; i < len(regular); i += 37 {
		n := 1 + i%2
		for k := 0; k < n; k++ {
			name := fmt.Sprintf("hl-%05d-%d-%s", i, k, strings.Repeat("h", 150+k*20))
			if err := os.Link(regular[i], filepath.Join(links, name)); err != nil {
				return err
			}
		}
		// and one in another data directory
		other := filepath.Join(root, fmt.Sprintf("d%03d", (i/perDir+1)%max(1, (nfiles+perDir-1)/perDir)), fmt.Sprintf("peer-%05d", i))
		if err := os.Link(regular[i], other); err != nil {
			return err
		}
	}
	// Symlinks: relative, absolute-looking, dangling, long targets.
	syms := filepath.Join(root, "syms")
	if err := os.Mkdir(syms, 0o755); err != nil {
		return err
	}
	for i := 0; i < len(regular); i += 23 {
		rel, err := filepath.Rel(syms, regular[i])
		if err != nil {
			return err
		}
		targets := []string{rel, "/nonexistent/" + strings.Repeat("t", 200), "../d000", "dangling-" + fmt.Sprint(i)}
		name := fmt.Sprintf("s%05d-%s", i, strings.Repeat("s", 180))
		if err := os.Symlink(targets[(i/23)%len(targets)], filepath.Join(syms, name)); err != nil {
			return err
		}
	}
	// Empty directories nest.
	deep := root
	for i := 0; i < 8; i++ {
		deep = filepath.Join(deep, fmt.Sprintf("deep%d-%s", i, strings.Repeat("x", 100)))
	}
	return os.MkdirAll(deep, 0o755)
}

type inodeKey struct{ dev, ino uint64 }

func packTree(root, tarPath string) error {
	out, err := os.Create(tarPath)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(out, 1<<20)
	tw := tar.NewWriter(bw)
	seen := map[inodeKey]string{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		h.Uname, h.Gname = "", ""
		h.Format = tar.FormatPAX
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().IsRegular() && st.Nlink > 1 {
			k := inodeKey{uint64(st.Dev), st.Ino}
			if first, ok := seen[k]; ok {
				h.Typeflag, h.Linkname, h.Size = tar.TypeLink, first, 0
				return tw.WriteHeader(h)
			}
			seen[k] = h.Name
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			return err
		}
		return nil
	})
	if err != nil {
		out.Close()
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return out.Close()
}

type fileJob struct {
	path  string
	mode  os.FileMode
	mtime time.Time
	data  []byte
}

func writeFile(j fileJob) error {
	f, err := os.OpenFile(j.path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(j.data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", j.path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", j.path, err)
	}
	if err := os.Chmod(j.path, j.mode); err != nil {
		return err
	}
	return os.Chtimes(j.path, j.mtime, j.mtime)
}

// unpackTree extracts tarPath into root. Directories are made in archive
// order (before anything inside them); file bodies go to the workers; hard
// links and symlinks follow once every file exists; directory modes last.
func unpackTree(tarPath, root string, jobs int) error {
	in, err := os.Open(tarPath)
	if err != nil {
		return err
	}
	defer in.Close()
	syscall.Umask(0)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	// Each directory goes to one worker: creates in one directory serialize
	// on its lock in the client anyway, so the parallelism that helps is
	// across directories. Deep queues let the reader move on to the next
	// directory while workers are still filling earlier ones.
	work := make([]chan fileJob, jobs)
	errc := make(chan error, jobs)
	for i := range work {
		work[i] = make(chan fileJob, 256)
		go func() {
			var first error
			for j := range work[i] {
				if err := writeFile(j); err != nil && first == nil {
					first = err
				}
			}
			errc <- first
		}()
	}
	worker := map[string]int{}
	type later struct {
		hdr  *tar.Header
		path string
	}
	var dirs, links []later
	rerr := func() error {
		defer func() {
			for _, w := range work {
				close(w)
			}
		}()
		tr := tar.NewReader(bufio.NewReaderSize(in, 1<<20))
		for {
			h, err := tr.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			p := filepath.Join(root, filepath.FromSlash(h.Name))
			switch h.Typeflag {
			case tar.TypeDir:
				// Writable while we fill it; the real mode is set at the end.
				if err := os.Mkdir(p, 0o700); err != nil {
					return err
				}
				dirs = append(dirs, later{h, p})
			case tar.TypeReg:
				data, err := io.ReadAll(tr)
				if err != nil {
					return err
				}
				d := filepath.Dir(p)
				w, ok := worker[d]
				if !ok {
					w = len(worker) % jobs
					worker[d] = w
				}
				work[w] <- fileJob{p, os.FileMode(h.Mode).Perm(), h.ModTime, data}
			case tar.TypeLink, tar.TypeSymlink:
				links = append(links, later{h, p})
			default:
				return fmt.Errorf("%s: unexpected tar type %c", h.Name, h.Typeflag)
			}
		}
	}()
	for i := 0; i < jobs; i++ {
		if err := <-errc; err != nil && rerr == nil {
			rerr = err
		}
	}
	if rerr != nil {
		return rerr
	}
	for _, l := range links {
		var err error
		if l.hdr.Typeflag == tar.TypeLink {
			err = os.Link(filepath.Join(root, filepath.FromSlash(l.hdr.Linkname)), l.path)
		} else {
			err = os.Symlink(l.hdr.Linkname, l.path)
		}
		if err != nil {
			return err
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chmod(dirs[i].path, os.FileMode(dirs[i].hdr.Mode).Perm()); err != nil {
			return err
		}
	}
	return nil
}

type entry struct {
	mode   os.FileMode
	size   int64
	nlink  uint64
	mtime  int64
	target string
	sum    [32]byte
	group  int    // index of the first path with the same inode (hard-link class)
	path   string // regular files: where to read the content from
}

func hashFile(e *entry) error {
	f, err := os.Open(e.path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("read %s: %w", e.path, err)
	}
	copy(e.sum[:], h.Sum(nil))
	return nil
}

func scanTree(root string, jobs int) (map[string]*entry, []string, error) {
	m := map[string]*entry{}
	var order []string
	first := map[inodeKey]int{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		e := &entry{mode: fi.Mode(), nlink: uint64(st.Nlink)}
		k := inodeKey{uint64(st.Dev), st.Ino}
		if g, ok := first[k]; ok {
			e.group = g
		} else {
			e.group = len(order)
			first[k] = len(order)
		}
		switch {
		case fi.Mode().IsRegular():
			e.size, e.mtime = fi.Size(), fi.ModTime().Unix()
			e.path = p
		case fi.Mode()&fs.ModeSymlink != 0:
			if e.target, err = os.Readlink(p); err != nil {
				return err
			}
		}
		m[rel] = e
		order = append(order, rel)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	work := make(chan *entry)
	errc := make(chan error, jobs)
	for i := 0; i < jobs; i++ {
		go func() {
			var first error
			for e := range work {
				if err := hashFile(e); err != nil && first == nil {
					first = err
				}
			}
			errc <- first
		}()
	}
	for _, rel := range order {
		if e := m[rel]; e.path != "" {
			work <- e
		}
	}
	close(work)
	for i := 0; i < jobs; i++ {
		if e := <-errc; e != nil && err == nil {
			err = e
		}
	}
	return m, order, err
}

func compareTrees(a, b string, jobs int) error {
	ma, oa, err := scanTree(a, jobs)
	if err != nil {
		return fmt.Errorf("scan %s: %w", a, err)
	}
	mb, ob, err := scanTree(b, jobs)
	if err != nil {
		return fmt.Errorf("scan %s: %w", b, err)
	}
	var diffs []string
	add := func(format string, args ...any) {
		if len(diffs) < 50 {
			diffs = append(diffs, fmt.Sprintf(format, args...))
		} else if len(diffs) == 50 {
			diffs = append(diffs, "...")
		}
	}
	nreg, nlinks, nsym := 0, 0, 0
	for _, p := range oa {
		ea := ma[p]
		eb, ok := mb[p]
		if !ok {
			add("only in %s: %s", a, p)
			continue
		}
		if ea.mode != eb.mode {
			add("%s: mode %v vs %v", p, ea.mode, eb.mode)
		}
		switch {
		case ea.mode.IsRegular():
			nreg++
			if ea.nlink > 1 {
				nlinks++
			}
			if ea.size != eb.size || ea.sum != eb.sum {
				add("%s: content differs (size %d vs %d)", p, ea.size, eb.size)
			}
			if ea.nlink != eb.nlink {
				add("%s: nlink %d vs %d", p, ea.nlink, eb.nlink)
			}
			if ea.mtime != eb.mtime {
				add("%s: mtime %d vs %d", p, ea.mtime, eb.mtime)
			}
			// Same hard-link class: the first name of p's inode in a must
			// share p's inode in b too.
			if ga, gb := oa[ea.group], ob[eb.group]; ga != gb {
				add("%s: hard-linked with %q in %s but with %q in %s", p, ga, a, gb, b)
			}
		case ea.mode&fs.ModeSymlink != 0:
			nsym++
			if ea.target != eb.target {
				add("%s: symlink %q vs %q", p, ea.target, eb.target)
			}
		}
	}
	for _, p := range ob {
		if _, ok := ma[p]; !ok {
			add("only in %s: %s", b, p)
		}
	}
	sort.Strings(diffs)
	fmt.Printf("compared %d entries (%d regular, %d with nlink>1, %d symlinks)\n", len(oa), nreg, nlinks, nsym)
	if len(diffs) > 0 {
		return fmt.Errorf("%s and %s differ:\n  %s", a, b, strings.Join(diffs, "\n  "))
	}
	return nil
}
