package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hangar-csi/hangar/pkg/fileutil"
	"github.com/hangar-csi/hangar/pkg/vfs"
)

// Attachment is one node's publication of a volume (a
// ControllerPublishVolume that was not yet unpublished).
type Attachment struct {
	NodeID   string   `json:"nodeID"`
	Addrs    []string `json:"addrs"`
	ReadOnly bool     `json:"readOnly,omitempty"`
	// Single is set when the volume was published with a single-node
	// access mode: no other node may then publish it.
	Single bool `json:"singleNode,omitempty"`
}

// Errors of Access.Publish.
var (
	ErrPublishedElsewhere = errors.New("volume is published to another node with a single-node access mode")
	ErrPublishConflict    = errors.New("volume is already published to this node with different read-only setting")
)

// Access is a storage server's export allow-lists: for every volume, the
// nodes it is published to. Each volume's list is a small JSON file in
// dir (written atomically), so publications survive restarts. When
// enforcing, a volume's export (see Policy) exists only for the addresses
// of the nodes it is published to, read-only for read-only publications;
// otherwise lists are kept but not applied.
type Access struct {
	dir     string
	enforce bool

	wmu    sync.Mutex // serializes changes (and their file writes)
	mu     sync.RWMutex
	byVol  map[string][]Attachment
	grants map[string]*grantTable // by volume, made by Policy
}

// grantTable is one volume's grants by client address: an immutable map
// replaced whole on every change, so the check the NFS server makes on
// every call is an atomic load and a map lookup, and a revocation applies
// to the next call.
type grantTable struct {
	m atomic.Pointer[map[netip.Addr]vfs.Grant]
}

func (t *grantTable) grant(client netip.Addr) vfs.Grant { return (*t.m.Load())[client] }

// grantsOf is what list grants each address: read-write if any of its
// attachments is read-write, else read-only.
func grantsOf(list []Attachment) *map[netip.Addr]vfs.Grant {
	m := map[netip.Addr]vfs.Grant{}
	for _, at := range list {
		g := vfs.GrantReadWrite
		if at.ReadOnly {
			g = vfs.GrantReadOnly
		}
		for _, s := range at.Addrs {
			if ip, err := netip.ParseAddr(s); err == nil {
				ip = ip.Unmap()
				m[ip] = max(m[ip], g)
			}
		}
	}
	return &m
}

// OpenAccess loads the allow-lists kept in dir (created if missing).
func OpenAccess(dir string, enforce bool) (*Access, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("access lists: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("access lists: %w", err)
	}
	a := &Access{dir: dir, enforce: enforce, byVol: map[string][]Attachment{}, grants: map[string]*grantTable{}}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(id, ".") {
			os.Remove(p) // an interrupted write
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("access lists: %w", err)
		}
		var list []Attachment
		if err := json.Unmarshal(b, &list); err != nil {
			return nil, fmt.Errorf("access lists: corrupt %s: %v", p, err)
		}
		a.byVol[id] = list
	}
	return a, nil
}

// Enforcing reports whether allow-lists are applied to exports.
func (a *Access) Enforcing() bool { return a.enforce }

// Nodes returns the attachments of volume id.
func (a *Access) Nodes(id string) []Attachment {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return slices.Clone(a.byVol[id])
}

// Publish adds at to volume id's list. Publishing again to the same node
// with the same read-only setting is a no-op.
func (a *Access) Publish(id string, at Attachment) error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	cur := a.Nodes(id)
	for _, o := range cur {
		if o.NodeID == at.NodeID {
			if o.ReadOnly != at.ReadOnly {
				return ErrPublishConflict
			}
			return nil
		}
		if o.Single || at.Single {
			return fmt.Errorf("%w (%s)", ErrPublishedElsewhere, o.NodeID)
		}
	}
	return a.set(id, append(cur, at))
}

// Unpublish removes node nodeID ("" = every node) from volume id's list.
func (a *Access) Unpublish(id, nodeID string) error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	cur := a.Nodes(id)
	next := slices.DeleteFunc(slices.Clone(cur), func(o Attachment) bool { return nodeID == "" || o.NodeID == nodeID })
	if len(next) == len(cur) {
		return nil
	}
	return a.set(id, next)
}

// Prune drops the lists of volumes that no longer exist (a publish that
// raced with a delete); call it at startup.
func (a *Access) Prune(exists func(id string) bool) error {
	a.mu.RLock()
	var gone []string
	for id := range a.byVol {
		if !exists(id) {
			gone = append(gone, id)
		}
	}
	a.mu.RUnlock()
	for _, id := range gone {
		if err := a.Forget(id); err != nil {
			return err
		}
	}
	return nil
}

// Forget drops volume id's list (the volume was deleted and unexported).
func (a *Access) Forget(id string) error {
	if err := a.Unpublish(id, ""); err != nil {
		return err
	}
	// A policy still held by an export would now deny everyone.
	a.mu.Lock()
	delete(a.grants, id)
	a.mu.Unlock()
	return nil
}

// Policy is the NFS access policy of volume id's export: it grants the
// addresses of the nodes the volume is published to, read-only where the
// publication is, and follows Publish and Unpublish from the next call on.
// Nil (every client read-write) when not enforcing.
func (a *Access) Policy(id string) vfs.Policy {
	if !a.enforce {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	t := a.grants[id]
	if t == nil {
		t = &grantTable{}
		t.m.Store(grantsOf(a.byVol[id]))
		a.grants[id] = t
	}
	return t.grant
}

func (a *Access) set(id string, list []Attachment) error {
	p := filepath.Join(a.dir, id+".json")
	if len(list) == 0 {
		err := os.Remove(p)
		if err == nil {
			err = fileutil.SyncDir(a.dir)
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("access list of %s: %w", id, err)
		}
	} else if err := writeJSON(p, list); err != nil {
		return fmt.Errorf("access list of %s: %w", id, err)
	}
	a.mu.Lock()
	if len(list) == 0 {
		delete(a.byVol, id)
	} else {
		a.byVol[id] = list
	}
	if t := a.grants[id]; t != nil {
		t.m.Store(grantsOf(list))
	}
	a.mu.Unlock()
	return nil
}

// writeJSON writes v to p as indented JSON, durably.
func writeJSON(p string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return fileutil.WriteFileAtomic(p, append(b, '\n'), 0o600)
}
