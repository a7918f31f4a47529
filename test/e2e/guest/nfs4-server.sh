#!/bin/sh
# NFSv4.1 against `hangar server`: mount a volume by its export path, then
# the pseudo root, which lists the volumes and crosses into them.
# env: NFS_ADDR, EXPORT_A, EXPORT_B (export paths, "/<volume-id>")
. /e2e/lib.sh
v4mount() { # EXPORT DIR
	mkdir -p "$2"
	mount -t nfs -o "vers=4.1,proto=tcp,port=${NFS_ADDR##*:},retry=0" "${NFS_ADDR%:*}:$1" "$2"
}
v4mount "$EXPORT_A" /mnt/a || fail "mount $EXPORT_A"
dd if=/dev/urandom of=/tmp/src bs=64k count=16 2>/dev/null
cp /tmp/src /mnt/a/data || fail "write to volume a"
umount /mnt/a || fail umount
drop_caches
v4mount "$EXPORT_A" /mnt/a || fail "remount $EXPORT_A"
[ "$(sha /mnt/a/data)" = "$(sha /tmp/src)" ] || fail "volume a: data differs after remount"
# The pseudo root lists both volumes; walking into one crosses onto it.
v4mount / /mnt/root || fail "mount the pseudo root"
a=${EXPORT_A#/}
b=${EXPORT_B#/}
ls /mnt/root | grep -qx "$a" || fail "pseudo root lacks $a: $(ls /mnt/root)"
ls /mnt/root | grep -qx "$b" || fail "pseudo root lacks $b: $(ls /mnt/root)"
[ "$(sha /mnt/root/$a/data)" = "$(sha /tmp/src)" ] || fail "volume a through the pseudo root"
echo via-root > /mnt/root/$b/note || fail "write to volume b through the pseudo root"
[ "$(cat /mnt/root/$b/note)" = via-root ] || fail "read back volume b"
[ "$(stat -c %d /mnt/root/$a)" != "$(stat -c %d /mnt/root)" ] || fail "no filesystem crossing at $a"
mkdir /mnt/root/new 2>/dev/null && fail "the pseudo root is writable"
result pseudo-root "$(ls /mnt/root | wc -l) volumes listed"
umount /mnt/root/$a /mnt/root/$b 2>/dev/null
umount /mnt/root || fail "umount pseudo root"
umount /mnt/a || fail "final umount"
