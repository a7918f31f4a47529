package api

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hangar-csi/hangar/pkg/csicommon"
	"github.com/hangar-csi/hangar/pkg/fileutil"
	"github.com/hangar-csi/hangar/pkg/logging"
	"github.com/hangar-csi/hangar/pkg/volume"
)

// keepData moves volume v's directory aside when its onDelete parameter
// asks for it, leaving an empty directory for the store's Delete. The
// export must already be removed.
func keepData(st *volume.Store, v volume.Volume) (kept string, err error) {
	mode := v.Parameters[csicommon.ParamOnDelete]
	var dest string
	switch mode {
	case "", "delete":
		return "", nil
	case "retain":
		dest = filepath.Join(st.Dir(), "retained", v.ID)
	case "archive":
		// The PVC's names are checked at CreateVolume, but records written
		// before that may hold anything: a name that is not a Kubernetes
		// name is left out, so dest stays one entry of DATA/archive.
		ns, pvc := v.Parameters[csicommon.ParamPVCNamespace], v.Parameters[csicommon.ParamPVCName]
		name := v.ID + "_" + time.Now().UTC().Format("20060102T150405Z")
		if csicommon.ValidDNSLabel(ns) && csicommon.ValidDNSSubdomain(pvc) {
			name = ns + "_" + pvc + "_" + name
		}
		dest = filepath.Join(st.Dir(), "archive", name)
	default:
		return "", fmt.Errorf("unknown %s mode %q", csicommon.ParamOnDelete, mode)
	}
	parent := filepath.Dir(dest)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return "", err
	}
	if err := writeJSON(dest+".json", v); err != nil {
		return "", err
	}
	src := st.VolumeDir(v.ID)
	if err := os.Rename(src, dest); err != nil {
		return "", err
	}
	// The store deletes by moving the volume's directory to its trash: give
	// it an empty one. A crash before this mkdir leaves a record without a
	// directory, which the store's Open repairs.
	if err := os.Mkdir(src, 0o755); err != nil {
		return "", err
	}
	if err := fileutil.SyncDir(parent); err != nil {
		return "", err
	}
	return dest, fileutil.SyncDir(filepath.Dir(src))
}

// keepOnDelete applies volume id's onDelete parameter before the store
// deletes it.
func (a *StorageAPI) keepOnDelete(ctx context.Context, id string) error {
	v, err := a.Store.Get(id)
	if err != nil {
		return nil // already gone: the store's Delete decides
	}
	kept, err := keepData(a.Store, v)
	if err != nil {
		return fmt.Errorf("keeping data (%s=%s): %w", csicommon.ParamOnDelete, v.Parameters[csicommon.ParamOnDelete], err)
	}
	if kept != "" {
		logging.FromContext(ctx).Info("volume data kept", "localID", id, "mode", v.Parameters[csicommon.ParamOnDelete], "dir", kept)
	}
	return nil
}
