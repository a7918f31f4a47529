package k8s

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// proc is a background process started by the test, stopped by its PID.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM, waits up to grace, then SIGKILL.
func (p *proc) stop(grace time.Duration) {
	if !p.alive() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// cluster is etcd + kube-apiserver + kube-controller-manager on loopback,
// plus whatever else the test starts (stopped in reverse order).
type cluster struct {
	t          *testing.T
	bin        string // built binaries
	dir        string // short work dir (unix socket paths)
	logs       string
	kubeconfig string
	pki        string
	procs      []*proc
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs a process with its output in logs/<name>.log.
func (c *cluster) start(name string, bin string, args ...string) *proc {
	c.t.Helper()
	logPath := filepath.Join(c.logs, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.kubeconfig)
	if err := cmd.Start(); err != nil {
		f.Close()
		c.t.Fatalf("starting %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { cmd.Wait(); f.Close(); close(p.done) }()
	c.procs = append(c.procs, p)
	return p
}

// waitFor polls cond until it holds, the process dies, or the timeout.
func (c *cluster) waitFor(what string, timeout time.Duration, p *proc, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if p != nil && !p.alive() {
			c.t.Fatalf("%s: %s exited; log:\n%s", what, p.name, tail(p.log, 30))
		}
		if time.Now().After(deadline) {
			if p != nil {
				c.t.Logf("%s log:\n%s", p.name, tail(p.log, 30))
			}
			c.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func httpOK(url string) bool {
	cl := &http.Client{Timeout: 2 * time.Second}
	r, err := cl.Get(url)
	if err != nil {
		return false
	}
	r.Body.Close()
	return r.StatusCode == 200
}

func (c *cluster) stopAll() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].stop(20 * time.Second)
	}
	if c.t.Failed() {
		for _, p := range c.procs {
			c.t.Logf("--- %s (%s):\n%s", p.name, p.log, tail(p.log, 15))
		}
	}
}

// startCluster brings up the control plane; everything stops at cleanup.
func startCluster(t *testing.T, bin, logs string) *cluster {
	dir, err := os.MkdirTemp("", "hk8s-")
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, bin: bin, dir: dir, logs: logs, pki: filepath.Join(dir, "pki"), kubeconfig: filepath.Join(dir, "kubeconfig")}
	t.Cleanup(func() {
		c.stopAll()
		os.RemoveAll(dir)
	})
	os.MkdirAll(c.pki, 0o700)
	apiPort := freePort(t)
	writePKI(t, c.pki)
	c.writeKubeconfig(c.kubeconfig, apiPort, fmt.Sprintf("client-certificate: %s\n    client-key: %s", filepath.Join(c.pki, "admin.crt"), filepath.Join(c.pki, "admin.key")))

	ec, ep, em := freePort(t), freePort(t), freePort(t)
	etcd := c.start("etcd", filepath.Join(bin, "etcd"), "--name", "t", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", ec), "--advertise-client-urls", fmt.Sprintf("http://127.0.0.1:%d", ec),
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", ep), "--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", ep),
		"--initial-cluster", fmt.Sprintf("t=http://127.0.0.1:%d", ep), "--listen-metrics-urls", fmt.Sprintf("http://127.0.0.1:%d", em),
		"--log-level", "warn")
	c.waitFor("etcd", 60*time.Second, etcd, func() bool { return httpOK(fmt.Sprintf("http://127.0.0.1:%d/health", ec)) })

	p := c.pki
	api := c.start("kube-apiserver", filepath.Join(bin, "kube-apiserver"), fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", ec),
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", apiPort),
		"--tls-cert-file="+p+"/apiserver.crt", "--tls-private-key-file="+p+"/apiserver.key", "--client-ca-file="+p+"/ca.crt",
		"--service-account-key-file="+p+"/sa.pub", "--service-account-signing-key-file="+p+"/sa.key",
		"--service-account-issuer=https://kubernetes.default.svc", "--service-cluster-ip-range=10.0.0.0/24",
		"--authorization-mode=Node,RBAC", "--endpoint-reconciler-type=none",
		// As in every real cluster (kubeadm, kind…): the node plugin is privileged.
		"--allow-privileged=true", "--cert-dir="+dir+"/apiserver-certs",
		// TestNodes' kubelets are reached by address (exec, logs): no DNS.
		"--kubelet-preferred-address-types=InternalIP")
	c.waitFor("kube-apiserver ready", 120*time.Second, api, func() bool {
		_, err := c.kubectl("get", "--raw", "/readyz")
		return err == nil
	})
	kcmPort := freePort(t)
	kcm := c.start("kube-controller-manager", filepath.Join(bin, "kube-controller-manager"), "--kubeconfig="+c.kubeconfig,
		"--authentication-kubeconfig="+c.kubeconfig, "--authorization-kubeconfig="+c.kubeconfig,
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", kcmPort), "--leader-elect=false",
		"--service-account-private-key-file="+p+"/sa.key", "--root-ca-file="+p+"/ca.crt",
		"--cluster-signing-cert-file="+p+"/ca.crt", "--cluster-signing-key-file="+p+"/ca.key",
		"--use-service-account-credentials=true", "--cert-dir="+dir+"/kcm-certs")
	c.waitFor("kube-controller-manager", 60*time.Second, kcm, func() bool {
		cl := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: insecureTLS()}}
		r, err := cl.Get(fmt.Sprintf("https://127.0.0.1:%d/healthz", kcmPort))
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == 200
	})
	return c
}

// writeKubeconfig writes a kubeconfig for the test apiserver with the
// given user fields (YAML, indented for the user block).
func (c *cluster) writeKubeconfig(path string, apiPort int, user string) {
	c.t.Helper()
	if apiPort == 0 {
		apiPort = c.apiPort()
	}
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: t
  cluster:
    server: https://127.0.0.1:%d
    certificate-authority: %s
users:
- name: u
  user:
    %s
contexts:
- name: t
  context: {cluster: t, user: u}
current-context: t
`, apiPort, filepath.Join(c.pki, "ca.crt"), user)
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) apiPort() int {
	b, err := os.ReadFile(c.kubeconfig)
	if err != nil {
		c.t.Fatal(err)
	}
	var port int
	for _, l := range strings.Split(string(b), "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(l), "server: https://127.0.0.1:"); ok {
			fmt.Sscan(s, &port)
		}
	}
	return port
}

// kubectl runs kubectl against the test cluster as admin.
func (c *cluster) kubectl(args ...string) (string, error) {
	return c.kubectlIn("", args...)
}

func (c *cluster) kubectlIn(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, "kubectl"), append([]string{"--kubeconfig=" + c.kubeconfig}, args...)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

func (c *cluster) mustKubectl(args ...string) string {
	c.t.Helper()
	out, err := c.kubectl(args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

func (c *cluster) apply(yaml string) {
	c.t.Helper()
	if _, err := c.kubectlIn(yaml, "apply", "-f", "-"); err != nil {
		c.t.Fatal(err)
	}
}

// get returns an object as decoded JSON, or nil if it does not exist.
func (c *cluster) get(args ...string) map[string]any {
	c.t.Helper()
	out, err := c.kubectl(append(append([]string{"get"}, args...), "-o", "json", "--ignore-not-found")...)
	if err != nil {
		c.t.Fatal(err)
	}
	if strings.TrimSpace(out) == "" {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		c.t.Fatalf("decoding %v: %v", args, err)
	}
	return m
}

// field walks decoded JSON by keys; "" if absent.
func field(m any, path ...string) string {
	for _, k := range path {
		mm, ok := m.(map[string]any)
		if !ok {
			return ""
		}
		m = mm[k]
	}
	switch v := m.(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		return fmt.Sprint(v)
	}
}

func items(m map[string]any) []any {
	if m == nil {
		return nil
	}
	l, _ := m["items"].([]any)
	return l
}

// writePKI writes the control plane's CA, serving and admin certificates
// and the service-account key pair.
func writePKI(t *testing.T, dir string) {
	t.Helper()
	key := func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	save := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	caKey := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	save("ca.crt", "CERTIFICATE", caDER)
	save("ca.key", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(caKey))
	leaf := func(name string, subj pkix.Name, usage x509.ExtKeyUsage, ips []net.IP, dns []string) {
		k := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), Subject: subj, NotBefore: now.Add(-time.Hour),
			NotAfter: now.Add(48 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips, DNSNames: dns}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		save(name+".crt", "CERTIFICATE", der)
		save(name+".key", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k))
	}
	// 10.0.0.1: the `kubernetes` Service; 192.168.50.254: where the node
	// VMs of TestNodes reach the apiserver.
	leaf("apiserver", pkix.Name{CommonName: "kube-apiserver"}, x509.ExtKeyUsageServerAuth,
		[]net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1"), net.ParseIP("192.168.50.254")}, []string{"localhost"})
	leaf("admin", pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}}, x509.ExtKeyUsageClientAuth, nil, nil)
	sa := key()
	save("sa.key", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(sa))
	pub, err := x509.MarshalPKIXPublicKey(&sa.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	save("sa.pub", "PUBLIC KEY", pub)
}
