package localfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

var (
	ctx  = context.Background()
	user = vfs.Cred{UID: 1000, GID: 1000}
	root = vfs.Cred{}
)

// testEnv is one FS with export "/vol" backed by dir, inside base; base
// also holds files outside every export that attacks aim at.
type testEnv struct {
	fs      *FS
	root    vfs.Handle
	base    string
	dir     string
	keyFile string
}

// backend is where a test's files live.
type backend struct {
	name string
	dir  func(t testing.TB) string
}

// scratchFS is a file system mounted for the whole test binary and
// unmounted in TestMain.
type scratchFS struct {
	once  sync.Once
	dir   string
	err   error
	mount func(dir string) error
}

var mounted []*scratchFS

func (s *scratchFS) base(t testing.TB) string {
	s.once.Do(func() {
		d, err := os.MkdirTemp("", "localfs-mnt-")
		if err != nil {
			s.err = err
			return
		}
		if err := s.mount(d); err != nil {
			os.RemoveAll(d)
			s.err = err
			return
		}
		s.dir = d
		mounted = append(mounted, s)
	})
	if s.err != nil {
		t.Skipf("backend unavailable: %v", s.err)
	}
	d, err := os.MkdirTemp(s.dir, "t-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

var (
	tmpfs = &scratchFS{mount: func(d string) error {
		return unix.Mount("tmpfs", d, "tmpfs", 0, "size=256m")
	}}
	// A journaled ext4 (the test host's own disk may have no journal).
	ext4Journal = ext4Scratch("has_journal")
	// And one without, where fsyncs of new inodes are needed.
	ext4NoJournal = ext4Scratch("^has_journal")
)

// ext4Scratch is an ext4 with the mkfs feature option feature, with 4 KiB
// blocks like real volumes' (mkfs picks 1 KiB for an image this small,
// which limits symlink targets to 1023 bytes).
func ext4Scratch(feature string) *scratchFS {
	return &scratchFS{mount: func(d string) error {
		img := d + ".img"
		for _, cmd := range [][]string{
			{"truncate", "-s", "256M", img},
			{"mkfs.ext4", "-q", "-F", "-b", "4096", "-O", feature, img},
			{"mount", "-o", "loop", img, d},
		} {
			if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
				os.Remove(img)
				return fmt.Errorf("%v: %v: %s", cmd, err, out)
			}
		}
		// The image stays referenced by the loop device until unmount.
		return os.Remove(img)
	}}
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, s := range mounted {
		unix.Unmount(s.dir, unix.MNT_DETACH)
		os.Remove(s.dir)
	}
	os.Exit(code)
}

var backends = []backend{
	{"disk", func(t testing.TB) string { return t.TempDir() }},
	{"tmpfs", tmpfs.base},
	{"ext4-journal", ext4Journal.base},
}

// forEachBackend runs fn on every backend.
func forEachBackend(t *testing.T, fn func(t *testing.T, env *testEnv)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			fn(t, newEnvIn(t, b.dir(t), Options{}))
		})
	}
}

func newEnv(t testing.TB) *testEnv { return newEnvIn(t, t.TempDir(), Options{}) }

func newEnvIn(t testing.TB, base string, o Options) *testEnv {
	t.Helper()
	env := &testEnv{base: base, dir: filepath.Join(base, "vol"), keyFile: filepath.Join(base, "key")}
	if err := os.Mkdir(env.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Like a volume root made by the volume store: shared by every uid.
	if err := os.Chmod(env.dir, 0o777); err != nil {
		t.Fatal(err)
	}
	// Something outside the export for attacks to aim at.
	if err := os.WriteFile(filepath.Join(base, "outside"), []byte("sentinel"), 0o600); err != nil {
		t.Fatal(err)
	}
	o.KeyFile = env.keyFile
	env.open(t, o)
	return env
}

// open (re)creates env.fs, as a server restart does.
func (env *testEnv) open(t testing.TB, o Options) {
	t.Helper()
	if env.fs != nil {
		env.fs.Close()
	}
	o.KeyFile = env.keyFile
	f, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.AddExport("/vol", env.dir, "vol-1", nil); err != nil {
		t.Fatal(err)
	}
	h, err := f.Mount(ctx, "/vol")
	if err != nil {
		t.Fatal(err)
	}
	env.fs, env.root = f, h
	t.Cleanup(func() { f.Close() })
}

func (env *testEnv) create(t testing.TB, dir vfs.Handle, name string) vfs.Handle {
	t.Helper()
	h, _, _, err := env.fs.Create(ctx, user, dir, name, vfs.CreateGuarded, vfs.SetAttr{}, vfs.Verifier{})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return h
}

func (env *testEnv) mkdir(t testing.TB, dir vfs.Handle, name string) vfs.Handle {
	t.Helper()
	h, _, _, err := env.fs.Mkdir(ctx, user, dir, name, vfs.SetAttr{})
	if err != nil {
		t.Fatalf("mkdir %s: %v", name, err)
	}
	return h
}

func (env *testEnv) write(t testing.TB, h vfs.Handle, off uint64, data string) {
	t.Helper()
	n, _, _, err := env.fs.Write(ctx, user, h, off, []byte(data), vfs.FileSync)
	if err != nil || n != len(data) {
		t.Fatalf("write: n=%d err=%v", n, err)
	}
}

func (env *testEnv) read(t testing.TB, h vfs.Handle) string {
	t.Helper()
	buf := make([]byte, 1<<16)
	n, _, _, err := env.fs.Read(ctx, user, h, 0, buf)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(buf[:n])
}

func (env *testEnv) lookup(t testing.TB, dir vfs.Handle, name string) (vfs.Handle, vfs.Attr) {
	t.Helper()
	h, a, _, err := env.fs.Lookup(ctx, user, dir, name)
	if err != nil {
		t.Fatalf("lookup %s: %v", name, err)
	}
	return h, a
}

func (env *testEnv) getattr(t testing.TB, h vfs.Handle) vfs.Attr {
	t.Helper()
	a, err := env.fs.GetAttr(ctx, h)
	if err != nil {
		t.Fatalf("getattr: %v", err)
	}
	return a
}

// wantErr fails unless err is want.
func wantErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

// sentinelIntact checks the file outside the export was not touched.
func (env *testEnv) sentinelIntact(t testing.TB) {
	t.Helper()
	p := filepath.Join(env.base, "outside")
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "sentinel" {
		t.Fatalf("outside sentinel changed: %q, %v", b, err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o7777 != 0o600 || st.Uid != 0 || st.Gid != 0 || st.Nlink != 1 {
		t.Fatalf("outside sentinel attributes changed: mode %o uid %d gid %d nlink %d", st.Mode&0o7777, st.Uid, st.Gid, st.Nlink)
	}
}

func u32(v uint32) *uint32 { return &v }
func u64(v uint64) *uint64 { return &v }

// listAll reads dir completely, in pages of at most page entries.
func listAll(t testing.TB, f *FS, dir vfs.Handle, plus bool, page int) []vfs.DirEntry {
	t.Helper()
	var all []vfs.DirEntry
	var cookie uint64
	for i := 0; i < 100000; i++ {
		var got []vfs.DirEntry
		_, eof, _, err := f.ReadDir(ctx, user, dir, cookie, vfs.Verifier{}, plus, func(e vfs.DirEntry) bool {
			if len(got) == page {
				return false
			}
			got = append(got, e)
			return true
		})
		if err != nil {
			t.Fatalf("readdir: %v", err)
		}
		all = append(all, got...)
		if eof {
			return all
		}
		if len(got) == 0 {
			t.Fatal("readdir: no progress without eof")
		}
		cookie = got[len(got)-1].Cookie
	}
	t.Fatal("readdir: does not end")
	return nil
}
