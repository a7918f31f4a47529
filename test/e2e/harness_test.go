package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Case selection: HANGAR_E2E=quick (default) runs the quick subset, "all"
// runs every case.
func requireMode(t *testing.T, quick bool) {
	t.Helper()
	switch m := os.Getenv("HANGAR_E2E"); m {
	case "", "quick":
		if !quick {
			t.Skip("not in the quick subset; run with HANGAR_E2E=all")
		}
	case "all":
	default:
		t.Fatalf("HANGAR_E2E=%q: want quick or all", m)
	}
}

func allMode() bool { return os.Getenv("HANGAR_E2E") == "all" }

// timeCase logs the case's wall time when it ends.
func timeCase(t *testing.T) {
	t0 := time.Now()
	t.Cleanup(func() {
		status := "ok"
		if t.Failed() {
			status = "FAILED"
		}
		t.Logf("E2E-CASE %s wall=%.1fs %s", t.Name(), time.Since(t0).Seconds(), status)
	})
}

type artifacts struct {
	repo, cache, logs string
	kernel, initrd    string
	hangar, guest     string // static binaries for host and guest
}

var (
	setupOnce sync.Once
	setupArt  artifacts
	setupErr  error
)

func repoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("no go.mod above %s", wd)
}

// env prepares (once per test binary) the VM kernel, base initramfs and the
// static binaries. Everything lands in the cache directory.
func env(t *testing.T) artifacts {
	t.Helper()
	setupOnce.Do(func() { setupArt, setupErr = prepare() })
	if setupErr != nil {
		t.Fatalf("e2e setup: %v", setupErr)
	}
	return setupArt
}

func prepare() (artifacts, error) {
	var a artifacts
	repo, err := repoRoot()
	if err != nil {
		return a, err
	}
	a.repo = repo
	a.cache = os.Getenv("HANGAR_E2E_CACHE")
	if a.cache == "" {
		a.cache = filepath.Join(repo, ".cache", "e2e")
	}
	if a.cache, err = filepath.Abs(a.cache); err != nil {
		return a, err
	}
	a.logs = filepath.Join(a.cache, "logs")
	if err := os.MkdirAll(filepath.Join(a.cache, "bin"), 0o755); err != nil {
		return a, err
	}
	t0 := time.Now()
	if out, err := exec.Command(filepath.Join(repo, "test/e2e/vm/setup.sh"), a.cache).CombinedOutput(); err != nil {
		return a, fmt.Errorf("vm/setup.sh: %v\n%s", err, out)
	}
	a.kernel, a.initrd = filepath.Join(a.cache, "vmlinuz"), filepath.Join(a.cache, "base.cpio.gz")
	logf("vm setup: %.1fs", time.Since(t0).Seconds())

	a.hangar = os.Getenv("HANGAR_BIN")
	if a.hangar == "" {
		a.hangar = filepath.Join(a.cache, "bin", "hangar")
		if err := goBuild(repo, a.hangar, "./cmd/hangar"); err != nil {
			return a, err
		}
	} else if a.hangar, err = filepath.Abs(a.hangar); err != nil {
		return a, err
	}
	a.guest = filepath.Join(a.cache, "bin", "e2eguest")
	if err := goBuild(repo, a.guest, "./test/e2e/guest/e2eguest"); err != nil {
		return a, err
	}
	return a, nil
}

// logf prints setup progress outside any one test's log.
func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, "e2e: "+format+"\n", args...) }

func goBuild(dir, out, pkg string) error {
	t0 := time.Now()
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	logf("built %s in %.1fs", pkg, time.Since(t0).Seconds())
	return nil
}

var (
	sanityOnce sync.Once
	sanityBin  string
	sanityErr  error
)

// csiSanity builds the csi-sanity binary (static) into the cache once.
func csiSanity(t *testing.T, a artifacts) string {
	t.Helper()
	sanityOnce.Do(func() {
		gobin := filepath.Join(a.cache, "csi-sanity-v5.6.0")
		sanityBin = filepath.Join(gobin, "csi-sanity")
		if _, err := os.Stat(sanityBin); err == nil {
			return
		}
		t0 := time.Now()
		cmd := exec.Command("go", "install", "-trimpath", "-ldflags", "-s -w",
			"github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@v5.6.0")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOBIN="+gobin, "GOFLAGS=-mod=mod")
		if b, err := cmd.CombinedOutput(); err != nil {
			sanityErr = fmt.Errorf("go install csi-sanity: %v\n%s", err, b)
			return
		}
		logf("built csi-sanity in %.1fs", time.Since(t0).Seconds())
	})
	if sanityErr != nil {
		t.Fatal(sanityErr)
	}
	return sanityBin
}

// logDir returns a fresh per-test log directory under the cache; logs are
// kept after the run.
func logDir(t *testing.T, a artifacts) string {
	t.Helper()
	d := filepath.Join(a.logs, strings.ReplaceAll(t.Name(), "/", "_"))
	os.RemoveAll(d)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// dumpOnFailure prints the tail of a log file if the test failed.
func dumpOnFailure(t *testing.T, name, path string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Logf("--- %s: %v", name, err)
			return
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		const keep = 150
		if len(lines) > keep {
			lines = append([]string{fmt.Sprintf("[... %d earlier lines in %s]", len(lines)-keep, path)}, lines[len(lines)-keep:]...)
		}
		t.Logf("--- %s (%s):\n%s", name, path, strings.Join(lines, "\n"))
	})
}

// freePort returns a TCP port that was free on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitTCP(addr string, timeout time.Duration, alive func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if !alive() {
			return fmt.Errorf("process exited before listening on %s", addr)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listening on %s after %v: %v", addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// proc is a host process owned by one test.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// startProc starts a host process whose output goes to DIR/NAME.log; it is
// killed (SIGKILL to its process group) when the test ends.
func startProc(t *testing.T, dir, name string, argv ...string) *proc {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "### %s %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(argv, " "))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); f.Close(); close(p.done) }()
	t.Cleanup(p.kill)
	dumpOnFailure(t, name, logPath)
	return p
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL to the process group and waits for the exit.
func (p *proc) kill() {
	if p.alive() {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
	<-p.done
}

// control is the host end of a tiny HTTP channel the guests reach through
// guestfwd: /signal/NAME?v=V records an event, /wait/NAME?timeout=S blocks
// until it was recorded. Both directions use it (guest→host and host→guest).
type control struct {
	port   int
	mu     sync.Mutex
	events map[string]string
	ch     map[string]chan struct{}
}

func startControl(t *testing.T) *control {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &control{port: l.Addr().(*net.TCPAddr).Port, events: map[string]string{}, ch: map[string]chan struct{}{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/signal/{name}", func(w http.ResponseWriter, r *http.Request) {
		c.signal(r.PathValue("name"), r.URL.Query().Get("v"))
	})
	mux.HandleFunc("/wait/{name}", func(w http.ResponseWriter, r *http.Request) {
		secs, _ := strconv.Atoi(r.URL.Query().Get("timeout"))
		v, err := c.wait(r.Context(), r.PathValue("name"), time.Duration(max(secs, 1))*time.Second)
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestTimeout)
			return
		}
		io.WriteString(w, v)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return c
}

func (c *control) chanLocked(name string) chan struct{} {
	ch, ok := c.ch[name]
	if !ok {
		ch = make(chan struct{})
		c.ch[name] = ch
	}
	return ch
}

func (c *control) signal(name, v string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.events[name]; ok {
		return
	}
	c.events[name] = v
	close(c.chanLocked(name))
}

func (c *control) wait(ctx context.Context, name string, timeout time.Duration) (string, error) {
	c.mu.Lock()
	ch := c.chanLocked(name)
	c.mu.Unlock()
	select {
	case <-ch:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.events[name], nil
	case <-ctx.Done():
		return "", ctx.Err()
	case <-time.After(timeout):
		return "", fmt.Errorf("event %q not signalled within %v", name, timeout)
	}
}

// vmConfig describes one guest run.
type vmConfig struct {
	Name    string
	Script  string            // guest shell script (host path), run as /e2e/run.sh
	Files   map[string]string // guest path -> host path
	Env     map[string]string // written to /e2e/env, sourced before the script
	Ports   []int             // host 127.0.0.1 ports the guest reaches at 10.0.2.100:PORT
	Ctl     *control          // reachable at $E2E_CTL
	MemMB   int               // default 768
	Timeout time.Duration     // default 5 minutes
}

// vm is a running QEMU guest.
type vm struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	mu      sync.Mutex
	out     bytes.Buffer // whole console
	exit    int          // guest script exit code, -1 until reported
}

const guestHost = "10.0.2.100"

var exitRE = regexp.MustCompile(`E2E-EXIT=(\d+)`)

// startVM boots a guest: the cached kernel and base initramfs plus an
// overlay archive holding the script, binaries and environment.
func startVM(t *testing.T, a artifacts, dir string, cfg vmConfig) *vm {
	t.Helper()
	if cfg.MemMB == 0 {
		cfg.MemMB = 768
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Minute
	}
	files := map[string]string{"/e2e/run.sh": cfg.Script, "/e2e/lib.sh": filepath.Join(a.repo, "test/e2e/guest/lib.sh"),
		"/e2e/bin/e2eguest": a.guest}
	for g, h := range cfg.Files {
		files[g] = h
	}
	envs := map[string]string{"E2E_HOSTNAME": cfg.Name, "NFS_HOST": guestHost}
	if cfg.Ctl != nil {
		envs["E2E_CTL"] = fmt.Sprintf("%s:%d", guestHost, cfg.Ctl.port)
		cfg.Ports = append(cfg.Ports, cfg.Ctl.port)
	}
	for k, v := range cfg.Env {
		envs[k] = v
	}
	initrd := filepath.Join(dir, cfg.Name+".initrd")
	if err := writeInitrd(initrd, a.initrd, files, envs); err != nil {
		t.Fatalf("guest %s: initrd: %v", cfg.Name, err)
	}
	t.Cleanup(func() { os.Remove(initrd) })

	netdev := "user,id=n0,restrict=on"
	for _, p := range cfg.Ports {
		// One busybox nc per guest connection to the host's loopback.
		netdev += fmt.Sprintf(",guestfwd=tcp:%s:%d-cmd:busybox nc 127.0.0.1 %d", guestHost, p, p)
	}
	args := []string{
		"-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", strconv.Itoa(cfg.MemMB),
		"-nodefaults", "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
		"-kernel", a.kernel, "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 no_timer_check quiet loglevel=3 rdinit=/init",
		"-netdev", netdev, "-device", "virtio-net-pci,netdev=n0", "-device", "virtio-rng-pci",
	}
	v := &vm{name: cfg.Name, logPath: filepath.Join(dir, cfg.Name+".console.log"), done: make(chan struct{}), exit: -1}
	logf, err := os.Create(v.logPath)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(logf, "### qemu-system-x86_64 %s\n", strings.Join(args, " "))
	v.cmd = exec.Command("timeout", append([]string{"-s", "KILL", fmt.Sprint(int(cfg.Timeout.Seconds())), "qemu-system-x86_64"}, args...)...)
	v.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	v.cmd.Stdin = nil
	stdout, err := v.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	v.cmd.Stderr = v.cmd.Stdout
	if err := v.cmd.Start(); err != nil {
		t.Fatalf("start qemu: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			fmt.Fprintln(logf, line)
			v.mu.Lock()
			v.out.WriteString(line + "\n")
			if m := exitRE.FindStringSubmatch(line); m != nil {
				v.exit, _ = strconv.Atoi(m[1])
			}
			v.mu.Unlock()
		}
		v.waitErr = v.cmd.Wait()
		logf.Close()
		close(v.done)
	}()
	t.Cleanup(func() {
		if v.running() {
			syscall.Kill(-v.cmd.Process.Pid, syscall.SIGKILL)
		}
		<-v.done
	})
	dumpOnFailure(t, "guest "+cfg.Name+" console", v.logPath)
	return v
}

func (v *vm) running() bool {
	select {
	case <-v.done:
		return false
	default:
		return true
	}
}

// wait blocks until QEMU exits and returns the guest script's exit code
// (-1 if the guest never reported one: crash, hang killed by the timeout).
func (v *vm) wait() int {
	<-v.done
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.exit
}

// mustPass waits for the guest and fails the test unless its script
// exited 0. It returns the console output. If one of the watched host
// processes (the servers under test) exits first, the guest is killed at
// once instead of hanging on a hard mount until its timeout.
func (v *vm) mustPass(t *testing.T, watch ...*proc) string {
	t.Helper()
	died := make(chan *proc, len(watch))
	for _, p := range watch {
		go func() {
			select {
			case <-p.done:
				died <- p
			case <-v.done:
			}
		}()
	}
	select {
	case <-v.done:
	case p := <-died:
		// Let the guest print what it saw for a moment, then stop it.
		select {
		case <-v.done:
		case <-time.After(3 * time.Second):
		}
		if v.running() {
			t.Errorf("%s exited (%v) while guest %s was running; guest killed", p.name, p.err, v.name)
			syscall.Kill(-v.cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	rc := v.wait()
	out := v.output()
	if rc != 0 {
		if rc < 0 {
			t.Errorf("guest %s did not report an exit code (qemu: %v); console in %s", v.name, v.waitErr, v.logPath)
		} else {
			t.Errorf("guest %s: script exited %d; console in %s", v.name, rc, v.logPath)
		}
		for _, l := range grepLines(out, "E2E-FAIL") {
			t.Errorf("guest %s: %s", v.name, l)
		}
	}
	for _, l := range grepLines(out, "E2E-RESULT") {
		t.Logf("guest %s: %s", v.name, l)
	}
	return out
}

func (v *vm) output() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.out.String()
}

func grepLines(s, prefix string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if i := strings.Index(l, prefix); i >= 0 {
			out = append(out, l[i:])
		}
	}
	return out
}

// writeInitrd writes base followed by an uncompressed newc cpio archive with
// the given files and /e2e/env; the kernel unpacks both archives in order.
func writeInitrd(path, base string, files map[string]string, env map[string]string) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	defer out.Close()
	b, err := os.Open(base)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, b)
	b.Close()
	if err != nil {
		return err
	}
	// The kernel wants each archive to start 4-byte aligned.
	if off, _ := out.Seek(0, io.SeekCurrent); off%4 != 0 {
		out.Write(make([]byte, 4-off%4))
	}
	w := &cpioWriter{w: bufio.NewWriterSize(out, 1<<20), dirs: map[string]bool{}}
	var envBuf bytes.Buffer
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&envBuf, "%s=%s\n", k, shellQuote(env[k]))
	}
	if err := w.file("/e2e/env", 0o644, envBuf.Bytes()); err != nil {
		return err
	}
	guests := make([]string, 0, len(files))
	for g := range files {
		guests = append(guests, g)
	}
	sort.Strings(guests)
	for _, g := range guests {
		data, err := os.ReadFile(files[g])
		if err != nil {
			return err
		}
		if err := w.file(g, 0o755, data); err != nil {
			return err
		}
	}
	if err := w.entry("TRAILER!!!", 0, nil); err != nil {
		return err
	}
	if err := w.w.Flush(); err != nil {
		return err
	}
	return out.Close()
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

type cpioWriter struct {
	w    *bufio.Writer
	ino  uint32
	dirs map[string]bool
}

func (c *cpioWriter) file(path string, perm uint32, data []byte) error {
	// Parent directories first: the kernel does not create them.
	var parents []string
	for d := filepath.Dir(path); d != "/" && !c.dirs[d]; d = filepath.Dir(d) {
		parents = append(parents, d)
	}
	for i := len(parents) - 1; i >= 0; i-- {
		c.dirs[parents[i]] = true
		if err := c.entry(strings.TrimPrefix(parents[i], "/"), syscall.S_IFDIR|0o755, nil); err != nil {
			return err
		}
	}
	return c.entry(strings.TrimPrefix(path, "/"), syscall.S_IFREG|perm, data)
}

// entry writes one newc record: a 110-byte ASCII header, the NUL-terminated
// name and the data, each padded to 4 bytes.
func (c *cpioWriter) entry(name string, mode uint32, data []byte) error {
	c.ino++
	nlink := 1
	if mode&syscall.S_IFDIR != 0 {
		nlink = 2
	}
	fields := []uint32{c.ino, mode, 0, 0, uint32(nlink), uint32(time.Now().Unix()), uint32(len(data)), 0, 0, 0, 0, uint32(len(name) + 1), 0}
	hdr := []byte("070701")
	for _, f := range fields {
		hdr = fmt.Appendf(hdr, "%08x", f)
	}
	hdr = append(hdr, name...)
	hdr = append(hdr, 0)
	for len(hdr)%4 != 0 {
		hdr = append(hdr, 0)
	}
	if _, err := c.w.Write(hdr); err != nil {
		return err
	}
	if _, err := c.w.Write(data); err != nil {
		return err
	}
	pad := (4 - len(data)%4) % 4
	_, err := c.w.Write(make([]byte, pad))
	return err
}
