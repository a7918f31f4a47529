package k8s

// TestNodes: a cluster with real nodes. Two QEMU guests (TCG) each run
// containerd and a kubelet joined to the control plane this package
// starts on the host; the chart is installed with helm as a user installs
// it, with images built here (make image, build/image) and imported into
// each node's containerd. Run with `make e2e-cluster` (HANGAR_CLUSTER=1).
//
// Network: every guest has eth0 on QEMU user networking with restrict=on;
// its only way out is a guestfwd of 10.0.2.100:API to the apiserver on
// the host's 127.0.0.1. eth1 joins the two guests on one Ethernet segment
// (a QEMU socket netdev over 127.0.0.1): 192.168.50.0/24, the node
// addresses, where NFS and the storage server's API flow. Pods get a
// bridge + host-local network per node; the `kubernetes` Service address
// is relayed to the apiserver by each node (there is no kube-proxy).

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type vmNode struct {
	name, ip, podCIDR string
	labels            string
	dir               string // host files of this node: overlay, logs
	proc              *proc
}

func TestNodes(t *testing.T) {
	if os.Getenv("HANGAR_CLUSTER") == "" {
		t.Skip("cluster suite with kubelet VMs: run `make e2e-cluster` (HANGAR_CLUSTER=1)")
	}
	start := time.Now()
	repo, bin, hangar, logs := setup(t)
	nodeCache := nodeCacheDir()
	t0 := time.Now()
	run(t, repo, nil, filepath.Join(repo, "test/e2e/cluster/build.sh"))
	vmCache := os.Getenv("HANGAR_E2E_CACHE")
	if vmCache == "" {
		vmCache = filepath.Join(repo, ".cache", "e2e")
	}
	run(t, repo, nil, filepath.Join(repo, "test/e2e/vm/setup.sh"), vmCache)
	nodeImg := filepath.Join(nodeCache, "node.cpio")
	run(t, repo, nil, filepath.Join(repo, "test/e2e/cluster/mknode.sh"), nodeCache, nodeImg)
	guest := filepath.Join(nodeCache, "e2eguest")
	run(t, repo, []string{"CGO_ENABLED=0"}, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", guest, "./test/e2e/guest/e2eguest")
	t.Logf("CLUSTER node tools and initramfs ready in %.1fs", time.Since(t0).Seconds())

	t0 = time.Now()
	images := filepath.Join(t.TempDir(), "images")
	os.MkdirAll(filepath.Join(images, "all"), 0o755)
	os.MkdirAll(filepath.Join(images, "control"), 0o755)
	mkImage := func(sub, ref, entry string, files ...string) {
		args := []string{"run", ".", "-ref", ref, "-out", filepath.Join(images, sub, strings.NewReplacer("/", "_", ":", "_").Replace(ref)+".tar"), "-entrypoint", entry}
		for _, f := range files {
			args = append(args, "-file", f)
		}
		run(t, filepath.Join(repo, "build/image"), nil, "go", args...)
	}
	mkImage("all", "hangar.test/hangar:e2e", "/usr/local/bin/hangar", hangar+":/usr/local/bin/hangar")
	run(t, filepath.Join(repo, "build/image"), []string{"CGO_ENABLED=0"}, "go", "build", "-o", filepath.Join(images, "pause"), "./pause")
	mkImage("all", "hangar.test/pause:1", "/pause", filepath.Join(images, "pause")+":/pause")
	bbArgs := []string{"run", ".", "-ref", "hangar.test/busybox:1", "-out", filepath.Join(images, "all", "busybox.tar"), "-file", "/bin/busybox:/bin/busybox"}
	for _, a := range strings.Fields(run(t, repo, nil, "/bin/busybox", "--list")) {
		if a != "busybox" {
			bbArgs = append(bbArgs, "-symlink", "/bin/"+a+":busybox")
		}
	}
	run(t, filepath.Join(repo, "build/image"), nil, "go", bbArgs...)
	for _, s := range []string{"csi-provisioner", "csi-attacher", "csi-resizer"} {
		mkImage("control", "hangar.test/"+s+":e2e", "/"+s, filepath.Join(bin, s)+":/"+s)
	}
	t.Logf("CLUSTER images built in %.1fs", time.Since(t0).Seconds())

	t0 = time.Now()
	c := startCluster(t, bin, logs)
	sched := c.start("kube-scheduler", filepath.Join(nodeCache, "kube-scheduler"), "--kubeconfig="+c.kubeconfig,
		"--authentication-kubeconfig="+c.kubeconfig, "--authorization-kubeconfig="+c.kubeconfig,
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", freePort(t)), "--leader-elect=false")
	_ = sched
	apiPort := c.apiPort()
	t.Logf("CLUSTER control plane up in %.1fs", time.Since(t0).Seconds())

	nodes := []*vmNode{
		{name: "node-a", ip: "192.168.50.1", podCIDR: "10.244.1.0/24"},
		{name: "node-b", ip: "192.168.50.2", podCIDR: "10.244.2.0/24"},
	}
	linkPort := freePort(t)
	t0 = time.Now()
	for i, n := range nodes {
		n.dir = filepath.Join(logs, n.name)
		ov := filepath.Join(n.dir, "overlay")
		os.MkdirAll(filepath.Join(ov, "node", "pki"), 0o755)
		os.MkdirAll(filepath.Join(ov, "node", "images"), 0o755)
		os.MkdirAll(filepath.Join(ov, "usr", "local", "bin"), 0o755)
		copyFile(t, guest, filepath.Join(ov, "usr", "local", "bin", "e2eguest"), 0o755)
		copyFile(t, filepath.Join(c.pki, "ca.crt"), filepath.Join(ov, "node", "pki", "ca.crt"), 0o644)
		signClient(t, c.pki, filepath.Join(ov, "node", "pki", "kubelet"), pkix.Name{CommonName: "system:node:" + n.name, Organization: []string{"system:nodes"}})
		os.WriteFile(filepath.Join(ov, "node", "kubeconfig"), []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: t, cluster: {server: "https://10.0.2.100:%d", certificate-authority: /node/pki/ca.crt}}]
users: [{name: u, user: {client-certificate: /node/pki/kubelet.crt, client-key: /node/pki/kubelet.key}}]
contexts: [{name: t, context: {cluster: t, user: u}}]
current-context: t
`, apiPort)), 0o600)
		os.WriteFile(filepath.Join(ov, "node", "env"), []byte(fmt.Sprintf("NODE_NAME=%s\nNODE_IP=%s\nAPI_PORT=%d\nPOD_CIDR=%s\nNODE_LABELS=%s\n",
			n.name, n.ip, apiPort, n.podCIDR, n.labels)), 0o644)
		subs := []string{"all"}
		if i == 0 {
			subs = append(subs, "control")
		}
		for _, sub := range subs {
			tars, _ := filepath.Glob(filepath.Join(images, sub, "*.tar"))
			for _, tar := range tars {
				copyFile(t, tar, filepath.Join(ov, "node", "images", filepath.Base(tar)), 0o644)
			}
		}
		initrd := filepath.Join(n.dir, "initrd")
		packInitrd(t, nodeImg, ov, initrd)
		link := fmt.Sprintf("socket,id=n1,listen=127.0.0.1:%d", linkPort)
		if i > 0 {
			link = fmt.Sprintf("socket,id=n1,connect=127.0.0.1:%d", linkPort)
		}
		n.proc = c.start("vm-"+n.name, "qemu-system-x86_64", "-accel", "tcg,thread=multi", "-cpu", "max", "-m", "2048", "-smp", "1",
			"-display", "none", "-monitor", "none", "-no-reboot",
			"-serial", "file:"+filepath.Join(n.dir, "console.log"),
			"-serial", "file:"+filepath.Join(n.dir, "containerd.log"),
			"-serial", "file:"+filepath.Join(n.dir, "kubelet.log"),
			"-kernel", filepath.Join(vmCache, "vmlinuz"), "-initrd", initrd,
			"-append", "console=ttyS0 panic=-1 quiet loglevel=3 rdinit=/init",
			"-netdev", fmt.Sprintf("user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:%d-cmd:busybox nc 127.0.0.1 %d", apiPort, apiPort),
			"-device", "virtio-net-pci,netdev=n0",
			"-netdev", link, "-device", fmt.Sprintf("virtio-net-pci,netdev=n1,mac=52:54:00:50:00:%02x", i+1))
		if i == 0 {
			time.Sleep(500 * time.Millisecond) // the listening end first
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range nodes {
				for _, f := range []string{"console.log", "kubelet.log", "containerd.log"} {
					t.Logf("--- %s %s:\n%s", n.name, f, tail(filepath.Join(n.dir, f), 25))
				}
			}
		}
	})
	for _, n := range nodes {
		c.waitFor("node "+n.name+" Ready", 10*time.Minute, n.proc, func() bool {
			out, err := c.kubectl("get", "node", n.name, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
			return err == nil && out == "True"
		})
	}
	t.Logf("CLUSTER-CASE nodes-ready wall=%.1fs", time.Since(t0).Seconds())
	t.Logf("CLUSTER total so far %.1fs", time.Since(start).Seconds())
}

func nodeCacheDir() string {
	if d := os.Getenv("HANGAR_NODE_CACHE"); d != "" {
		return d
	}
	d, _ := os.UserCacheDir()
	return filepath.Join(d, "hangar", "node")
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
}

// packInitrd writes base followed by a newc archive of dir.
func packInitrd(t *testing.T, base, dir, out string) {
	t.Helper()
	var ov bytes.Buffer
	cmd := exec.Command("sh", "-c", "find . -print0 | sort -z | cpio --null -o -H newc --quiet")
	cmd.Dir, cmd.Stdout = dir, &ov
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, append(b, ov.Bytes()...), 0o644); err != nil {
		t.Fatal(err)
	}
}

// signClient writes PREFIX.crt and PREFIX.key, a client certificate for
// subj signed by the test CA in pki.
func signClient(t *testing.T, pki, prefix string, subj pkix.Name) {
	t.Helper()
	caCertPEM, err := os.ReadFile(filepath.Join(pki, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	caKeyPEM, err := os.ReadFile(filepath.Join(pki, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	cb, _ := pem.Decode(caCertPEM)
	kb, _ := pem.Decode(caKeyPEM)
	ca, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := x509.ParsePKCS1PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), Subject: subj, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(48 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(prefix+".crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(prefix+".key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}), 0o600)
}
