package kubeletplugin

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"

	"github.com/hangar-csi/hangar/pkg/driver"
	"github.com/hangar-csi/hangar/pkg/kubeletplugin/kubelettest"
)

// startRegistrar serves a Registrar in dir; wait returns Serve's result.
func startRegistrar(t *testing.T, dir string) (socket string, cancel context.CancelFunc, wait func() error) {
	t.Helper()
	r := &Registrar{DriverName: "nfs.hangar.dev", Endpoint: "/var/lib/kubelet/plugins/nfs.hangar.dev/csi.sock", Log: logr.Discard(), CheckInterval: 20 * time.Millisecond}
	socket = SocketPath(dir, r.DriverName)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var err error
	go func() { err = r.Serve(ctx, socket); close(done) }()
	wait = func() error {
		select {
		case <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("Serve did not return")
			return nil
		}
	}
	t.Cleanup(func() { cancel(); <-done })
	kubelettest.WaitSocket(t, socket)
	return socket, cancel, wait
}

func TestRegistration(t *testing.T) {
	dir := t.TempDir()
	// A socket left by a previous run (or the sidecar) is replaced.
	stale, err := net.Listen("unix", SocketPath(dir, "nfs.hangar.dev"))
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()

	socket, cancel, wait := startRegistrar(t, dir)
	if filepath.Base(socket) != "nfs.hangar.dev-reg.sock" {
		t.Errorf("socket name %s", socket)
	}
	k := kubelettest.Dial(t, socket)
	ctx := context.Background()
	info, err := k.GetInfo(ctx, &registerapi.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Type != registerapi.CSIPlugin || info.Name != "nfs.hangar.dev" || info.Endpoint != "/var/lib/kubelet/plugins/nfs.hangar.dev/csi.sock" ||
		strings.Join(info.SupportedVersions, ",") != "1.0.0" {
		t.Errorf("GetInfo = %v", info)
	}
	if _, err := k.NotifyRegistrationStatus(ctx, &registerapi.RegistrationStatus{PluginRegistered: true}); err != nil {
		t.Fatal(err)
	}
	// Still serving after a successful registration (the kubelet calls
	// GetInfo again after its own restart).
	if _, err := k.GetInfo(ctx, &registerapi.InfoRequest{}); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := wait(); err != nil {
		t.Fatalf("Serve after cancel: %v", err)
	}
	if _, err := os.Lstat(socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind after shutdown: %v", err)
	}
}

func TestRegistrationFailureEndsServe(t *testing.T) {
	socket, _, wait := startRegistrar(t, t.TempDir())
	k := kubelettest.Dial(t, socket)
	if _, err := k.NotifyRegistrationStatus(context.Background(), &registerapi.RegistrationStatus{PluginRegistered: false, Error: "no NodeGetInfo"}); err != nil {
		t.Fatal(err)
	}
	if err := wait(); !errors.Is(err, ErrRegistrationFailed) || !strings.Contains(err.Error(), "no NodeGetInfo") {
		t.Fatalf("Serve = %v, want ErrRegistrationFailed with the kubelet's reason", err)
	}
	if _, err := os.Lstat(socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind after failure: %v", err)
	}
}

func TestRegistrationSocketRecreated(t *testing.T) {
	socket, _, _ := startRegistrar(t, t.TempDir())
	if err := os.Remove(socket); err != nil {
		t.Fatal(err)
	}
	// Any socket there now is a new one (its inode number may be reused).
	if _, err := kubelettest.Dial(t, socket).GetInfo(context.Background(), &registerapi.InfoRequest{}); err != nil {
		t.Fatalf("GetInfo on the re-created socket: %v", err)
	}
}

func TestRegistrationRefusesToReplaceAFile(t *testing.T) {
	dir := t.TempDir()
	socket := SocketPath(dir, "nfs.hangar.dev")
	if err := os.WriteFile(socket, []byte("not mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &Registrar{DriverName: "nfs.hangar.dev", Endpoint: "/x/csi.sock", Log: logr.Discard()}
	if err := r.Serve(context.Background(), socket); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Serve = %v", err)
	}
	if b, _ := os.ReadFile(socket); string(b) != "not mine" {
		t.Error("file replaced")
	}
	if err := (&Registrar{Log: logr.Discard()}).Serve(context.Background(), filepath.Join(dir, "y.sock")); err == nil {
		t.Error("Serve without driver name and endpoint accepted")
	}
}

func TestHealth(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "csi.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	csi.RegisterIdentityServer(g, &driver.Identity{})
	go g.Serve(l)
	defer g.Stop()

	h, err := NewHealth("unix://"+sock, 2*time.Second, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- ServeHealth(ctx, hl, h) }()
	get := func() (int, string) {
		resp, err := http.Get("http://" + hl.Addr().String() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(); code != http.StatusOK {
		t.Fatalf("healthy driver: %d %s", code, body)
	}
	g.Stop() // the driver's CSI server is gone
	if code, body := get(); code != http.StatusInternalServerError || !strings.Contains(body, "CSI Probe") {
		t.Fatalf("dead driver: %d %s", code, body)
	}
	cancel()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}
