package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"

	"github.com/hangar-csi/hangar/pkg/kubeletplugin"
	"github.com/hangar-csi/hangar/pkg/kubeletplugin/kubelettest"
)

func dial(t *testing.T, target string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestNodeRegistersWithKubelet walks through what the kubelet does with a
// node plugin that registers itself: find the socket in plugins_registry,
// GetInfo, dial the endpoint it names, NodeGetInfo, report success; and it
// probes /healthz as the kubelet's liveness probe does.
func TestNodeRegistersWithKubelet(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "csi.sock")
	regDir := filepath.Join(dir, "plugins_registry")
	haddr := freePort(t)
	startCommand(t, "node", "--csi-endpoint", "unix://"+sock, "--node-id", "n1", "--node-address", "10.0.2.15", "--mounter", "record",
		"--registration-dir", regDir, "--health-listen", haddr)
	regSock := filepath.Join(regDir, "nfs.hangar.dev-reg.sock")

	ctx := context.Background()
	k := kubelettest.Dial(t, regSock)
	info, err := k.GetInfo(ctx, &registerapi.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Type != registerapi.CSIPlugin || info.Name != "nfs.hangar.dev" || info.Endpoint != sock {
		t.Fatalf("GetInfo = %v; want a CSI plugin nfs.hangar.dev at %s", info, sock)
	}
	ni, err := csi.NewNodeClient(dial(t, "unix://"+info.Endpoint)).NodeGetInfo(ctx, &csi.NodeGetInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if ni.NodeId != "n1@10.0.2.15" {
		t.Errorf("NodeGetInfo node ID %q", ni.NodeId)
	}
	if _, err := k.NotifyRegistrationStatus(ctx, &registerapi.RegistrationStatus{PluginRegistered: true}); err != nil {
		t.Fatal(err)
	}

	var code int
	var body string
	waitFor(t, "health endpoint", func() bool {
		resp, err := http.Get("http://" + haddr + "/healthz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		code, body = resp.StatusCode, string(b)
		return true
	})
	if code != http.StatusOK {
		t.Fatalf("/healthz: %d %s", code, body)
	}
}

// TestNodeExitsWhenKubeletRefuses: a refused registration ends the node
// plugin with the kubelet's reason, so its container restarts.
func TestNodeExitsWhenKubeletRefuses(t *testing.T) {
	dir := t.TempDir()
	regDir := filepath.Join(dir, "reg")
	c := findCommand("node")
	fs, _ := newFlagSet(*c, io.Discard)
	act := c.flags(fs)
	if err := fs.Parse([]string{"--csi-endpoint", "unix://" + filepath.Join(dir, "csi.sock"), "--mounter", "record",
		"--registration-dir", regDir, "--kubelet-registration-path", "/var/lib/kubelet/plugins/nfs.hangar.dev/csi.sock"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- act(ctx, logr.Discard(), nil) }()
	regSock := filepath.Join(regDir, "nfs.hangar.dev-reg.sock")
	k := kubelettest.Dial(t, regSock)
	info, err := k.GetInfo(ctx, &registerapi.InfoRequest{})
	if err != nil || info.Endpoint != "/var/lib/kubelet/plugins/nfs.hangar.dev/csi.sock" {
		t.Fatalf("GetInfo = %v, %v", info, err)
	}
	if _, err := k.NotifyRegistrationStatus(ctx, &registerapi.RegistrationStatus{Error: "driver name already registered"}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, kubeletplugin.ErrRegistrationFailed) || !strings.Contains(err.Error(), "already registered") {
			t.Fatalf("node ended with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("node plugin kept running after the kubelet refused it")
	}
}

func TestNodeRegistrationFlags(t *testing.T) {
	var errb strings.Builder
	code := run([]string{"node", "--csi-endpoint", "tcp://127.0.0.1:0", "--mounter", "record", "--registration-dir", t.TempDir()}, io.Discard, &errb)
	if code != 2 || !strings.Contains(errb.String(), "--kubelet-registration-path") {
		t.Fatalf("node with a TCP endpoint and no registration path: exit %d, %s", code, errb.String())
	}
}
