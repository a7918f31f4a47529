#!/bin/sh
# NFSv4.1 lease expiry across two guests (ROLE a or b) on one volume: A
# takes a POSIX lock and dies holding it (power off, no unlock, no umount);
# B's blocking lock is granted once A's lease has run out.
# env: ROLE NFS_ADDR EXPORT
. /e2e/lib.sh
M=/mnt/v
mkdir -p $M
mount -t nfs -o "vers=4.1,proto=tcp,port=${NFS_ADDR##*:},retry=0" "${NFS_ADDR%:*}:$EXPORT" $M || fail "mount $EXPORT"
F=$M/lockfile
case $ROLE in
a)
	echo "a" > $F || fail "create $F"
	e2eguest lock hold $F a-locked never &
	ctl wait b-denied 240 >/dev/null || fail "B never tried"
	# Die holding the lock: the server hears nothing more from this client.
	echo "E2E-EXIT=0 (powering off while holding the lock)"
	poweroff -f
	;;
b)
	ctl wait a-locked 240 >/dev/null || fail "A never locked"
	[ "$(e2eguest lock try $F)" = denied ] || fail "B took the lock A holds"
	ctl signal b-denied || fail signal
	t=$(now)
	e2eguest lock wait $F >/dev/null || fail "B's blocking lock failed"
	result lock-granted-after-holder-died "$(since $t)"
	umount $M || fail umount
	;;
esac
