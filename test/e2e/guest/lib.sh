# Shared helpers for e2e guest scripts (busybox sh). Sourced by /e2e/run.sh.
# Conventions: "E2E-FAIL msg" lines explain a failure, "E2E-RESULT k v" lines
# carry measurements back to the host test log.
set -u

fail() { echo "E2E-FAIL $*"; exit 1; }
result() { echo "E2E-RESULT $*"; }
now() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2fs", b - a }'; }

# nfs_mount HOST:PORT EXPORT DIR [EXTRA_OPTS]: one port for NFS and MOUNT,
# retry=0 so a failing mount fails at once instead of retrying for minutes.
# NFS_VERS (default 3) picks the protocol; 4.x needs no MOUNT and no nolock.
nfs_mount() {
	_port=${1##*:}
	_host=${1%:*}
	mkdir -p "$3"
	case ${NFS_VERS:-3} in
	3) _opts="vers=3,proto=tcp,port=$_port,mountport=$_port,mountproto=tcp,nolock,retry=0" ;;
	*) _opts="vers=$NFS_VERS,proto=tcp,port=$_port,retry=0" ;;
	esac
	mount -t nfs -o "$_opts${4:+,$4}" "$_host:$2" "$3"
}

# is_mounted DIR: true if DIR is an NFS mount point (per /proc/mounts).
is_mounted() { awk -v d="$1" '$2 == d && $3 ~ /^nfs/ { f = 1 } END { exit !f }' /proc/mounts; }

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }

ctl() { e2eguest ctl "$@"; }

# sha FILE: SHA-256 of FILE
sha() { sha256sum "$1" | cut -d' ' -f1; }

# start_node: run `hangar node` on /run/csi/csi.sock in the background and
# wait until it answers; its log is printed if the script fails.
CSI_ENDPOINT=unix:///run/csi/csi.sock
export CSI_ENDPOINT
start_node() {
	mkdir -p /run/csi
	hangar node --csi-endpoint "$CSI_ENDPOINT" --node-id "$(hostname)" >/tmp/node.log 2>&1 &
	NODE_PID=$!
	trap 'rc=$?; if [ $rc != 0 ]; then echo "--- hangar node log:"; tail -n 60 /tmp/node.log; fi' EXIT
	e2eguest csi wait || fail "hangar node did not become ready"
}

# publish VOL_ID VOL_CTX_JSON TARGET [MOUNT_FLAGS] / unpublish VOL_ID TARGET:
# NodePublishVolume / NodeUnpublishVolume through the node plugin. The host
# server advertises NFS_HOST:PORT, so the context needs no rewriting. With
# WANT_VERS set, a published mount must show that NFS version.
publish() {
	e2eguest csi publish --volume-id "$1" --context "$2" --target "$3" ${4:+--mount-flags "$4"} || return
	[ -z "${WANT_VERS:-}" ] || check_vers "$3" "$WANT_VERS"
}

# check_vers DIR VERS: the NFS mount at DIR (per /proc/mounts) is of
# version VERS, and a v4.x one has no NLM options.
check_vers() {
	_line=$(awk -v d="$1" '$2 == d && $3 ~ /^nfs/' /proc/mounts | tail -n 1)
	case ",$(echo "$_line" | cut -d' ' -f4)," in
	*,vers=$2,*) ;;
	*) echo "E2E-FAIL $1 is not mounted with vers=$2: $_line"; return 1 ;;
	esac
	case $2,$_line in
	4*mountport=* | 4*nolock*) echo "E2E-FAIL v$2 mount of $1 has NFSv3 options: $_line"; return 1 ;;
	esac
	echo "mounted over NFS v$2: $_line"
}
unpublish() { e2eguest csi unpublish --volume-id "$1" --target "$2"; }
