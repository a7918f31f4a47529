package k8s

// TestNodes cases 4-8: what real pods do with Hangar volumes (security
// contexts, read-only publications, pod info, online expansion, a drain,
// an upgrade under I/O, and cleanup). Their workloads are created right
// after the chart is ready (podWorkloads), so their containers start while
// cases 2 and 3 run; each case then checks and moves on.

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// with returns c reporting to t: a subtest must not fail its parent.
func (c *cluster) with(t *testing.T) *cluster {
	cc := *c
	cc.t = t
	return &cc
}

// podWorkloads: an inspector pod on every node (host PID namespace:
// nsenter into the node's mount namespace to read its mount table and
// kubelet directories), the claim and pods of cases 4, 5 and 8 on node-b
// (away from the storage node), and the Deployment of case 6.
const podWorkloads = `apiVersion: v1
kind: Namespace
metadata: {name: inspect}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: inspect, namespace: inspect}
spec:
  selector: {matchLabels: {app: inspect}}
  template:
    metadata: {labels: {app: inspect}}
    spec:
      hostPID: true
      tolerations: [{operator: Exists}]
      terminationGracePeriodSeconds: 1
      containers:
        - name: sh
          image: hangar.test/busybox:1
          command: [sleep, "100000"]
          securityContext: {privileged: true}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: c4, namespace: e2e}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: hangar
  resources: {requests: {storage: 1Gi}}
---
# Writes a numbered line every 0.2 s for as long as it runs; a failed
# write ends the container (its restart count shows it).
apiVersion: v1
kind: Pod
metadata: {name: c4-rw, namespace: e2e, labels: {app: c4}}
spec:
  nodeSelector: {kubernetes.io/hostname: node-b}
  terminationGracePeriodSeconds: 1
  securityContext: {runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000}
  containers:
    - name: app
      image: hangar.test/busybox:1
      command: [sh, -c, 'id > /data/id; i=0; while echo $i >> /data/io; do i=$((i+1)); sleep 0.2; done; echo "write $i failed"; exit 1']
      volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: c4}}]
---
apiVersion: v1
kind: Pod
metadata: {name: c4-ro, namespace: e2e, labels: {app: c4}}
spec:
  nodeSelector: {kubernetes.io/hostname: node-b}
  terminationGracePeriodSeconds: 1
  securityContext: {runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000}
  containers:
    - name: app
      image: hangar.test/busybox:1
      command: [sleep, "100000"]
      volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: c4, readOnly: true}}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: c6, namespace: e2e}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: hangar
  resources: {requests: {storage: 1Gi}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: c6, namespace: e2e}
spec:
  replicas: 1
  strategy: {type: Recreate}
  selector: {matchLabels: {app: c6}}
  template:
    metadata: {labels: {app: c6}}
    spec:
      terminationGracePeriodSeconds: 1
      affinity:
        nodeAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
            - weight: 100
              preference: {matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [node-a]}]}
      containers:
        - name: app
          image: hangar.test/busybox:1
          command: [sh, -c, '[ -f /data/blob.md5 ] || { head -c 4194304 /dev/urandom > /data/blob && md5sum /data/blob > /data/blob.md5; }; echo "on $NODE" >> /data/log; exec sleep 100000']
          env: [{name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}]
          volumeMounts: [{name: data, mountPath: /data}]
      volumes: [{name: data, persistentVolumeClaim: {claimName: c6}}]
`

// lockers: case 3's claim mounted read-write on both nodes. locker-a
// holds a POSIX write lock on /index/held for as long as it runs
// (e2eguest, in the busybox image: busybox has no flock applet).
const lockers = `apiVersion: v1
kind: Pod
metadata: {name: locker-a, namespace: e2e}
spec:
  nodeSelector: {kubernetes.io/hostname: node-a}
  terminationGracePeriodSeconds: 1
  containers:
    - name: app
      image: hangar.test/busybox:1
      command: [sh, -c, 'echo a > /index/from-a; touch /index/held /index/free; exec e2eguest lock sleep /index/held /index/held-by']
      volumeMounts: [{name: index, mountPath: /index}]
  volumes: [{name: index, persistentVolumeClaim: {claimName: shared-index}}]
---
apiVersion: v1
kind: Pod
metadata: {name: locker-b, namespace: e2e}
spec:
  nodeSelector: {kubernetes.io/hostname: node-b}
  terminationGracePeriodSeconds: 1
  containers:
    - name: app
      image: hangar.test/busybox:1
      command: [sh, -c, 'echo b > /index/from-b; exec sleep 100000']
      volumeMounts: [{name: index, mountPath: /index}]
  volumes: [{name: index, persistentVolumeClaim: {claimName: shared-index}}]
`

// podReady reports whether pod in namespace ns is Ready.
func (c *cluster) podReady(ns, pod string) bool {
	out, err := c.kubectl("-n", ns, "get", "pod", pod, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
	return err == nil && out == "True"
}

// jsonpath gets objects in namespace ns (args: kind, name or selectors)
// and returns path of them.
func (c *cluster) jsonpath(ns, path string, args ...string) string {
	c.t.Helper()
	return strings.TrimSpace(c.mustKubectl(append([]string{"-n", ns, "get", "-o", "jsonpath=" + path}, args...)...))
}

// mountOpts is the options field of a /proc/mounts line.
func mountOpts(line string) string {
	if f := strings.Fields(line); len(f) > 3 {
		return f[3]
	}
	return ""
}

// inPod runs a shell script in pod's first container.
func (c *cluster) inPod(ns, pod, script string) (string, error) {
	return c.kubectl("-n", ns, "exec", pod, "--", "sh", "-c", script)
}

func (c *cluster) mustInPod(ns, pod, script string) string {
	c.t.Helper()
	out, err := c.inPod(ns, pod, script)
	if err != nil {
		c.t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// vars is the "key=value" lines of a script's output. Every exec costs
// seconds in the emulated guests (runc starts a process in the
// container), so a check asks everything it needs of a pod in one script
// that prints such lines.
func vars(out string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// onNode runs a shell script in node's own mount namespace (through the
// inspector pod there).
func (c *cluster) onNode(node, script string) string {
	c.t.Helper()
	pod := c.jsonpath("inspect", "{.items[0].metadata.name}", "pods", "-l", "app=inspect", "--field-selector", "spec.nodeName="+node)
	out, err := c.kubectl("-n", "inspect", "exec", pod, "--", "nsenter", "-t", "1", "-m", "--", "sh", "-c", script)
	if err != nil {
		c.t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// checkLocks: case 3's fcntl check across nodes, on an NFSv4.1 (or later)
// mount only: NFSv3 mounts are made with nolock, where locks are local to
// a node by design.
func checkLocks(t *testing.T, c *cluster) {
	c.waitFor("locker pods Ready", 10*time.Minute, nil, func() bool { return c.podReady("e2e", "locker-a") && c.podReady("e2e", "locker-b") })
	// One writes, the other reads, both ways, while both are mounted.
	if out := c.mustInPod("e2e", "locker-a", "cat /index/from-b"); out != "b" {
		t.Errorf("locker-a on node-a reads %q from node-b's file", out)
	}
	// On node-b, in one exec: node-a's file, the mount, and, once
	// locker-a holds its lock, a lock of that file and of a free one.
	var v map[string]string
	c.waitFor("locker-a holds its lock", 2*time.Minute, nil, func() bool {
		out, err := c.inPod("e2e", "locker-b", `echo "from-a=$(cat /index/from-a 2>&1)"; echo "mount=$(grep ' /index ' /proc/mounts)"
			echo "held-by=$(cat /index/held-by 2>&1)"
			echo "held=$(e2eguest lock try /index/held 2>&1)"; echo "free=$(e2eguest lock try /index/free 2>&1)"`)
		v = vars(out)
		return err == nil && v["held-by"] == "locked"
	})
	if v["from-a"] != "a" {
		t.Errorf("locker-b on node-b reads %q from node-a's file", v["from-a"])
	}
	mnt := v["mount"]
	f := strings.Fields(mnt)
	if len(f) < 4 || !strings.HasPrefix(f[2], "nfs4") || !(strings.Contains(f[3], "vers=4.1") || strings.Contains(f[3], "vers=4.2")) {
		t.Logf("CLUSTER-CASE 3 cross-node lock check NOT RUN: the claim is mounted %q, locks need NFSv4.1", mnt)
		return
	}
	if v["held"] != "denied" {
		t.Errorf("locker-b on node-b locking the file node-a holds locked: %q, want denied", v["held"])
	}
	if v["free"] != "locked" {
		t.Errorf("locker-b on node-b locking a free file: %q, want locked", v["free"])
	}
	t.Logf("cross-node lock excluded (%s)", f[3])
}

// kib is the size column of `df -P -k` (one line per file system).
func kib(t *testing.T, c *cluster, pod string) int {
	t.Helper()
	out := c.mustInPod("e2e", pod, "df -P -k /data | tail -1")
	f := strings.Fields(out)
	if len(f) < 2 {
		t.Fatalf("df in %s: %q", pod, out)
	}
	n, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatalf("df in %s: %q: %v", pod, out, err)
	}
	return n
}

// ioLines checks c4-rw's /data/io is 0, 1, 2, … with no gap or
// repeat, and returns its length.
func ioLines(t *testing.T, c *cluster) int {
	t.Helper()
	out := c.mustInPod("e2e", "c4-rw", `awk 'NR-1 != $1 { print "line " NR " is " $0; exit 1 } END { print NR }' /data/io`)
	n, err := strconv.Atoi(out)
	if err != nil {
		t.Fatalf("c4-rw /data/io: %s", out)
	}
	return n
}

func restarts(c *cluster, pod string) string {
	return c.jsonpath("e2e", "{.status.containerStatuses[0].restartCount}", "pod", pod)
}

// runPodCases runs cases 4-8 (7 last: it deletes every claim).
func runPodCases(t *testing.T, c *cluster, repo, bin string) {
	t.Run("4-5-6", func(t *testing.T) {
		t.Run("4-5", func(t *testing.T) {
			t.Parallel()
			// Case 4: fsGroup and runAsUser honoured (fsGroupPolicy:
			// File: the kubelet gives the volume's root to the fsGroup,
			// setgid, and new files inherit it); a readOnly claim is
			// published read-only; the node plugin gets the pod's
			// identity (podInfoOnMount) and logs it.
			t.Run("4-security-readonly-podinfo", func(t *testing.T) {
				c := c.with(t)
				t0 := time.Now()
				c.waitFor("c4 pods Ready", 10*time.Minute, nil, func() bool { return c.podReady("e2e", "c4-rw") && c.podReady("e2e", "c4-ro") })
				w := vars(c.mustInPod("e2e", "c4-rw", `echo "id=$(cat /data/id)"; echo "root=$(stat -c '%g %A' /data)"; echo "io=$(stat -c '%u %g' /data/io)"; echo "mount=$(grep ' /data ' /proc/mounts)"`))
				if out := w["id"]; !strings.HasPrefix(out, "uid=1000 gid=3000") || !strings.Contains(out, "2000") {
					t.Errorf("c4-rw runs as %q, want uid=1000 gid=3000 with group 2000", out)
				}
				if out := w["root"]; len(out) != 15 || out[:5] != "2000 " || out[9:12] != "rws" {
					t.Errorf("volume root: %q, want group 2000 (fsGroup), setgid, group-writable", out)
				}
				if out := w["io"]; out != "1000 2000" {
					t.Errorf("file the pod wrote: owner %q, want 1000 2000 (runAsUser, fsGroup)", out)
				}
				r := vars(c.mustInPod("e2e", "c4-ro", `echo "id=$(cat /data/id)"; echo "touch=$(touch /data/x 2>&1 && echo written)"; echo "mount=$(grep ' /data ' /proc/mounts)"`))
				if out := r["id"]; !strings.HasPrefix(out, "uid=1000") {
					t.Errorf("c4-ro reads %q", out)
				}
				if out := r["touch"]; !strings.Contains(out, "Read-only file system") {
					t.Errorf("write to the readOnly claim: %q, want Read-only file system", out)
				}
				ro, rw := mountOpts(r["mount"]), mountOpts(w["mount"])
				if !strings.HasPrefix(ro, "ro,") || !strings.HasPrefix(rw, "rw,") {
					t.Errorf("c4-ro mounted %q, c4-rw %q: want ro and rw", ro, rw)
				}
				// The read-only publication is no weaker than the other, on
				// the node where the driver makes it. (Inside the pod runc's
				// own read-only remount of the container's bind drops
				// nodev: runc 1.1.5 here, not the driver's doing.)
				c.waitFor("inspector on node-b", 5*time.Minute, nil, func() bool {
					out, err := c.kubectl("-n", "inspect", "get", "pods", "-l", "app=inspect", "--field-selector", "spec.nodeName=node-b",
						"-o", `jsonpath={.items[0].status.conditions[?(@.type=="Ready")].status}`)
					return err == nil && out == "True"
				})
				target := func(pod string) string {
					uid := c.jsonpath("e2e", "{.metadata.uid}", "pod", pod)
					return fmt.Sprintf(`echo "%s=$(grep ' /var/lib/kubelet/pods/%s/volumes/kubernetes.io~csi/' /proc/mounts)"`, pod, uid)
				}
				pub := vars(c.onNode("node-b", target("c4-ro")+"; "+target("c4-rw")))
				nro, nrw := mountOpts(pub["c4-ro"]), mountOpts(pub["c4-rw"])
				if !strings.HasPrefix(nro, "ro,") {
					t.Errorf("c4-ro's publication on node-b is %q, want ro", nro)
				}
				for _, o := range []string{"nodev", "nosuid", "noexec"} {
					if strings.Contains(","+nrw+",", ","+o+",") && !strings.Contains(","+nro+",", ","+o+",") {
						t.Errorf("c4-ro's publication on node-b %q lacks %s (c4-rw's: %q)", nro, o, nrw)
					}
				}
				t.Logf("publications on node-b: ro %q, rw %q; in the pods: ro %q, rw %q", nro, nrw, ro, rw)
				node := c.jsonpath("hangar", "{.items[0].metadata.name}", "pods", "-l", "app.kubernetes.io/component=node", "--field-selector", "spec.nodeName=node-b")
				// A restart (liveness, on a starved guest) must not hide
				// the publications: the previous run's log counts too.
				prev, _ := c.kubectl("-n", "hangar", "logs", node, "-c", "hangar", "--previous")
				logs := prev + c.mustKubectl("-n", "hangar", "logs", node, "-c", "hangar")
				for _, pod := range []string{"c4-rw", "c4-ro"} {
					uid := c.jsonpath("e2e", "{.metadata.uid}", "pod", pod)
					if !strings.Contains(logs, `"pod":"e2e/`+pod+`","podUID":"`+uid+`"`) {
						t.Errorf("node plugin on node-b logged no publication for pod e2e/%s (%s):\n%s", pod, uid, lastLines(logs, 10))
					}
				}
				t.Logf("CLUSTER-CASE 4-security-readonly-podinfo wall=%.1fs", time.Since(t0).Seconds())
			})
			// Case 5: expand c4 while c4-rw has it mounted and writes:
			// its df shows the new size, no restart.
			t.Run("5-expand-online", func(t *testing.T) {
				c := c.with(t)
				t0 := time.Now()
				uid := c.jsonpath("e2e", "{.metadata.uid}", "pod", "c4-rw")
				if n := kib(t, c, "c4-rw"); n < 1<<20*9/10 || n > 1<<20 {
					t.Fatalf("df before expansion: %d KiB, want about 1Gi", n)
				}
				c.mustKubectl("-n", "e2e", "patch", "pvc", "c4", "-p", `{"spec":{"resources":{"requests":{"storage":"2Gi"}}}}`)
				var n int
				c.waitFor("c4-rw's df at 2Gi", 5*time.Minute, nil, func() bool { n = kib(t, c, "c4-rw"); return n >= 2<<20*9/10 })
				if n > 2<<20 {
					t.Errorf("df after expansion: %d KiB, want at most 2Gi", n)
				}
				if now := c.jsonpath("e2e", "{.metadata.uid}", "pod", "c4-rw"); now != uid || restarts(c, "c4-rw") != "0" {
					t.Errorf("c4-rw restarted or replaced (uid %s -> %s, restarts %s)", uid, now, restarts(c, "c4-rw"))
				}
				c.waitFor("PVC c4 capacity 2Gi", 2*time.Minute, nil, func() bool {
					return c.jsonpath("e2e", "{.status.capacity.storage}", "pvc", "c4") == "2Gi"
				})
				t.Logf("df: %d KiB", n)
				t.Logf("CLUSTER-CASE 5-expand-online wall=%.1fs", time.Since(t0).Seconds())
			})
		})
		// Case 6: drain the node of c6's pod (only that pod is evicted,
		// --pod-selector, so the test's other pods stay put): it comes
		// back on the other node with its volume and data.
		t.Run("6-drain", func(t *testing.T) {
			t.Parallel()
			c := c.with(t)
			t0 := time.Now()
			var pod string
			c.waitFor("c6 Ready", 10*time.Minute, nil, func() bool {
				out, err := c.kubectl("-n", "e2e", "get", "pods", "-l", "app=c6", "-o", `jsonpath={range .items[*]}{.metadata.name}{" "}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
				f := strings.Fields(out)
				if err != nil || len(f) != 2 || f[1] != "True" {
					return false
				}
				pod = f[0]
				return true
			})
			from := c.jsonpath("e2e", "{.spec.nodeName}", "pod", pod)
			sum := c.mustInPod("e2e", pod, "cat /data/blob.md5")
			// Not c.kubectl: the drain may outlast its 2 min limit.
			run(t, repo, nil, filepath.Join(bin, "kubectl"), "--kubeconfig="+c.kubeconfig, "drain", from, "--ignore-daemonsets", "--pod-selector=app=c6", "--timeout=8m")
			defer c.mustKubectl("uncordon", from)
			var to string
			c.waitFor("c6 back on another node", 10*time.Minute, nil, func() bool {
				out, err := c.kubectl("-n", "e2e", "get", "pods", "-l", "app=c6", "-o", `jsonpath={range .items[*]}{.metadata.name}{" "}{.spec.nodeName}{" "}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
				f := strings.Fields(out)
				if err != nil || len(f) != 3 || f[2] != "True" {
					return false
				}
				pod, to = f[0], f[1]
				return true
			})
			if to == from {
				t.Errorf("c6 came back on the drained node %s", to)
			}
			v := vars(c.mustInPod("e2e", pod, `echo "check=$(md5sum -c /data/blob.md5 2>&1)"; echo "sum=$(cat /data/blob.md5)"; echo "log=$(tr '\n' ',' < /data/log)"`))
			if !strings.HasSuffix(v["check"], "OK") || v["sum"] != sum {
				t.Errorf("c6's data after the move: %q, sum %q (was %q)", v["check"], v["sum"], sum)
			}
			if v["log"] != "on "+from+",on "+to+"," {
				t.Errorf("c6's log: %q", v["log"])
			}
			t.Logf("c6 moved from %s to %s", from, to)
			t.Logf("CLUSTER-CASE 6-drain wall=%.1fs", time.Since(t0).Seconds())
		})
	})

	// Case 8: helm upgrade to another image tag rolls the node plugins,
	// the storage server and the controller while c4-rw writes: the
	// NFS mount (hard) waits out the server's restart, nothing is lost,
	// the pod never restarts.
	t.Run("8-upgrade-under-io", func(t *testing.T) {
		c := c.with(t)
		t0 := time.Now()
		old := c.jsonpath("hangar", `{range .items[*]}{.metadata.name}{" "}{end}`, "pods")
		before := ioLines(t, c)
		out := run(t, repo, []string{"KUBECONFIG=" + c.kubeconfig}, filepath.Join(bin, "helm"), "upgrade", "hangar", filepath.Join(repo, "charts/hangar"),
			"--namespace", "hangar", "--reuse-values", "--set", "image.tag=e2e2")
		t.Logf("helm upgrade: %s", firstLine(out))
		want := map[string]int{"controller": 1, "node": 2, "server": 1}
		c.waitFor("chart pods Ready on image e2e2", 15*time.Minute, nil, func() bool {
			for comp, n := range want {
				out, err := c.kubectl("-n", "hangar", "get", "pods", "-l", "app.kubernetes.io/component="+comp,
					"-o", `jsonpath={range .items[*]}{.spec.containers[0].image}{"="}{.status.conditions[?(@.type=="Ready")].status}{" "}{end}`)
				if err != nil || strings.Count(out, "hangar.test/hangar:e2e2=True") != n || len(strings.Fields(out)) != n {
					return false
				}
			}
			return true
		})
		c.waitFor("the old release's pods gone", 2*time.Minute, nil, func() bool {
			for _, p := range strings.Fields(old) {
				if c.get("-n", "hangar", "pod", p) != nil {
					return false
				}
			}
			return true
		})
		mid := ioLines(t, c)
		var after int
		c.waitFor("c4-rw writing after the upgrade", 3*time.Minute, nil, func() bool { after = ioLines(t, c); return after > mid+10 })
		if r := restarts(c, "c4-rw"); r != "0" {
			t.Errorf("c4-rw restarted %s times during the upgrade", r)
		}
		t.Logf("c4-rw wrote lines %d..%d during and after the upgrade, no gap", before, after)
		t.Logf("CLUSTER-CASE 8-upgrade-under-io wall=%.1fs", time.Since(t0).Seconds())
	})

	// Case 7: delete every workload and claim: the volumes, their
	// attachments, mounts and allow-list entries go; nothing is left in
	// the nodes' mount tables and kubelet directories, nor in the storage
	// server's data directory.
	t.Run("7-delete-claims", func(t *testing.T) {
		c := c.with(t)
		t0 := time.Now()
		c.mustKubectl("-n", "e2e", "delete", "statefulset,deployment,job,pod", "--all", "--wait=false")
		c.mustKubectl("-n", "e2e", "delete", "pvc", "--all", "--wait=false")
		c.waitFor("claims, volumes and attachments gone", 10*time.Minute, nil, func() bool {
			out, err := c.kubectl("get", "pvc,pv,volumeattachment", "-A", "-o", "name")
			return err == nil && strings.TrimSpace(out) == ""
		})
		checks := map[string]string{
			"nfs mounts":       `grep -E ' nfs4? ' /proc/mounts`,
			"staging dirs":     `ls -A /var/lib/kubelet/plugins/kubernetes.io/csi/nfs.hangar.dev 2>/dev/null`,
			"pod volume dirs":  `ls -d /var/lib/kubelet/pods/*/volumes/kubernetes.io~csi/* 2>/dev/null`,
			"server data":      `[ ! -d /var/lib/hangar/volumes ] || find /var/lib/hangar/volumes /var/lib/hangar/meta /var/lib/hangar/trash -mindepth 1`,
			"server allowlist": `[ ! -d /var/lib/hangar/access ] || find /var/lib/hangar/access -mindepth 1`,
		}
		// One exec per look: a line of output per check.
		var lines []string
		for what, sh := range checks {
			lines = append(lines, fmt.Sprintf(`echo "%s=$({ %s; } 2>&1 | tr '\n' ' ')"`, what, sh))
		}
		script := strings.Join(lines, "\n")
		left := map[string]string{}
		defer func() {
			if t.Failed() {
				t.Logf("left on the nodes: %q", left)
			}
		}()
		for _, node := range []string{"node-a", "node-b"} {
			// The kubelet unmounts and removes pod directories on its
			// own schedule after the objects are gone.
			c.waitFor("nothing left on "+node, 5*time.Minute, nil, func() bool {
				got := vars(c.onNode(node, script))
				clean := true
				for what := range checks {
					out, ok := got[what]
					left[node+" "+what] = out
					clean = clean && ok && out == ""
				}
				return clean
			})
		}
		if out := c.onNode("node-a", "ls /var/lib/hangar"); !strings.Contains(out, "volumes") {
			t.Errorf("node-a /var/lib/hangar holds %q: not the server's data directory?", out)
		}
		t.Logf("CLUSTER-CASE 7-delete-claims wall=%.1fs", time.Since(t0).Seconds())
	})
}
