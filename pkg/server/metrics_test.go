package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/hangar-csi/hangar/pkg/metrics"
	"github.com/hangar-csi/hangar/pkg/nfs/nfsclient"
	"github.com/hangar-csi/hangar/pkg/vfs"
)

// scrape fetches /metrics and returns the value of every sample.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("scrape: %v %s", err, resp.Status)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

// TestMetricsMove runs a small workload over NFS and checks that the
// scraped counters and gauges follow it.
func TestMetricsMove(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	reg := metrics.NewRegistry()
	srv, err := New(Options{DataDir: filepath.Join(t.TempDir(), "data"), Name: "t", NFSListen: "127.0.0.1:0", APIListen: "127.0.0.1:0", Log: logr.Discard(), Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve() }()
	defer func() {
		srv.Close()
		<-errc
	}()
	ml, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go metrics.ServeListener(ctx, ml, reg, logr.Discard())
	url := "http://" + ml.Addr().String() + "/metrics"
	conn, err := grpc.NewClient("passthrough:///"+srv.APIAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	v := createWith(t, csi.NewControllerClient(conn), "m", 1<<20, nil)
	id := v.VolumeId

	before := scrape(t, url)
	nc, err := nfsclient.Dial(ctx, srv.NFSListenAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetCred(authSys(1000, 1000))
	root, err := nc.Mount(ctx, "/"+id)
	if err != nil {
		t.Fatal(err)
	}
	h, err := nc.Create(ctx, root, "f", 0o644, vfs.CreateGuarded)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 100<<10)
	for i := 0; i < 3; i++ {
		if _, _, _, err := nc.Write(ctx, h, uint64(i*len(data)), data, vfs.Unstable); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, _, err := nc.Write(ctx, h, uint64(3*len(data)), make([]byte, 768<<10), vfs.Unstable); err == nil {
		t.Fatal("write past the capacity succeeded")
	}
	if _, _, err := nc.Read(ctx, h, 0, make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	after := scrape(t, url)

	sample := func(name, labels string) string { return fmt.Sprintf("%s{%s}", name, labels) }
	wantDelta := func(key string, min float64) {
		t.Helper()
		if d := after[key] - before[key]; d < min {
			t.Errorf("%s moved by %v, want at least %v", key, d, min)
		}
	}
	vol := `proc="WRITE",volume="` + id + `"`
	wantDelta(sample("hangar_nfs_ops_total", vol), 4)
	wantDelta(sample("hangar_nfs_op_errors_total", vol), 1)
	wantDelta(sample("hangar_nfs_op_duration_seconds_count", vol), 4)
	wantDelta(sample("hangar_nfs_ops_total", `proc="CREATE",volume="`+id+`"`), 1)
	wantDelta(sample("hangar_nfs_ops_total", `proc="MNT",volume="`+id+`"`), 1)
	wantDelta(sample("hangar_nfs_written_bytes_total", `volume="`+id+`"`), 300<<10)
	wantDelta(sample("hangar_nfs_read_bytes_total", `volume="`+id+`"`), 4096)
	wantDelta(`hangar_csi_calls_total{code="OK",component="server",method="/csi.v1.Controller/CreateVolume"}`, 0) // before the first scrape
	if after[`hangar_csi_calls_total{code="OK",component="server",method="/csi.v1.Controller/CreateVolume"}`] != 1 {
		t.Error("CreateVolume not counted")
	}
	if u := after[sample("hangar_volume_used_bytes", `volume="`+id+`"`)]; u < 300<<10 {
		t.Errorf("used bytes %v", u)
	}
	if c := after[sample("hangar_volume_capacity_bytes", `volume="`+id+`"`)]; c != 1<<20 {
		t.Errorf("capacity %v", c)
	}
	if after["hangar_nfs_connections"] != 1 || after["hangar_nfs_ops_in_flight"] != 0 {
		t.Errorf("connections %v, in flight %v", after["hangar_nfs_connections"], after["hangar_nfs_ops_in_flight"])
	}
}
