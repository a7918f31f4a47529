package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func fetchMetrics(addr string) (string, bool) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err == nil && resp.StatusCode == 200
}

// TestNodeMetrics checks that --metrics-listen serves the CSI call
// counters of the node plugin.
func TestNodeMetrics(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "csi.sock")
	maddr := freePort(t)
	startCommand(t, "node", "--csi-endpoint", "unix://"+sock, "--node-id", "n1", "--mounter", "record", "--metrics-listen", maddr)
	waitFor(t, "CSI socket", func() bool { _, err := os.Stat(sock); return err == nil })
	waitFor(t, "metrics endpoint", func() bool { _, ok := fetchMetrics(maddr); return ok })
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := csi.NewNodeClient(conn).NodeGetCapabilities(context.Background(), &csi.NodeGetCapabilitiesRequest{}); err != nil {
		t.Fatal(err)
	}
	body, _ := fetchMetrics(maddr)
	want := `hangar_csi_calls_total{code="OK",component="node",method="/csi.v1.Node/NodeGetCapabilities"} 1`
	if !strings.Contains(body, want) {
		t.Fatalf("metrics lack %s", want)
	}
}
