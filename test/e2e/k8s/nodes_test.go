package k8s

// TestNodes: a cluster with real nodes. Two QEMU guests (TCG) each run
// containerd and a kubelet joined to the control plane this package
// starts on the host; the chart is installed with helm as a user installs
// it, with images built here (make image, build/image) and imported into
// each node's containerd. Run with `make e2e-cluster` (HANGAR_CLUSTER=1).
//
// Network: the test builds everything, then runs its second half inside a
// network namespace of its own (unshare --net: no way out, nothing
// reachable from outside). There a bridge, 192.168.50.254/24, joins the
// control plane and the two guests' tap devices: 192.168.50.1 and .2 are
// the node addresses, where NFS, the storage server's API and the
// apiserver's calls to the kubelets (exec, logs) flow. The apiserver keeps
// listening on 127.0.0.1; a relay on the bridge address forwards to it.
// Pods get a bridge + host-local network per node; each node relays the
// `kubernetes` Service address to the apiserver (there is no kube-proxy).

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
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
	env               string // more lines of /node/env
	dir               string // host files of this node: overlay, logs
	proc              *proc
}

func TestNodes(t *testing.T) {
	if os.Getenv("HANGAR_CLUSTER") == "" {
		t.Skip("cluster suite with kubelet VMs: run `make e2e-cluster` (HANGAR_CLUSTER=1)")
	}
	if os.Getenv(innerEnv) == "" {
		prepareNodes(t)
		return
	}
	runNodes(t)
}

// innerEnv names the JSON of nodesPrep the second half reads.
const innerEnv = "HANGAR_CLUSTER_INNER"

type nodesPrep struct {
	Repo, Bin, Logs, NodeCache, Kernel, NodeImg, Guest, Images string
	Start                                                      time.Time
}

// prepareNodes builds what the nodes need (network access: module proxy,
// apt) and runs this test again inside a new network namespace.
func prepareNodes(t *testing.T) {
	start := time.Now()
	repo, bin, hangar, logs := setup(t)
	nodeCache := nodeCacheDir()
	t0 := time.Now()
	run(t, repo, nil, filepath.Join(repo, "test/e2e/cluster/host-tools.sh"))
	run(t, repo, nil, filepath.Join(repo, "test/e2e/cluster/build.sh"))
	vmCache := os.Getenv("HANGAR_E2E_CACHE")
	if vmCache == "" {
		vmCache = filepath.Join(nodeCache, "vm") // outside the checkout
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
	// Case 8 upgrades the release to this tag.
	mkImage("all", "hangar.test/hangar:e2e2", "/usr/local/bin/hangar", hangar+":/usr/local/bin/hangar")
	run(t, filepath.Join(repo, "build/image"), []string{"CGO_ENABLED=0"}, "go", "build", "-o", filepath.Join(images, "pause"), "./pause")
	mkImage("all", "hangar.test/pause:1", "/pause", filepath.Join(images, "pause")+":/pause")
	bbArgs := []string{"run", ".", "-ref", "hangar.test/busybox:1", "-out", filepath.Join(images, "all", "busybox.tar"), "-file", "/bin/busybox:/bin/busybox",
		"-file", guest + ":/bin/e2eguest"} // fcntl locks for case 3
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

	prep, _ := json.Marshal(nodesPrep{Repo: repo, Bin: bin, Logs: logs, NodeCache: nodeCache, Kernel: filepath.Join(vmCache, "vmlinuz"),
		NodeImg: nodeImg, Guest: guest, Images: images, Start: start})
	timeout := "40m"
	if d, ok := t.Deadline(); ok {
		timeout = time.Until(d).Truncate(time.Second).String()
	}
	cmd := exec.Command("unshare", "--net", "--", os.Args[0], "-test.run", "^TestNodes$", "-test.v", "-test.count=1", "-test.timeout", timeout)
	cmd.Env = append(os.Environ(), innerEnv+"="+string(prep))
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("cluster run in its network namespace: %v (logs in %s)", err, logs)
	}
}

// runNodes is the second half, inside the network namespace.
func runNodes(t *testing.T) {
	var p nodesPrep
	if err := json.Unmarshal([]byte(os.Getenv(innerEnv)), &p); err != nil {
		t.Fatal(err)
	}
	start, repo, bin, logs, nodeCache, guest, images, nodeImg := p.Start, p.Repo, p.Bin, p.Logs, p.NodeCache, p.Guest, p.Images, p.NodeImg
	// The bridge is also the nodes' gateway, routing each node's pod
	// range to it, so pods reach the other node's address (the controller
	// on node-b calls the storage server on node-a) without NAT.
	for _, cmd := range [][]string{{"link", "set", "lo", "up"}, {"link", "add", "br0", "type", "bridge"},
		{"addr", "add", "192.168.50.254/24", "dev", "br0"}, {"link", "set", "br0", "up"},
		{"route", "add", "10.244.1.0/24", "via", "192.168.50.1"}, {"route", "add", "10.244.2.0/24", "via", "192.168.50.2"}} {
		run(t, repo, nil, "ip", cmd...)
	}
	run(t, repo, nil, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	t0 := time.Now()
	c := startCluster(t, bin, logs)
	c.start("kube-scheduler", filepath.Join(nodeCache, "kube-scheduler"), "--kubeconfig="+c.kubeconfig,
		"--authentication-kubeconfig="+c.kubeconfig, "--authorization-kubeconfig="+c.kubeconfig,
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", freePort(t)), "--leader-elect=false")
	apiPort := c.apiPort()
	c.start("apiserver-relay", guest, "forward", fmt.Sprintf("192.168.50.254:%d", apiPort), fmt.Sprintf("127.0.0.1:%d", apiPort))
	t.Logf("CLUSTER control plane up in %.1fs", time.Since(t0).Seconds())

	nodes := []*vmNode{
		{name: "node-a", ip: "192.168.50.1", podCIDR: "10.244.1.0/24"},
		{name: "node-b", ip: "192.168.50.2", podCIDR: "10.244.2.0/24"},
	}
	t0 = time.Now()
	for i, n := range nodes {
		n.dir = filepath.Join(logs, n.name)
		os.MkdirAll(n.dir, 0o755)
		ov := filepath.Join(t.TempDir(), "overlay-"+n.name)
		os.MkdirAll(filepath.Join(ov, "node", "pki"), 0o755)
		os.MkdirAll(filepath.Join(ov, "node", "images"), 0o755)
		os.MkdirAll(filepath.Join(ov, "usr", "local", "bin"), 0o755)
		copyFile(t, guest, filepath.Join(ov, "usr", "local", "bin", "e2eguest"), 0o755)
		copyFile(t, filepath.Join(c.pki, "ca.crt"), filepath.Join(ov, "node", "pki", "ca.crt"), 0o644)
		signClient(t, c.pki, filepath.Join(ov, "node", "pki", "kubelet"), pkix.Name{CommonName: "system:node:" + n.name, Organization: []string{"system:nodes"}})
		os.WriteFile(filepath.Join(ov, "node", "kubeconfig"), []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: t, cluster: {server: "https://192.168.50.254:%d", certificate-authority: /node/pki/ca.crt}}]
users: [{name: u, user: {client-certificate: /node/pki/kubelet.crt, client-key: /node/pki/kubelet.key}}]
contexts: [{name: t, context: {cluster: t, user: u}}]
current-context: t
`, apiPort)), 0o600)
		subs := []string{"all"}
		if i == 1 {
			// The controller runs on node-b, away from the storage
			// server: TCG guests have little CPU to spare.
			subs = append(subs, "control")
		}
		for _, sub := range subs {
			tars, _ := filepath.Glob(filepath.Join(images, sub, "*.tar"))
			for _, tar := range tars {
				copyFile(t, tar, filepath.Join(ov, "node", "images", filepath.Base(tar)), 0o644)
			}
		}
		var disk []string
		if i == 0 {
			// The storage node's data disk: a sparse ext4 image, the
			// guest's /dev/vda, mounted at the chart's dataDir.
			// Servers reserve each volume's full size: the suite's
			// claims (8Gi after case 5's expansion) must fit.
			img := filepath.Join(t.TempDir(), "data-"+n.name+".img")
			run(t, repo, nil, "truncate", "-s", "16G", img)
			run(t, repo, nil, "mkfs.ext4", "-q", "-F", img)
			disk = []string{"-drive", "file=" + img + ",format=raw,if=virtio,cache=unsafe"}
			n.env += "DATA_DISK=/dev/vda\n"
		}
		initrd := filepath.Join(t.TempDir(), "initrd-"+n.name)
		os.WriteFile(filepath.Join(ov, "node", "env"), []byte(fmt.Sprintf("NODE_NAME=%s\nNODE_IP=%s\nGATEWAY=192.168.50.254\nAPI_PORT=%d\nPOD_CIDR=%s\n%s",
			n.name, n.ip, apiPort, n.podCIDR, n.env)), 0o644)
		packInitrd(t, nodeImg, ov, initrd)
		tap := "tap-" + n.name
		run(t, repo, nil, "ip", "tuntap", "add", tap, "mode", "tap")
		run(t, repo, nil, "ip", "link", "set", tap, "master", "br0", "up")
		// Two vCPUs: a guest with one was starved on a busy host (a
		// sidecar's 1 s CSI call timed out, probes failed).
		args := []string{"-accel", "tcg,thread=multi", "-cpu", "max", "-m", "2048", "-smp", "2",
			"-display", "none", "-monitor", "none", "-no-reboot",
			"-serial", "file:" + filepath.Join(n.dir, "console.log"),
			"-serial", "file:" + filepath.Join(n.dir, "containerd.log"),
			"-serial", "file:" + filepath.Join(n.dir, "kubelet.log"),
			"-kernel", p.Kernel, "-initrd", initrd,
			"-append", "console=ttyS0 panic=-1 no_timer_check quiet loglevel=3 rdinit=/init",
			"-netdev", "tap,id=n0,ifname=" + tap + ",script=no,downscript=no",
			"-device", fmt.Sprintf("virtio-net-pci,netdev=n0,mac=52:54:00:50:00:%02x", i+1)}
		n.proc = c.start("vm-"+n.name, "qemu-system-x86_64", append(args, disk...)...)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpPods(c)
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
	t.Logf("CLUSTER nodes Ready in %.1fs", time.Since(t0).Seconds())

	// Case 1: the chart installed as a user installs it (README), with
	// this build's images; every pod Ready; CSINode made by the kubelet
	// from the node plugin's own registration.
	ok := t.Run("1-chart-ready", func(t *testing.T) {
		c := c.with(t)
		t0 := time.Now()
		c.mustKubectl("label", "node", "node-a", "hangar.dev/storage=true")
		values := filepath.Join(t.TempDir(), "values.yaml")
		// No cluster DNS here: the controller is given the storage
		// server's address instead of discovering it through the
		// headless Service. The sidecar images exist on node-b only.
		// The TCG guests answer slowly: leader-elected sidecars get
		// longer leases (the sidecars' 10 s renew deadline made them
		// exit and restart) and probes more time.
		os.WriteFile(values, []byte(`image: {repository: hangar.test/hangar, tag: e2e, pullPolicy: Never}
sidecars:
  provisioner: {image: "hangar.test/csi-provisioner:e2e"}
  attacher: {image: "hangar.test/csi-attacher:e2e"}
  resizer: {image: "hangar.test/csi-resizer:e2e"}
controller:
  replicas: 1
  servers: [{name: node-a, address: "192.168.50.1:7070"}]
  nodeSelector: {kubernetes.io/hostname: node-b}
  leaderElection: {leaseDuration: 120s, renewDeadline: 90s, retryPeriod: 20s}
  livenessProbe: {periodSeconds: 30, timeoutSeconds: 30, failureThreshold: 5}
node:
  livenessProbe: {periodSeconds: 30, timeoutSeconds: 30, failureThreshold: 5}
`), 0o644)
		out := run(t, repo, []string{"KUBECONFIG=" + c.kubeconfig}, filepath.Join(bin, "helm"), "install", "hangar", filepath.Join(repo, "charts/hangar"),
			"--namespace", "hangar", "--create-namespace", "-f", values)
		t.Logf("helm install: %s", firstLine(out))
		want := map[string]int{"controller": 1, "node": 2, "server": 1}
		c.waitFor("chart pods Ready", 15*time.Minute, nil, func() bool {
			for comp, n := range want {
				out, err := c.kubectl("-n", "hangar", "get", "pods", "-l", "app.kubernetes.io/component="+comp,
					"-o", `jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{" "}{end}`)
				if err != nil || strings.Count(out, "True") != n {
					return false
				}
			}
			return true
		})
		for _, n := range nodes {
			c.waitFor("CSINode "+n.name, 2*time.Minute, nil, func() bool {
				out, err := c.kubectl("get", "csinode", n.name, "-o", "jsonpath={.spec.drivers[*].nodeID}")
				return err == nil && out == n.name+"@"+n.ip
			})
		}
		t.Logf("CLUSTER-CASE 1-chart-ready wall=%.1fs", time.Since(t0).Seconds())
	})
	if !ok {
		c.kubectl("-n", "hangar", "get", "pods", "-o", "wide")
		out, _ := c.kubectl("-n", "hangar", "get", "pods", "-o", "wide")
		ev, _ := c.kubectl("get", "events", "-A", "--sort-by=.lastTimestamp")
		t.Fatalf("chart not ready:\n%s\n%s", out, lastLines(ev, 30))
	}
	// The workloads of cases 4-8 start now, while cases 2 and 3 run.
	c.mustKubectl("create", "namespace", "e2e")
	c.waitFor("ServiceAccount e2e/default", 60*time.Second, nil, func() bool { return c.get("-n", "e2e", "serviceaccount", "default") != nil })
	c.apply(podWorkloads)

	// Case 2: a StatefulSet of 3 with a claim per pod (examples/, with
	// this build's busybox image): each pod writes its identity; a deleted
	// pod comes back, on the other node where possible, and finds it.
	t.Run("2-statefulset", func(t *testing.T) {
		c := c.with(t)
		t0 := time.Now()
		ex := strings.ReplaceAll(readFile(t, filepath.Join(repo, "examples/statefulset.yaml")), "image: busybox:1.37", "image: hangar.test/busybox:1")
		if _, err := c.kubectlIn(ex, "apply", "-n", "e2e", "-f", "-"); err != nil {
			t.Fatal(err)
		}
		ready := func(what string) {
			c.waitFor(what, 10*time.Minute, nil, func() bool {
				out, err := c.kubectl("-n", "e2e", "get", "statefulset", "web", "-o", "jsonpath={.status.readyReplicas}")
				return err == nil && out == "3"
			})
		}
		ready("StatefulSet web: 3 ready")
		where := map[string]string{}
		for i := range 3 {
			pod := fmt.Sprintf("web-%d", i)
			out := c.mustKubectl("-n", "e2e", "exec", pod, "--", "cat", "/data/log")
			if !strings.Contains(out, pod+" was here") {
				t.Errorf("%s: /data/log = %q", pod, out)
			}
			where[pod] = strings.TrimSpace(c.mustKubectl("-n", "e2e", "get", "pod", pod, "-o", "jsonpath={.spec.nodeName}"))
		}
		t.Logf("pods on nodes: %v", where)
		// Cordon web-0's node so it comes back on the other one: its
		// volume is detached there and attached to the new node.
		c.mustKubectl("cordon", where["web-0"])
		c.mustKubectl("-n", "e2e", "delete", "pod", "web-0")
		ready("StatefulSet web: web-0 back")
		c.mustKubectl("uncordon", where["web-0"])
		out := c.mustKubectl("-n", "e2e", "exec", "web-0", "--", "cat", "/data/log")
		if strings.Count(out, "web-0 was here") != 2 {
			t.Errorf("web-0 after restart: /data/log = %q, want two lines of its own", out)
		}
		now := strings.TrimSpace(c.mustKubectl("-n", "e2e", "get", "pod", "web-0", "-o", "jsonpath={.spec.nodeName}"))
		if now == where["web-0"] {
			t.Errorf("web-0 came back on the cordoned node %s", now)
		}
		t.Logf("web-0 came back on %s (was on %s)", now, where["web-0"])
		t.Logf("CLUSTER-CASE 2-statefulset wall=%.1fs", time.Since(t0).Seconds())
	})

	// Case 3: an RWX claim (examples/rwx-index.yaml): a Job writes an
	// index, readers on both nodes mount it read-only at once and see all
	// of it; their readOnly mounts refuse writes. Two more pods mount it
	// read-write, one per node: each reads what the other wrote, and on
	// NFSv4.1 a lock taken on one node excludes the other.
	t.Run("3-rwx-two-nodes", func(t *testing.T) {
		c := c.with(t)
		t0 := time.Now()
		ex := strings.ReplaceAll(readFile(t, filepath.Join(repo, "examples/rwx-index.yaml")), "image: busybox:1.37", "image: hangar.test/busybox:1")
		if _, err := c.kubectlIn(ex, "apply", "-n", "e2e", "-f", "-"); err != nil {
			t.Fatal(err)
		}
		c.apply(lockers)
		c.waitFor("Job build-index complete", 10*time.Minute, nil, func() bool {
			out, err := c.kubectl("-n", "e2e", "get", "job", "build-index", "-o", "jsonpath={.status.succeeded}")
			return err == nil && out == "1"
		})
		c.waitFor("3 index readers ready", 10*time.Minute, nil, func() bool {
			out, err := c.kubectl("-n", "e2e", "get", "deployment", "index-readers", "-o", "jsonpath={.status.readyReplicas}")
			return err == nil && out == "3"
		})
		writer := strings.TrimSpace(c.mustKubectl("-n", "e2e", "get", "pods", "-l", "job-name=build-index", "-o", "jsonpath={.items[0].spec.nodeName}"))
		pods := strings.Fields(c.mustKubectl("-n", "e2e", "get", "pods", "-l", "app=index-reader", "-o", `jsonpath={range .items[*]}{.metadata.name}/{.spec.nodeName}{" "}{end}`))
		onNode := map[string]bool{}
		for _, pn := range pods {
			pod, node, _ := strings.Cut(pn, "/")
			onNode[node] = true
			v := vars(c.mustInPod("e2e", pod, `echo "doc=$(cat /index/docs/42.txt 2>&1)"; echo "touch=$(touch /index/x 2>&1 && echo written)"; echo "docs=$(wc -l < /index/index.txt)"`))
			if v["doc"] != "document 42" {
				t.Errorf("%s on %s reads %q", pod, node, v["doc"])
			}
			if !strings.Contains(v["touch"], "Read-only file system") {
				t.Errorf("%s on %s: write to its readOnly mount: %q", pod, node, v["touch"])
			}
			if v["docs"] != "100" {
				t.Errorf("%s on %s sees %s documents", pod, node, v["docs"])
			}
		}
		if len(onNode) < 2 {
			t.Errorf("readers all on %v; want both nodes", onNode)
		}
		t.Logf("writer on %s, readers %v", writer, pods)
		checkLocks(t, c)
		// Its pods go now (the claim stays, for case 7): every pod on a
		// node slows the emulated guest's container starts in the cases
		// after it, and the readers are probed every 2 s.
		c.mustKubectl("-n", "e2e", "delete", "deployment/index-readers", "job/build-index", "pod/locker-a", "pod/locker-b", "--wait=false")
		t.Logf("CLUSTER-CASE 3-rwx-two-nodes wall=%.1fs", time.Since(t0).Seconds())
	})
	runPodCases(t, c, repo, bin)
	t.Logf("CLUSTER total %.1fs", time.Since(start).Seconds())
}

// dumpPods logs every pod and, for each container that restarted, the
// end of its previous run's log (why a sidecar or plugin exited).
func dumpPods(c *cluster) {
	out, _ := c.kubectl("get", "pods", "-A", "-o", "wide")
	c.t.Logf("pods:\n%s", out)
	out, _ = c.kubectl("get", "pods", "-A", "-o", `go-template={{range .items}}{{$p := .}}{{range .status.containerStatuses}}{{if gt .restartCount 0}}{{$p.metadata.namespace}} {{$p.metadata.name}} {{.name}}{{"\n"}}{{end}}{{end}}{{end}}`)
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 {
			continue
		}
		logs, _ := c.kubectl("-n", f[0], "logs", f[1], "-c", f[2], "--previous", "--tail", "15")
		c.t.Logf("--- %s/%s %s, previous run:\n%s", f[0], f[1], f[2], logs)
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
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
