#!/bin/bash
# Installs the mkfs tools the snapshot tests use to make XFS (reflink) and
# btrfs file systems on loop devices (pkg/volume/loopfs). ext4 and tmpfs
# need nothing extra.
set -euo pipefail
need=()
command -v mkfs.xfs >/dev/null || need+=(xfsprogs)
command -v mkfs.btrfs >/dev/null || need+=(btrfs-progs)
[ ${#need[@]} -eq 0 ] && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q "${need[@]}"
