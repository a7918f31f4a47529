#!/bin/sh
# Case 2: csi-sanity against `hangar run` in the same guest, with real
# kernel NFS mounts over the guest's loopback and the data dir on tmpfs.
. /e2e/lib.sh
mkdir -p /run/csi /tmp/hangar-data /tmp/sanity
# A per-node volume limit so the attach-limit spec runs (small: the data
# dir is tmpfs and the spec creates limit+1 volumes).
hangar run --data /tmp/hangar-data --csi-endpoint "$CSI_ENDPOINT" --nfs-listen 127.0.0.1:2049 --max-volumes-per-node 2 >/tmp/run.log 2>&1 &
trap 'rc=$?; if [ $rc != 0 ]; then echo "--- hangar run log:"; tail -n 80 /tmp/run.log; fi' EXIT
e2eguest csi wait || fail "hangar run did not become ready"
# Evidence that the node plugin made real kernel mounts: sample /proc/mounts
# while csi-sanity runs.
(while :; do grep -q ' nfs ' /proc/mounts && echo seen >/tmp/nfs-mount-seen; usleep 50000; done) &
SAMPLER=$!
# A VolumeAttributesClass for the CreateVolume/ModifyVolume specs.
printf 'rootSquash: "true"\nanonUID: "1000"\n' >/tmp/sanity/vac.yaml
t=$(now)
csi-sanity --csi.endpoint "${CSI_ENDPOINT#unix://}" \
	--csi.mountdir /tmp/sanity/mount --csi.stagingdir /tmp/sanity/stage \
	--csi.testvolumesize $((64 << 20)) --csi.testvolumeexpandsize $((128 << 20)) --csi.testnodevolumeattachlimit \
	--csi.testvolumemutableparameters /tmp/sanity/vac.yaml \
	--ginkgo.junit-report /tmp/junit.xml --ginkgo.no-color --ginkgo.timeout 15m >/tmp/sanity.log 2>&1
src=$?
result csi-sanity "$(since $t) rc=$src"
tail -n 40 /tmp/sanity.log
e2eguest junit /tmp/junit.xml || fail "csi-sanity failures or skips outside test/sanity/skips"
[ $src = 0 ] || fail "csi-sanity exited $src"
kill $SAMPLER
published=$(grep -c "volume published" /tmp/run.log)
result real-mounts "published=$published sampled=$([ -f /tmp/nfs-mount-seen ] && echo yes || echo no)"
[ "$published" -gt 0 ] || [ -f /tmp/nfs-mount-seen ] || fail "no real NFS mount was ever made"
grep -q ' nfs ' /proc/mounts && fail "NFS mounts left behind: $(grep ' nfs ' /proc/mounts)"
exit 0
