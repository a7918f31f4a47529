#!/bin/sh
# Case 7 (integrity smoke): untar a generated tree (regular files, hard
# links, symlinks, ~200-byte names) onto the NFS mount, remount cold, then
# compare the mount and a tar round trip of it against the source tree.
# env: NFS_ADDR (host:port as seen by the guest) TREE_FILES; /e2e/data/src.tar
. /e2e/lib.sh
M=/mnt/nfs
# Eight writers/readers at once, like several pods sharing the mount; it
# also hides TCG round-trip latency.
JOBS=8
nfs_mount "$NFS_ADDR" / $M || fail "mount $NFS_ADDR"
# The host generated the tree and its tar (native speed); unpack a reference
# copy on tmpfs first.
t=$(now)
e2eguest tree unpack /e2e/data/src.tar /tmp/src || fail "untar onto tmpfs"
result untar-tmpfs "$(since $t)"
t=$(now)
e2eguest tree unpack --jobs "$JOBS" /e2e/data/src.tar $M/tree || fail "untar onto NFS"
sync || fail sync
result untar-onto-nfs "$(since $t) files=$TREE_FILES"
umount $M || fail umount
drop_caches
nfs_mount "$NFS_ADDR" / $M || fail remount
t=$(now)
e2eguest tree compare --jobs "$JOBS" /tmp/src $M/tree || fail "NFS tree differs from source"
result compare-nfs "$(since $t)"
t=$(now)
e2eguest tree pack $M/tree /tmp/back.tar || fail "tar back from NFS"
e2eguest tree unpack /tmp/back.tar /tmp/back || fail "untar round trip"
e2eguest tree compare /tmp/src /tmp/back || fail "round-tripped tree differs from source"
result tar-back "$(since $t)"
umount $M || fail "final umount"
