#!/bin/sh
# Case 5: stream a file onto a hard mount while the host SIGKILLs and
# restarts the server; the writes, fsync and close must succeed and the
# data read back cold must be exactly what was written.
# env: NFS_ADDR NFS_EXPORT STREAM_MB
. /e2e/lib.sh
M=/mnt/nfs
nfs_mount "$NFS_ADDR" "$NFS_EXPORT" $M hard,timeo=10,retrans=2 || fail "mount $NFS_ADDR:$NFS_EXPORT"
t=$(now)
e2eguest stream write --mb "$STREAM_MB" --rate 4 --signal-at 8 --signal streaming $M/stream.bin \
	|| fail "stream write across a server crash"
result stream-write "$(since $t)"
ctl signal written || fail "signal host"
ctl wait restarted 60 || fail "host never restarted the server"
drop_caches
t=$(now)
e2eguest stream verify --mb "$STREAM_MB" $M/stream.bin || fail "cold read back after the crash"
result stream-verify "$(since $t)"
umount $M || fail umount
