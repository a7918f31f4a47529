#!/usr/bin/env bash
# Build (once) the Kubernetes control plane, helm and the CSI sidecars that the
# test/e2e/k8s suite runs, into a cache directory that survives between runs.
#
#   HANGAR_K8S_CACHE  cache dir (default: ${XDG_CACHE_HOME:-~/.cache}/hangar/k8s,
#                     outside the checkout so fresh clones share it)
#
# A binary is rebuilt only when the pinned versions (the tools modules and this
# script) change. A cold build takes several minutes and a few GB of Go build
# cache; runs at nice 19 so it does not starve the rest of the machine.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
out=${HANGAR_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hangar/k8s}
mkdir -p "$out"

K8S_VERSION=v1.37.1
HELM_VERSION=v3.22.0
RESIZER_VERSION=v2.3.0

stamp=$(cat "$0" "$here"/tools/go.mod "$here"/tools/go.sum "$here"/tools/provisioner/go.mod \
  "$here"/tools/provisioner/go.sum "$here"/tools/snapshotter/go.mod "$here"/tools/snapshotter/go.sum | sha256sum | cut -c1-16)
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ]; then
  exit 0
fi
rm -f "$out/.stamp"

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
nice=(nice -n 19)
kv="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
kv="$kv -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37"
t0=$(date +%s)

# etcd, kube-apiserver, kube-controller-manager, kubectl, csi-attacher: one
# module pinning k8s.io/kubernetes with its staging modules at v0.37.1.
(cd "$here/tools" && "${nice[@]}" go build -trimpath -ldflags "-s -w $kv" -o "$out/" \
  ./etcd k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kubectl github.com/kubernetes-csi/external-attacher/v4/cmd/csi-attacher)

# csi-provisioner needs its own (older) client-go; see tools/provisioner/go.mod.
(cd "$here/tools/provisioner" && "${nice[@]}" go build -trimpath -ldflags "-s -w" -o "$out/" \
  github.com/kubernetes-csi/external-provisioner/v6/cmd/csi-provisioner)

# csi-snapshotter and snapshot-controller: their own module too (see
# tools/snapshotter/tools.go).
(cd "$here/tools/snapshotter" && "${nice[@]}" go build -trimpath -ldflags "-s -w" -o "$out/" \
  github.com/kubernetes-csi/external-snapshotter/v8/cmd/csi-snapshotter \
  github.com/kubernetes-csi/external-snapshotter/v8/cmd/snapshot-controller)

# helm and csi-resizer install cleanly from their own modules.
# (helm's Makefile sets the Kubernetes version it assumes offline; without it
# `helm template` would check kubeVersion against v1.20.)
hv="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for p in pkg/chartutil pkg/lint/rules; do
  hv="$hv -X helm.sh/helm/v3/$p.k8sVersionMajor=1 -X helm.sh/helm/v3/$p.k8sVersionMinor=37"
done
GOBIN=$out "${nice[@]}" go install -trimpath -ldflags "-s -w $hv" helm.sh/helm/v3/cmd/helm@$HELM_VERSION
GOBIN=$out "${nice[@]}" go install -trimpath -ldflags "-s -w" \
  github.com/kubernetes-csi/external-resizer/v2/cmd/csi-resizer@$RESIZER_VERSION

echo "$stamp" >"$out/.stamp"
echo "k8s tools built into $out in $(( $(date +%s) - t0 ))s" >&2
