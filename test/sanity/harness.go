// Package sanity runs the CSI sanity suite (csi-test v5) against Hangar's
// real roles wired over real sockets: storage servers (NFS and management
// API on 127.0.0.1 TCP), the controller and the node plugin on unix
// sockets, either split (as in a cluster) or all on one socket (as in
// "hangar run"). The node uses the recording mounter (this host has no NFS
// client), but only after its real NFS probe (MOUNT + GETATTR) succeeded
// against the storage server.
//
// Ginkgo runs one suite per process, so each topology has its own test
// package: this one (split, two storage servers) and ./allinone.
package sanity

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"
	"google.golang.org/grpc"
	mount "k8s.io/mount-utils"

	"github.com/hangar-csi/hangar/pkg/csicommon"
	"github.com/hangar-csi/hangar/pkg/driver"
	"github.com/hangar-csi/hangar/pkg/endpoint"
	"github.com/hangar-csi/hangar/pkg/logging"
	"github.com/hangar-csi/hangar/pkg/server"
	"github.com/hangar-csi/hangar/test/sanity/skips"
)

// idGen makes volume IDs of Hangar's form on a configured server, which
// therefore reach the storage server and exercise its "not found" paths.
type idGen struct{}

var firstServer string

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (idGen) GenerateUniqueValidVolumeID() string { return csicommon.VolumeID(firstServer, randHex(8)) }
func (idGen) GenerateInvalidVolumeID() string     { return "not-a-hangar-volume-id" }
func (idGen) GenerateUniqueValidNodeID() string   { return "node-" + randHex(4) }
func (idGen) GenerateInvalidNodeID() string       { return "no-such-node" }

func listenAndServe(t *testing.T, g *grpc.Server, ep string) {
	t.Helper()
	l, err := endpoint.Listen(ep)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); g.Serve(l) }()
	t.Cleanup(func() { g.Stop(); <-done })
}

func testLogger(t *testing.T) logr.Logger {
	if os.Getenv("HANGAR_SANITY_LOG") != "" {
		return logging.New(os.Stderr, "text", 1)
	}
	return logr.Discard()
}

// Options choose the topology.
type Options struct {
	Servers  []string // storage server names; the first gets the IDGen's IDs
	AllInOne bool     // Identity, Controller and Node on one socket
}

// Run starts the topology and runs the sanity suite against it.
func Run(t *testing.T, o Options) {
	log := testLogger(t)
	dir := t.TempDir()
	firstServer = o.Servers[0]

	var refs []driver.ServerRef
	for _, name := range o.Servers {
		srv, err := server.New(server.Options{
			DataDir:   filepath.Join(dir, name),
			Name:      name,
			NFSListen: "127.0.0.1:0",
			APIListen: "127.0.0.1:0",
			Log:       log.WithName(name),
			// Exports admit only published nodes: the node's probe
			// (a real MOUNT from 127.0.0.1) then proves every publish.
			AccessControl: true,
		})
		if err != nil {
			t.Fatalf("starting storage server %s: %v", name, err)
		}
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve() }()
		t.Cleanup(func() {
			srv.Close()
			if err := <-errc; err != nil {
				t.Errorf("storage server %s: %v", name, err)
			}
		})
		refs = append(refs, driver.ServerRef{Name: name, Addr: srv.APIAddr()})
	}

	ctrl, err := driver.NewController(refs, log.WithName("controller"))
	if err != nil {
		t.Fatal(err)
	}
	// A per-node volume limit, so the attach-limit spec runs (and the
	// limit is enforced across both servers).
	const maxVolumes = 3
	ctrl.MaxVolumesPerNode = maxVolumes
	t.Cleanup(func() { ctrl.Close() })
	ctrlSock := "unix://" + filepath.Join(dir, "controller.sock")
	nodeSock := "unix://" + filepath.Join(dir, "node.sock")
	if o.AllInOne {
		nodeSock = ctrlSock
	}
	g := endpoint.NewGRPCServer(log.WithName("controller"))
	csi.RegisterIdentityServer(g, &driver.Identity{})
	csi.RegisterControllerServer(g, ctrl)
	csi.RegisterGroupControllerServer(g, ctrl.Group())

	// Count successful real probes, to prove every recorded mount was
	// preceded by real NFS traffic.
	var probes atomic.Int64
	mounts := int64(0)
	mounter := mount.NewFakeMounter(nil)
	probe := func(ctx context.Context, addr, export string) error {
		err := server.ProbeNFS(ctx, addr, export)
		if err == nil {
			probes.Add(1)
		}
		return err
	}
	node := &driver.Node{NodeID: csicommon.FormatNodeID("sanity-node", []netip.Addr{netip.MustParseAddr("127.0.0.1")}), Mounter: mounter, Probe: probe, MaxVolumesPerNode: maxVolumes}
	if o.AllInOne {
		csi.RegisterNodeServer(g, node)
	} else {
		ng := endpoint.NewGRPCServer(log.WithName("node"))
		csi.RegisterIdentityServer(ng, &driver.Identity{})
		csi.RegisterNodeServer(ng, node)
		listenAndServe(t, ng, nodeSock)
	}
	listenAndServe(t, g, ctrlSock)

	cfg := sanity.NewTestConfig()
	cfg.Address = nodeSock
	cfg.ControllerAddress = ctrlSock
	cfg.TargetPath = filepath.Join(dir, "target")
	cfg.StagingPath = filepath.Join(dir, "staging")
	cfg.TestVolumeSize = 64 << 20
	cfg.TestVolumeExpandSize = 128 << 20
	cfg.TestNodeVolumeAttachLimit = true
	// A VolumeAttributesClass: CreateVolume and ControllerModifyVolume get
	// these as mutable parameters.
	cfg.TestVolumeMutableParameters = map[string]string{csicommon.ParamRootSquash: "true", csicommon.ParamAnonUID: "1000"}
	cfg.IDGen = idGen{}
	var report ginkgo.Report
	ginkgo.ReportAfterSuite("hangar skip check", func(r ginkgo.Report) { report = r })
	sanity.Test(t, cfg)
	checkSkips(t, report)

	binds := 0
	for _, a := range mounter.GetLog() {
		if a.Action != mount.FakeActionMount {
			continue
		}
		// Stage mounts NFS (after a probe); publish bind-mounts the
		// staged mount, whose device the fake mounter then reports.
		if a.FSType == "nfs" {
			mounts++
		} else {
			binds++
		}
	}
	t.Logf("node recorded %d NFS mounts after %d successful NFS probes, and %d bind mounts", mounts, probes.Load(), binds)
	if mounts == 0 || probes.Load() < mounts {
		t.Errorf("recorded %d NFS mounts but only %d real NFS probes succeeded", mounts, probes.Load())
	}
	if binds == 0 {
		t.Errorf("no bind mount recorded: publish did not use the staged mount")
	}
}

// checkSkips prints the spec counts and fails the test for every skipped
// spec not in skips.Allowed.
func checkSkips(t *testing.T, r ginkgo.Report) {
	counts := map[types.SpecState]int{}
	for _, s := range r.SpecReports {
		if s.LeafNodeType != types.NodeTypeIt {
			continue
		}
		counts[s.State]++
		if s.State != types.SpecStateSkipped {
			continue
		}
		if skips.IsAllowed(s.FullText()) {
			t.Logf("skipped (allowed, see test/sanity/skips): %s", s.FullText())
		} else {
			t.Errorf("skipped: %s (%s): advertise the capability it needs, or explain it in test/sanity/skips", s.FullText(), s.Failure.Message)
		}
	}
	t.Logf("csi-sanity: passed=%d failed=%d skipped=%d pending=%d (pending: marked so by csi-test itself)",
		counts[types.SpecStatePassed], counts[types.SpecStateFailed]+counts[types.SpecStatePanicked]+counts[types.SpecStateTimedout],
		counts[types.SpecStateSkipped], counts[types.SpecStatePending])
	if len(r.SpecReports) == 0 {
		t.Error("csi-sanity reported no specs")
	}
}
