package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// csiMain is a minimal container-orchestrator stand-in for one node:
//
//	csi wait                                  until the plugin answers Probe and NodeGetInfo
//	csi publish --volume-id ID --target DIR --context JSON [--rewrite OLD=NEW]
//	csi unpublish --volume-id ID --target DIR
//
// publish stages first when the plugin has STAGE_UNSTAGE_VOLUME, as a CO would.
// --rewrite replaces OLD by NEW in every volume-context value: the host's
// server address (127.0.0.1:P) is 10.0.2.100:P from inside the guest.
func csiMain(args []string) error {
	if len(args) < 1 {
		return errors.New("usage: csi wait|publish|unpublish [flags]")
	}
	fs := flag.NewFlagSet("csi "+args[0], flag.ExitOnError)
	endpoint := fs.String("endpoint", os.Getenv("CSI_ENDPOINT"), "unix:///path of the node plugin socket")
	volID := fs.String("volume-id", "", "volume id")
	target := fs.String("target", "", "target path")
	ctxJSON := fs.String("context", "{}", "volume context as a JSON object")
	rewrite := fs.String("rewrite", "", "OLD=NEW substitution applied to volume-context values")
	mountFlags := fs.String("mount-flags", "", "comma-separated mount flags for the volume capability")
	readonly := fs.Bool("readonly", false, "publish read-only")
	timeout := fs.Duration("timeout", 60*time.Second, "overall deadline")
	fs.Parse(args[1:])
	if *endpoint == "" {
		return errors.New("no --endpoint and no $CSI_ENDPOINT")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	conn, err := grpc.NewClient(*endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("dial %s: %w", *endpoint, err)
	}
	defer conn.Close()
	node := csi.NewNodeClient(conn)

	if args[0] == "wait" {
		return csiWait(ctx, conn)
	}
	if *volID == "" || *target == "" {
		return errors.New("--volume-id and --target are required")
	}
	volCtx := map[string]string{}
	if err := json.Unmarshal([]byte(*ctxJSON), &volCtx); err != nil {
		return fmt.Errorf("--context: %w", err)
	}
	if old, repl, ok := strings.Cut(*rewrite, "="); ok && old != "" {
		for k, v := range volCtx {
			volCtx[k] = strings.ReplaceAll(v, old, repl)
		}
	}
	stage, err := hasStage(ctx, node)
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(*volID))
	staging := filepath.Join("/run/e2e-staging", hex.EncodeToString(sum[:8]))
	var flags []string
	if *mountFlags != "" {
		flags = strings.Split(*mountFlags, ",")
	}
	capab := &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: "nfs", MountFlags: flags}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER},
	}

	switch args[0] {
	case "publish":
		// The CO owns the parent directories; the plugin owns the leaves.
		if err := os.MkdirAll(filepath.Dir(*target), 0o755); err != nil {
			return err
		}
		stagingPath := ""
		if stage {
			if err := os.MkdirAll(staging, 0o755); err != nil {
				return err
			}
			_, err := node.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{
				VolumeId: *volID, StagingTargetPath: staging, VolumeCapability: capab, VolumeContext: volCtx,
			})
			if err != nil {
				return fmt.Errorf("NodeStageVolume: %w", err)
			}
			stagingPath = staging
		}
		_, err := node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{
			VolumeId: *volID, StagingTargetPath: stagingPath, TargetPath: *target,
			VolumeCapability: capab, Readonly: *readonly, VolumeContext: volCtx,
		})
		if err != nil {
			return fmt.Errorf("NodePublishVolume: %w", err)
		}
		fmt.Printf("published %s at %s (staged=%v)\n", *volID, *target, stage)
	case "unpublish":
		if _, err := node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: *volID, TargetPath: *target}); err != nil {
			return fmt.Errorf("NodeUnpublishVolume: %w", err)
		}
		if stage {
			if _, err := node.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: *volID, StagingTargetPath: staging}); err != nil {
				return fmt.Errorf("NodeUnstageVolume: %w", err)
			}
		}
		fmt.Printf("unpublished %s from %s\n", *volID, *target)
	default:
		return fmt.Errorf("unknown csi command %q", args[0])
	}
	return nil
}

func hasStage(ctx context.Context, node csi.NodeClient) (bool, error) {
	resp, err := node.NodeGetCapabilities(ctx, &csi.NodeGetCapabilitiesRequest{})
	if err != nil {
		return false, fmt.Errorf("NodeGetCapabilities: %w", err)
	}
	for _, c := range resp.GetCapabilities() {
		if c.GetRpc().GetType() == csi.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME {
			return true, nil
		}
	}
	return false, nil
}

// csiWait polls until the plugin is ready; the socket appears a little
// after the process starts.
func csiWait(ctx context.Context, conn *grpc.ClientConn) error {
	id := csi.NewIdentityClient(conn)
	node := csi.NewNodeClient(conn)
	var last error
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		p, err := id.Probe(pctx, &csi.ProbeRequest{})
		if err == nil && (p.GetReady() == nil || p.GetReady().GetValue()) {
			var info *csi.NodeGetInfoResponse
			info, err = node.NodeGetInfo(pctx, &csi.NodeGetInfoRequest{})
			if err == nil {
				cancel()
				fmt.Printf("node ready: id=%s\n", info.GetNodeId())
				return nil
			}
		}
		cancel()
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("plugin not ready: %v", last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
