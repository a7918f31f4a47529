#!/usr/bin/env bash
# Render deploy/hangar.yaml — plain manifests for clusters without Helm — from
# charts/hangar. `make manifests` runs this; test/e2e/k8s fails if the
# committed file differs from a fresh render.
#
#   HELM   helm binary (default: helm on PATH, else the one test/e2e/k8s/build.sh caches)
#   OUT    output file (default: deploy/hangar.yaml)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out=${OUT:-$here/hangar.yaml}
helm=${HELM:-}
if [ -z "$helm" ]; then
  if command -v helm >/dev/null; then helm=helm; else
    "$repo/test/e2e/k8s/build.sh" && helm=${HANGAR_K8S_CACHE:-$repo/.cache/k8s}/helm
  fi
fi
# Plain manifests must not carry a private key: they use Secrets the admin
# creates (deploy/make-certs.sh, or cert-manager), not chart-generated ones.
{
  cat <<'HDR'
# Hangar CSI driver (nfs.hangar.dev): plain manifests rendered from
# charts/hangar by deploy/render.sh. Do not edit; change the chart and run
# `make manifests`. Before applying, create the TLS Secrets
# (deploy/make-certs.sh) and label storage nodes hangar.dev/storage=true.
apiVersion: v1
kind: Namespace
metadata:
  name: hangar
HDR
  "$helm" template hangar "$repo/charts/hangar" --namespace hangar \
    --set tls.existingSecret.server=hangar-server-tls \
    --set tls.existingSecret.controller=hangar-controller-tls |
    sed -e 's/[[:space:]]*$//'
} >"$out.tmp"
mv "$out.tmp" "$out"
