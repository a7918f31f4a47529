// Package k8s proves Hangar's Kubernetes packaging against real Kubernetes
// parts built from source (test/e2e/k8s/build.sh, cached under
// HANGAR_K8S_CACHE, default ~/.cache/hangar/k8s): etcd, kube-apiserver,
// kube-controller-manager, kubectl, helm, csi-provisioner, csi-attacher,
// csi-resizer, csi-snapshotter and snapshot-controller, all on 127.0.0.1, with `hangar server` and `hangar
// controller` on the host.
//
// TestKubernetes has no kubelet, so nothing is mounted by Kubernetes there
// and the CSINode object a registrar would create is created by the test;
// pods stay Pending (no scheduler, no kubelet). TestNodes (nodes_test.go,
// `make e2e-cluster`) adds kubelet nodes in QEMU guests and runs real pods.
package k8s

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/hangar-csi/hangar/pkg/csicommon"
	"github.com/hangar-csi/hangar/pkg/nfs/mount"
	"github.com/hangar-csi/hangar/pkg/nfs/nfsclient"
	"github.com/hangar-csi/hangar/pkg/server"
	"github.com/hangar-csi/hangar/pkg/server/api"
)

func insecureTLS() *tls.Config { return &tls.Config{InsecureSkipVerify: true} }

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

func cacheDir(repo string) string {
	if d := os.Getenv("HANGAR_K8S_CACHE"); d != "" {
		return d
	}
	// Outside the checkout, so fresh clones on one machine share the
	// minutes-long build.
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "hangar", "k8s")
	}
	return filepath.Join(repo, ".cache", "k8s")
}

func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// setup builds (or reuses) the Kubernetes binaries and a hangar binary.
func setup(t *testing.T) (repo, bin, hangar, logs string) {
	repo = repoRoot(t)
	bin = cacheDir(repo)
	t0 := time.Now()
	run(t, repo, nil, filepath.Join(repo, "test/e2e/k8s/build.sh"))
	t.Logf("E2E-K8S kubernetes binaries ready in %.1fs (cache %s)", time.Since(t0).Seconds(), bin)
	t0 = time.Now()
	hangar = filepath.Join(bin, "hangar-under-test")
	run(t, repo, []string{"CGO_ENABLED=0"}, "go", "build", "-o", hangar, "./cmd/hangar")
	t.Logf("E2E-K8S hangar built in %.1fs", time.Since(t0).Seconds())
	// Keep the logs of the last few runs only.
	if old, _ := filepath.Glob(filepath.Join(bin, "logs", "2*")); len(old) > 9 {
		for _, d := range old[:len(old)-9] {
			os.RemoveAll(d)
		}
	}
	logs = filepath.Join(bin, "logs", time.Now().UTC().Format("20060102T150405"))
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("E2E-K8S logs in %s", logs)
	return repo, bin, hangar, logs
}

func TestKubernetes(t *testing.T) {
	start := time.Now()
	repo, bin, hangar, logs := setup(t)
	helm := filepath.Join(bin, "helm")
	chart := filepath.Join(repo, "charts/hangar")
	work := t.TempDir()

	// Case 1a: the chart (see checkChart).
	var renderDefault, renderNondefault string
	t.Run("chart", func(t *testing.T) { renderDefault, renderNondefault = checkChart(t, repo, helm, work) })
	if t.Failed() {
		t.FailNow()
	}

	t0 := time.Now()
	c := startCluster(t, bin, logs)
	t.Logf("E2E-K8S control plane up in %.1fs", time.Since(t0).Seconds())
	c.mustKubectl("create", "namespace", "hangar")
	c.mustKubectl("create", "namespace", "e2e")

	// Case 1b: every rendered object passes the apiserver's validation;
	// then the chart is installed for real.
	t.Run("apply", func(t *testing.T) {
		for name, r := range map[string]string{"default": renderDefault, "non-default": renderNondefault, "deploy/hangar.yaml": readFile(t, filepath.Join(repo, "deploy/hangar.yaml"))} {
			out, err := c.kubectlIn(r, "apply", "--dry-run=server", "-f", "-")
			if err != nil {
				t.Errorf("server-side dry-run of the %s render: %v", name, err)
				continue
			}
			t.Logf("dry-run %s: %d objects", name, strings.Count(out, "(server dry run)"))
		}
		// Pods need the namespace's default ServiceAccount (made by the
		// controller manager).
		c.waitFor("ServiceAccount e2e/default", 60*time.Second, nil, func() bool { return c.get("-n", "e2e", "serviceaccount", "default") != nil })
		examples, _ := filepath.Glob(filepath.Join(repo, "examples", "*.yaml"))
		for _, ex := range examples {
			if _, err := c.kubectl("apply", "--dry-run=server", "-n", "e2e", "-f", ex); err != nil {
				t.Errorf("example %s: %v", filepath.Base(ex), err)
			}
		}
		if len(examples) < 5 {
			t.Errorf("only %d examples", len(examples))
		}
		// deploy/make-certs.sh makes Secrets the servers' and controller's
		// mutual TLS accepts.
		c.mustKubectl("create", "namespace", "plain")
		run(t, repo, []string{"KUBECONFIG=" + c.kubeconfig, "KUBECTL=" + filepath.Join(bin, "kubectl"), "NAMESPACE=plain"}, filepath.Join(repo, "deploy/make-certs.sh"))
		checkCerts(t, c, "plain")
		out := run(t, repo, []string{"KUBECONFIG=" + c.kubeconfig}, helm, "install", "hangar", chart, "--namespace", "hangar")
		t.Logf("helm install: %s", firstLine(out))
		d := c.get("csidriver", "nfs.hangar.dev")
		if field(d, "spec", "attachRequired") != "true" || field(d, "spec", "podInfoOnMount") != "true" || field(d, "spec", "fsGroupPolicy") != "File" {
			t.Errorf("CSIDriver spec: %v", d["spec"])
		}
		if sc := c.get("storageclass", "hangar"); field(sc, "provisioner") != csicommon.DriverName {
			t.Errorf("StorageClass hangar: %v", sc)
		}
		for _, r := range []string{"provisioner", "attacher", "resizer"} {
			c.mustKubectl("get", "clusterrole", "hangar-"+r)
		}
		checkCerts(t, c, "hangar")
	})
	if t.Failed() {
		t.FailNow()
	}

	h := startHangar(t, c, hangar)
	h.startSidecars()
	t.Logf("E2E-K8S hangar and sidecars up; %.1fs since start", time.Since(start).Seconds())

	var rwoPV string
	t.Run("2-rwo-rwx-bound", func(t *testing.T) {
		c.apply(pvc("rwo", "hangar", "ReadWriteOnce", "1Gi") + "---\n" + pvc("rwx", "hangar", "ReadWriteMany", "1Gi"))
		for _, name := range []string{"rwo", "rwx"} {
			pv := c.waitBound(name)
			handle, attrs := pvHandle(c, pv)
			v := h.serverVolume(handle)
			if v == nil {
				t.Fatalf("PVC %s: volume %s is not on the storage server", name, handle)
			}
			if attrs[csicommon.ContextAddress] != h.nfsAddr || attrs[csicommon.ContextExport] == "" {
				t.Errorf("PV %s volume attributes %v", pv, attrs)
			}
			// The export exists, and refuses this (unpublished) node.
			if st := mountStatus(t, attrs[csicommon.ContextAddress], attrs[csicommon.ContextExport]); st != mount.StatusAcces {
				t.Errorf("MOUNT of %s before any attachment: status %d, want MNT3ERR_ACCES", attrs[csicommon.ContextExport], st)
			}
			// The volume's accessible topology became node affinity.
			term := "{.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0]}"
			aff := c.mustKubectl("get", "pv", pv, "-o", "jsonpath="+strings.ReplaceAll(term, "}", ".key}")+"="+strings.ReplaceAll(term, "}", ".values[*]}"))
			if want := csicommon.TopologyKey + "=" + csicommon.TopologyValue; aff != want {
				t.Errorf("PV %s node affinity %q, want %q", pv, aff, want)
			}
			if name == "rwo" {
				rwoPV = pv
			}
		}
	})

	t.Run("3-statefulset-claims", func(t *testing.T) {
		c.apply(statefulSet)
		handles := map[string]bool{}
		for i := range 3 {
			pv := c.waitBound(fmt.Sprintf("data-web-%d", i))
			handle, _ := pvHandle(c, pv)
			handles[handle] = true
		}
		if len(handles) != 3 {
			t.Errorf("3 claims got %d distinct volumes", len(handles))
		}
	})

	t.Run("4-attach-publishes", func(t *testing.T) {
		if rwoPV == "" {
			t.Skip("no RWO PV (case 2 failed)")
		}
		handle, attrs := pvHandle(c, rwoPV)
		// What node-driver-registrar would register: the node plugin's
		// NodeGetInfo (run here with the chart's flags; it mounts nothing).
		nodeID := h.nodeInfo(t)
		if want := csicommon.FormatNodeID("node-a", []netip.Addr{netip.MustParseAddr("127.0.0.1")}); nodeID != want {
			t.Errorf("node plugin's node ID %q, want %q", nodeID, want)
		}
		c.apply(fmt.Sprintf(nodeYAML, nodeID))
		c.apply(fmt.Sprintf(attachmentYAML, rwoPV))
		c.waitFor("VolumeAttachment attached", 60*time.Second, nil, func() bool {
			return field(c.get("volumeattachment", "va-rwo"), "status", "attached") == "true"
		})
		if got := h.allowList(handle); len(got) != 1 || got[0] != nodeID {
			t.Errorf("allow-list after attach = %v, want [%s]", got, nodeID)
		}
		if st := mountStatus(t, attrs[csicommon.ContextAddress], attrs[csicommon.ContextExport]); st != mount.StatusOK {
			t.Errorf("MOUNT from the attached node: status %d, want OK", st)
		}

		// Case 5 while attached: expand through csi-resizer.
		t.Run("5-expand", func(t *testing.T) {
			before := h.fsstatTotal(t, attrs)
			c.mustKubectl("-n", "e2e", "patch", "pvc", "rwo", "--type=merge", "-p", `{"spec":{"resources":{"requests":{"storage":"2Gi"}}}}`)
			c.waitFor("PVC rwo capacity 2Gi", 60*time.Second, nil, func() bool {
				return field(c.get("-n", "e2e", "pvc", "rwo"), "status", "capacity", "storage") == "2Gi"
			})
			if got := field(c.get("pv", rwoPV), "spec", "capacity", "storage"); got != "2Gi" {
				t.Errorf("PV capacity %s, want 2Gi", got)
			}
			if v := h.serverVolume(handle); v == nil || v.CapacityBytes != 2<<30 {
				t.Errorf("server volume after expansion: %v", v)
			}
			after := h.fsstatTotal(t, attrs)
			switch {
			case before == 1<<30 && after != 2<<30:
				t.Errorf("FSSTAT total %d after expansion, want %d", after, 2<<30)
			case before != 1<<30:
				t.Logf("FSSTAT reports the disk (%d bytes), not the 1Gi capacity: capacity is not enforced by this build", before)
			default:
				t.Logf("FSSTAT total follows the capacity: %d -> %d", before, after)
			}
		})

		c.mustKubectl("delete", "volumeattachment", "va-rwo", "--wait=false")
		c.waitFor("VolumeAttachment gone", 60*time.Second, nil, func() bool { return c.get("volumeattachment", "va-rwo") == nil })
		if got := h.allowList(handle); len(got) != 0 {
			t.Errorf("allow-list after detach = %v, want empty", got)
		}
		if st := mountStatus(t, attrs[csicommon.ContextAddress], attrs[csicommon.ContextExport]); st != mount.StatusAcces {
			t.Errorf("MOUNT after detach: status %d, want MNT3ERR_ACCES", st)
		}
	})

	t.Run("6-delete-retain-archive", func(t *testing.T) {
		// delete (the default)
		pv := c.waitBound("rwx")
		handle, _ := pvHandle(c, pv)
		c.mustKubectl("-n", "e2e", "delete", "pvc", "rwx")
		c.waitFor("PV of rwx deleted", 60*time.Second, nil, func() bool { return c.get("pv", pv) == nil })
		if v := h.serverVolume(handle); v != nil {
			t.Errorf("volume %s still on the server after its PVC was deleted", handle)
		}
		// retain and archive
		c.apply(storageClass("hangar-retain", "onDelete: retain") + "---\n" + storageClass("hangar-archive", "onDelete: archive") +
			"---\n" + pvc("keep", "hangar-retain", "ReadWriteOnce", "1Gi") + "---\n" + pvc("old", "hangar-archive", "ReadWriteOnce", "1Gi"))
		ids := map[string]string{}
		pvs := map[string]string{}
		for _, name := range []string{"keep", "old"} {
			pvs[name] = c.waitBound(name)
			handle, _ := pvHandle(c, pvs[name])
			_, id, err := csicommon.ParseVolumeID(handle)
			if err != nil {
				t.Fatal(err)
			}
			ids[name] = id
			// Data written by an application (straight into the volume's
			// directory: no kubelet mounts it here).
			if err := os.WriteFile(filepath.Join(h.data, "volumes", id, "hello"), []byte(name), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		c.mustKubectl("-n", "e2e", "delete", "pvc", "keep", "old")
		for _, name := range []string{"keep", "old"} {
			c.waitFor("PV of "+name+" deleted", 60*time.Second, nil, func() bool { return c.get("pv", pvs[name]) == nil })
			if v := h.serverVolume(csicommon.VolumeID("node-a", ids[name])); v != nil {
				t.Errorf("volume of %s still exists", name)
			}
		}
		if b, err := os.ReadFile(filepath.Join(h.data, "retained", ids["keep"], "hello")); err != nil || string(b) != "keep" {
			t.Errorf("retained data: %q, %v", b, err)
		}
		m, _ := filepath.Glob(filepath.Join(h.data, "archive", "e2e_old_"+ids["old"]+"_*", "hello"))
		if len(m) != 1 {
			t.Errorf("archived data: %v", m)
		}
	})

	t.Run("7-unknown-parameter", func(t *testing.T) {
		c.apply(storageClass("hangar-typo", "colour: blue") + "---\n" + pvc("typo", "hangar-typo", "ReadWriteOnce", "1Gi"))
		var msg string
		c.waitFor("ProvisioningFailed event naming the parameter", 60*time.Second, nil, func() bool {
			for _, e := range items(c.get("-n", "e2e", "events", "--field-selector", "involvedObject.name=typo")) {
				if field(e, "reason") == "ProvisioningFailed" && strings.Contains(field(e, "message"), `"colour"`) {
					msg = field(e, "message")
					return true
				}
			}
			return false
		})
		t.Logf("event: %s", msg)
		if ph := field(c.get("-n", "e2e", "pvc", "typo"), "status", "phase"); ph != "Pending" {
			t.Errorf("PVC typo is %s, want Pending", ph)
		}
	})

	// Case 8: csi-provisioner clones a PVC (no snapshot CRDs needed), and
	// csi-resizer carries a VolumeAttributesClass change to the volume.
	t.Run("8-clone-and-modify", func(t *testing.T) {
		c.apply(pvc("src", "hangar", "ReadWriteMany", "1Gi"))
		_, srcID := volumeOf(t, c, c.waitBound("src"))
		if err := os.WriteFile(filepath.Join(h.data, "volumes", srcID, "hello"), []byte("from src"), 0o644); err != nil {
			t.Fatal(err)
		}
		c.apply(pvc("clone", "hangar", "ReadWriteMany", "1Gi") + "  dataSource: {kind: PersistentVolumeClaim, name: src}\n")
		handle, id := volumeOf(t, c, c.waitBound("clone"))
		if id == srcID {
			t.Fatalf("clone has its source's volume %s", id)
		}
		if v := h.serverVolume(handle); v == nil || v.GetContentSource().GetVolume().GetVolumeId() != srcID {
			t.Errorf("clone's content source: %v, want volume %s", v.GetContentSource(), srcID)
		}
		if b, err := os.ReadFile(filepath.Join(h.data, "volumes", id, "hello")); err != nil || string(b) != "from src" {
			t.Errorf("clone's copy of hello: %q, %v", b, err)
		}

		c.apply(`apiVersion: storage.k8s.io/v1
kind: VolumeAttributesClass
metadata: {name: e2e-anon}
driverName: nfs.hangar.dev
parameters: {anonUID: "4242"}
`)
		c.mustKubectl("-n", "e2e", "patch", "pvc", "clone", "--type=merge", "-p", `{"spec":{"volumeAttributesClassName":"e2e-anon"}}`)
		c.waitFor("PVC clone's current VolumeAttributesClass e2e-anon", 60*time.Second, nil, func() bool {
			return field(c.get("-n", "e2e", "pvc", "clone"), "status", "currentVolumeAttributesClassName") == "e2e-anon"
		})
		var rec struct {
			MutableParameters map[string]string `json:"mutableParameters"`
		}
		if err := json.Unmarshal([]byte(readFile(t, filepath.Join(h.data, "meta", id+".json"))), &rec); err != nil {
			t.Fatal(err)
		}
		if got := rec.MutableParameters[csicommon.ParamAnonUID]; got != "4242" {
			t.Errorf("volume's mutable parameters after the class change: %v, want anonUID 4242", rec.MutableParameters)
		}
	})

	// Case 9: a VolumeSnapshot of a bound PVC becomes ReadyToUse (the
	// snapshot CRDs, snapshot-controller and csi-snapshotter, the chart
	// upgraded to snapshots.enabled), and a PVC restored from it binds
	// with the data as it was at the snapshot.
	t.Run("9-snapshot-restore", func(t *testing.T) {
		crds, _ := filepath.Glob(filepath.Join(snapshotCRDs(t), "*snapshot.storage.k8s.io_*.yaml"))
		if len(crds) < 6 {
			t.Fatalf("snapshot CRDs: %v", crds)
		}
		for _, f := range crds {
			c.mustKubectl("apply", "-f", f)
		}
		c.mustKubectl("wait", "--for=condition=established", "--timeout=60s", "crd/volumesnapshots.snapshot.storage.k8s.io",
			"crd/volumesnapshotcontents.snapshot.storage.k8s.io", "crd/volumesnapshotclasses.snapshot.storage.k8s.io")
		out := run(t, repo, []string{"KUBECONFIG=" + c.kubeconfig}, helm, "upgrade", "hangar", chart, "--namespace", "hangar",
			"--reuse-values", "--set", "snapshots.enabled=true,snapshots.groupSnapshots=true")
		t.Logf("helm upgrade: %s", firstLine(out))
		h.startSnapshotters()

		_, srcID := volumeOf(t, c, c.waitBound("src"))
		c.apply(`apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata: {name: snap, namespace: e2e}
spec:
  volumeSnapshotClassName: hangar
  source: {persistentVolumeClaimName: src}
`)
		c.waitFor("VolumeSnapshot snap ready to use", 90*time.Second, nil, func() bool {
			return field(c.get("-n", "e2e", "volumesnapshot", "snap"), "status", "readyToUse") == "true"
		})
		if err := os.WriteFile(filepath.Join(h.data, "volumes", srcID, "hello"), []byte("changed after the snapshot"), 0o644); err != nil {
			t.Fatal(err)
		}
		c.apply(pvc("restored", "hangar", "ReadWriteOnce", "1Gi") + "  dataSource: {apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: snap}\n")
		_, id := volumeOf(t, c, c.waitBound("restored"))
		if b, err := os.ReadFile(filepath.Join(h.data, "volumes", id, "hello")); err != nil || string(b) != "from src" {
			t.Errorf("restored hello: %q, %v; want the snapshot's %q", b, err, "from src")
		}
	})

	// Case 10: one VolumeGroupSnapshot of the three StatefulSet claims.
	t.Run("10-group-snapshot", func(t *testing.T) {
		c.apply(`apiVersion: groupsnapshot.storage.k8s.io/v1
kind: VolumeGroupSnapshotClass
metadata: {name: hangar-group}
driver: nfs.hangar.dev
deletionPolicy: Delete
---
apiVersion: groupsnapshot.storage.k8s.io/v1
kind: VolumeGroupSnapshot
metadata: {name: web, namespace: e2e}
spec:
  volumeGroupSnapshotClassName: hangar-group
  source: {selector: {matchLabels: {app: web}}}
`)
		c.waitFor("VolumeGroupSnapshot web ready to use", 90*time.Second, nil, func() bool {
			return field(c.get("-n", "e2e", "volumegroupsnapshot", "web"), "status", "readyToUse") == "true"
		})
		var members []string
		for _, s := range items(c.get("-n", "e2e", "volumesnapshot")) {
			meta, _ := s.(map[string]any)["metadata"].(map[string]any)
			refs, _ := meta["ownerReferences"].([]any)
			for _, o := range refs {
				if field(o, "kind") == "VolumeGroupSnapshot" && field(o, "name") == "web" {
					members = append(members, field(s, "spec", "source", "persistentVolumeClaimName"))
				}
			}
		}
		slices.Sort(members)
		if want := []string{"data-web-0", "data-web-1", "data-web-2"}; !slices.Equal(members, want) {
			t.Errorf("group snapshot members %v, want snapshots of %v", members, want)
		}
	})
	t.Logf("E2E-K8S total %.1fs", time.Since(start).Seconds())
}

// snapshotCRDs is the directory of the snapshot CRDs of the
// external-snapshotter client module build.sh's tools/snapshotter pins.
func snapshotCRDs(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "github.com/kubernetes-csi/external-snapshotter/client/v8@v8.7.0/config/crd")
}

// volumeOf is PV pv's volume handle and its server-local ID.
func volumeOf(t *testing.T, c *cluster, pv string) (handle, id string) {
	t.Helper()
	handle, _ = pvHandle(c, pv)
	_, id, err := csicommon.ParseVolumeID(handle)
	if err != nil {
		t.Fatal(err)
	}
	return handle, id
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// waitBound waits until PVC e2e/name is Bound and returns its PV's name.
func (c *cluster) waitBound(name string) string {
	c.t.Helper()
	var pv string
	c.waitFor("PVC "+name+" Bound", 90*time.Second, nil, func() bool {
		p := c.get("-n", "e2e", "pvc", name)
		pv = field(p, "spec", "volumeName")
		return field(p, "status", "phase") == "Bound" && pv != ""
	})
	return pv
}

func pvHandle(c *cluster, pv string) (string, map[string]string) {
	c.t.Helper()
	o := c.get("pv", pv)
	if field(o, "spec", "csi", "driver") != csicommon.DriverName {
		c.t.Fatalf("PV %s is not %s's: %v", pv, csicommon.DriverName, o["spec"])
	}
	attrs := map[string]string{}
	if m, ok := o["spec"].(map[string]any)["csi"].(map[string]any)["volumeAttributes"].(map[string]any); ok {
		for k, v := range m {
			attrs[k] = fmt.Sprint(v)
		}
	}
	return field(o, "spec", "csi", "volumeHandle"), attrs
}

// hangarProcs is the storage server and controller on the host, with the
// chart-generated certificates, and the sidecars running as the chart's
// controller ServiceAccount.
type hangarProcs struct {
	t       *testing.T
	c       *cluster
	data    string
	nfsAddr string
	apiAddr string
	sock    string
	tlsDir  string
	hangar  string
	api     csi.ControllerClient
}

// secretFiles writes a kubernetes.io/tls Secret's files into dir.
func (c *cluster) secretFiles(name, dir string) {
	c.t.Helper()
	s := c.get("-n", "hangar", "secret", name)
	if s == nil {
		c.t.Fatalf("secret %s missing", name)
	}
	os.MkdirAll(dir, 0o700)
	for _, k := range []string{"ca.crt", "tls.crt", "tls.key"} {
		b, err := base64.StdEncoding.DecodeString(field(s, "data", k))
		if err != nil || len(b) == 0 {
			c.t.Fatalf("secret %s key %s: %v", name, k, err)
		}
		if err := os.WriteFile(filepath.Join(dir, k), b, 0o600); err != nil {
			c.t.Fatal(err)
		}
	}
}

func startHangar(t *testing.T, c *cluster, hangar string) *hangarProcs {
	h := &hangarProcs{t: t, c: c, hangar: hangar, data: filepath.Join(c.dir, "data"), tlsDir: filepath.Join(c.dir, "tls"), sock: filepath.Join(c.dir, "csi.sock")}
	c.secretFiles("hangar-server-tls", filepath.Join(h.tlsDir, "server"))
	c.secretFiles("hangar-controller-tls", filepath.Join(h.tlsDir, "controller"))
	h.nfsAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	apiPort := freePort(t)
	h.apiAddr = fmt.Sprintf("127.0.0.1:%d", apiPort)
	tlsArgs := func(who string) []string {
		d := filepath.Join(h.tlsDir, who)
		return []string{"--tls-ca", d + "/ca.crt", "--tls-cert", d + "/tls.crt", "--tls-key", d + "/tls.key"}
	}
	srv := c.start("hangar-server", hangar, append([]string{"server", "--data", h.data, "--name", "node-a",
		"--nfs-listen", h.nfsAddr, "--api-listen", h.apiAddr, "--access-control", "-v", "1"}, tlsArgs("server")...)...)
	c.waitFor("hangar server", 30*time.Second, srv, func() bool { return tcpUp(h.apiAddr) })
	// Discovery as in the chart: a DNS name resolving to the servers.
	ctrl := c.start("hangar-controller", hangar, append([]string{"controller", "--csi-endpoint", "unix://" + h.sock,
		"--servers-dns", fmt.Sprintf("localhost:%d", apiPort), "--discovery-interval", "2s", "-v", "1"}, tlsArgs("controller")...)...)
	c.waitFor("hangar controller socket", 30*time.Second, ctrl, func() bool { _, err := os.Stat(h.sock); return err == nil })

	conf, err := server.ClientTLS(filepath.Join(h.tlsDir, "controller/ca.crt"), filepath.Join(h.tlsDir, "controller/tls.crt"), filepath.Join(h.tlsDir, "controller/tls.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("passthrough:///"+h.apiAddr, grpc.WithTransportCredentials(credentials.NewTLS(conf)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	h.api = csi.NewControllerClient(cc)
	return h
}

func tcpUp(addr string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := (&netDialer).DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// nodeInfo runs `hangar node` as the chart does (--node-id, --node-address)
// and returns the node ID it reports, as node-driver-registrar would.
func (h *hangarProcs) nodeInfo(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(h.c.dir, "node.sock")
	p := h.c.start("hangar-node", h.hangar, "node", "--csi-endpoint", "unix://"+sock, "--node-id", "node-a",
		"--node-address", "127.0.0.1", "--mounter", "record")
	h.c.waitFor("hangar node socket", 30*time.Second, p, func() bool { _, err := os.Stat(sock); return err == nil })
	cc, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := csi.NewNodeClient(cc).NodeGetInfo(ctx, &csi.NodeGetInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return info.GetNodeId()
}

// startSidecars runs csi-provisioner, csi-attacher and csi-resizer with the
// token of the chart's controller ServiceAccount, so the chart's RBAC is
// what they are allowed.
func (h *hangarProcs) startSidecars() {
	c := h.c
	token := strings.TrimSpace(c.mustKubectl("-n", "hangar", "create", "token", "hangar-controller", "--duration=2h"))
	saKubeconfig := filepath.Join(c.dir, "sa.kubeconfig")
	c.writeKubeconfig(saKubeconfig, 0, "token: "+token)
	common := []string{"--kubeconfig=" + saKubeconfig, "--csi-address=" + h.sock, "--leader-election",
		"--leader-election-namespace=hangar", "--timeout=30s", "--v=4"}
	type sc struct {
		name  string
		extra []string
	}
	for _, s := range []sc{
		{"csi-provisioner", []string{"--extra-create-metadata", "--immediate-topology=false"}},
		{"csi-attacher", nil},
		{"csi-resizer", []string{"--handle-volume-inuse-error=false"}},
	} {
		port := freePort(h.t)
		p := c.start(s.name, filepath.Join(c.bin, s.name), append(append(common, s.extra...), fmt.Sprintf("--http-endpoint=127.0.0.1:%d", port))...)
		c.waitFor(s.name+" metrics", 60*time.Second, p, func() bool { return httpOK(fmt.Sprintf("http://127.0.0.1:%d/metrics", port)) })
	}
}

// startSnapshotters runs snapshot-controller (as cluster admin: it is the
// cluster's, not Hangar's) and csi-snapshotter (with the chart's controller
// ServiceAccount, like the other sidecars).
func (h *hangarProcs) startSnapshotters() {
	c := h.c
	for _, s := range []struct {
		name string
		args []string
	}{
		{"snapshot-controller", []string{"--kubeconfig=" + c.kubeconfig, "--leader-election=false", "--feature-gates=CSIVolumeGroupSnapshot=true"}},
		{"csi-snapshotter", []string{"--kubeconfig=" + filepath.Join(c.dir, "sa.kubeconfig"), "--csi-address=" + h.sock,
			"--leader-election", "--leader-election-namespace=hangar", "--timeout=30s", "--extra-create-metadata"}},
	} {
		port := freePort(h.t)
		p := c.start(s.name, filepath.Join(c.bin, s.name), append(s.args, "--v=4", fmt.Sprintf("--http-endpoint=127.0.0.1:%d", port))...)
		c.waitFor(s.name+" metrics", 60*time.Second, p, func() bool { return httpOK(fmt.Sprintf("http://127.0.0.1:%d/metrics", port)) })
	}
}

// serverVolume asks the storage server (over mutual TLS) for a volume by
// its CSI ID; nil if it does not exist.
func (h *hangarProcs) serverVolume(handle string) *csi.Volume {
	h.t.Helper()
	_, id, err := csicommon.ParseVolumeID(handle)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := h.api.ControllerGetVolume(ctx, &csi.ControllerGetVolumeRequest{VolumeId: id})
	if status.Code(err) == codes.NotFound {
		return nil
	}
	if err != nil {
		h.t.Fatalf("ControllerGetVolume %s: %v", id, err)
	}
	return r.Volume
}

// allowList is the node IDs a volume's export admits, from the server's
// persisted access list.
func (h *hangarProcs) allowList(handle string) []string {
	h.t.Helper()
	_, id, _ := csicommon.ParseVolumeID(handle)
	b, err := os.ReadFile(filepath.Join(h.data, "access", id+".json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		h.t.Fatal(err)
	}
	var list []api.Attachment
	if err := json.Unmarshal(b, &list); err != nil {
		h.t.Fatal(err)
	}
	var ids []string
	for _, a := range list {
		ids = append(ids, a.NodeID)
	}
	return ids
}

func (h *hangarProcs) fsstatTotal(t *testing.T, attrs map[string]string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := nfsclient.Dial(ctx, attrs[csicommon.ContextAddress])
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	fh, err := cl.Mount(ctx, attrs[csicommon.ContextExport])
	if err != nil {
		t.Fatalf("MOUNT: %v", err)
	}
	st, err := cl.FSStat(ctx, fh)
	if err != nil {
		t.Fatalf("FSSTAT: %v", err)
	}
	return st.TotalBytes
}

// mountStatus MOUNTs export from 127.0.0.1 and returns the MOUNT status.
func mountStatus(t *testing.T, addr, export string) uint32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := nfsclient.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	_, err = cl.Mount(ctx, export)
	var se *nfsclient.StatusError
	switch {
	case err == nil:
		return mount.StatusOK
	case errors.As(err, &se):
		return se.Status
	}
	t.Fatalf("MOUNT %s: %v", export, err)
	return 0
}

// checkCerts checks the two TLS Secrets in ns work together: each side's
// configuration loads, and a TLS handshake between them succeeds.
func checkCerts(t *testing.T, c *cluster, ns string) {
	t.Helper()
	dir := t.TempDir()
	for _, who := range []string{"server", "controller"} {
		s := c.get("-n", ns, "secret", "hangar-"+who+"-tls")
		if s == nil {
			t.Fatalf("%s: no secret hangar-%s-tls", ns, who)
		}
		os.MkdirAll(filepath.Join(dir, who), 0o700)
		for _, k := range []string{"ca.crt", "tls.crt", "tls.key"} {
			b, err := base64.StdEncoding.DecodeString(field(s, "data", k))
			if err != nil || len(b) == 0 {
				t.Fatalf("%s: secret hangar-%s-tls key %s: %v", ns, who, k, err)
			}
			os.WriteFile(filepath.Join(dir, who, k), b, 0o600)
		}
	}
	f := func(who, k string) string { return filepath.Join(dir, who, k) }
	sconf, err := server.ServerTLS(f("server", "ca.crt"), f("server", "tls.crt"), f("server", "tls.key"))
	if err != nil {
		t.Fatalf("%s: server TLS: %v", ns, err)
	}
	cconf, err := server.ClientTLS(f("controller", "ca.crt"), f("controller", "tls.crt"), f("controller", "tls.key"), "")
	if err != nil {
		t.Fatalf("%s: controller TLS: %v", ns, err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", sconf)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	errc := make(chan error, 1)
	go func() {
		conn, err := l.Accept()
		if err == nil {
			err = conn.(*tls.Conn).Handshake()
			conn.Close()
		}
		errc <- err
	}()
	conn, err := tls.Dial("tcp", l.Addr().String(), cconf)
	if err == nil {
		conn.Close()
	}
	if serr := <-errc; err != nil || serr != nil {
		t.Errorf("%s: mutual TLS handshake between the Secrets' certificates: client %v, server %v", ns, err, serr)
	}
}

// TestManifests is case 1a alone, without a cluster (seconds, once the
// binaries are cached): `go test ./test/e2e/k8s/ -run Manifests`.
func TestManifests(t *testing.T) {
	repo := repoRoot(t)
	bin := cacheDir(repo)
	run(t, repo, nil, filepath.Join(repo, "test/e2e/k8s/build.sh"))
	checkChart(t, repo, filepath.Join(bin, "helm"), t.TempDir())
}

// checkChart lints and templates the chart with default and non-default
// values, checks that the schema rejects wrong values and that deploy/
// matches the chart, and returns the two renders.
func checkChart(t *testing.T, repo, helm, work string) (renderDefault, renderNondefault string) {
	chart := filepath.Join(repo, "charts/hangar")
	nondefault := filepath.Join(repo, "test/e2e/k8s/testdata/values-nondefault.yaml")
	run(t, repo, nil, helm, "lint", "--strict", chart)
	run(t, repo, nil, helm, "lint", "--strict", chart, "-f", nondefault)
	renderDefault = run(t, repo, nil, helm, "template", "hangar", chart, "--namespace", "hangar")
	renderNondefault = run(t, repo, nil, helm, "template", "alt", chart, "--namespace", "hangar", "-f", nondefault)
	for _, want := range []string{"kind: CSIDriver", "attachRequired: true", "fsGroupPolicy: File", "kind: PodDisruptionBudget",
		"--servers-dns=hangar-server.hangar.svc:7070", "--access-control=true", "--tls-ca=/tls/ca.crt", "mountPropagation: Bidirectional",
		"hangar.dev/storage: \"true\"", "--extra-create-metadata", "--node-address=$(NODE_IP)", "kind: Secret",
		"--registration-dir=/var/lib/kubelet/plugins_registry", "--kubelet-registration-path=/var/lib/kubelet/plugins/nfs.hangar.dev/csi.sock",
		"--health-listen=:9809", "--health-listen=:9808", "--leader-election-renew-deadline=10s"} {
		if !strings.Contains(renderDefault, want) {
			t.Errorf("default render lacks %q", want)
		}
	}
	for _, want := range []string{"--servers=nas-1=10.1.0.10:7070,nas-2=10.1.0.11:7070", "--access-control=false",
		"secretName: my-server-tls", "/var/lib/k0s/kubelet/plugins/nfs.hangar.dev", "onDelete: archive", `nfsVersion: "4.2"`,
		"storageclass.kubernetes.io/is-default-class: \"true\"", "volumeBindingMode: WaitForFirstConsumer", "--tls-server-name=storage.example.com",
		"--metrics-listen=:9810", "name: alt-hangar-node-metrics",
		"--max-volumes-per-node=40", "kind: VolumeAttributesClass", "name: hangar-squashed",
		"image: registry.k8s.io/sig-storage/csi-node-driver-registrar:", "--kubelet-registration-path=/var/lib/k0s/kubelet/plugins/nfs.hangar.dev/csi.sock",
		"image: registry.k8s.io/sig-storage/livenessprobe:", "--http-endpoint=:19809", "path: /var/lib/k0s/kubelet/plugins_registry",
		"--leader-election-renew-deadline=45s", "--leader-election-lease-duration=60s", "timeoutSeconds: 20", "failureThreshold: 5", "timeoutSeconds: 25"} {
		if !strings.Contains(renderNondefault, want) {
			t.Errorf("non-default render lacks %q", want)
		}
	}
	// Builtin registration: no sidecar a cluster must pull, none of
	// Hangar's own flags in the sidecar render.
	if strings.Contains(renderDefault, "node-driver-registrar") || strings.Contains(renderDefault, "livenessprobe") {
		t.Error("default render (registrar: builtin) still has the registrar or livenessprobe sidecar")
	}
	if strings.Contains(renderNondefault, "--registration-dir") || strings.Contains(renderNondefault, "--health-listen") {
		t.Error("sidecar render also registers builtin")
	}
	if strings.Contains(renderNondefault, "kind: PodDisruptionBudget") || strings.Contains(renderNondefault, "kind: Secret") {
		t.Error("non-default render (1 replica, existing Secrets) has a PodDisruptionBudget or a generated Secret")
	}
	sm := run(t, repo, nil, helm, "template", "hangar", chart, "--set", "metrics.enabled=true,metrics.serviceMonitor.enabled=true")
	if !strings.Contains(sm, "kind: ServiceMonitor") {
		t.Error("metrics.serviceMonitor.enabled renders no ServiceMonitor")
	}
	// Snapshots need the snapshot CRDs: checked by `helm template` only.
	if strings.Contains(renderDefault, "csi-snapshotter") {
		t.Error("default render has the csi-snapshotter (snapshots.enabled is false by default)")
	}
	snap := run(t, repo, nil, helm, "template", "hangar", chart, "--set", "snapshots.enabled=true,snapshots.groupSnapshots=true")
	for _, want := range []string{"name: csi-snapshotter", "kind: VolumeSnapshotClass", "driver: nfs.hangar.dev",
		"--feature-gates=CSIVolumeGroupSnapshot=true", "volumesnapshotcontents/status", "name: hangar-snapshotter"} {
		if !strings.Contains(snap, want) {
			t.Errorf("snapshots.enabled render lacks %q", want)
		}
	}
	for _, bad := range []struct{ set, want string }{
		{"storageClasses[0].reclaimPolicy=Keep", "reclaimPolicy"},
		{"storageClasses[0].parameters.onDelete=shred", "onDelete"},
		{"storageClasses[0].parameters.nfsVersion=v4", "nfsVersion"},
		{"controller.replicas=0", "replicas"},
		{"server.nfsPort=70000", "nfsPort"},
		{"acessControl.enabled=false", "acessControl"},
		{"tls.existingSecret.server=only-one", "both"},
		{"maxVolumesPerNode=-1", "maxVolumesPerNode"},
		{"volumeAttributesClasses[0].name=v,volumeAttributesClasses[0].parameters.onDelete=retain", "onDelete"},
		{"snapshots.volumeSnapshotClasses[0].deletionPolicy=Keep", "deletionPolicy"},
		{"registrar=none", "registrar"},
		{"controller.leaderElection.renewDeadline=10", "renewDeadline"},
	} {
		out, err := exec.Command(helm, "template", "hangar", chart, "--set", bad.set).CombinedOutput()
		if err == nil || !strings.Contains(string(out), bad.want) {
			t.Errorf("helm template --set %s: err %v, output %q; want a failure naming %q", bad.set, err, firstLine(string(out)), bad.want)
		}
	}
	// deploy/hangar.yaml is what deploy/render.sh makes now.
	fresh := filepath.Join(work, "hangar.yaml")
	run(t, repo, []string{"HELM=" + helm, "OUT=" + fresh}, filepath.Join(repo, "deploy/render.sh"))
	want, _ := os.ReadFile(fresh)
	got, err := os.ReadFile(filepath.Join(repo, "deploy/hangar.yaml"))
	if err != nil || string(got) != string(want) {
		t.Errorf("deploy/hangar.yaml is stale (run `make manifests`): %v", err)
	}
	return renderDefault, renderNondefault
}
