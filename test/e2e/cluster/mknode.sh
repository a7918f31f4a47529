#!/usr/bin/env bash
# Build the node VM's initramfs: static busybox, the Debian cloud kernel's
# modules a kubelet node needs (virtio, the NFSv3 client, overlayfs, bridge,
# veth), kubelet, containerd + shim + ctr, runc and the bridge/host-local/
# loopback CNI plugins with their shared libraries, and /init (node-init.sh).
# Per-node files (certificates, kubeconfig, images) come as a second cpio.
#
# usage: mknode.sh NODE_CACHE OUT   (NODE_CACHE as made by build.sh;
#        needs the kernel and busybox-static that test/e2e/vm/setup.sh installs)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${1:?usage: mknode.sh NODE_CACHE OUT}; out=${2:?usage: mknode.sh NODE_CACHE OUT}
KVER=$(ls /boot/vmlinuz-*-cloud-amd64 | sed 's|^/boot/vmlinuz-||' | sort -V | tail -1)
MODDIR=/lib/modules/$KVER
stamp="$KVER $(cat "$0" "$here/node-init.sh" "$cache/.stamp" | sha256sum | cut -c1-16)"
if [[ -f $out && $(cat "$out.stamp" 2>/dev/null) == "$stamp" ]]; then exit 0; fi

ROOT=$(mktemp -d "$(dirname "$out")/noderoot.XXXXXX")
trap 'rm -rf "$ROOT"' EXIT
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,proc,sys,dev,tmp,mnt,run,root,var/lib,var/log,opt/cni/bin,lib/modules/"$KVER"}
ln -s ../run "$ROOT/var/run"
install -m755 /bin/busybox "$ROOT/bin/busybox"
for a in $(/bin/busybox --list); do [[ $a == busybox ]] || ln -s busybox "$ROOT/bin/$a"; done

want=(virtio_pci virtio_net virtio_rng virtio_blk sunrpc lockd nfs_acl nfs nfsv3 nfsv4 overlay bridge veth br_netfilter)
for m in "${want[@]}"; do modprobe -S "$KVER" --show-depends "$m"; done | awk '$1 == "insmod" {print $2}' | sort -u |
while read -r ko; do
  rel=${ko#"$MODDIR"/}; mkdir -p "$ROOT/lib/modules/$KVER/$(dirname "$rel")"; cp "$ko" "$ROOT/lib/modules/$KVER/$rel"
done
for f in modules.order modules.builtin modules.builtin.modinfo; do [[ -f $MODDIR/$f ]] && cp "$MODDIR/$f" "$ROOT/lib/modules/$KVER/"; done
depmod -b "$ROOT" "$KVER"

for b in kubelet containerd containerd-shim-runc-v2 ctr; do install -m755 "$cache/$b" "$ROOT/usr/local/bin/$b"; done
# Dynamically linked Debian binaries, with their libraries.
add_dyn() { # HOSTPATH GUESTPATH
  mkdir -p "$ROOT$(dirname "$2")"; cp -L "$1" "$ROOT$2"
  LD_LIBRARY_PATH=$cache/root/usr/lib/x86_64-linux-gnu ldd "$1" | awk '/=>/ {print $3} /^\t\/lib/ {print $1}' | while read -r lib; do
    [[ -f $lib && $lib != "$cache"/* ]] || continue; mkdir -p "$ROOT$(dirname "$lib")"; cp -Ln "$lib" "$ROOT$lib"
  done
}
add_dyn "$cache/root/usr/sbin/runc" /usr/sbin/runc
for p in bridge host-local loopback; do add_dyn "$cache/root/usr/lib/cni/$p" "/opt/cni/bin/$p"; done
# runc's libseccomp comes from the .deb, not the host.
cp -L "$cache"/root/usr/lib/x86_64-linux-gnu/libseccomp.so.2* "$ROOT/lib/x86_64-linux-gnu/" 2>/dev/null ||
  { mkdir -p "$ROOT/lib/x86_64-linux-gnu"; cp -L "$cache"/root/usr/lib/x86_64-linux-gnu/libseccomp.so.2* "$ROOT/lib/x86_64-linux-gnu/"; }

printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$ROOT/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$ROOT/etc/group"
printf '127.0.0.1 localhost\n' > "$ROOT/etc/hosts"
: > "$ROOT/etc/resolv.conf"
: > "$ROOT/etc/fstab"
install -m755 "$here/node-init.sh" "$ROOT/init"

(cd "$ROOT" && find . -print0 | sort -z | cpio --null -o -H newc --quiet) > "$out.tmp"
mv "$out.tmp" "$out"
echo "$stamp" > "$out.stamp"
echo "cluster: built $out ($(du -h "$out" | cut -f1)) for kernel $KVER" >&2
