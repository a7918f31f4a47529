// Package volume is Hangar's volume store: every volume is a directory on a
// local data disk, described by a small metadata record kept outside the
// exported tree.
//
// On-disk layout under the data directory:
//
//	DATA/lock              flock'ed while a Store is open (one server per disk)
//	DATA/volumes/<id>/     the volume's contents (exported over NFS)
//	DATA/meta/<id>.json    the volume's record: the commit point of its existence
//	DATA/meta/.<id>.json.tmp-*  a record being written (removed on Open)
//	DATA/trash/<name>      directories of deleted or abandoned volumes, being removed
//	DATA/snapshots, snapmeta, groups, staging: snapshots (see snapshot.go)
//
// A volume exists if and only if its record exists. Steps are ordered so
// that every crash point is recoverable by Open:
//
// Create: (1) mkdir volumes/<id>, fsync volumes/; (2) write the record to a
// temp file, fsync it, rename it to <id>.json, fsync meta/. A crash after (1)
// leaves a directory without a record; Open moves it to trash. A crash
// during (2) leaves a temp file (torn or whole but unrenamed); Open removes
// it, and the directory with it. After (2) the volume exists.
//
// Delete: (1) remove meta/<id>.json, fsync meta/ — the volume is gone;
// (2) rename volumes/<id> to trash/, fsync both; (3) remove the trash entry.
// A crash after (1) leaves a directory without a record (moved to trash by
// Open); after (2) a trash entry (removed by Open).
//
// Expand rewrites the record atomically (temp, fsync, rename, fsync), so a
// crash leaves either the old or the new capacity.
//
// A record whose directory is missing cannot result from a crash; Open
// recreates the (empty) directory and logs an error so the volume stays
// consistent and deletable.
package volume

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"

	"github.com/hangar-csi/hangar/pkg/fileutil"
)

// IDBytes is the number of random bytes in a volume ID (hex encoded).
const IDBytes = 8

// Errors returned by the store.
var (
	ErrNotFound = errors.New("volume not found")
	ErrExists   = errors.New("volume with this name exists with incompatible properties")
	ErrShrink   = errors.New("volume capacity cannot shrink")
)

// ExistsError reports a Create whose name is taken by an incompatible
// volume. errors.Is(err, ErrExists) holds.
type ExistsError struct {
	Existing Volume
	Reason   string
}

func (e *ExistsError) Error() string {
	return fmt.Sprintf("volume %q already exists as %s: %s", e.Existing.Name, e.Existing.ID, e.Reason)
}

// Is makes errors.Is(err, ErrExists) true.
func (e *ExistsError) Is(target error) bool { return target == ErrExists }

// ContentSource is where a volume's initial contents came from.
type ContentSource struct {
	SnapshotID string `json:"snapshotID,omitempty"`
	VolumeID   string `json:"volumeID,omitempty"`
}

// Volume is a volume's metadata record.
type Volume struct {
	ID            string            `json:"id"`
	Name          string            `json:"name"`
	CapacityBytes int64             `json:"capacityBytes"`
	Parameters    map[string]string `json:"parameters,omitempty"`
	// MutableParameters are the policy parameters that may change over
	// the volume's life (Modify); they override Parameters.
	MutableParameters map[string]string `json:"mutableParameters,omitempty"`
	CreatedAt         time.Time         `json:"createdAt"`
	ContentSource     *ContentSource    `json:"contentSource,omitempty"`
}

// Request describes a volume to create. Capacity is chosen by the caller;
// RequiredBytes and LimitBytes decide whether an existing volume with the
// same name is compatible (0 = no bound).
type Request struct {
	Name          string
	CapacityBytes int64
	RequiredBytes int64
	LimitBytes    int64
	Parameters    map[string]string
	// MutableParameters are not part of a volume's identity: a retried
	// Create finds the volume whatever they became since.
	MutableParameters map[string]string
	ContentSource     *ContentSource
	// From, if set, is a complete, synced tree in staging (StagingDir)
	// that becomes the volume's contents, as restores and clones do.
	From string
}

// Store is an open data directory. It is safe for concurrent use.
//
// Every call costs O(log n) or less in the number of volumes n: totals are
// kept as volumes come and go, listing pages through a sorted index, and
// the slow part of a change (the fsyncs) runs outside the lock, so
// concurrent creates, deletes and expansions overlap their I/O.
type Store struct {
	dir  string
	log  logr.Logger
	lock *os.File

	mu     sync.Mutex // guards the fields below (never held across I/O)
	byID   map[string]*Volume
	byName map[string]string
	index  idIndex // the IDs of byID, sorted
	// promised is the capacity of every volume plus that of creates and
	// expansions in flight, so a capacity check sees every promise.
	promised int64
	// creating holds the names being created; busy the IDs being created,
	// deleted or expanded. A channel closes when its change is done, so a
	// second change of the same name or ID waits for the first.
	creating map[string]chan struct{}
	busy     map[string]chan struct{}

	// Snapshots (snapshot.go), under mu too.
	snaps       map[string]*Snapshot
	snapByName  map[string]string
	groups      map[string]*Group
	groupByName map[string]string
	reflink     bool
}

// Open opens (creating if needed) the data directory dir, takes its lock and
// reconciles whatever a crash left behind.
func Open(dir string, log logr.Logger) (*Store, error) {
	for _, d := range []string{dir, filepath.Join(dir, "volumes"), filepath.Join(dir, "meta"), filepath.Join(dir, "trash")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("volume store: %w", err)
		}
	}
	lf, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("volume store: %w", err)
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lf.Close()
		return nil, fmt.Errorf("volume store: data directory %s is in use by another process: %w", dir, err)
	}
	s := &Store{dir: dir, log: log, lock: lf, byID: map[string]*Volume{}, byName: map[string]string{},
		creating: map[string]chan struct{}{}, busy: map[string]chan struct{}{}}
	if err := s.reconcile(); err != nil {
		lf.Close()
		return nil, err
	}
	if err := s.openSnapshots(); err != nil {
		lf.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the data directory lock.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		return nil
	}
	err := s.lock.Close()
	s.lock = nil
	return err
}

// Dir is the data directory.
func (s *Store) Dir() string { return s.dir }

// VolumeDir is the directory holding volume id's contents.
func (s *Store) VolumeDir(id string) string { return filepath.Join(s.dir, "volumes", id) }

func (s *Store) metaPath(id string) string { return filepath.Join(s.dir, "meta", id+".json") }

// ValidID reports whether id has the shape of a volume ID; other strings
// never name a volume (and never reach the file system).
func ValidID(id string) bool {
	if len(id) != 2*IDBytes {
		return false
	}
	for _, c := range id {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func (s *Store) reconcile() error {
	metaDir := filepath.Join(s.dir, "meta")
	ents, err := os.ReadDir(metaDir)
	if err != nil {
		return fmt.Errorf("volume store: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		p := filepath.Join(metaDir, name)
		id, ok := strings.CutSuffix(name, ".json")
		if !ok || !ValidID(id) {
			// Temp files of interrupted writes, or foreign files.
			s.log.Info("removing incomplete metadata file", "file", p)
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("volume store: %w", err)
			}
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("volume store: %w", err)
		}
		v := new(Volume)
		if err := json.Unmarshal(b, v); err != nil || v.ID != id {
			// Records are only ever renamed into place whole, so this is
			// corruption, not a crash: refuse to guess.
			return fmt.Errorf("volume store: corrupt metadata record %s: %v", p, err)
		}
		s.add(v)
	}
	volDir := filepath.Join(s.dir, "volumes")
	ents, err = os.ReadDir(volDir)
	if err != nil {
		return fmt.Errorf("volume store: %w", err)
	}
	present := map[string]bool{}
	for _, e := range ents {
		id := e.Name()
		if _, ok := s.byID[id]; ok && e.IsDir() {
			present[id] = true
			continue
		}
		// A directory without a record: a create or delete interrupted.
		s.log.Info("moving orphaned volume directory to trash", "dir", filepath.Join(volDir, id))
		if _, err := s.toTrash(id); err != nil {
			return err
		}
	}
	for id := range s.byID {
		if !present[id] {
			s.log.Error(nil, "volume directory missing; recreating it empty", "volumeID", id, "dir", s.VolumeDir(id))
			if err := os.Mkdir(s.VolumeDir(id), 0o777); err != nil {
				return fmt.Errorf("volume store: %w", err)
			}
			if err := syncDir(volDir); err != nil {
				return err
			}
		}
	}
	return s.emptyTrash()
}

func (s *Store) emptyTrash() error {
	trash := filepath.Join(s.dir, "trash")
	ents, err := os.ReadDir(trash)
	if err != nil {
		return fmt.Errorf("volume store: %w", err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(trash, e.Name())); err != nil {
			return fmt.Errorf("volume store: emptying trash: %w", err)
		}
	}
	return nil
}

// toTrash renames volumes/<id> into trash under a unique name, which it
// returns.
func (s *Store) toTrash(id string) (string, error) {
	dst := filepath.Join(s.dir, "trash", id+"-"+randHex(4))
	if err := os.Rename(s.VolumeDir(id), dst); err != nil {
		return "", fmt.Errorf("volume store: moving %s to trash: %w", id, err)
	}
	if err := syncDir(filepath.Join(s.dir, "volumes")); err != nil {
		return dst, err
	}
	return dst, syncDir(filepath.Join(s.dir, "trash"))
}

// Admit decides whether a new promise of need bytes may be made when
// promised bytes already are (the capacity of every volume and of changes
// in flight); it returns an error to refuse. It runs under the store's
// lock, so a check and the promise it admits are one step.
type Admit func(need, promised int64) error

// Create creates a volume, or returns the existing one with the same name
// (created=false) if it is compatible with r, or an *ExistsError. A new
// volume's capacity is promised only if admit (nil: always) allows it; a
// retried create of an existing volume promises nothing new.
func (s *Store) Create(r Request, admit Admit) (v Volume, created bool, err error) {
	if r.Name == "" {
		return Volume{}, false, errors.New("volume name is empty")
	}
	if r.CapacityBytes < 0 {
		return Volume{}, false, errors.New("negative capacity")
	}
	s.mu.Lock()
	for {
		if id, ok := s.byName[r.Name]; ok {
			if ch := s.busy[id]; ch != nil {
				// Being deleted (or expanded): its outcome decides ours.
				s.mu.Unlock()
				<-ch
				s.mu.Lock()
				continue
			}
			old := s.byID[id]
			defer s.mu.Unlock()
			if reason := incompatible(old, r); reason != "" {
				return Volume{}, false, &ExistsError{Existing: old.clone(), Reason: reason}
			}
			return old.clone(), false, nil
		}
		ch := s.creating[r.Name]
		if ch == nil {
			break
		}
		// The same name is being created: its outcome decides ours.
		s.mu.Unlock()
		<-ch
		s.mu.Lock()
	}
	if admit != nil {
		if err := admit(r.CapacityBytes, s.promised); err != nil {
			s.mu.Unlock()
			return Volume{}, false, err
		}
	}
	id := randHex(IDBytes)
	for s.byID[id] != nil || s.busy[id] != nil {
		id = randHex(IDBytes)
	}
	done := make(chan struct{})
	s.creating[r.Name], s.busy[id] = done, done
	s.promised += r.CapacityBytes
	s.mu.Unlock()

	nv := &Volume{
		ID:                id,
		Name:              r.Name,
		CapacityBytes:     r.CapacityBytes,
		Parameters:        maps.Clone(r.Parameters),
		MutableParameters: maps.Clone(r.MutableParameters),
		CreatedAt:         time.Now().UTC().Truncate(time.Microsecond),
		ContentSource:     r.ContentSource,
	}
	err = s.makeVolume(nv, r.From)

	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.creating, r.Name)
	delete(s.busy, id)
	close(done)
	s.promised -= r.CapacityBytes
	if err != nil {
		return Volume{}, false, err
	}
	s.add(nv)
	return nv.clone(), true, nil
}

// makeVolume makes v's directory (from the staged tree from, if set) and
// then its record (see the package comment for the order).
func (s *Store) makeVolume(v *Volume, from string) error {
	undo := func() { os.Remove(s.VolumeDir(v.ID)) }
	if from != "" {
		if err := os.Rename(from, s.VolumeDir(v.ID)); err != nil {
			return fmt.Errorf("volume store: moving contents into place: %w", err)
		}
		undo = func() { os.Rename(s.VolumeDir(v.ID), from) }
		if err := syncDir(filepath.Dir(from)); err != nil {
			undo()
			return err
		}
	} else {
		if err := os.Mkdir(s.VolumeDir(v.ID), 0o777); err != nil {
			return fmt.Errorf("volume store: creating directory: %w", err)
		}
		// 0777 before umask; the volume root is shared by whatever UIDs the
		// pods use, so make it world-writable like an empty NFS export.
		if err := os.Chmod(s.VolumeDir(v.ID), 0o777); err != nil {
			undo()
			return fmt.Errorf("volume store: %w", err)
		}
	}
	if err := syncDir(filepath.Join(s.dir, "volumes")); err != nil {
		undo()
		return err
	}
	if err := s.writeRecord(v); err != nil {
		// Best effort: leave no orphan behind (Open would clean it anyway).
		undo()
		return err
	}
	return nil
}

// add makes v known; s.mu held.
func (s *Store) add(v *Volume) {
	s.byID[v.ID] = v
	s.byName[v.Name] = v.ID
	s.index.insert(v.ID)
	s.promised += v.CapacityBytes
}

// hold waits until no change of volume id is in flight and marks one; it
// returns the volume (nil if none) and the channel to pass to unhold.
// s.mu held.
func (s *Store) hold(id string) (*Volume, chan struct{}) {
	for {
		ch := s.busy[id]
		if ch == nil {
			break
		}
		s.mu.Unlock()
		<-ch
		s.mu.Lock()
	}
	done := make(chan struct{})
	s.busy[id] = done
	return s.byID[id], done
}

func (s *Store) unhold(id string, done chan struct{}) {
	delete(s.busy, id)
	close(done)
}

func incompatible(old *Volume, r Request) string {
	switch {
	case r.RequiredBytes > 0 && old.CapacityBytes < r.RequiredBytes:
		return fmt.Sprintf("its capacity %d is below the required %d bytes", old.CapacityBytes, r.RequiredBytes)
	case r.LimitBytes > 0 && old.CapacityBytes > r.LimitBytes:
		return fmt.Sprintf("its capacity %d exceeds the limit of %d bytes", old.CapacityBytes, r.LimitBytes)
	case !maps.Equal(old.Parameters, r.Parameters) && (len(old.Parameters) > 0 || len(r.Parameters) > 0):
		return "its parameters differ"
	case !sameSource(old.ContentSource, r.ContentSource):
		return "its content source differs"
	}
	return ""
}

func sameSource(a, b *ContentSource) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// writeRecord persists v atomically: temp file, fsync, rename, fsync dir.
func (s *Store) writeRecord(v *Volume) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("volume store: %w", err)
	}
	if err := fileutil.WriteFileAtomic(s.metaPath(v.ID), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("volume store: record of %s: %w", v.ID, err)
	}
	return nil
}

// Delete removes volume id and its contents. Deleting a volume that does not
// exist succeeds.
func (s *Store) Delete(id string) error {
	s.mu.Lock()
	v, done := s.hold(id)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.unhold(id, done)
		s.mu.Unlock()
	}()
	if v == nil {
		return nil
	}
	if err := os.Remove(s.metaPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("volume store: deleting record of %s: %w", id, err)
	}
	if err := syncDir(filepath.Join(s.dir, "meta")); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.byID, id)
	delete(s.byName, v.Name)
	s.index.delete(id)
	s.promised -= v.CapacityBytes
	s.mu.Unlock()
	trashed, err := s.toTrash(id)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		// The volume is gone already; the next Open finishes the cleanup.
		s.log.Error(err, "volume deleted but its directory was not moved to trash", "volumeID", id)
		return nil
	}
	if err == nil {
		if err := os.RemoveAll(trashed); err != nil {
			s.log.Error(err, "volume deleted but its directory not removed from trash", "volumeID", id)
		}
	}
	return nil
}

// Get returns volume id or ErrNotFound.
func (s *Store) Get(id string) (Volume, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.byID[id]
	if !ok {
		return Volume{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return v.clone(), nil
}

// GetByName returns the volume called name or ErrNotFound.
func (s *Store) GetByName(name string) (Volume, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.byName[name]
	if !ok {
		return Volume{}, fmt.Errorf("%w: name %q", ErrNotFound, name)
	}
	return s.byID[id].clone(), nil
}

// List returns every volume sorted by ID. It costs O(n): for startup and
// metrics; paging uses Page.
func (s *Store) List() []Volume {
	vs, _ := s.Page("", 0)
	return vs
}

// Page returns, sorted by ID, up to max (0: all) volumes whose IDs are
// greater than after, and whether more follow.
func (s *Store) Page(after string, max int) (vs []Volume, more bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if max <= 0 || max > s.index.n {
		vs = make([]Volume, 0, s.index.n)
	} else {
		vs = make([]Volume, 0, max)
	}
	s.index.after(after, func(id string) bool {
		if max > 0 && len(vs) == max {
			more = true
			return false
		}
		vs = append(vs, s.byID[id].clone())
		return true
	})
	return vs, more
}

// Count is the number of volumes.
func (s *Store) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byID)
}

// Expand records a new capacity for volume id. The same capacity is a
// no-op; a smaller one is refused with ErrShrink. The growth is promised
// only if admit (nil: always) allows it.
func (s *Store) Expand(id string, capacity int64, admit Admit) (Volume, error) {
	s.mu.Lock()
	v, done := s.hold(id)
	defer func() {
		s.unhold(id, done)
		s.mu.Unlock()
	}()
	if v == nil {
		return Volume{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if capacity < v.CapacityBytes {
		return v.clone(), fmt.Errorf("%w: %s has %d bytes, asked for %d", ErrShrink, id, v.CapacityBytes, capacity)
	}
	if capacity == v.CapacityBytes {
		return v.clone(), nil
	}
	grow := capacity - v.CapacityBytes
	if admit != nil {
		if err := admit(grow, s.promised); err != nil {
			return Volume{}, err
		}
	}
	nv := v.clone()
	nv.CapacityBytes = capacity
	s.promised += grow
	s.mu.Unlock()
	err := s.writeRecord(&nv)
	s.mu.Lock()
	if err != nil {
		s.promised -= grow
		return Volume{}, err
	}
	s.byID[id] = &nv
	return nv.clone(), nil
}

// Modify sets the given mutable parameters of volume id (other keys keep
// their values) and persists the record before returning it.
func (s *Store) Modify(id string, mutable map[string]string) (Volume, error) {
	s.mu.Lock()
	v, done := s.hold(id)
	defer func() {
		s.unhold(id, done)
		s.mu.Unlock()
	}()
	if v == nil {
		return Volume{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	nv := v.clone()
	if nv.MutableParameters == nil {
		nv.MutableParameters = map[string]string{}
	}
	maps.Copy(nv.MutableParameters, mutable)
	if maps.Equal(nv.MutableParameters, v.MutableParameters) {
		return nv, nil
	}
	s.mu.Unlock()
	err := s.writeRecord(&nv)
	s.mu.Lock()
	if err != nil {
		return Volume{}, err
	}
	s.byID[id] = &nv
	return nv.clone(), nil
}

// Promise runs f with what is promised, atomically with every Create's and
// Expand's admission: for promises the store does not record (space a
// snapshot copy will take), so that a check and its promise are one step.
// f must not call the store.
func (s *Store) Promise(f func(promised int64) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return f(s.promised)
}

// Promised is the sum of all volumes' capacities, plus those of creates
// and expansions in flight.
func (s *Store) Promised() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.promised
}

// DiskFree is the number of bytes available to unprivileged users on the
// data disk.
func (s *Store) DiskFree() (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.dir, &st); err != nil {
		return 0, fmt.Errorf("volume store: statfs %s: %w", s.dir, err)
	}
	return int64(st.Bavail) * st.Bsize, nil
}

// Available is what new volumes may still be promised when promised bytes
// already are (see Promised): free disk space minus them, never negative. The
// store does not know how much of a volume is already written (and so
// already missing from the free space), so it counts all of every promise
// as still to come: conservative, never over-promising. A storage server
// uses the exact, usage-aware figure of pkg/server instead.
func (s *Store) Available(promised int64) (int64, error) {
	free, err := s.DiskFree()
	if err != nil {
		return 0, err
	}
	return max(free-promised, 0), nil
}

func (v *Volume) clone() Volume {
	c := *v
	c.Parameters = maps.Clone(v.Parameters)
	c.MutableParameters = maps.Clone(v.MutableParameters)
	if v.ContentSource != nil {
		cs := *v.ContentSource
		c.ContentSource = &cs
	}
	return c
}

func syncDir(dir string) error {
	if err := fileutil.SyncDir(dir); err != nil {
		return fmt.Errorf("volume store: %w", err)
	}
	return nil
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}
