#!/bin/sh
# Case 6: quota and identity through the kernel NFS client.
#  1. df on a fresh volume shows its capacity;
#  2. a write past it fails with "Disk quota exceeded" and harms nothing
#     written before;
#  3. after the host expands the volume (online), df shows the new size
#     and the same write succeeds, without a remount; truncate past the
#     capacity fails; a maxInodes volume refuses the inode past its limit;
#  4. files keep their creator's uid, a setgid directory passes its group
#     down, mode bits are enforced for other users;
#  5. on a rootSquash volume root's files belong to the anonymous ids and
#     root may not chown.
# Checks go on after a failed one (bad) so one run reports every broken
# expectation; fail stops at once when nothing after it can work.
# env: VOL_ID VOL_CTX SQ_ID SQ_CTX IN_ID IN_CTX WANT_KIB EXPANDED_KIB BIG_MB
#      QUOTA_MSG MAX_INODES U1 U2 SHARED_GID ANON_ID
. /e2e/lib.sh
FAILED=0
bad() { echo "E2E-FAIL $*"; FAILED=1; }
# want WHAT GOT EXPECTED
want() { [ "$2" = "$3" ] || bad "$1: got '$2', want '$3'"; }
# df_kib DIR FIELD: a df -kP column (2 total, 3 used, 4 available) in KiB.
df_kib() { df -kP "$1" | awk -v f="$2" 'NR == 2 { print $f }'; }
# as USER CMD: run CMD with sh -c as USER (busybox su, from root: no password).
as() { su "$1" -c "$2"; }
owner() { stat -c '%u:%g' "$1"; }

start_node
# Non-root users must be able to reach and run busybox: the initramfs root
# is 0700.
chmod 755 / /bin /sbin /usr /usr/bin /usr/sbin /etc /lib /e2e /e2e/bin || fail "chmod guest dirs"
cat >> /etc/passwd <<EOF
u$U1:x:$U1:$U1::/tmp:/bin/sh
u$U2:x:$U2:$U2::/tmp:/bin/sh
EOF
cat >> /etc/group <<EOF
g$U1:x:$U1:
g$U2:x:$U2:
shared:x:$SHARED_GID:u$U1
EOF
want "id -G of u$U1" "$(as u$U1 'id -G')" "$U1 $SHARED_GID"
want "id -G of u$U2" "$(as u$U2 'id -G')" "$U2"

T=/var/lib/kubelet/pods/pod-q/volumes/kubernetes.io~csi/vol/mount
publish "$VOL_ID" "$VOL_CTX" $T || fail "NodePublishVolume"
is_mounted $T || fail "$T not mounted"

# 1. df shows the claim's size.
want "df total KiB" "$(df_kib $T 2)" "$WANT_KIB"
df -kP $T

# 2. A write past the capacity fails with EDQUOT; earlier data survives.
dd if=/dev/urandom of=/tmp/small bs=64k count=4 2>/dev/null
cp /tmp/small $T/small || fail "write small"
sync
small=$(sha /tmp/small)
echo "E2E-SHA256 small $small"
t=$(now)
dd if=/dev/zero of=$T/big bs=1M count="$BIG_MB" conv=fsync 2>/tmp/dd.err && bad "dd of ${BIG_MB} MiB onto a ${WANT_KIB} KiB volume succeeded"
result dd-past-quota "$(since $t)"
cat /tmp/dd.err
grep -q "$QUOTA_MSG" /tmp/dd.err || bad "dd past the quota: stderr '$(tr '\n' ' ' </tmp/dd.err)' does not say '$QUOTA_MSG'"
drop_caches
want "small after the failed write" "$(sha $T/small)" "$small"
df -kP $T
used=$(df_kib $T 3)
[ "$used" -le "$WANT_KIB" ] || bad "df used $used KiB > capacity $WANT_KIB KiB"
# (statfs counts in wsize blocks, rounded up: df has 1 MiB granularity.)
result statfs-after-quota "$(stat -f -c 'bsize=%S blocks=%b bfree=%f' $T)"
result big-after-quota "$(stat -c 'size=%s blocks=%b' $T/big 2>&1)"

# 3. Online expansion: no remount.
ctl signal full "$used" || fail "signal host"
v=$(ctl wait expanded 120) || fail "host did not expand the volume"
[ "$v" = ok ] || bad "ControllerExpandVolume: $v"
is_mounted $T || fail "$T not mounted after the expansion"
want "df total KiB after expansion" "$(df_kib $T 2)" "$EXPANDED_KIB"
t=$(now)
dd if=/dev/zero of=$T/big bs=1M count="$BIG_MB" conv=fsync 2>/tmp/dd.err || bad "dd after expansion: $(tr '\n' ' ' </tmp/dd.err)"
result dd-after-expansion "$(since $t)"
drop_caches
want "big after expansion: size" "$(stat -c %s $T/big)" $((BIG_MB << 20))
want "big after expansion: sha256" "$(sha $T/big)" "$(dd if=/dev/zero bs=1M count="$BIG_MB" 2>/dev/null | sha256sum | cut -d' ' -f1)"
want "small after expansion" "$(sha $T/small)" "$small"
df -kP $T
# Growing a file allocates nothing but may not pass the capacity.
truncate -s $((EXPANDED_KIB * 2048)) $T/sparse 2>/tmp/tr.err && bad "truncate to twice the capacity succeeded"
grep -q "$QUOTA_MSG" /tmp/tr.err || bad "truncate past the capacity: '$(tr '\n' ' ' </tmp/tr.err)' does not say '$QUOTA_MSG'"
truncate -s 1048576 $T/sparse || bad "truncate within the capacity"
want "sparse size" "$(stat -c %s $T/sparse)" 1048576

# Inode limit: the root is one inode, so MAX_INODES-1 more fit.
I=/var/lib/kubelet/pods/pod-q/volumes/kubernetes.io~csi/inodes/mount
publish "$IN_ID" "$IN_CTX" $I || fail "NodePublishVolume of the maxInodes volume"
want "df -i total" "$(df -iP $I | awk 'NR == 2 { print $2 }')" "$MAX_INODES"
n=1
while [ $n -lt "$MAX_INODES" ]; do touch $I/f$n || bad "create inode $((n + 1)) of $MAX_INODES"; n=$((n + 1)); done
touch $I/one-too-many 2>/tmp/in.err && bad "created inode $((MAX_INODES + 1)) on a volume with maxInodes=$MAX_INODES"
grep -q "$QUOTA_MSG" /tmp/in.err || bad "file past the inode limit: '$(tr '\n' ' ' </tmp/in.err)' does not say '$QUOTA_MSG'"
mkdir $I/dir 2>/tmp/in.err && bad "mkdir past the inode limit succeeded"
grep -q "$QUOTA_MSG" /tmp/in.err || bad "mkdir past the inode limit: '$(tr '\n' ' ' </tmp/in.err)' does not say '$QUOTA_MSG'"
rm $I/f1 && touch $I/f1 || bad "re-create a file after freeing an inode"
unpublish "$IN_ID" $I || bad "unpublish the maxInodes volume"

# 4. Identity and permissions.
as u$U1 "echo one > $T/by-u1" || bad "u$U1 could not create $T/by-u1"
mkdir $T/shared && chgrp "$SHARED_GID" $T/shared && chmod 2775 $T/shared || fail "set up the setgid directory"
as u$U1 "echo f > $T/shared/f && mkdir $T/shared/sub && echo g > $T/shared/sub/g && mkdir $T/shared/sub/deeper" \
	|| bad "u$U1 could not create in the setgid directory"
drop_caches
want "owner of by-u1" "$(owner $T/by-u1)" "$U1:$U1"
want "owner of shared" "$(owner $T/shared)" "0:$SHARED_GID"
want "owner of shared/f" "$(owner $T/shared/f)" "$U1:$SHARED_GID"
want "owner of shared/sub" "$(owner $T/shared/sub)" "$U1:$SHARED_GID"
want "owner of shared/sub/g" "$(owner $T/shared/sub/g)" "$U1:$SHARED_GID"
want "owner of shared/sub/deeper" "$(owner $T/shared/sub/deeper)" "$U1:$SHARED_GID"
for d in shared shared/sub shared/sub/deeper; do
	stat -c %A $T/$d | grep -q '^d.....s' || bad "$d lost setgid: $(stat -c %A $T/$d)"
done
stat -c %A $T/shared/f | grep -q '^-.....-' || bad "shared/f has setgid: $(stat -c %A $T/shared/f)"
as u$U2 "echo x > $T/shared/by-u2" 2>/tmp/su.err && bad "u$U2 created a file in the 2775 directory of group $SHARED_GID"
grep -q "Permission denied" /tmp/su.err || bad "u$U2 writing into shared/: '$(tr '\n' ' ' </tmp/su.err)' does not say 'Permission denied'"
as u$U2 "echo x >> $T/by-u1" 2>/tmp/su.err && bad "u$U2 appended to u$U1's 0644 file"
grep -q "Permission denied" /tmp/su.err || bad "u$U2 appending to by-u1: '$(tr '\n' ' ' </tmp/su.err)' does not say 'Permission denied'"
as u$U1 "chgrp $U2 $T/by-u1" 2>/tmp/su.err && bad "u$U1 gave its file to group $U2, which it is not in"
grep -q "Operation not permitted" /tmp/su.err || bad "chgrp to a foreign group: '$(tr '\n' ' ' </tmp/su.err)' does not say 'Operation not permitted'"
want "group of by-u1 after chgrp" "$(stat -c %g $T/by-u1)" "$U1"
mkdir $T/sticky && chmod 1777 $T/sticky || fail "set up the sticky directory"
as u$U1 "echo a > $T/sticky/a" || bad "u$U1 could not create in the sticky directory"
as u$U2 "rm -f $T/sticky/a" 2>/tmp/su.err && bad "u$U2 removed u$U1's file from a sticky directory"
grep -q "Operation not permitted" /tmp/su.err || bad "u$U2 removing from the sticky directory: '$(tr '\n' ' ' </tmp/su.err)' does not say 'Operation not permitted'"
[ -e $T/sticky/a ] || bad "sticky/a is gone"
want "by-u1 after u$U2's attempt" "$(cat $T/by-u1)" "one"
[ -e $T/shared/by-u2 ] && bad "shared/by-u2 exists"
find $T -exec stat -c 'E2E-OWNER %n %u:%g %A' {} \;

# 5. Root squash on a second volume.
S=/var/lib/kubelet/pods/pod-q/volumes/kubernetes.io~csi/squash/mount
publish "$SQ_ID" "$SQ_CTX" $S || fail "NodePublishVolume of the rootSquash volume"
echo root > $S/by-root || bad "root could not create a file on the rootSquash volume"
mkdir $S/dir-by-root || bad "root could not mkdir on the rootSquash volume"
drop_caches
want "owner of by-root (root squash)" "$(owner $S/by-root)" "$ANON_ID:$ANON_ID"
want "owner of dir-by-root (root squash)" "$(owner $S/dir-by-root)" "$ANON_ID:$ANON_ID"
chown 0 $S/by-root 2>/tmp/chown.err && bad "chown 0 by a squashed root succeeded"
grep -q "Operation not permitted" /tmp/chown.err || bad "chown 0 by a squashed root: '$(tr '\n' ' ' </tmp/chown.err)' does not say 'Operation not permitted'"
drop_caches
want "owner of by-root after chown 0" "$(owner $S/by-root)" "$ANON_ID:$ANON_ID"
find $S -exec stat -c 'E2E-OWNER %n %u:%g %A' {} \;

# 6. ControllerModifyVolume on the mounted volume: the host turns root
# squash off (a VolumeAttributesClass change); the same mount sees it.
ctl signal squashed "" || fail "signal host"
v=$(ctl wait modified 120) || fail "host did not modify the volume"
[ "$v" = ok ] || fail "ControllerModifyVolume: $v"
echo root > $S/by-root-after-modify || bad "root could not create a file after the modify"
drop_caches
want "owner of by-root-after-modify (root squash off, same mount)" "$(owner $S/by-root-after-modify)" "0:0"
want "owner of by-root (created squashed)" "$(owner $S/by-root)" "$ANON_ID:$ANON_ID"

unpublish "$SQ_ID" $S || bad "unpublish the rootSquash volume"
unpublish "$VOL_ID" $T || bad "unpublish"
kill $NODE_PID
exit $FAILED
