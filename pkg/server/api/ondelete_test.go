package api

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hangar-csi/hangar/pkg/csicommon"
)

func TestOnDelete(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []string{"delete", "retain", "archive"} {
		t.Run(mode, func(t *testing.T) {
			a := newTestAPI(t, "a")
			req := createReq("pvc-x", 1<<20)
			req.Parameters = map[string]string{csicommon.ParamOnDelete: mode, "csi.storage.k8s.io/pvc/namespace": "ns", "csi.storage.k8s.io/pvc/name": "data"}
			v, err := a.CreateVolume(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			id := v.Volume.VolumeId
			if err := os.WriteFile(filepath.Join(a.Store.VolumeDir(id), "f"), []byte("kept"), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := a.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
				t.Fatal(err)
			}
			if _, err := a.Store.Get(id); err == nil {
				t.Fatal("volume still exists")
			}
			root := a.Store.Dir()
			kept, _ := filepath.Glob(filepath.Join(root, "*", "*", "f"))
			switch mode {
			case "delete":
				if len(kept) != 0 {
					t.Fatalf("data kept: %v", kept)
				}
			case "retain":
				if len(kept) != 1 || kept[0] != filepath.Join(root, "retained", id, "f") {
					t.Fatalf("kept %v, want retained/%s/f", kept, id)
				}
			case "archive":
				if len(kept) != 1 || !strings.HasPrefix(kept[0], filepath.Join(root, "archive", "ns_data_"+id+"_")) {
					t.Fatalf("kept %v, want archive/ns_data_%s_<time>/f", kept, id)
				}
				if _, err := os.Stat(filepath.Dir(kept[0]) + ".json"); err != nil {
					t.Fatalf("archived record: %v", err)
				}
			}
		})
	}
	err := csicommon.ValidateParameters(map[string]string{csicommon.ParamOnDelete: "shred"})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "shred") {
		t.Fatalf("onDelete=shred: %v", err)
	}
}
