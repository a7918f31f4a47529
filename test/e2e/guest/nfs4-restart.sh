#!/bin/sh
# NFSv4.1 server restart with state (ROLE a or b, two guests on one
# volume): each guest holds its own file open and write-locked (A x.bin, B
# y.bin) while the host SIGKILLs and restarts the server. Afterwards each
# writes through the same descriptor (its client reclaimed the open and the
# lock), the other guest's lock attempt on that file is still refused, and
# the files read back as written.
# env: ROLE NFS_ADDR EXPORT
. /e2e/lib.sh
M=/mnt/v
mkdir -p $M
mount -t nfs -o "vers=4.1,proto=tcp,port=${NFS_ADDR##*:},retry=0,hard,timeo=10,retrans=2" "${NFS_ADDR%:*}:$EXPORT" $M || fail "mount $EXPORT"
case $ROLE in
a) MINE=x.bin OTHER=y.bin PEER=b ;;
b) MINE=y.bin OTHER=x.bin PEER=a ;;
esac
e2eguest lock keep $M/$MINE $ROLE > /tmp/keep &
KEEP=$!
ctl wait $ROLE-ready 240 >/dev/null || fail "never locked $MINE"
ctl wait $PEER-ready 240 >/dev/null || fail "$PEER never locked $OTHER"
[ "$(e2eguest lock try $M/$OTHER)" = denied ] || fail "took $PEER's lock before the restart"
ctl signal $ROLE-tried || fail signal
ctl wait $ROLE-wrote 300 >/dev/null || fail "no write after the restart"
result restart-write "$(cat /tmp/keep)"
ctl wait $PEER-wrote 300 >/dev/null || fail "$PEER did not write after the restart"
[ "$(e2eguest lock try $M/$OTHER)" = denied ] || fail "took $PEER's lock after the restart: it was not reclaimed"
ctl signal $ROLE-checked || fail signal
ctl wait $PEER-checked 240 >/dev/null || fail "$PEER never checked"
ctl signal $ROLE-release || fail signal
wait $KEEP || fail "holding $MINE across the restart"
drop_caches
echo "E2E-SHA256 $MINE $(sha $M/$MINE)"
umount $M || fail umount
