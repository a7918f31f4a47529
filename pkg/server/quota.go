package server

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"

	"github.com/hangar-csi/hangar/pkg/csicommon"
	"github.com/hangar-csi/hangar/pkg/fileutil"
	"github.com/hangar-csi/hangar/pkg/server/api"
	"github.com/hangar-csi/hangar/pkg/vfs"
	"github.com/hangar-csi/hangar/pkg/volume"
	"github.com/hangar-csi/hangar/pkg/volume/localfs"
)

// volumes exports volume directories with their capacity and identity
// policy (api.Exporter) and is the StorageAPI's live view of usage
// (api.Quota).
type volumes struct {
	fs         *localfs.FS
	store      *volume.Store
	usageDir   string // DATA/usage/<id>.json: usage saved at shutdown
	overcommit float64
	log        logr.Logger
	onRemove   func(id string) // drops a removed volume's metrics
	// trustSaved is set while exporting at startup after a clean shutdown:
	// saved usage is exact then, and taken instead of scanning.
	trustSaved bool
}

var (
	_ api.Exporter = (*volumes)(nil)
	_ api.Quota    = (*volumes)(nil)
	_ api.Freezer  = (*volumes)(nil)
)

func newVolumes(fs *localfs.FS, store *volume.Store, overcommit float64, log logr.Logger) (*volumes, error) {
	if overcommit == 0 {
		overcommit = 1
	}
	if overcommit < 1 || math.IsNaN(overcommit) || math.IsInf(overcommit, 0) {
		return nil, fmt.Errorf("overcommit ratio %v: want a number >= 1", overcommit)
	}
	dir := filepath.Join(store.Dir(), "usage")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("usage directory: %w", err)
	}
	if err := fileutil.RemoveTemps(dir); err != nil {
		return nil, fmt.Errorf("usage directory: %w", err)
	}
	return &volumes{fs: fs, store: store, usageDir: dir, overcommit: overcommit, log: log}, nil
}

func (x *volumes) usageFile(id string) string { return filepath.Join(x.usageDir, id+".json") }

// Startup after a clean shutdown takes every volume's usage from its saved
// file instead of scanning every file of every volume (at 100,000 volumes
// with data, minutes). A saved usage is exact only if the server stopped
// cleanly: it is written when the file system closes, after the last NFS
// call. So a clean shutdown ends by making the usage files durable and then
// writing cleanMarker; startup removes the marker (durably, before any
// client can change a volume) and trusts the files only if it was there.
// After a crash there is no marker and every volume is scanned, as before.
const cleanMarker = "clean-shutdown"

// takeClean reports whether the last shutdown was clean, and removes the
// marker so that a crash from now on is not taken for one.
func (x *volumes) takeClean() (bool, error) {
	p := filepath.Join(x.usageDir, cleanMarker)
	err := os.Remove(p)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err == nil {
		err = fileutil.SyncDir(x.usageDir)
	}
	if err != nil {
		return false, fmt.Errorf("usage directory: %w", err)
	}
	return true, nil
}

// markClean records a clean shutdown; call it once the file system has
// closed (and saved every volume's usage).
func (x *volumes) markClean() error {
	d, err := os.Open(x.usageDir)
	if err != nil {
		return err
	}
	defer d.Close()
	// One syncfs makes every usage file (written without fsync) durable.
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return fmt.Errorf("syncing usage files: %w", err)
	}
	return fileutil.WriteFileAtomic(filepath.Join(x.usageDir, cleanMarker), nil, 0o600)
}

// exportConfig is the localfs policy of volume v.
func exportConfig(v volume.Volume) (localfs.ExportConfig, error) {
	p, err := csicommon.ParseVolumeParams(csicommon.EffectiveParameters(v.Parameters, v.MutableParameters))
	if err != nil {
		return localfs.ExportConfig{}, err
	}
	return localfs.ExportConfig{
		MaxBytes:   uint64(max(v.CapacityBytes, 0)),
		MaxInodes:  p.InodeLimit(v.CapacityBytes),
		RootSquash: p.RootSquash,
		AnonUID:    p.AnonUID,
		AnonGID:    p.AnonGID,
	}, nil
}

// AddExport exports the volume under access policy p and applies its
// export config, scanning its usage.
func (x *volumes) AddExport(path, dir, id string, p vfs.Policy) error {
	v, err := x.store.Get(id)
	if err != nil {
		return fmt.Errorf("exporting %s: %w", id, err)
	}
	cfg, err := exportConfig(v)
	if err != nil {
		return fmt.Errorf("volume %s: %w", id, err)
	}
	cfg.UsageFile = x.usageFile(id)
	if x.trustSaved {
		if u, err := localfs.LoadUsage(cfg.UsageFile); err == nil {
			cfg.Saved = &u
		}
	}
	if err := x.fs.AddExport(path, dir, id, p); err != nil {
		return err
	}
	if err := x.fs.Configure(path, cfg); err != nil {
		x.fs.RemoveExport(path)
		return err
	}
	if u, err := x.fs.Usage(path); err == nil {
		x.log.V(1).Info("volume exported", "volumeID", id, "usedBytes", u.Bytes, "maxBytes", u.MaxBytes, "inodes", u.Inodes, "maxInodes", u.MaxInodes, "rootSquash", cfg.RootSquash)
	}
	return nil
}

// RemoveExport stops exporting; the saved usage goes with it (a volume
// exported again is scanned anyway).
func (x *volumes) RemoveExport(path string) error {
	err := x.fs.RemoveExport(path)
	if id := strings.TrimPrefix(path, "/"); volume.ValidID(id) {
		if x.onRemove != nil {
			x.onRemove(id)
		}
		if rerr := os.Remove(x.usageFile(id)); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			x.log.Error(rerr, "removing saved usage", "volumeID", id)
		}
	}
	return err
}

// Freeze holds every change to volumes ids over NFS until thaw.
func (x *volumes) Freeze(ids ...string) (thaw func(), err error) {
	paths := make([]string, len(ids))
	for i, id := range ids {
		paths[i] = csicommon.ExportPath(id)
	}
	return x.fs.Freeze(paths...)
}

// SetCapacity raises the live export's limits (the inode limit too, when
// it follows the capacity).
func (x *volumes) SetCapacity(id string, capacity int64) error {
	v, err := x.store.Get(id)
	if err != nil {
		return err
	}
	p, err := csicommon.ParseVolumeParams(csicommon.EffectiveParameters(v.Parameters, v.MutableParameters))
	if err != nil {
		return err
	}
	return x.fs.SetLimits(csicommon.ExportPath(id), uint64(capacity), p.InodeLimit(capacity))
}

// ApplyPolicy applies volume id's recorded policy (after Modify) to its
// live export: limits and root squash, with no rescan.
func (x *volumes) ApplyPolicy(id string) error {
	v, err := x.store.Get(id)
	if err != nil {
		return err
	}
	cfg, err := exportConfig(v)
	if err != nil {
		return err
	}
	path := csicommon.ExportPath(id)
	if err := x.fs.SetLimits(path, cfg.MaxBytes, cfg.MaxInodes); err != nil {
		return err
	}
	return x.fs.SetSquash(path, cfg.RootSquash, cfg.AnonUID, cfg.AnonGID)
}

func (x *volumes) Usage(id string) (csicommon.VolumeUsage, error) {
	u, err := x.fs.Usage(csicommon.ExportPath(id))
	if err != nil {
		return csicommon.VolumeUsage{}, err
	}
	return csicommon.VolumeUsage{Bytes: u.Bytes, Inodes: u.Inodes, MaxBytes: u.MaxBytes, MaxInodes: u.MaxInodes}, nil
}

// Available is what may still be promised when promised bytes already
// are: the space volumes can use (free disk plus what volumes already use
// of their capacity) times the overcommit ratio, minus the promises. With
// ratio 1, the unused part of every promise is backed by free disk. It
// costs one statfs, whatever the number of volumes.
func (x *volumes) Available(promised int64) (int64, error) {
	free, err := x.store.DiskFree()
	if err != nil {
		return 0, err
	}
	used := float64(x.fs.CommittedBytes())
	avail := (float64(free)+used)*x.overcommit - float64(promised)
	if avail <= 0 {
		return 0, nil
	}
	return int64(min(avail, math.MaxInt64/2)), nil
}
