package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/hangar-csi/hangar/pkg/csicommon"
	"github.com/hangar-csi/hangar/pkg/driver"
	"github.com/hangar-csi/hangar/pkg/endpoint"
)

func volumeCmd(fs *flag.FlagSet) func(context.Context, logr.Logger, []string) error {
	csiEndpoint := fs.String("csi-endpoint", "unix://./hangar-data/csi.sock", "CSI endpoint of a running controller (hangar run or hangar controller)")
	size := fs.String("size", "1Gi", "capacity for create and expand (bytes, or with a suffix Ki Mi Gi Ti, K M G T)")
	timeout := fs.Duration("timeout", 30*time.Second, "timeout of the call")
	params := paramFlag{}
	fs.Var(params, "param", "StorageClass parameter for create, as key=value (repeatable), e.g. --param rootSquash=true")
	return func(ctx context.Context, log logr.Logger, args []string) error {
		if len(args) == 0 {
			return usagef("missing action: create, list, get, expand, delete, snapshot, snapshots, delete-snapshot, restore or clone")
		}
		action, args := args[0], args[1:]
		want := map[string]int{"create": 1, "list": 0, "get": 1, "expand": 1, "delete": 1,
			"snapshot": 2, "snapshots": 0, "delete-snapshot": 1, "restore": 2, "clone": 2}
		n, ok := want[action]
		if !ok {
			return usagef("unknown action %q", action)
		}
		if action == "snapshots" && len(args) == 1 {
			n = 1 // optional source volume
		}
		if len(args) != n {
			return usagef("%s takes %d argument(s), got %d", action, n, len(args))
		}
		sizeSet := false
		fs.Visit(func(f *flag.Flag) { sizeSet = sizeSet || f.Name == "size" })
		target, err := endpoint.DialTarget(*csiEndpoint)
		if err != nil {
			return err
		}
		conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer conn.Close()
		c := csi.NewControllerClient(conn)
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		out := stdoutOf(ctx)
		switch action {
		case "create":
			bytes, err := parseSize(*size)
			if err != nil {
				return usagef("--size: %v", err)
			}
			resp, err := c.CreateVolume(ctx, &csi.CreateVolumeRequest{
				Name:          args[0],
				CapacityRange: &csi.CapacityRange{RequiredBytes: bytes},
				Parameters:    params,
				VolumeCapabilities: []*csi.VolumeCapability{{
					AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
					AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER},
				}},
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "created volume %s\n", resp.Volume.VolumeId)
			printVolume(out, resp.Volume, usedBytes(ctx, conn, resp.Volume.VolumeId))
		case "list":
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tVOLUME ID\tUSED\tCAPACITY\tNFS ADDRESS\tEXPORT")
			token := ""
			for {
				resp, err := c.ListVolumes(ctx, &csi.ListVolumesRequest{StartingToken: token, MaxEntries: 100})
				if err != nil {
					return err
				}
				for _, e := range resp.Entries {
					v := e.Volume
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", orDash(v.VolumeContext[csicommon.ContextName]), v.VolumeId, usedBytes(ctx, conn, v.VolumeId),
						csicommon.FormatBytes(v.CapacityBytes), v.VolumeContext[csicommon.ContextAddress], v.VolumeContext[csicommon.ContextExport])
				}
				if token = resp.NextToken; token == "" {
					break
				}
			}
			tw.Flush()
		case "get":
			// A volume ID, or else the name it was created with.
			var v *csi.Volume
			if _, _, perr := csicommon.ParseVolumeID(args[0]); perr == nil {
				resp, err := c.ControllerGetVolume(ctx, &csi.ControllerGetVolumeRequest{VolumeId: args[0]})
				if err != nil {
					return err
				}
				v = resp.Volume
			} else if v, err = csicommon.GetVolumeByName(ctx, conn, args[0]); err != nil {
				return err
			}
			printVolume(out, v, usedBytes(ctx, conn, v.VolumeId))
		case "expand":
			bytes, err := parseSize(*size)
			if err != nil {
				return usagef("--size: %v", err)
			}
			resp, err := c.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: args[0], CapacityRange: &csi.CapacityRange{RequiredBytes: bytes}})
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "volume %s now has %s (%d bytes)\n", args[0], csicommon.FormatBytes(resp.CapacityBytes), resp.CapacityBytes)
		case "delete":
			if _, err := c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: args[0]}); err != nil {
				return err
			}
			fmt.Fprintf(out, "deleted volume %s\n", args[0])
		case "snapshot":
			resp, err := c.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{SourceVolumeId: args[0], Name: args[1]})
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "snapshot %s of volume %s (%s, ready: %v)\n", resp.Snapshot.SnapshotId, args[0], csicommon.FormatBytes(resp.Snapshot.SizeBytes), resp.Snapshot.ReadyToUse)
		case "snapshots":
			req := &csi.ListSnapshotsRequest{MaxEntries: 100}
			if len(args) == 1 {
				req.SourceVolumeId = args[0]
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SNAPSHOT ID\tSOURCE VOLUME\tSIZE\tCREATED\tREADY\tGROUP")
			for {
				resp, err := c.ListSnapshots(ctx, req)
				if err != nil {
					return err
				}
				for _, e := range resp.Entries {
					sn := e.Snapshot
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\n", sn.SnapshotId, sn.SourceVolumeId, csicommon.FormatBytes(sn.SizeBytes),
						sn.CreationTime.AsTime().Format(time.RFC3339), sn.ReadyToUse, sn.GroupSnapshotId)
				}
				if req.StartingToken = resp.NextToken; req.StartingToken == "" {
					break
				}
			}
			tw.Flush()
		case "delete-snapshot":
			if _, err := c.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: args[0]}); err != nil {
				return err
			}
			fmt.Fprintf(out, "deleted snapshot %s\n", args[0])
		case "restore", "clone":
			src := &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: args[0]}}}
			if action == "clone" {
				src = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: args[0]}}}
			}
			req := &csi.CreateVolumeRequest{
				Name:                args[1],
				Parameters:          params,
				VolumeContentSource: src,
				VolumeCapabilities: []*csi.VolumeCapability{{
					AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
					AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER},
				}},
			}
			// Without --size the server makes it as large as the contents
			// need (at least the default).
			if sizeSet {
				bytes, err := parseSize(*size)
				if err != nil {
					return usagef("--size: %v", err)
				}
				req.CapacityRange = &csi.CapacityRange{RequiredBytes: bytes}
			}
			resp, err := c.CreateVolume(ctx, req)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "created volume %s from %s\n", resp.Volume.VolumeId, args[0])
			printVolume(out, resp.Volume, usedBytes(ctx, conn, resp.Volume.VolumeId))
		}
		return nil
	}
}

func printVolume(out io.Writer, v *csi.Volume, used string) {
	addr, export := v.VolumeContext[csicommon.ContextAddress], v.VolumeContext[csicommon.ContextExport]
	fmt.Fprintf(out, "  name:      %s\n  id:        %s\n  capacity:  %s (%d bytes)\n  used:      %s\n  server:    %s\n  nfs:       %s\n  export:    %s\n",
		orDash(v.VolumeContext[csicommon.ContextName]), v.VolumeId, csicommon.FormatBytes(v.CapacityBytes), v.CapacityBytes, used,
		v.VolumeContext[csicommon.ContextServer], addr, export)
	if source, port, err := driver.MountSource(addr, export); err == nil {
		vers := v.VolumeContext[csicommon.ContextNFSVersion]
		if vers == "" {
			vers = csicommon.DefaultNFSVersion
		}
		fmt.Fprintf(out, "mount it with:\n  mount -t nfs -o %s %s /mnt\n", strings.Join(driver.MountOptions(vers, port), ","), source)
	}
}

// usedBytes is the volume's live usage for display, or "-" when its server
// cannot tell (volumes created before names were recorded show "-" as
// their name, too).
func usedBytes(ctx context.Context, cc grpc.ClientConnInterface, id string) string {
	u, err := csicommon.GetVolumeUsage(ctx, cc, id)
	if err != nil {
		return "-"
	}
	for _, e := range u.GetUsage() {
		if e.GetUnit() == csi.VolumeUsage_BYTES {
			return csicommon.FormatBytes(e.GetUsed())
		}
	}
	return "-"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// parseSize parses "1Gi", "512Mi", "10G", "4096".
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{
		{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
		{"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"", 1},
	}
	for _, u := range units {
		num, ok := strings.CutSuffix(s, u.suffix)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("%q is not a positive size", s)
		}
		if n > (1<<63-1)/u.mult {
			return 0, fmt.Errorf("%q is too large", s)
		}
		return n * u.mult, nil
	}
	return 0, fmt.Errorf("%q is not a size", s)
}

// paramFlag collects repeated --param key=value flags.
type paramFlag map[string]string

func (p paramFlag) String() string { return "" }

func (p paramFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", v)
	}
	p[k] = val
	return nil
}
