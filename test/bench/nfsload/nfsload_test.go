package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/hangar-csi/hangar/pkg/nfs"
	"github.com/hangar-csi/hangar/pkg/nfs/nfs4"
	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/vfs"
	"github.com/hangar-csi/hangar/pkg/vfs/vfstest"
)

func TestPatternDetectsCorruption(t *testing.T) {
	p := newPattern(42)
	buf := make([]byte, 3*pageSize)
	p.fill(buf, 5*pageSize)
	if err := p.check(buf, 5*pageSize); err != nil {
		t.Fatalf("check of what fill wrote: %v", err)
	}
	if err := p.check(buf, 6*pageSize); err == nil {
		t.Error("pages checked at the wrong offset passed")
	}
	// Offsets a whole base block apart share the random bytes: only the
	// stamp tells them apart.
	if err := p.check(buf, 5*pageSize+baseSize); err == nil {
		t.Error("pages one base block away passed")
	}
	bad := bytes.Clone(buf)
	bad[pageSize+100] ^= 1
	var ve *verifyError
	if err := p.check(bad, 5*pageSize); !errors.As(err, &ve) {
		t.Errorf("flipped bit: got %v, want a verifyError", err)
	}
	// A short tail (a short read) is checked as far as it goes.
	if err := p.check(buf[:pageSize+10], 5*pageSize); err != nil {
		t.Errorf("short tail: %v", err)
	}
}

// corruptFS flips one byte of every READ reply past the first page of a file.
type corruptFS struct{ vfs.FS }

func (f corruptFS) Read(ctx context.Context, c vfs.Cred, h vfs.Handle, off uint64, buf []byte) (int, bool, *vfs.Attr, error) {
	n, eof, a, err := f.FS.Read(ctx, c, h, off, buf)
	if n > pageSize {
		buf[pageSize+7] ^= 0x40
	}
	return n, eof, a, err
}

// serveMem serves fs with Hangar's protocol layer on a loopback port.
func serveMem(t *testing.T, fs vfs.FS) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := nfs.NewServer(fs, rpc.Options{Log: logr.Discard()}, nfs4.Options{})
	done := make(chan struct{})
	go func() { srv.Serve(l); close(done) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return l.Addr().String()
}

func smallConfig(addr string) loadConfig {
	return loadConfig{
		Addr: addr, MountAddr: addr, Export: "/",
		Conns: 2, Depth: 4, Size: 4 << 20,
		RandOps: 200, MetaFiles: 50, Handles: 100, GetattrOps: 300,
		PhaseTimeout: time.Minute, Seed: 7,
	}
}

func TestWorkloadsAgainstHangarProtocolLayer(t *testing.T) {
	m := vfstest.NewMemFS()
	m.AddExport("/")
	res := &result{Server: "memfs", Run: 1}
	if err := runLoad(smallConfig(serveMem(t, m)), res); err != nil {
		t.Fatalf("runLoad: %v (all errors: %q)", err, res.Errors)
	}
	for _, k := range []string{"seq_write_MiBps", "seq_read_MiBps", "rand_read_kIOPS", "rand_write_kIOPS",
		"meta_files_per_s", "readdirplus_kentries_per_s", "remove_ops_per_s", "getattr_kops"} {
		if v, ok := res.Metrics[k]; !ok || v <= 0 {
			t.Errorf("metric %s = %v, %v", k, v, ok)
		}
	}
	if res.Metrics["handles_created"] != 100 {
		t.Errorf("handles_created = %v, want 100", res.Metrics["handles_created"])
	}
	for _, p := range phaseOrder {
		if _, ok := res.PhaseS[p]; !ok {
			t.Errorf("no wall time for phase %s", p)
		}
	}
}

func TestCorruptReadFailsVerification(t *testing.T) {
	m := vfstest.NewMemFS()
	m.AddExport("/")
	res := &result{Server: "corrupt", Run: 1}
	err := runLoad(smallConfig(serveMem(t, corruptFS{m})), res)
	if err == nil || !res.Verify {
		t.Fatalf("runLoad over a corrupting server: err %v, verify_failed %v", err, res.Verify)
	}
	if !strings.Contains(res.Errors[0], "seq_read: VERIFY") {
		t.Errorf("first error %q, want the sequential read's verification", res.Errors[0])
	}
}

func TestReportRatiosAndTargets(t *testing.T) {
	mk := func(name string, run int, m map[string]float64) *result {
		return &result{Server: name, Run: run, Metrics: m, PhaseS: map[string]float64{"seq_write": 1}}
	}
	servers := map[string]*serverRuns{
		"hangar": {runs: []*result{
			mk("hangar", 1, map[string]float64{"seq_write_MiBps": 900, "getattr_kops": 100, "commit_ms": 10}),
			mk("hangar", 2, map[string]float64{"seq_write_MiBps": 1000, "getattr_kops": 300, "commit_ms": 30}),
			mk("hangar", 3, map[string]float64{"seq_write_MiBps": 5000, "getattr_kops": 200, "commit_ms": 20}),
		}},
		"go-nfs": {runs: []*result{mk("go-nfs", 1, map[string]float64{"seq_write_MiBps": 100, "getattr_kops": 50, "commit_ms": 40})}},
		"disk":   {runs: []*result{mk("disk", 1, map[string]float64{"seq_write_MiBps": 2000})}},
	}
	var b strings.Builder
	writeReport(&b, servers, "hangar", "hangar-inproc", []string{"go-nfs", "ganesha", "disk"})
	out := b.String()
	row := func(label string) string {
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "| "+label) {
				return l
			}
		}
		t.Fatalf("no row %q in\n%s", label, out)
		return ""
	}
	// Medians 1000 and 200; speedups 10× and 0.5× over disk; 4× go-nfs on GETATTR.
	if r := row("seq write"); !strings.Contains(r, "| 1000 ") || !strings.Contains(r, "10.0×") || !strings.Contains(r, "0.50×") || !strings.Contains(r, "NO (disk)") {
		t.Errorf("seq write row: %s", r)
	}
	if r := row("GETATTR"); !strings.Contains(r, "4.00×") || !strings.Contains(r, "NO (go-nfs)") {
		t.Errorf("GETATTR row: %s", r)
	}
	// COMMIT time: lower is better, so the speedup is 40/20.
	if r := row("  final COMMIT"); !strings.Contains(r, "2.00×") {
		t.Errorf("COMMIT row: %s", r)
	}
	if strings.Contains(out, "ganesha") {
		t.Errorf("a baseline with no results got a column:\n%s", out)
	}
}

// TestWorkloadsAgainstHangarLocalfs runs every workload against the full
// Hangar server on local disk, as `nfsload run -inproc` does.
func TestWorkloadsAgainstHangarLocalfs(t *testing.T) {
	addr, stop, err := startInproc(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	res := &result{Server: "hangar", Run: 1}
	if err := runLoad(smallConfig(addr), res); err != nil {
		t.Fatalf("runLoad: %v (all errors: %q)", err, res.Errors)
	}
	if res.Metrics["getattr_live_handles"] != 100 {
		t.Errorf("getattr_live_handles = %v, want 100", res.Metrics["getattr_live_handles"])
	}
}
