#!/bin/sh
# Case 3: three volumes published in one guest are isolated from each other;
# after one is unpublished and deleted on the host, the others stay mounted,
# intact and writable, and the deleted one can no longer be published.
# env: VOL1_ID VOL1_CTX VOL2_ID VOL2_CTX VOL3_ID VOL3_CTX
. /e2e/lib.sh
start_node
vid() { eval echo "\$VOL${1}_ID"; }
ctx() { eval echo "\$VOL${1}_CTX"; }
tgt() { echo /var/lib/kubelet/pods/pod-$1/volumes/kubernetes.io~csi/data/mount; }
for i in 1 2 3; do
	publish "$(vid $i)" "$(ctx $i)" "$(tgt $i)" || fail "publish volume $i"
	is_mounted "$(tgt $i)" || fail "volume $i not mounted"
done
for i in 1 2 3; do
	echo "secret of volume $i" > "$(tgt $i)/owner.txt" || fail "write owner.txt in volume $i"
	mkdir "$(tgt $i)/only-in-$i" || fail "mkdir in volume $i"
	dd if=/dev/urandom of="$(tgt $i)/blob" bs=64k count=16 2>/dev/null || fail "write blob $i"
	sha "$(tgt $i)/blob" > /tmp/blob$i.sha
done
sync
drop_caches
for i in 1 2 3; do
	T=$(tgt $i)
	[ "$(cat $T/owner.txt)" = "secret of volume $i" ] || fail "volume $i owner.txt: $(cat $T/owner.txt)"
	[ "$(ls $T | tr '\n' ' ')" = "blob only-in-$i owner.txt " ] || fail "volume $i lists: $(ls $T | tr '\n' ' ')"
	for j in 1 2 3; do
		[ $i = $j ] || [ ! -e "$T/only-in-$j" ] || fail "volume $j's directory visible in volume $i"
	done
	[ "$(sha $T/blob)" = "$(cat /tmp/blob$i.sha)" ] || fail "volume $i blob checksum"
done
# Escaping the export must not reach a sibling volume.
[ ! -e "$(tgt 1)/../only-in-2" ] || fail "sibling visible through .."

unpublish "$(vid 2)" "$(tgt 2)" || fail "unpublish volume 2"
ctl signal unpublished-2 || fail "signal host"
ctl wait deleted-2 120 || fail "host did not delete volume 2"
drop_caches
for i in 1 3; do
	T=$(tgt $i)
	is_mounted $T || fail "volume $i unmounted by the deletion of volume 2"
	[ "$(cat $T/owner.txt)" = "secret of volume $i" ] || fail "volume $i owner.txt after deleting 2"
	[ "$(sha $T/blob)" = "$(cat /tmp/blob$i.sha)" ] || fail "volume $i blob after deleting 2"
	echo more > $T/after-delete || fail "volume $i not writable after deleting 2"
done
publish "$(vid 2)" "$(ctx 2)" "$(tgt 2)" && fail "publishing deleted volume 2 succeeded"
is_mounted "$(tgt 2)" && fail "deleted volume 2 is mounted"
for i in 1 3; do unpublish "$(vid $i)" "$(tgt $i)" || fail "unpublish volume $i"; done
kill $NODE_PID
exit 0
