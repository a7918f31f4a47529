// Command ctlbench is Hangar's control-plane benchmark: it starts `hangar
// server` on a fresh data directory and, at each volume count of -sizes,
// measures CreateVolume, DeleteVolume, ListVolumes and GetCapacity latency
// through the management API's CSI socket with -conc concurrent callers, and
// the server's memory (RSS, live heap after the last GC) and open fds per
// volume. At the end it restarts the server and times how long it takes to
// answer again with every volume (startup: reconcile, export, usage).
//
//	ctlbench -hangar bin/hangar -sizes 0,1000,10000 [-conc 8] [-sample 1000]
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
)

func main() {
	bin := flag.String("hangar", "bin/hangar", "hangar binary")
	dir := flag.String("dir", "/tmp/hangar-ctlbench", "work directory (emptied first)")
	sizesF := flag.String("sizes", "0,1000,10000", "volume counts to measure at")
	conc := flag.Int("conc", 8, "concurrent callers")
	sample := flag.Int("sample", 1000, "CreateVolumes measured at each size (they add to the count)")
	deletes := flag.Int("deletes", 200, "DeleteVolumes measured at each size (of the sampled volumes)")
	calls := flag.Int("calls", 200, "ListVolumes and GetCapacity calls measured at each size")
	flag.Parse()
	var sizes []int
	for _, s := range strings.Split(*sizesF, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 0 {
			fatal(fmt.Errorf("-sizes: bad count %q", s))
		}
		sizes = append(sizes, n)
	}
	slices.Sort(sizes)
	b := &bench{bin: *bin, dir: *dir, conc: *conc}
	if err := b.run(sizes, *sample, *deletes, *calls); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "ctlbench:", err)
	os.Exit(1)
}

type bench struct {
	bin, dir string
	conc     int
	cmd      *exec.Cmd
	cc       *grpc.ClientConn
	ctl      csi.ControllerClient
	heap     atomic.Int64 // live heap after the last GC (gctrace), bytes
	waitErr  chan error
	seq      atomic.Int64 // volume name counter
	ids      []string     // volumes that stay
}

func (b *bench) sock() string { return filepath.Join(b.dir, "api.sock") }

// start runs the server and waits until GetCapacity answers.
func (b *bench) start() (time.Duration, error) {
	t0 := time.Now()
	os.Remove(b.sock())
	cmd := exec.Command(b.bin, "server", "--data", filepath.Join(b.dir, "data"), "--name", "bench",
		"--nfs-listen", "127.0.0.1:0", "--api-listen", "unix://"+b.sock(), "--overcommit-ratio", "64")
	cmd.Env = append(os.Environ(), "GODEBUG=gctrace=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return 0, err
	}
	logf, err := os.OpenFile(filepath.Join(b.dir, "server.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	b.cmd = cmd
	b.waitErr = make(chan error, 1)
	go b.readLog(stderr, logf)
	go func() { b.waitErr <- cmd.Wait(); logf.Close() }()
	// A new connection per start, retried every 20 ms while the socket is
	// missing, and one that the server has not accepted yet waits (the
	// listener exists before the volumes are exported): gRPC's default
	// backoff would add up to seconds to the startup time measured.
	if b.cc != nil {
		b.cc.Close()
	}
	if b.cc, err = grpc.NewClient("unix://"+b.sock(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 20 * time.Millisecond, Multiplier: 1, MaxDelay: 20 * time.Millisecond},
			MinConnectTimeout: 10 * time.Minute,
		})); err != nil {
		return 0, err
	}
	b.ctl = csi.NewControllerClient(b.cc)
	ready := make(chan error, 1)
	go func() {
		_, err := b.ctl.GetCapacity(context.Background(), &csi.GetCapacityRequest{}, grpc.WaitForReady(true))
		ready <- err
	}()
	select {
	case err := <-b.waitErr:
		return 0, fmt.Errorf("server exited: %v (see %s)", err, filepath.Join(b.dir, "server.log"))
	case err := <-ready:
		if err != nil {
			return 0, fmt.Errorf("GetCapacity: %w", err)
		}
		return time.Since(t0), nil
	}
}

// gctrace: "gc 12 @1.2s 0%: ... ms cpu, 4->5->2 MB, 5 MB goal, ..." the
// third figure is the heap marked live.
var gcLine = regexp.MustCompile(`^gc \d+ .* (\d+)->(\d+)->(\d+) MB`)

func (b *bench) readLog(r io.Reader, w io.Writer) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := gcLine.FindStringSubmatch(line); m != nil {
			live, _ := strconv.ParseInt(m[3], 10, 64)
			b.heap.Store(live << 20)
			continue
		}
		fmt.Fprintln(w, line)
	}
}

func (b *bench) stop() error { return b.signal(syscall.SIGTERM) }

func (b *bench) signal(sig os.Signal) error {
	b.cmd.Process.Signal(sig)
	select {
	case <-b.waitErr:
		return nil
	case <-time.After(5 * time.Minute):
		b.cmd.Process.Kill()
		return errors.New("server did not stop within 5 minutes")
	}
}

func (b *bench) create() (string, time.Duration, error) {
	name := fmt.Sprintf("pvc-%08d", b.seq.Add(1))
	t0 := time.Now()
	resp, err := b.ctl.CreateVolume(context.Background(), &csi.CreateVolumeRequest{
		Name:               name,
		CapacityRange:      &csi.CapacityRange{RequiredBytes: 1 << 20},
		VolumeCapabilities: []*csi.VolumeCapability{mountCap()},
	})
	if err != nil {
		return "", 0, fmt.Errorf("CreateVolume %s: %w", name, err)
	}
	return resp.GetVolume().GetVolumeId(), time.Since(t0), nil
}

func mountCap() *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER},
	}
}

// parallel runs n calls of f on b.conc goroutines and returns their
// latencies.
func (b *bench) parallel(n int, f func(i int) (time.Duration, error)) ([]time.Duration, error) {
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range b.conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				d, err := f(i)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					next.Store(int64(n))
					return
				}
				lat[i] = d
			}
		}()
	}
	wg.Wait()
	return lat, firstErr
}

// fill creates volumes until there are n.
func (b *bench) fill(n int) (time.Duration, error) {
	todo := n - len(b.ids)
	if todo <= 0 {
		return 0, nil
	}
	ids := make([]string, todo)
	t0 := time.Now()
	_, err := b.parallel(todo, func(i int) (time.Duration, error) {
		id, d, err := b.create()
		ids[i] = id
		return d, err
	})
	b.ids = append(b.ids, ids...)
	return time.Since(t0), err
}

type point struct {
	size                    int
	fill                    time.Duration
	create, del, list, capa []time.Duration
	createRate              float64
	rss, heap, fds          int64
	rssPerVol, heapPerVol   float64
	listAll                 time.Duration
	startup, crashStartup   time.Duration
	startupRSS, startupFds  int64
	startupSize             int
}

func (b *bench) measure(size, sample, deletes, calls int) (point, error) {
	p := point{size: size}
	var err error
	if p.fill, err = b.fill(size); err != nil {
		return p, err
	}
	// Memory and fds of the idle server with size volumes.
	time.Sleep(time.Second)
	p.rss, p.fds = procStats(b.cmd.Process.Pid)
	p.heap = b.heap.Load()

	ids := make([]string, sample)
	t0 := time.Now()
	if p.create, err = b.parallel(sample, func(i int) (d time.Duration, err error) {
		ids[i], d, err = b.create()
		return d, err
	}); err != nil {
		return p, err
	}
	p.createRate = float64(sample) / time.Since(t0).Seconds()
	deletes = min(deletes, sample)
	if p.del, err = b.parallel(deletes, func(i int) (time.Duration, error) {
		t0 := time.Now()
		_, err := b.ctl.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: ids[i]})
		return time.Since(t0), err
	}); err != nil {
		return p, fmt.Errorf("DeleteVolume: %w", err)
	}
	b.ids = append(b.ids, ids[deletes:]...)
	// Pages of 100 from random places (a token is the last ID of the
	// previous page, so any existing ID is one).
	if p.list, err = b.parallel(calls, func(int) (time.Duration, error) {
		t0 := time.Now()
		_, err := b.ctl.ListVolumes(context.Background(), &csi.ListVolumesRequest{MaxEntries: 100, StartingToken: b.ids[rand.IntN(len(b.ids))]})
		return time.Since(t0), err
	}); err != nil {
		return p, fmt.Errorf("ListVolumes: %w", err)
	}
	if p.capa, err = b.parallel(calls, func(int) (time.Duration, error) {
		t0 := time.Now()
		_, err := b.ctl.GetCapacity(context.Background(), &csi.GetCapacityRequest{})
		return time.Since(t0), err
	}); err != nil {
		return p, fmt.Errorf("GetCapacity: %w", err)
	}
	t0 = time.Now()
	n, token := 0, ""
	for {
		r, err := b.ctl.ListVolumes(context.Background(), &csi.ListVolumesRequest{MaxEntries: 1000, StartingToken: token})
		if err != nil {
			return p, fmt.Errorf("ListVolumes: %w", err)
		}
		n += len(r.Entries)
		if token = r.NextToken; token == "" {
			break
		}
	}
	p.listAll = time.Since(t0)
	if n != len(b.ids) {
		return p, fmt.Errorf("ListVolumes listed %d volumes, want %d", n, len(b.ids))
	}
	return p, nil
}

// procStats is the process's resident memory (bytes) and open fds.
func procStats(pid int) (rss, fds int64) {
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				rss = kb << 10
			}
		}
	}
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		fds = int64(len(ents))
	}
	return rss, fds
}

func (b *bench) run(sizes []int, sample, deletes, calls int) error {
	if err := os.RemoveAll(b.dir); err != nil {
		return err
	}
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return err
	}
	if _, err := b.start(); err != nil {
		return err
	}
	defer func() {
		if b.cmd.ProcessState == nil {
			b.stop()
		}
	}()
	var pts []point
	base := point{}
	for i, s := range sizes {
		fmt.Fprintf(os.Stderr, "== %s ctlbench: %d volumes\n", time.Now().UTC().Format("15:04:05"), s)
		p, err := b.measure(s, sample, deletes, calls)
		if err != nil {
			return fmt.Errorf("at %d volumes: %w", s, err)
		}
		if i == 0 {
			base = p
		}
		if p.size > base.size {
			p.rssPerVol = float64(p.rss-base.rss) / float64(p.size-base.size)
			p.heapPerVol = float64(p.heap-base.heap) / float64(p.size-base.size)
		}
		pts = append(pts, p)
	}
	// Restart with every volume.
	if err := b.stop(); err != nil {
		return err
	}
	last := &pts[len(pts)-1]
	d, err := b.start()
	if err != nil {
		return err
	}
	last.startup, last.startupSize = d, len(b.ids)
	time.Sleep(time.Second)
	last.startupRSS, last.startupFds = procStats(b.cmd.Process.Pid)
	// And after a crash.
	if err := b.signal(syscall.SIGKILL); err != nil {
		return err
	}
	if last.crashStartup, err = b.start(); err != nil {
		return err
	}
	report(os.Stdout, pts, b.conc, sample)
	return b.stop()
}

func pct(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(int(q*float64(len(s))), len(s)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }

func report(w io.Writer, pts []point, conc, sample int) {
	fmt.Fprintf(w, "Hangar control plane, %d concurrent callers through the CSI socket; latencies in ms (p50/p99);\n", conc)
	fmt.Fprintf(w, "create: %d CreateVolumes from the size on; memory and fds of the idle server at the size.\n\n", sample)
	fmt.Fprintln(w, "| volumes | fill s | create/s | create p50/p99 | delete p50/p99 | list(100) p50/p99 | capacity p50/p99 | list all s | RSS MiB | heap MiB | RSS B/vol | heap B/vol | fds |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, p := range pts {
		per := func(v float64) string {
			if v == 0 {
				return "-"
			}
			return fmt.Sprintf("%.0f", v)
		}
		fmt.Fprintf(w, "| %d | %.1f | %.0f | %s/%s | %s/%s | %s/%s | %s/%s | %.2f | %.1f | %.1f | %s | %s | %d |\n",
			p.size, p.fill.Seconds(), p.createRate,
			ms(pct(p.create, .5)), ms(pct(p.create, .99)),
			ms(pct(p.del, .5)), ms(pct(p.del, .99)),
			ms(pct(p.list, .5)), ms(pct(p.list, .99)),
			ms(pct(p.capa, .5)), ms(pct(p.capa, .99)),
			p.listAll.Seconds(), float64(p.rss)/(1<<20), float64(p.heap)/(1<<20), per(p.rssPerVol), per(p.heapPerVol), p.fds)
	}
	last := pts[len(pts)-1]
	fmt.Fprintf(w, "\nrestart with %d volumes: answering after %.2f s (after SIGTERM), %.2f s (after SIGKILL); RSS %.1f MiB, %d fds\n",
		last.startupSize, last.startup.Seconds(), last.crashStartup.Seconds(), float64(last.startupRSS)/(1<<20), last.startupFds)
}
