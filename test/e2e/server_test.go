package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// hostServer is `hangar server` on the host: NFS on 127.0.0.1:nfsPort and
// its management API (the CSI Controller service over gRPC) on apiPort.
type hostServer struct {
	a                artifacts
	logDir, data     string
	nfsPort, apiPort int
	p                *proc
	starts           int
	extra            []string // more `hangar server` flags
	// nfsVersion, if set, is the StorageClass parameter nfsVersion of
	// every volume the test creates; unset, volumes get the default.
	nfsVersion string
	cc         *grpc.ClientConn
	ctrl       csi.ControllerClient
}

// startHostServer starts `hangar server` with a fresh data dir; extra flags
// are appended to its command line.
func startHostServer(t *testing.T, a artifacts, logDir string, extra ...string) *hostServer {
	t.Helper()
	s := &hostServer{a: a, logDir: logDir, data: t.TempDir(), nfsPort: freePort(t), apiPort: freePort(t), extra: extra}
	s.start(t)
	cc, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", s.apiPort), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	s.cc, s.ctrl = cc, csi.NewControllerClient(cc)
	return s
}

func (s *hostServer) nfsAddr() string { return fmt.Sprintf("127.0.0.1:%d", s.nfsPort) }

// start (re)starts the server on the same data dir and ports.
func (s *hostServer) start(t *testing.T) {
	t.Helper()
	s.starts++
	argv := []string{s.a.hangar, "server",
		"--data", s.data, "--nfs-listen", s.nfsAddr(), "--api-listen", fmt.Sprintf("127.0.0.1:%d", s.apiPort),
		// Guests reach the host's loopback port at 10.0.2.100 (guestfwd).
		"--advertise", fmt.Sprintf("%s:%d", guestHost, s.nfsPort)}
	s.p = startProc(t, s.logDir, fmt.Sprintf("hangar-server.%d", s.starts), append(argv, s.extra...)...)
	for _, addr := range []string{s.nfsAddr(), fmt.Sprintf("127.0.0.1:%d", s.apiPort)} {
		if err := waitTCP(addr, 30*time.Second, s.p.alive); err != nil {
			t.Fatalf("hangar server: %v", err)
		}
	}
}

// params adds the server's nfsVersion to a volume's StorageClass
// parameters p.
func (s *hostServer) params(p map[string]string) map[string]string {
	if s.nfsVersion == "" {
		return p
	}
	out := map[string]string{"nfsVersion": s.nfsVersion}
	for k, v := range p {
		out[k] = v
	}
	return out
}

func (s *hostServer) createVolume(t *testing.T, name string) *csi.Volume {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := s.ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{
		Name:          name,
		CapacityRange: &csi.CapacityRange{RequiredBytes: 1 << 30},
		Parameters:    s.params(nil),
		VolumeCapabilities: []*csi.VolumeCapability{{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER},
		}},
	})
	if err != nil {
		t.Fatalf("CreateVolume %s: %v", name, err)
	}
	v := resp.GetVolume()
	t.Logf("volume %s: id=%s context=%v", name, v.GetVolumeId(), v.GetVolumeContext())
	return v
}

func (s *hostServer) listVolumes(t *testing.T) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ids := map[string]bool{}
	req := &csi.ListVolumesRequest{}
	for {
		resp, err := s.ctrl.ListVolumes(ctx, req)
		if err != nil {
			t.Fatalf("ListVolumes: %v", err)
		}
		for _, e := range resp.GetEntries() {
			ids[e.GetVolume().GetVolumeId()] = true
		}
		if resp.GetNextToken() == "" {
			return ids
		}
		req.StartingToken = resp.GetNextToken()
	}
}

// csiNFSVersions are the NFS versions every case that mounts through the
// node plugin runs over: v3 chosen by the StorageClass parameter, and
// v4.1 as the default (no parameter).
var csiNFSVersions = []struct{ name, param, want string }{
	{"v3", "3", "3"},
	{"v4.1", "", "4.1"},
}

// forEachNFSVersion runs f as one subtest per csiNFSVersions entry. f
// gets the nfsVersion parameter to give its server ("" for the default)
// and the guest environment naming the version its mounts must show
// (WANT_VERS, checked by publish in guest/lib.sh).
func forEachNFSVersion(t *testing.T, f func(t *testing.T, param string, env map[string]string)) {
	for _, v := range csiNFSVersions {
		t.Run(v.name, func(t *testing.T) {
			timeCase(t)
			f(t, v.param, map[string]string{"WANT_VERS": v.want})
		})
	}
}

// volEnv returns the guest environment describing v as PREFIX_ID and
// PREFIX_CTX (the volume context as JSON).
func volEnv(t *testing.T, env map[string]string, prefix string, v *csi.Volume) {
	t.Helper()
	b, err := json.Marshal(v.GetVolumeContext())
	if err != nil {
		t.Fatal(err)
	}
	env[prefix+"_ID"] = v.GetVolumeId()
	env[prefix+"_CTX"] = string(b)
}

// hostFileSHA finds the regular file called name under root (the server's
// data dir) and returns its SHA-256: the host's view of what a guest wrote.
func hostFileSHA(t *testing.T, root, name string) string {
	t.Helper()
	var found []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && d.Name() == name {
			found = append(found, p)
		}
		return nil
	})
	if len(found) != 1 {
		t.Fatalf("want exactly one %s under %s, found %v", name, root, found)
	}
	f, err := os.Open(found[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// guestSHA returns the checksum a guest printed as "E2E-SHA256 NAME SUM".
func guestSHA(t *testing.T, out, name string) string {
	t.Helper()
	var sum string
	for _, l := range grepLines(out, "E2E-SHA256 ") {
		var n, s string
		if _, err := fmt.Sscan(l[len("E2E-SHA256 "):], &n, &s); err == nil && filepath.Base(n) == name {
			sum = s
		}
	}
	if sum == "" {
		t.Fatalf("guest printed no checksum for %s", name)
	}
	return sum
}

func deleteVolumeErr(s *hostServer, id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := s.ctrl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id})
	return err
}
