#!/usr/bin/env bash
# Build (once) what the cluster suite's node VMs run, into a cache directory
# outside the checkout:
#   kubelet, kube-scheduler       k8s.io/kubernetes v1.37.1 (tools/kubelet)
#   containerd, containerd-shim-runc-v2, ctr   containerd v2.4.2 (tools/containerd)
#   runc, CNI plugins             Debian's runc and containernetworking-plugins
#                                 (apt-get download + dpkg -x; never installed)
#
#   HANGAR_NODE_CACHE  cache dir (default: ${XDG_CACHE_HOME:-~/.cache}/hangar/node)
#
# Rebuilt only when this script or the tools modules change. Runs at nice 19.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${HANGAR_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hangar/node}
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9

K8S_VERSION=v1.37.1
stamp=$(cat "$0" "$here"/tools/*/go.mod "$here"/tools/*/go.sum | sha256sum | cut -c1-16)
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ]; then
  exit 0
fi
rm -f "$out/.stamp"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
nice=(nice -n 19)
t0=$(date +%s)

kv="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
kv="$kv -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37"
(cd "$here/tools/kubelet" && "${nice[@]}" go build -trimpath -ldflags "-s -w $kv" -o "$out/" k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-scheduler)

# Static containerd without the storage drivers that need cgo.
(cd "$here/tools/containerd" && "${nice[@]}" go build -trimpath -tags "no_btrfs no_devmapper no_zfs no_aufs" -ldflags "-s -w" -o "$out/" \
  github.com/containerd/containerd/v2/cmd/containerd github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
  github.com/containerd/containerd/v2/cmd/ctr)

# runc and the CNI plugins are dynamically linked: the node image copies
# their libraries (ldd) with them.
rm -rf "$out/debs" "$out/root"
mkdir -p "$out/debs" "$out/root"
(cd "$out/debs" && apt-get download runc containernetworking-plugins libseccomp2 >/dev/null 2>&1) || {
  apt-get update -qq && (cd "$out/debs" && apt-get download runc containernetworking-plugins libseccomp2 >/dev/null)
}
for d in "$out"/debs/*.deb; do dpkg -x "$d" "$out/root"; done

echo "$stamp" >"$out/.stamp"
echo "node tools built into $out in $(( $(date +%s) - t0 ))s" >&2
