#!/usr/bin/env bash
# Prepare everything the e2e VM harness needs, idempotently:
#   - Debian packages: qemu-system-x86, linux-image-cloud-amd64, busybox-static,
#     kmod, cpio (installed with apt-get only when missing);
#   - $CACHE/vmlinuz + $CACHE/base.cpio.gz: the cloud kernel and a busybox
#     initramfs with the virtio and NFS-client modules and an /init that runs
#     /e2e/run.sh and reports "E2E-EXIT=<rc>" on the serial console.
# Tests add their own files as a second (uncompressed) cpio archive.
#
# usage: setup.sh CACHE_DIR      (rebuilds when this script or the kernel changes)
set -euo pipefail
CACHE=${1:?usage: setup.sh CACHE_DIR}
mkdir -p "$CACHE"
exec 9>"$CACHE/setup.lock"
flock 9

newest_kernel() { ls /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sed 's|^/boot/vmlinuz-||' | sort -V | tail -1; }

missing=()
[[ -n $(newest_kernel) ]] || missing+=(linux-image-cloud-amd64)
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
[[ -x /bin/busybox ]] && /bin/busybox --list >/dev/null 2>&1 && ! ldd /bin/busybox >/dev/null 2>&1 \
  || missing+=(busybox-static)
command -v cpio >/dev/null || missing+=(cpio)
command -v depmod >/dev/null || missing+=(kmod)
if ((${#missing[@]})); then
  echo "e2e setup: apt-get install ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  log=$CACHE/apt.log
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2; exit 1
  fi
fi

KVER=$(newest_kernel)
MODDIR=/lib/modules/$KVER
[[ -d $MODDIR ]] || { echo "e2e setup: no modules for $KVER in $MODDIR" >&2; exit 1; }

# Rebuild only when the kernel or this script changed.
stamp="$KVER $(sha256sum "$0" | cut -d' ' -f1)"
if [[ -f $CACHE/base.cpio.gz && -f $CACHE/vmlinuz && $(cat "$CACHE/stamp" 2>/dev/null) == "$stamp" ]]; then
  exit 0
fi

ROOT=$(mktemp -d "$CACHE/rootfs.XXXXXX")
trap 'rm -rf "$ROOT"' EXIT
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,mnt,run,root,e2e,lib/modules/"$KVER"}
mkdir -p "$ROOT/var" && ln -s ../run "$ROOT/var/run"

install -m755 /bin/busybox "$ROOT/bin/busybox"
for applet in $(/bin/busybox --list); do
  [[ $applet == busybox ]] || ln -s busybox "$ROOT/bin/$applet"
done

# Kernel modules for virtio and the NFSv3 and NFSv4 clients, with dependencies resolved by
# the host's kmod; depmod -b gives the guest's busybox modprobe a modules.dep.
want=(virtio_pci virtio_net virtio_rng sunrpc lockd nfs_acl nfs nfsv3 nfsv4)
for m in "${want[@]}"; do
  modprobe -S "$KVER" --show-depends "$m"
done | awk '$1 == "insmod" {print $2}' | sort -u | while read -r ko; do
  rel=${ko#"$MODDIR"/}
  mkdir -p "$ROOT/lib/modules/$KVER/$(dirname "$rel")"
  cp "$ko" "$ROOT/lib/modules/$KVER/$rel"
done
for f in modules.order modules.builtin modules.builtin.modinfo; do
  [[ -f $MODDIR/$f ]] && cp "$MODDIR/$f" "$ROOT/lib/modules/$KVER/"
done
depmod -b "$ROOT" "$KVER"

printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$ROOT/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$ROOT/etc/group"
printf '127.0.0.1 localhost\n' > "$ROOT/etc/hosts"
: > "$ROOT/etc/fstab"

cat > "$ROOT/init" <<'INIT'
#!/bin/sh
# e2e guest init: bring up the system, run /e2e/run.sh, report, power off.
export PATH=/e2e/bin:/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs -o size=90% tmp /tmp
mount -t tmpfs run /run
echo 3 > /proc/sys/kernel/printk
for m in virtio_pci virtio_net virtio_rng nfsv3 nfsv4; do modprobe $m; done
n=0; while [ ! -e /sys/class/net/eth0 ] && [ $n -lt 100 ]; do usleep 50000; n=$((n+1)); done
ip link set lo up
ip addr add 10.0.2.15/24 dev eth0 && ip link set eth0 up && ip route add default via 10.0.2.2
[ -f /e2e/env ] && { set -a; . /e2e/env; set +a; }
# After /e2e/env, which names the guest: NFSv4 clients identify themselves
# by host name, and two guests with one name are one client to the server.
hostname "${E2E_HOSTNAME:-guest}"
echo "E2E-BOOTED uptime=$(cut -d' ' -f1 /proc/uptime)"
rc=127
[ -x /e2e/run.sh ] && { cd /tmp; /e2e/run.sh; rc=$?; }
echo "E2E-EXIT=$rc uptime=$(cut -d' ' -f1 /proc/uptime)"
sync
poweroff -f
INIT
chmod 755 "$ROOT/init"

(cd "$ROOT" && find . -print0 | sort -z | cpio --null -o -H newc --quiet) | gzip -1 > "$CACHE/base.cpio.gz.tmp"
cp "/boot/vmlinuz-$KVER" "$CACHE/vmlinuz.tmp"
mv "$CACHE/base.cpio.gz.tmp" "$CACHE/base.cpio.gz"
mv "$CACHE/vmlinuz.tmp" "$CACHE/vmlinuz"
echo "$stamp" > "$CACHE/stamp"
echo "e2e setup: built $CACHE/base.cpio.gz for kernel $KVER" >&2
