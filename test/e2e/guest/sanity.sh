#!/bin/sh
# Case 2: csi-sanity against `hangar run` in the same guest, with real
# kernel NFS mounts over the guest's loopback and the data dir on tmpfs;
# twice: with the default NFS version (4.1) and with the StorageClass
# parameter nfsVersion "3".
. /e2e/lib.sh
mkdir -p /run/csi /tmp/hangar-data /tmp/sanity
# A per-node volume limit so the attach-limit spec runs (small: the data
# dir is tmpfs and the spec creates limit+1 volumes).
hangar run --data /tmp/hangar-data --csi-endpoint "$CSI_ENDPOINT" --nfs-listen 127.0.0.1:2049 --max-volumes-per-node 2 >/tmp/run.log 2>&1 &
trap 'rc=$?; if [ $rc != 0 ]; then echo "--- hangar run log:"; tail -n 80 /tmp/run.log; fi' EXIT
e2eguest csi wait || fail "hangar run did not become ready"
# Evidence that the node plugin made real kernel mounts, and of which
# version: sample /proc/mounts while csi-sanity runs.
(while :; do
	awk '$3 ~ /^nfs/ { n = split($4, o, ","); for (i = 1; i <= n; i++) if (o[i] ~ /^vers=/) print o[i] }' /proc/mounts |
		while read -r v; do : >"/tmp/seen-$v"; done
	usleep 50000
done) &
SAMPLER=$!
# A VolumeAttributesClass for the CreateVolume/ModifyVolume specs.
printf 'rootSquash: "true"\nanonUID: "1000"\n' >/tmp/sanity/vac.yaml
printf 'nfsVersion: "3"\n' >/tmp/sanity/v3.yaml
for vers in 4.1 3; do
	params=
	[ $vers = 3 ] && params="--csi.testvolumeparameters /tmp/sanity/v3.yaml"
	published0=$(grep -c "volume staged" /tmp/run.log)
	t=$(now)
	# shellcheck disable=SC2086 # params is empty or two words
	csi-sanity --csi.endpoint "${CSI_ENDPOINT#unix://}" \
		--csi.mountdir /tmp/sanity/mount --csi.stagingdir /tmp/sanity/stage \
		--csi.testvolumesize $((64 << 20)) --csi.testvolumeexpandsize $((128 << 20)) --csi.testnodevolumeattachlimit \
		--csi.testvolumemutableparameters /tmp/sanity/vac.yaml $params \
		--ginkgo.junit-report /tmp/junit-$vers.xml --ginkgo.no-color --ginkgo.timeout 15m >/tmp/sanity-$vers.log 2>&1
	src=$?
	result csi-sanity-v$vers "$(since $t) rc=$src"
	tail -n 40 /tmp/sanity-$vers.log
	e2eguest junit /tmp/junit-$vers.xml || fail "csi-sanity (NFS v$vers): failures or skips outside test/sanity/skips"
	[ $src = 0 ] || fail "csi-sanity (NFS v$vers) exited $src"
	staged=$(($(grep -c "volume staged" /tmp/run.log) - published0))
	result real-mounts-v$vers "staged=$staged sampled=$([ -f /tmp/seen-vers=$vers ] && echo yes || echo no)"
	[ "$staged" -gt 0 ] || [ -f /tmp/seen-vers=$vers ] || fail "no real NFS v$vers mount was ever made"
	grep -q "volume staged.*vers=$vers," /tmp/run.log || fail "no staging mount with vers=$vers in the node's log"
done
kill $SAMPLER
grep -qE ' nfs4? ' /proc/mounts && fail "NFS mounts left behind: $(grep -E ' nfs4? ' /proc/mounts)"
exit 0
