package volume

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"github.com/go-logr/logr"
)

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, logr.Discard())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustCreate(t *testing.T, s *Store, name string, size int64) Volume {
	t.Helper()
	v, created, err := s.Create(Request{Name: name, CapacityBytes: size, RequiredBytes: size}, nil)
	if err != nil || !created {
		t.Fatalf("Create(%q) = %+v, %v, %v", name, v, created, err)
	}
	return v
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestCreateGetListReopen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	a, _, err := s.Create(Request{Name: "a", CapacityBytes: 1 << 20, Parameters: map[string]string{"k": "v"},
		ContentSource: &ContentSource{VolumeID: "x"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := mustCreate(t, s, "b", 2<<20)
	if !ValidID(a.ID) || !ValidID(b.ID) || a.ID == b.ID {
		t.Fatalf("bad ids %q %q", a.ID, b.ID)
	}
	if fi, err := os.Stat(s.VolumeDir(a.ID)); err != nil || !fi.IsDir() {
		t.Fatalf("volume dir: %v", err)
	}
	if _, err := s.Expand(b.ID, 3<<20, nil); err != nil {
		t.Fatal(err)
	}
	want := s.List()
	if len(want) != 2 || want[0].ID > want[1].ID {
		t.Fatalf("List not sorted: %+v", want)
	}
	s.Close()

	s2 := open(t, dir)
	got := s2.List()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopen:\n got %+v\nwant %+v", got, want)
	}
	for _, v := range got {
		if v.ID == a.ID && (v.Parameters["k"] != "v" || v.ContentSource.VolumeID != "x" || v.CreatedAt.IsZero()) {
			t.Errorf("lost fields: %+v", v)
		}
		if v.ID == b.ID && v.CapacityBytes != 3<<20 {
			t.Errorf("lost expansion: %+v", v)
		}
	}
	if v, err := s2.GetByName("b"); err != nil || v.ID != b.ID {
		t.Errorf("GetByName = %+v, %v", v, err)
	}
}

func TestLockExcludesSecondOpen(t *testing.T) {
	dir := t.TempDir()
	open(t, dir)
	if s, err := Open(dir, logr.Discard()); err == nil {
		s.Close()
		t.Fatal("second Open of the same data dir succeeded")
	}
}

func TestCreateIdempotent(t *testing.T) {
	s := open(t, t.TempDir())
	v := mustCreate(t, s, "n", 100)
	again, created, err := s.Create(Request{Name: "n", CapacityBytes: 100, RequiredBytes: 100, LimitBytes: 200}, nil)
	if err != nil || created || again.ID != v.ID {
		t.Fatalf("same request: %+v %v %v", again, created, err)
	}
	for _, r := range []Request{
		{Name: "n", CapacityBytes: 200, RequiredBytes: 200},
		{Name: "n", CapacityBytes: 50, LimitBytes: 50},
		{Name: "n", CapacityBytes: 100, Parameters: map[string]string{"a": "b"}},
		{Name: "n", CapacityBytes: 100, ContentSource: &ContentSource{SnapshotID: "s"}},
	} {
		_, _, err := s.Create(r, nil)
		var ee *ExistsError
		if !errors.Is(err, ErrExists) || !errors.As(err, &ee) || ee.Existing.ID != v.ID {
			t.Errorf("Create(%+v) = %v, want ExistsError", r, err)
		}
	}
	if n := len(s.List()); n != 1 {
		t.Fatalf("%d volumes, want 1", n)
	}
}

func TestConcurrentCreateOneName(t *testing.T) {
	s := open(t, t.TempDir())
	var wg sync.WaitGroup
	ids := make([]string, 10)
	errs := make([]error, 10)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, _, err := s.Create(Request{Name: "same", CapacityBytes: 1 << 30}, nil)
			ids[i], errs[i] = v.ID, err
		}()
	}
	wg.Wait()
	for i := range 10 {
		if errs[i] != nil || ids[i] != ids[0] {
			t.Fatalf("goroutine %d: id %q err %v (first id %q)", i, ids[i], errs[i], ids[0])
		}
	}
	if n := len(s.List()); n != 1 {
		t.Fatalf("%d volumes, want 1", n)
	}
	if n := len(entries(t, filepath.Join(s.Dir(), "volumes"))); n != 1 {
		t.Fatalf("%d volume dirs, want 1", n)
	}
}

func TestDeleteIdempotent(t *testing.T) {
	s := open(t, t.TempDir())
	v := mustCreate(t, s, "d", 1)
	if err := os.WriteFile(filepath.Join(s.VolumeDir(v.ID), "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.Delete(v.ID); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Get(v.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after delete: %v", err)
	}
	for _, sub := range []string{"volumes", "meta", "trash"} {
		if e := entries(t, filepath.Join(s.Dir(), sub)); len(e) != 0 {
			t.Errorf("%s not empty after delete: %v", sub, e)
		}
	}
	// The name is free again.
	if w := mustCreate(t, s, "d", 1); w.ID == v.ID {
		t.Fatal("reused id")
	}
}

func TestExpand(t *testing.T) {
	s := open(t, t.TempDir())
	v := mustCreate(t, s, "e", 10)
	if _, err := s.Expand(v.ID, 5, nil); !errors.Is(err, ErrShrink) {
		t.Errorf("shrink: %v", err)
	}
	if got, err := s.Expand(v.ID, 10, nil); err != nil || got.CapacityBytes != 10 {
		t.Errorf("same size: %+v %v", got, err)
	}
	if _, err := s.Expand("0123456789abcdef", 10, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
	if s.Promised() != 10 {
		t.Errorf("Promised = %d", s.Promised())
	}
}

// The crash tests build the state each crash point leaves on disk and check
// that Open recovers it.

func TestCrashTornTempRecordIgnored(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	keep := mustCreate(t, s, "keep", 1)
	s.Close()
	// Crash during Create step 2: directory made, temp record half written.
	id := "00112233aabbccdd"
	os.Mkdir(filepath.Join(dir, "volumes", id), 0o777)
	os.WriteFile(filepath.Join(dir, "meta", "."+id+".tmp-1234"), []byte(`{"id":"0011`), 0o600)

	s2 := open(t, dir)
	if l := s2.List(); len(l) != 1 || l[0].ID != keep.ID {
		t.Fatalf("List = %+v", l)
	}
	if e := entries(t, filepath.Join(dir, "meta")); len(e) != 1 {
		t.Errorf("meta = %v", e)
	}
	if e := entries(t, filepath.Join(dir, "volumes")); len(e) != 1 || e[0] != keep.ID {
		t.Errorf("volumes = %v", e)
	}
}

func TestCrashCompleteTempRecordNotRenamed(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	v := mustCreate(t, s, "v", 1)
	s.Close()
	// A whole record that was never renamed into place does not count.
	b, _ := os.ReadFile(filepath.Join(dir, "meta", v.ID+".json"))
	os.Rename(filepath.Join(dir, "meta", v.ID+".json"), filepath.Join(dir, "meta", "."+v.ID+".tmp-ffff"))
	_ = b
	s2 := open(t, dir)
	if l := s2.List(); len(l) != 0 {
		t.Fatalf("List = %+v", l)
	}
	if e := entries(t, filepath.Join(dir, "volumes")); len(e) != 0 {
		t.Errorf("volumes = %v", e)
	}
	// The name can be created again.
	mustCreate(t, s2, "v", 1)
}

func TestCrashAfterMkdir(t *testing.T) {
	dir := t.TempDir()
	open(t, dir).Close()
	os.Mkdir(filepath.Join(dir, "volumes", "aaaaaaaaaaaaaaaa"), 0o777)
	os.WriteFile(filepath.Join(dir, "volumes", "aaaaaaaaaaaaaaaa", "junk"), nil, 0o644)
	s := open(t, dir)
	if len(s.List()) != 0 {
		t.Fatal("orphan dir became a volume")
	}
	for _, sub := range []string{"volumes", "trash"} {
		if e := entries(t, filepath.Join(dir, sub)); len(e) != 0 {
			t.Errorf("%s = %v", sub, e)
		}
	}
}

func TestCrashDuringDelete(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	a := mustCreate(t, s, "a", 1)
	b := mustCreate(t, s, "b", 1)
	s.Close()
	// a: crash after step 1 (record removed, directory still in volumes/).
	os.Remove(filepath.Join(dir, "meta", a.ID+".json"))
	// b: crash after step 2 (directory in trash, not yet removed).
	os.Remove(filepath.Join(dir, "meta", b.ID+".json"))
	os.Rename(filepath.Join(dir, "volumes", b.ID), filepath.Join(dir, "trash", b.ID+"-0000"))
	os.WriteFile(filepath.Join(dir, "trash", b.ID+"-0000", "f"), nil, 0o644)

	s2 := open(t, dir)
	if len(s2.List()) != 0 {
		t.Fatalf("List = %+v", s2.List())
	}
	for _, sub := range []string{"volumes", "meta", "trash"} {
		if e := entries(t, filepath.Join(dir, sub)); len(e) != 0 {
			t.Errorf("%s = %v", sub, e)
		}
	}
}

func TestCrashDuringExpand(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	v := mustCreate(t, s, "x", 10)
	s.Close()
	// Crash before the rename of the new record: old capacity stays.
	os.WriteFile(filepath.Join(dir, "meta", "."+v.ID+".tmp-9999"), []byte(`{"id":"`+v.ID+`","capacityBytes":20`), 0o600)
	s2 := open(t, dir)
	got, err := s2.Get(v.ID)
	if err != nil || got.CapacityBytes != 10 {
		t.Fatalf("Get = %+v, %v", got, err)
	}
}

func TestMissingDirRecreated(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	v := mustCreate(t, s, "x", 10)
	s.Close()
	os.Remove(filepath.Join(dir, "volumes", v.ID))
	s2 := open(t, dir)
	if _, err := os.Stat(s2.VolumeDir(v.ID)); err != nil {
		t.Fatal(err)
	}
	if err := s2.Delete(v.ID); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptRecordRefused(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	v := mustCreate(t, s, "x", 10)
	s.Close()
	os.WriteFile(filepath.Join(dir, "meta", v.ID+".json"), []byte("{"), 0o600)
	if s, err := Open(dir, logr.Discard()); err == nil {
		s.Close()
		t.Fatal("Open accepted a corrupt committed record")
	}
}

func TestValidID(t *testing.T) {
	for id, ok := range map[string]bool{
		"0123456789abcdef": true, "0123456789ABCDEF": false, "../../etc/passwd": false,
		"": false, "0123456789abcde": false, "0123456789abcdefa": false,
	} {
		if ValidID(id) != ok {
			t.Errorf("ValidID(%q) = %v", id, !ok)
		}
	}
}
