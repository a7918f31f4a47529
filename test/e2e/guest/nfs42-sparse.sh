#!/bin/sh
# NFSv4.2 space operations on a 1 GiB volume: fallocate (ALLOCATE), punching
# a hole (DEALLOCATE) and SEEK_DATA/SEEK_HOLE (SEEK), with df and the quota
# following them; then checks that the kernel sent the three operations
# rather than emulating them.
# env: NFS_ADDR (host:port as seen by the guest) EXPORT
. /e2e/lib.sh
M=/mnt/nfs
NFS_VERS=4.2 nfs_mount "$NFS_ADDR" "$EXPORT" $M || fail "mount vers=4.2"
MiB=1048576
used() { df -kP $M | awk 'NR == 2 { print $3 }'; } # KiB, as the server counts
blocks() { du -k "$1" | cut -f1; }
u0=$(used)

fallocate -l 8M $M/f || fail "fallocate -l 8M"
[ "$(stat -c %s $M/f)" = $((8 * MiB)) ] || fail "size $(stat -c %s $M/f) after fallocate -l 8M"
[ "$(blocks $M/f)" -ge 8192 ] || fail "du $(blocks $M/f) KiB after fallocate -l 8M"
u1=$(used)
[ $((u1 - u0)) -ge 8192 ] || fail "df used $u0 -> $u1 KiB after fallocate -l 8M"
result df-after-allocate "${u0}KiB->${u1}KiB"

# Past the 1 GiB capacity: refused whole, nothing allocated.
fallocate -l 2G $M/big 2>/tmp/err && fail "fallocate -l 2G in a 1 GiB volume succeeded"
grep -qi quota /tmp/err || fail "fallocate -l 2G: $(cat /tmp/err), want a quota error"
[ "$(blocks $M/big)" -le 4 ] || fail "refused fallocate left $(blocks $M/big) KiB"
# The volume nearly full: 1000 MiB more does not fit until a hole is punched.
fallocate -l 1000M $M/fill || fail "fallocate -l 1000M"
fallocate -l 100M $M/more 2>/dev/null && fail "fallocate -l 100M past the capacity succeeded"

# Data in f, then a 4 MiB hole at 1 MiB.
dd if=/dev/urandom of=$M/f bs=1M count=8 conv=notrunc 2>/dev/null || fail "overwrite f"
sync
b0=$(blocks $M/f)
u2=$(used)
e2eguest sparse punch $M/f $MiB $((4 * MiB)) || fail "punch hole"
[ "$(stat -c %s $M/f)" = $((8 * MiB)) ] || fail "size $(stat -c %s $M/f) after punching"
b1=$(blocks $M/f)
[ $((b0 - b1)) -ge 4096 ] || fail "du $b0 -> $b1 KiB after punching 4 MiB"
u3=$(used)
[ $((u2 - u3)) -ge 4096 ] || fail "df used $u2 -> $u3 KiB after punching 4 MiB"
result df-after-punch "${u2}KiB->${u3}KiB"
zero=$(dd if=/dev/zero bs=1M count=4 2>/dev/null | sha256sum | cut -d' ' -f1)
hole=$(dd if=$M/f bs=1M skip=1 count=4 2>/dev/null | sha256sum | cut -d' ' -f1)
[ "$hole" = "$zero" ] || fail "the punched range does not read as zeros"

# SEEK_HOLE / SEEK_DATA see the hole.
seek() { e2eguest sparse seek $M/f "$1" "$2"; }
[ "$(seek 0 hole)" = $MiB ] || fail "SEEK_HOLE from 0: $(seek 0 hole)"
[ "$(seek $MiB data)" = $((5 * MiB)) ] || fail "SEEK_DATA from 1 MiB: $(seek $MiB data)"
[ "$(seek $((5 * MiB)) hole)" = $((8 * MiB)) ] || fail "SEEK_HOLE from 5 MiB: $(seek $((5 * MiB)) hole)"
[ "$(seek $((8 * MiB)) data)" = ENXIO ] || fail "SEEK_DATA at EOF: $(seek $((8 * MiB)) data)"

# The space the holes gave back is usable.
e2eguest sparse punch $M/fill 0 $((200 * MiB)) || fail "punch 200 MiB of fill"
fallocate -l 100M $M/more || fail "fallocate -l 100M after punching 200 MiB"

# The kernel sent the operations (a client that thinks the server cannot
# emulates fallocate by writing zeros, or SEEK by saying all is data).
ops=$(awk '/per-op statistics/ { p = 1; next } p && NF > 1 { printf "%s%s ", $1, $2 } END { print "" }' /proc/self/mountstats)
result ops "$ops"
for op in ALLOCATE DEALLOCATE SEEK; do
	echo " $ops" | grep -q " $op:[1-9]" || fail "the client sent no $op: $ops"
done
rm -f $M/f $M/big $M/fill $M/more || fail rm
umount $M || fail umount
