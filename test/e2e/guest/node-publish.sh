#!/bin/sh
# Case 1: `hangar node` in the guest mounts a volume of the host's `hangar
# server` through NodePublishVolume; data written through the mount reads
# back (warm and cold); publish and unpublish are idempotent; unpublish
# really unmounts.
# env: VOL_ID VOL_CTX
. /e2e/lib.sh
start_node
T=/var/lib/kubelet/pods/pod-a/volumes/kubernetes.io~csi/vol/mount
publish "$VOL_ID" "$VOL_CTX" $T || fail "NodePublishVolume"
is_mounted $T || fail "$T not mounted after NodePublishVolume"
grep " $T " /proc/mounts
publish "$VOL_ID" "$VOL_CTX" $T || fail "second NodePublishVolume (must be idempotent)"
[ "$(grep -c " $T " /proc/mounts)" = 1 ] || fail "second publish mounted again: $(grep " $T " /proc/mounts)"

t=$(now)
dd if=/dev/urandom of=/tmp/data.bin bs=64k count=256 2>/dev/null   # 16 MiB
want=$(sha /tmp/data.bin)
cp /tmp/data.bin $T/data.bin || fail "write data.bin"
mkdir -p $T/dir/sub || fail mkdir
echo "hello from $(hostname)" > $T/dir/sub/hello.txt || fail "write hello.txt"
sync || fail sync
[ "$(sha $T/data.bin)" = "$want" ] || fail "warm read checksum mismatch"
drop_caches
[ "$(sha $T/data.bin)" = "$want" ] || fail "cold read checksum mismatch"
result write+read-16MiB "$(since $t)"
echo "E2E-SHA256 data.bin $want"

unpublish "$VOL_ID" $T || fail "NodeUnpublishVolume"
is_mounted $T && fail "$T still mounted after NodeUnpublishVolume"
grep -q " $T " /proc/mounts && fail "$T still in /proc/mounts"
unpublish "$VOL_ID" $T || fail "second NodeUnpublishVolume (must be idempotent)"

# A fresh publish sees what the first one wrote.
publish "$VOL_ID" "$VOL_CTX" $T || fail "re-publish"
[ "$(sha $T/data.bin)" = "$want" ] || fail "checksum mismatch after re-publish"
[ "$(cat $T/dir/sub/hello.txt)" = "hello from $(hostname)" ] || fail "hello.txt after re-publish"
unpublish "$VOL_ID" $T || fail "final NodeUnpublishVolume"
is_mounted $T && fail "$T still mounted at the end"
kill $NODE_PID
exit 0
