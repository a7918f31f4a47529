#!/usr/bin/env bash
# The kernel-nfsd layer for the e2e guest image (test/e2e/vm/setup.sh), for
# test/bench/kernel.sh: an uncompressed-later cpio to put after base.cpio.gz,
# holding the nfsd module and its dependencies (with a modules.dep covering
# the base modules too, since this archive's replaces the base's), rpcbind,
# rpc.nfsd, rpc.mountd and exportfs with their shared libraries, and the
# files they read. The tools come from `apt-get download` + `dpkg -x`, so
# nothing is installed on this host (whose kernel has no nfsd anyway).
#
# usage: knfsd-image.sh CACHE OUT.cpio.gz   (CACHE: setup.sh's, already set up;
#                                            rebuilt when the kernel or this script changes)
set -euo pipefail
CACHE=${1:?usage: knfsd-image.sh CACHE OUT}
OUT=${2:?usage: knfsd-image.sh CACHE OUT}
KVER=$(ls /boot/vmlinuz-*-cloud-amd64 | sed 's|^/boot/vmlinuz-||' | sort -V | tail -1)
MODDIR=/lib/modules/$KVER
stamp="$KVER $(sha256sum "$0" | cut -d' ' -f1)"
[[ -f $OUT && $(cat "$OUT.stamp" 2>/dev/null) == "$stamp" ]] && exit 0

DEBS=$CACHE/knfsd-debs
if [[ ! -x $DEBS/x/usr/sbin/rpc.mountd || ! -x $DEBS/x/sbin/rpcbind ]]; then
  rm -rf "$DEBS" && mkdir -p "$DEBS"
  (cd "$DEBS" && apt-get download nfs-kernel-server rpcbind >"$DEBS/apt.log" 2>&1) || {
    apt-get update -qq >/dev/null 2>&1 && (cd "$DEBS" && apt-get download nfs-kernel-server rpcbind >"$DEBS/apt.log" 2>&1)
  } || { echo "knfsd-image: apt-get download nfs-kernel-server rpcbind failed: $(tail -3 "$DEBS/apt.log")" >&2; exit 1; }
  for d in "$DEBS"/*.deb; do dpkg -x "$d" "$DEBS/x"; done
fi

R=$(mktemp -d "$CACHE/knfsd.XXXXXX")
trap 'rm -rf "$R"' EXIT
mkdir -p "$R/lib/modules/$KVER" "$R/etc" "$R/var/lib/nfs/rpc_pipefs" "$R/var/lib/nfs/v4recovery" "$R/run/rpcbind"
# The base image's modules (setup.sh's list) and nfsd's, one modules.dep.
for m in virtio_pci virtio_net virtio_rng sunrpc lockd nfs_acl nfs nfsv3 nfsv4 nfsd; do
  modprobe -S "$KVER" --show-depends "$m"
done | awk '$1 == "insmod" {print $2}' | sort -u | while read -r ko; do
  rel=${ko#"$MODDIR"/}
  mkdir -p "$R/lib/modules/$KVER/$(dirname "$rel")"
  cp "$ko" "$R/lib/modules/$KVER/$rel"
done
for f in modules.order modules.builtin modules.builtin.modinfo; do
  [[ -f $MODDIR/$f ]] && cp "$MODDIR/$f" "$R/lib/modules/$KVER/"
done
depmod -b "$R" "$KVER"

# dyn HOSTPATH GUESTPATH: a dynamic binary and the libraries ldd names.
dyn() {
  mkdir -p "$R$(dirname "$2")"; cp -L "$1" "$R$2"
  if ldd "$1" | grep -q 'not found'; then echo "knfsd-image: $1: $(ldd "$1" | grep 'not found')" >&2; exit 1; fi
  ldd "$1" | awk '/=>/ {print $3} /^\t\// {print $1}' | while read -r lib; do
    [[ -f $lib ]] || continue
    mkdir -p "$R$(dirname "$lib")"; cp -Ln "$lib" "$R$lib"
  done
}
for b in rpc.nfsd rpc.mountd exportfs; do dyn "$DEBS/x/usr/sbin/$b" "/usr/sbin/$b"; done
dyn "$DEBS/x/sbin/rpcbind" /sbin/rpcbind
for f in /etc/netconfig /etc/rpc /etc/services /etc/protocols; do [[ -f $f ]] && cp "$f" "$R$f"; done
for db in passwd group shadow hosts networks protocols services rpc netgroup; do echo "$db: files"; done >"$R/etc/nsswitch.conf"
# rpcbind runs as _rpc; the base image's passwd lacks it.
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n_rpc:x:100:65534::/run/rpcbind:/bin/false\nstatd:x:101:65534::/var/lib/nfs:/bin/false\n' >"$R/etc/passwd"
touch "$R/var/lib/nfs/etab" "$R/var/lib/nfs/rmtab" "$R/etc/exports"

(cd "$R" && find . -print0 | sort -z | cpio --null -o -H newc --quiet) | gzip -1 >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "$stamp" >"$OUT.stamp"
echo "knfsd-image: built $OUT for kernel $KVER" >&2
