#!/bin/sh
# NFSv4.1 byte-range locks across two guests (ROLE a or b) on one volume:
# a POSIX write lock taken on A refuses B's, shows as held on B, and B's
# blocking lock goes through once A releases it. Share state: B reads what
# A wrote while A holds the file open.
# env: ROLE NFS_ADDR EXPORT
. /e2e/lib.sh
M=/mnt/v
mkdir -p $M
mount -t nfs -o "vers=4.1,proto=tcp,port=${NFS_ADDR##*:},retry=0" "${NFS_ADDR%:*}:$EXPORT" $M || fail "mount $EXPORT"
F=$M/lockfile
case $ROLE in
a)
	echo "written by a" > $F || fail "create $F"
	sync
	# Holds the lock until B has seen it refused, then releases it.
	e2eguest lock hold $F a-locked b-denied || fail "hold the lock"
	ctl signal a-released || fail signal
	ctl wait b-done 240 >/dev/null || fail "B did not finish"
	;;
b)
	ctl wait a-locked 240 >/dev/null || fail "A never locked"
	[ "$(cat $F)" = "written by a" ] || fail "B reads: $(cat $F)"
	[ "$(e2eguest lock try $F)" = denied ] || fail "B took the lock A holds"
	[ "$(e2eguest lock test $F)" = held ] || fail "F_GETLK on B does not see A's lock"
	e2eguest lock wait $F > /tmp/waited &
	WAITER=$!
	sleep 1
	ctl signal b-denied || fail signal
	ctl wait a-released 240 >/dev/null || fail "A never released"
	wait $WAITER || fail "B's blocking lock failed"
	result blocked-lock-waited "$(cat /tmp/waited)"
	[ "$(e2eguest lock try $F)" = locked ] || fail "B cannot lock after A released"
	[ "$(e2eguest lock test $F)" = free ] || fail "lock still shown held"
	ctl signal b-done || fail signal
	;;
esac
umount $M || fail umount
