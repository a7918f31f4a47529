package server

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hangar-csi/hangar/pkg/csicommon"
)

const (
	paramPVCNamespace = "csi.storage.k8s.io/pvc/namespace"
	paramPVCName      = "csi.storage.k8s.io/pvc/name"
)

// entriesOutside lists what exists in base besides the data directory.
func entriesOutside(t *testing.T, base string) []string {
	t.Helper()
	ents, err := os.ReadDir(base)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.Name() != "data" {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestArchiveNamesCannotEscape: the PVC namespace and name parameters end
// up in the archive directory's name, so "../" in them must not place
// anything outside the data directory: refused at CreateVolume, and
// dropped from the name for a record that already holds them.
func TestArchiveNamesCannotEscape(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	dir := filepath.Join(base, "data")
	_, c, stop := start(t, dir, "127.0.0.1:0")

	for key, bad := range map[string]string{
		paramPVCNamespace:            "../../escaped",
		paramPVCName:                 "x/../../../escaped",
		"csi.storage.k8s.io/pv/name": "..",
	} {
		params := map[string]string{csicommon.ParamOnDelete: "archive", paramPVCNamespace: "ns", paramPVCName: "data"}
		params[key] = bad
		_, err := c.CreateVolume(ctx, &csi.CreateVolumeRequest{
			Name:               "evil-" + strings.ReplaceAll(key, "/", "-"),
			Parameters:         params,
			VolumeCapabilities: []*csi.VolumeCapability{mountCapability()},
		})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), key) {
			t.Errorf("%s=%q: %v, want InvalidArgument naming the parameter", key, bad, err)
		}
	}

	// A record written before names were checked still holds one.
	v := createWith(t, c, "old", 1<<20, map[string]string{csicommon.ParamOnDelete: "archive", paramPVCNamespace: "ns", paramPVCName: "data"})
	stop()
	rec := filepath.Join(dir, "meta", v.VolumeId+".json")
	b, err := os.ReadFile(rec)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m["parameters"].(map[string]any)[paramPVCNamespace] = "../../.."
	m["parameters"].(map[string]any)[paramPVCName] = "escaped"
	if b, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rec, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, c, stop = start(t, dir, "127.0.0.1:0")
	defer stop()
	if _, err := c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: v.VolumeId}); err != nil {
		t.Fatal(err)
	}
	if out := entriesOutside(t, base); len(out) != 0 {
		t.Fatalf("DeleteVolume wrote %v outside the data directory", out)
	}
	kept, _ := filepath.Glob(filepath.Join(dir, "archive", v.VolumeId+"_*"))
	if len(kept) != 2 { // the directory and its record
		t.Fatalf("archive holds %v, want %s_<time> and its .json", kept, v.VolumeId)
	}
}

func mountCapability() *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}
}
