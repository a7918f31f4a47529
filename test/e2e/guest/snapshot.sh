#!/bin/sh
# Case 8: data written through the kernel NFS client is snapshotted on the
# host, changed, restored to a new volume; the restored volume, mounted
# here, holds the data as it was at the snapshot, byte for byte.
# env: VOL_ID VOL_CTX
. /e2e/lib.sh
start_node
T=/var/lib/kubelet/pods/pod-src/volumes/kubernetes.io~csi/data/mount
R=/var/lib/kubelet/pods/pod-restored/volumes/kubernetes.io~csi/data/mount
publish "$VOL_ID" "$VOL_CTX" "$T" || fail "publish source"
mkdir -p "$T/dir/sub" || fail "mkdir"
dd if=/dev/urandom of="$T/dir/blob" bs=64k count=256 2>/dev/null || fail "write blob"
echo "before the snapshot" > "$T/dir/sub/note" || fail "write note"
ln -s dir/blob "$T/link" || fail "symlink"
ln "$T/dir/blob" "$T/dir/sub/hard" || fail "hard link"
sync
B=$(sha "$T/dir/blob")
ctl signal written || fail "signal written"
ctl wait snapshotted 120 >/dev/null || fail "host did not take the snapshot"

# Change everything after the snapshot.
dd if=/dev/urandom of="$T/dir/blob" bs=64k count=16 conv=notrunc 2>/dev/null || fail "overwrite blob"
echo "after the snapshot" > "$T/dir/sub/note" || fail "rewrite note"
rm "$T/link" || fail "rm link"
echo new > "$T/new" || fail "write new"
sync
[ "$(sha "$T/dir/blob")" != "$B" ] || fail "overwrite did not change the blob"
ctl signal changed || fail "signal changed"
RCTX=$(ctl wait restored-ctx 120) || fail "host did not restore"
RID=$(ctl wait restored 120) || fail "host did not restore"

publish "$RID" "$RCTX" "$R" || fail "publish restored volume"
drop_caches
[ "$(sha "$R/dir/blob")" = "$B" ] || fail "restored blob differs from the snapshot"
[ "$(cat "$R/dir/sub/note")" = "before the snapshot" ] || fail "restored note: $(cat "$R/dir/sub/note")"
[ "$(readlink "$R/link")" = "dir/blob" ] || fail "restored symlink: $(readlink "$R/link")"
[ ! -e "$R/new" ] || fail "a file made after the snapshot is in the restored volume"
[ "$(stat -c %i "$R/dir/blob")" = "$(stat -c %i "$R/dir/sub/hard")" ] || fail "hard link not preserved"
echo mine > "$R/writable" || fail "restored volume not writable"
[ ! -e "$T/writable" ] || fail "a write to the restored volume reached the source"
[ "$(cat "$T/dir/sub/note")" = "after the snapshot" ] || fail "source lost its change"
unpublish "$RID" "$R" || fail "unpublish restored"
unpublish "$VOL_ID" "$T" || fail "unpublish source"
kill $NODE_PID
exit 0
