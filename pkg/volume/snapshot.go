package volume

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"time"

	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/fileutil"
)

// Snapshots live next to volumes:
//
//	DATA/snapshots/<id>/     the snapshot's tree (never exported)
//	DATA/snapmeta/<id>.json  its record: the commit point of its existence
//	DATA/groups/<id>.json    a group snapshot's record
//	DATA/staging/<name>/     trees being copied (removed on Open)
//
// A snapshot exists if and only if its record does. A ready record means
// its tree is complete and synced: the tree is copied into staging/,
// synced, renamed into snapshots/ and only then the record is written. A
// snapshot being copied in the background has a record with ready=false
// and no tree yet; Open deletes such records, as the copy died with the
// process (its source may have changed since, so it cannot be resumed).
//
// A group snapshot's members are written first, each naming the group,
// then the group's record; deleting goes the other way. Open deletes
// members whose group has no record (a create or delete interrupted).

// ErrSnapshotNotFound is returned for unknown snapshots and groups.
var ErrSnapshotNotFound = errors.New("snapshot not found")

// Snapshot is a snapshot's record.
type Snapshot struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	SourceVolumeID string    `json:"sourceVolumeID"`
	SizeBytes      int64     `json:"sizeBytes"`
	CreatedAt      time.Time `json:"createdAt"`
	Ready          bool      `json:"ready"`
	GroupID        string    `json:"groupID,omitempty"`
}

// Group is a group snapshot's record.
type Group struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	SnapshotIDs []string  `json:"snapshotIDs"`
	CreatedAt   time.Time `json:"createdAt"`
}

// SnapshotDir is the directory holding snapshot id's tree.
func (s *Store) SnapshotDir(id string) string { return filepath.Join(s.dir, "snapshots", id) }

func (s *Store) snapMetaPath(id string) string {
	return filepath.Join(s.dir, "snapmeta", id+".json")
}

func (s *Store) groupPath(id string) string { return filepath.Join(s.dir, "groups", id+".json") }

// StagingDir returns a fresh path (not yet existing) in DATA/staging for a
// tree being copied; pass it to PutSnapshot or Request.From, or remove it.
func (s *Store) StagingDir() string { return filepath.Join(s.dir, "staging", randHex(8)) }

// Reflink reports whether the data directory's file system clones extents
// (probed at Open): then snapshots are reflink copies, else full copies.
func (s *Store) Reflink() bool { return s.reflink }

// NewSnapshotID returns an ID no snapshot or group has.
func (s *Store) NewSnapshotID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		id := randHex(IDBytes)
		if s.snaps[id] == nil && s.groups[id] == nil {
			return id
		}
	}
}

// openSnapshots loads snapshot and group records and cleans up what an
// interrupted create or delete left. Called by Open.
func (s *Store) openSnapshots() error {
	for _, d := range []string{"snapshots", "snapmeta", "groups", "staging"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o700); err != nil {
			return fmt.Errorf("volume store: %w", err)
		}
	}
	s.snaps, s.snapByName = map[string]*Snapshot{}, map[string]string{}
	s.groups, s.groupByName = map[string]*Group{}, map[string]string{}
	if err := loadRecords(filepath.Join(s.dir, "groups"), s.log, func(id string, b []byte) error {
		g := new(Group)
		if err := json.Unmarshal(b, g); err != nil || g.ID != id {
			return fmt.Errorf("corrupt group snapshot record %s: %v", id, err)
		}
		s.groups[id], s.groupByName[g.Name] = g, id
		return nil
	}); err != nil {
		return err
	}
	var drop []string
	if err := loadRecords(filepath.Join(s.dir, "snapmeta"), s.log, func(id string, b []byte) error {
		sn := new(Snapshot)
		if err := json.Unmarshal(b, sn); err != nil || sn.ID != id {
			return fmt.Errorf("corrupt snapshot record %s: %v", id, err)
		}
		switch {
		case !sn.Ready:
			s.log.Info("removing snapshot whose copy was interrupted", "snapshotID", id, "name", sn.Name)
			drop = append(drop, id)
		case sn.GroupID != "" && s.groups[sn.GroupID] == nil:
			s.log.Info("removing member of an incomplete group snapshot", "snapshotID", id, "groupID", sn.GroupID)
			drop = append(drop, id)
		}
		s.snaps[id], s.snapByName[sn.Name] = sn, id
		return nil
	}); err != nil {
		return err
	}
	for _, id := range drop {
		if err := s.deleteSnapshotLocked(id); err != nil {
			return err
		}
	}
	// Trees without records: copies that never committed.
	ents, err := os.ReadDir(filepath.Join(s.dir, "snapshots"))
	if err != nil {
		return fmt.Errorf("volume store: %w", err)
	}
	for _, e := range ents {
		if s.snaps[e.Name()] == nil {
			s.log.Info("removing snapshot tree without a record", "dir", e.Name())
			if err := s.treeToTrash(s.SnapshotDir(e.Name())); err != nil {
				return err
			}
		}
	}
	if err := os.RemoveAll(filepath.Join(s.dir, "staging")); err != nil {
		return fmt.Errorf("volume store: emptying staging: %w", err)
	}
	if err := os.Mkdir(filepath.Join(s.dir, "staging"), 0o700); err != nil {
		return fmt.Errorf("volume store: %w", err)
	}
	s.reflink = probeReflink(filepath.Join(s.dir, "staging"))
	return nil
}

// loadRecords calls fn for every <id>.json in dir, removing temp files.
func loadRecords(dir string, log interface {
	Info(string, ...any)
}, fn func(id string, b []byte) error) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("volume store: %w", err)
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !ValidID(id) {
			log.Info("removing incomplete metadata file", "file", p)
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("volume store: %w", err)
			}
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("volume store: %w", err)
		}
		if err := fn(id, b); err != nil {
			return fmt.Errorf("volume store: %w", err)
		}
	}
	return nil
}

// probeReflink tries FICLONE between two files in dir.
func probeReflink(dir string) bool {
	a, err := os.CreateTemp(dir, "probe-")
	if err != nil {
		return false
	}
	defer os.Remove(a.Name())
	defer a.Close()
	b, err := os.CreateTemp(dir, "probe-")
	if err != nil {
		return false
	}
	defer os.Remove(b.Name())
	defer b.Close()
	if _, err := a.Write(make([]byte, 4096)); err != nil {
		return false
	}
	return unix.IoctlFileClone(int(b.Fd()), int(a.Fd())) == nil
}

// PutSnapshot records sn. If tree is set (a complete, synced copy in
// staging) it becomes the snapshot's tree first. A record with the same ID
// is replaced (how a background copy becomes ready); another snapshot with
// the same name is ErrExists.
func (s *Store) PutSnapshot(sn Snapshot, tree string) error {
	if sn.Name == "" || !ValidID(sn.ID) {
		return errors.New("volume store: snapshot needs a name and a valid ID")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.snapByName[sn.Name]; ok && id != sn.ID {
		return fmt.Errorf("%w: snapshot name %q is taken by %s", ErrExists, sn.Name, id)
	}
	if tree != "" {
		if err := os.Rename(tree, s.SnapshotDir(sn.ID)); err != nil {
			return fmt.Errorf("volume store: snapshot %s: %w", sn.ID, err)
		}
		if err := syncDir(filepath.Join(s.dir, "snapshots")); err != nil {
			return err
		}
	}
	if err := writeJSON(s.snapMetaPath(sn.ID), sn); err != nil {
		return err
	}
	c := sn
	s.snaps[sn.ID], s.snapByName[sn.Name] = &c, sn.ID
	return nil
}

// DeleteSnapshot removes snapshot id and its tree; an unknown id succeeds.
func (s *Store) DeleteSnapshot(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deleteSnapshotLocked(id)
}

func (s *Store) deleteSnapshotLocked(id string) error {
	sn := s.snaps[id]
	if sn == nil {
		return nil
	}
	if err := os.Remove(s.snapMetaPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("volume store: deleting record of snapshot %s: %w", id, err)
	}
	if err := syncDir(filepath.Join(s.dir, "snapmeta")); err != nil {
		return err
	}
	delete(s.snaps, id)
	if s.snapByName[sn.Name] == id {
		delete(s.snapByName, sn.Name)
	}
	// Gone now; the tree is cleanup (Open finishes it after a crash).
	if err := s.treeToTrash(s.SnapshotDir(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Error(err, "snapshot deleted but its tree was not moved to trash", "snapshotID", id)
		return nil
	}
	if err := s.emptyTrash(); err != nil {
		s.log.Error(err, "snapshot deleted but trash not emptied", "snapshotID", id)
	}
	return nil
}

func (s *Store) treeToTrash(dir string) error {
	dst := filepath.Join(s.dir, "trash", filepath.Base(dir)+"-"+randHex(4))
	if err := os.Rename(dir, dst); err != nil {
		return fmt.Errorf("volume store: moving %s to trash: %w", dir, err)
	}
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return err
	}
	return syncDir(filepath.Join(s.dir, "trash"))
}

// GetSnapshot returns snapshot id or ErrSnapshotNotFound.
func (s *Store) GetSnapshot(id string) (Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sn := s.snaps[id]; sn != nil {
		return *sn, nil
	}
	return Snapshot{}, fmt.Errorf("%w: %s", ErrSnapshotNotFound, id)
}

// GetSnapshotByName returns the snapshot called name or ErrSnapshotNotFound.
func (s *Store) GetSnapshotByName(name string) (Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.snapByName[name]; ok {
		return *s.snaps[id], nil
	}
	return Snapshot{}, fmt.Errorf("%w: name %q", ErrSnapshotNotFound, name)
}

// ListSnapshots returns every snapshot sorted by ID.
func (s *Store) ListSnapshots() []Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Snapshot, 0, len(s.snaps))
	for _, sn := range s.snaps {
		out = append(out, *sn)
	}
	slices.SortFunc(out, func(a, b Snapshot) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// PutGroup records group g; its member snapshots must be recorded already.
func (s *Store) PutGroup(g Group) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.groupByName[g.Name]; ok && id != g.ID {
		return fmt.Errorf("%w: group snapshot name %q is taken by %s", ErrExists, g.Name, id)
	}
	for _, m := range g.SnapshotIDs {
		if sn := s.snaps[m]; sn == nil || sn.GroupID != g.ID {
			return fmt.Errorf("volume store: group %s: member %s is not recorded as its snapshot", g.ID, m)
		}
	}
	if err := writeJSON(s.groupPath(g.ID), g); err != nil {
		return err
	}
	c := g
	c.SnapshotIDs = slices.Clone(g.SnapshotIDs)
	s.groups[g.ID], s.groupByName[g.Name] = &c, g.ID
	return nil
}

// GetGroup returns group snapshot id or ErrSnapshotNotFound.
func (s *Store) GetGroup(id string) (Group, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.groups[id]; g != nil {
		c := *g
		c.SnapshotIDs = slices.Clone(g.SnapshotIDs)
		return c, nil
	}
	return Group{}, fmt.Errorf("%w: group %s", ErrSnapshotNotFound, id)
}

// GetGroupByName returns the group snapshot called name.
func (s *Store) GetGroupByName(name string) (Group, error) {
	s.mu.Lock()
	id, ok := s.groupByName[name]
	s.mu.Unlock()
	if !ok {
		return Group{}, fmt.Errorf("%w: group name %q", ErrSnapshotNotFound, name)
	}
	return s.GetGroup(id)
}

// DeleteGroup removes group id's record, then its members; an unknown id
// succeeds.
func (s *Store) DeleteGroup(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[id]
	if g == nil {
		return nil
	}
	if err := os.Remove(s.groupPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("volume store: deleting group %s: %w", id, err)
	}
	if err := syncDir(filepath.Join(s.dir, "groups")); err != nil {
		return err
	}
	delete(s.groups, id)
	delete(s.groupByName, g.Name)
	for _, m := range g.SnapshotIDs {
		if err := s.deleteSnapshotLocked(m); err != nil {
			return err
		}
	}
	return nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("volume store: %w", err)
	}
	if err := fileutil.WriteFileAtomic(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("volume store: %s: %w", filepath.Base(path), err)
	}
	return nil
}
