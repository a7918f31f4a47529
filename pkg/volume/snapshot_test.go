package volume

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func stage(t *testing.T, s *Store, content string) string {
	t.Helper()
	d := s.StagingDir()
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "f"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestSnapshotRecordsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	v := mustCreate(t, s, "v", 1<<20)
	sn := Snapshot{ID: s.NewSnapshotID(), Name: "snap", SourceVolumeID: v.ID, SizeBytes: 4096, CreatedAt: time.Now().UTC().Truncate(time.Microsecond), Ready: true}
	if err := s.PutSnapshot(sn, stage(t, s, "x")); err != nil {
		t.Fatal(err)
	}
	// Same name, other ID: refused.
	if err := s.PutSnapshot(Snapshot{ID: s.NewSnapshotID(), Name: "snap", SourceVolumeID: v.ID, Ready: true}, ""); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate name: %v", err)
	}
	// The source volume goes; the snapshot stays.
	if err := s.Delete(v.ID); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, dir)
	got, err := s.GetSnapshot(sn.ID)
	if err != nil || got != sn {
		t.Fatalf("after reopen: %+v, %v (want %+v)", got, err, sn)
	}
	if b, err := os.ReadFile(filepath.Join(s.SnapshotDir(sn.ID), "f")); err != nil || string(b) != "x" {
		t.Fatalf("tree: %q %v", b, err)
	}
	if byName, err := s.GetSnapshotByName("snap"); err != nil || byName.ID != sn.ID {
		t.Errorf("by name: %v %v", byName, err)
	}
	if err := s.DeleteSnapshot(sn.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.SnapshotDir(sn.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("tree left after delete: %v", err)
	}
	if len(entries(t, filepath.Join(dir, "trash"))) != 0 {
		t.Error("trash not emptied")
	}
}

// TestSnapshotCrashLeftovers: what an interrupted snapshot leaves is
// cleaned at Open: a record of a copy that never finished, a tree without
// a record, a staged copy, members of a group whose record was never
// written.
func TestSnapshotCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	v := mustCreate(t, s, "v", 1<<20)
	keep := Snapshot{ID: s.NewSnapshotID(), Name: "keep", SourceVolumeID: v.ID, Ready: true}
	copying := Snapshot{ID: s.NewSnapshotID(), Name: "copying", SourceVolumeID: v.ID}
	member := Snapshot{ID: s.NewSnapshotID(), Name: "member", SourceVolumeID: v.ID, Ready: true, GroupID: s.NewSnapshotID()}
	for _, sn := range []Snapshot{keep, copying, member} {
		tree := ""
		if sn.Ready {
			tree = stage(t, s, sn.Name)
		}
		if err := s.PutSnapshot(sn, tree); err != nil {
			t.Fatal(err)
		}
	}
	staged := stage(t, s, "half")
	orphan := filepath.Join(dir, "snapshots", "0123456789abcdef")
	if err := os.Mkdir(orphan, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "snapmeta", ".x.json.tmp-1"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = open(t, dir)
	var ids []string
	for _, sn := range s.ListSnapshots() {
		ids = append(ids, sn.ID)
	}
	if !slices.Equal(ids, []string{keep.ID}) {
		t.Errorf("snapshots after reopen %v, want only %s", ids, keep.ID)
	}
	for _, p := range []string{staged, orphan, s.SnapshotDir(member.ID), filepath.Join(dir, "snapmeta", ".x.json.tmp-1")} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived Open: %v", p, err)
		}
	}
	if _, err := s.GetSnapshotByName("copying"); err == nil {
		t.Error("interrupted snapshot's name still taken")
	}
}

func TestGroupRecords(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	v := mustCreate(t, s, "v", 1<<20)
	g := Group{ID: s.NewSnapshotID(), Name: "g", CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	outsider := Snapshot{ID: s.NewSnapshotID(), Name: "alone", SourceVolumeID: v.ID, Ready: true}
	if err := s.PutSnapshot(outsider, stage(t, s, "o")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutGroup(Group{ID: g.ID, Name: "g", SnapshotIDs: []string{outsider.ID}}); err == nil {
		t.Error("group accepted a snapshot that is not its member")
	}
	m := Snapshot{ID: s.NewSnapshotID(), Name: "m", SourceVolumeID: v.ID, Ready: true, GroupID: g.ID}
	if err := s.PutSnapshot(m, stage(t, s, "m")); err != nil {
		t.Fatal(err)
	}
	g.SnapshotIDs = []string{m.ID}
	if err := s.PutGroup(g); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, dir)
	got, err := s.GetGroupByName("g")
	if err != nil || got.ID != g.ID || !slices.Equal(got.SnapshotIDs, g.SnapshotIDs) {
		t.Fatalf("group after reopen: %+v %v", got, err)
	}
	if _, err := s.GetSnapshot(m.ID); err != nil {
		t.Fatalf("member lost: %v", err)
	}
	if err := s.DeleteGroup(g.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSnapshot(m.ID); err == nil {
		t.Error("member survived its group")
	}
	if _, err := s.GetSnapshot(outsider.ID); err != nil {
		t.Error("unrelated snapshot deleted with the group")
	}
}

// TestCreateFromStaged: a volume made from a staged tree takes the tree.
func TestCreateFromStaged(t *testing.T) {
	s := open(t, t.TempDir())
	d := stage(t, s, "restored")
	v, created, err := s.Create(Request{Name: "r", CapacityBytes: 1 << 20, From: d, ContentSource: &ContentSource{SnapshotID: "0123456789abcdef"}}, nil)
	if err != nil || !created {
		t.Fatal(created, err)
	}
	if b, err := os.ReadFile(filepath.Join(s.VolumeDir(v.ID), "f")); err != nil || string(b) != "restored" {
		t.Fatalf("%q %v", b, err)
	}
	if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("staged tree still there: %v", err)
	}
}
