#!/usr/bin/env bash
# In-guest comparison through the real Linux kernel NFS client: Hangar
# (`hangar nfs`) vs the guest's own kernel nfsd, both in one QEMU guest, both
# exporting a tmpfs, same mount options. Prints seconds per workload and the
# ratio knfsd_time / hangar_time (> 1: Hangar is faster). See README.md.
#
#   test/bench/kernel.sh              FILES=2000 FSMARK=1000 DD_MB=64 ROUNDS=2
#   QUICK=1 test/bench/kernel.sh      FILES=300 FSMARK=200 DD_MB=16 ROUNDS=1
#   PROFILE=1 ...                     also writes hangar's CPU profile to $VMDIR/hangar.prof
#   STRACE=1 (WHERE=host)             counts hangar's syscalls into $VMDIR/strace.txt
#   SERVERS=hangar                    skip knfsd
#
# The guest comes from the VM recipes in VMREF (default shared/reference/vm
# beside the checkout or its worktree parent): base.cpio.gz with nfsd, rpcbind and nfs-utils.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
if [[ -z ${VMREF:-} ]]; then
  for d in "$ROOT/../shared/reference/vm" "$ROOT/../../shared/reference/vm"; do [[ -d $d ]] && { VMREF=$(cd "$d" && pwd); break; }; done
fi
VMREF=${VMREF:-}
export VMDIR=${VMDIR:-/tmp/hangar-kbench}
if ((${QUICK:-0})); then : "${FILES:=300}" "${FSMARK:=200}" "${DD_MB:=16}" "${ROUNDS:=1}"
else : "${FILES:=2000}" "${FSMARK:=1000}" "${DD_MB:=64}" "${ROUNDS:=2}"; fi
[[ -x $VMREF/run-guest.sh ]] || { echo "kernel.sh: no VM recipes at $VMREF (set VMREF)" >&2; exit 2; }
mkdir -p "$VMDIR"
[[ -f $VMDIR/base.cpio.gz ]] || "$VMREF/mkinitramfs.sh" >"$VMDIR/mkinitramfs.log" 2>&1
BIN=${HANGAR_BIN:-}
if [[ -z $BIN ]]; then BIN=$VMDIR/hangar; (cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -o "$BIN" ./cmd/hangar); fi
(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -o "$VMDIR/kguest" ./test/bench/kguest)

# WHERE=host (default): hangar on this host, reached through QEMU's user
# network, the way a node reaches its server (hangar gets native CPU while
# knfsd runs emulated: ratios flatter Hangar); WHERE=guest: hangar inside the
# guest next to knfsd, so both pay the same emulated CPU (the per-operation
# cost comparison).
WHERE=${WHERE:-host}
PORT=${PORT:-20749}
LOG=$VMDIR/kernel.log
extra=()
SPID=
cleanup() { [[ -n $SPID ]] && { kill -INT "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null || true; }; mountpoint -q "$VMDIR/export" && umount "$VMDIR/export" || true; }
trap cleanup EXIT
if [[ $WHERE == host ]]; then
  mkdir -p "$VMDIR/export"
  mountpoint -q "$VMDIR/export" || mount -t tmpfs -o size=1g hangar-kbench "$VMDIR/export" 2>/dev/null \
    || echo "kernel.sh: export is not a tmpfs (mount failed): $(df -T "$VMDIR/export" | tail -1)" >&2
  prof=(); ((${PROFILE:-0})) && prof=(--cpuprofile "$VMDIR/hangar.prof")
  ${STRACE:+strace -f -c -o "$VMDIR/strace.txt"} "$BIN" nfs --root "$VMDIR/export" --listen 127.0.0.1:$PORT "${prof[@]}" >"$VMDIR/hangar.log" 2>&1 &
  SPID=$!
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
  # OPEN_NET=1 (default): QEMU's open user network, the guest reaches host
  # loopback at 10.0.2.2. OPEN_NET=0: restricted, with a per-connection `nc`
  # forward whose latency (~20 ms a call here) then bounds every small-file row.
  if ((${OPEN_NET:-1})); then extra=(-o -e HANGAR_PORT="$PORT"); else extra=(-F "$PORT" -e HANGAR_PORT="$PORT"); fi
fi
set +e
"$VMREF/run-guest.sh" -m 3072 -t 3000 -f "$BIN:/usr/local/bin/hangar" -f "$VMDIR/kguest" "${extra[@]}" \
  -e SERVERS="${SERVERS:-knfsd hangar}" -e FILES="$FILES" -e FSMARK="$FSMARK" -e DD_MB="$DD_MB" -e ROUNDS="$ROUNDS" -e PROFILE="${PROFILE:-0}" \
  "$HERE/kernel-guest.sh" >"$LOG" 2>&1
rc=$?
set -e
tr -d '\r' <"$LOG" >"$LOG.txt"
if [[ -n $SPID ]]; then
  # strace does not pass SIGINT on: stop hangar itself, its child.
  if [[ -n ${STRACE:-} ]]; then kill -INT $(pgrep -P "$SPID") 2>/dev/null || true; else kill -INT "$SPID"; fi
  wait "$SPID" || true; SPID=
fi
if ((${PROFILE:-0})) && [[ $WHERE == guest ]]; then
  sed -n '/^KB-PROF-BEGIN/,/^KB-PROF-END/p' "$LOG.txt" | sed '1d;$d' | base64 -d >"$VMDIR/hangar.prof" || true
fi
((${PROFILE:-0})) && echo "CPU profile: $VMDIR/hangar.prof (go tool pprof -top $BIN $VMDIR/hangar.prof)"
grep -E '^KB-(FAIL|LOG)' "$LOG.txt" || true
if ! grep -q '^KB-DONE' "$LOG.txt"; then echo "kernel.sh: guest did not finish (rc=$rc); see $LOG.txt" >&2; tail -20 "$LOG.txt" >&2; exit 1; fi
echo "kernel client, hangar on the $WHERE: FILES=$FILES FSMARK=$FSMARK (4 KiB) DD_MB=$DD_MB ROUNDS=$ROUNDS; seconds (median), ratio = knfsd/hangar (target >= 1.0)"
awk '/^KB /{ t[$3" "$2]=t[$3" "$2]" "$4; if (!($3 in seen)) {seen[$3]=1; order[n++]=$3} }
function med(s,   a, k, i, j, x) { k=split(s, a, " "); for (i=2;i<=k;i++){x=a[i]; for(j=i-1;j>=1&&a[j]>x;j--)a[j+1]=a[j]; a[j+1]=x}
  return (k%2) ? a[(k+1)/2] : (a[k/2]+a[k/2+1])/2 }
END { printf "%-14s %9s %9s %7s   %s\n", "workload", "knfsd", "hangar", "ratio", "runs(hangar)";
  for (i=0;i<n;i++) { w=order[i]; k=med(t[w" knfsd"]); h=med(t[w" hangar"]);
    printf "%-14s %9.2f %9.2f %7.2f   %s\n", w, k, h, (h>0? k/h : 0), t[w" hangar"] } }' "$LOG.txt"
