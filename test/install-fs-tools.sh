#!/bin/bash
# Installs the mkfs tools the snapshot tests use to make XFS (reflink) and
# btrfs file systems on loop devices (pkg/volume/loopfs). ext4 and tmpfs
# need nothing extra.
set -euo pipefail
need=()
command -v mkfs.xfs >/dev/null || need+=(xfsprogs)
command -v mkfs.btrfs >/dev/null || need+=(btrfs-progs)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "install-fs-tools: not root; the loop-device tests skip anyway (they mount)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q "${need[@]}"
