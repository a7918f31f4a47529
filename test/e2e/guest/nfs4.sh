#!/bin/sh
# NFSv4 round trip: mount with vers=$VERS (4.1 or 4.2) on the one port, write, remount
# cold, read back; directories, symlinks, hard links, renames, modes and
# removal; then print which operations the kernel sent.
# env: NFS_ADDR (host:port as seen by the guest) VERS
. /e2e/lib.sh
M=/mnt/nfs
mkdir -p $M
v4mount() {
	mount -t nfs -o "vers=$VERS,proto=tcp,port=${NFS_ADDR##*:},retry=0" "${NFS_ADDR%:*}:/" $M
}
# opstats LABEL: the operations this mount sent, with their counts.
opstats() {
	awk '/per-op statistics/ { p = 1; next } p && NF > 1 && $2 > 0 { printf "%s%s ", $1, $2 } END { print "" }' /proc/self/mountstats |
		sed "s/^/E2E-RESULT ops-$1 /"
}
v4mount || fail "mount vers=$VERS"
grep " $M " /proc/mounts
awk -v d=$M -v v="vers=$VERS" '$2 == d && $3 == "nfs4" && index($4, v) { f = 1 } END { exit !f }' /proc/mounts || fail "not an nfs4 $VERS mount"
dd if=/dev/urandom of=/tmp/src bs=64k count=48 2>/dev/null
want=$(sha /tmp/src)
t=$(now)
cp /tmp/src $M/file || fail "write 3 MiB"
sync || fail sync
result write-3MiB "$(since $t)"
echo hello > $M/small || fail "small write"
echo more >> $M/small || fail append
mkdir -p $M/dir/sub || fail mkdir
ln -s ../small $M/dir/link || fail symlink
ln $M/small $M/dir/hard || fail "hard link"
mv $M/dir/hard $M/dir/moved || fail rename
chmod 640 $M/small || fail chmod
: > $M/empty || fail "create empty"
opstats first
umount $M || fail umount
drop_caches
v4mount || fail remount
t=$(now)
[ "$(sha $M/file)" = "$want" ] || fail "3 MiB file differs after remount"
result read-3MiB "$(since $t)"
[ "$(cat $M/small)" = "hello
more" ] || fail "small file: $(cat $M/small)"
[ "$(readlink $M/dir/link)" = "../small" ] || fail "readlink"
[ "$(cat $M/dir/link)" = "hello
more" ] || fail "read through symlink"
[ "$(stat -c %h $M/small)" = 2 ] || fail "link count $(stat -c %h $M/small)"
[ "$(stat -c %a $M/small)" = 640 ] || fail "mode $(stat -c %a $M/small)"
[ -d $M/dir/sub ] || fail "subdirectory"
[ "$(ls $M | tr '\n' ' ')" = "dir empty file small " ] || fail "listing: $(ls $M | tr '\n' ' ')"
[ ! -s $M/empty ] || fail "empty file not empty"
: > $M/small || fail truncate
[ ! -s $M/small ] || fail "truncate left data"
rm $M/dir/moved $M/dir/link $M/small $M/empty $M/file || fail rm
rmdir $M/dir/sub $M/dir || fail rmdir
[ -z "$(ls $M)" ] || fail "not empty after removal: $(ls $M)"
opstats second
umount $M || fail "final umount"
