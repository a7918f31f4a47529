#!/usr/bin/env bash
# Installs (apt-get, only when missing) what TestNodes runs on the host:
# ip (the bridge and taps), mkfs.ext4 (the storage node's disk), unshare
# and nsenter (the test's network namespace). QEMU, the kernel and cpio
# come from test/e2e/vm/setup.sh.
set -euo pipefail
missing=()
command -v ip >/dev/null || missing+=(iproute2)
command -v mkfs.ext4 >/dev/null || missing+=(e2fsprogs)
command -v unshare >/dev/null || missing+=(util-linux)
if ((${#missing[@]})); then
  echo "cluster suite: apt-get install ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
