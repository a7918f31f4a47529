#!/bin/sh
# Case 4 (one of two guests): the same volume published on two nodes; the
# writer appends records and renames commit points over each other, the
# reader checks every commit it sees is whole and complete.
# env: ROLE (writer|reader) VOL_ID VOL_CTX
. /e2e/lib.sh
start_node
T=/var/lib/kubelet/pods/pod-$ROLE/volumes/kubernetes.io~csi/shared/mount
publish "$VOL_ID" "$VOL_CTX" $T || fail "publish on $ROLE"
t=$(now)
e2eguest commit "$ROLE" --gens "${GENS:-100}" $T || fail "commit $ROLE"
result commit-$ROLE "$(since $t)"
unpublish "$VOL_ID" $T || fail "unpublish on $ROLE"
kill $NODE_PID
exit 0
