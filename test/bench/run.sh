#!/usr/bin/env bash
# Hangar NFSv3 benchmark: the same protocol-level workloads, in one run on this
# machine, against Hangar's server, upstream go-nfs v0.0.4, nfs-ganesha (VFS
# FSAL, in a private network namespace with its own rpcbind) and the local
# disk itself; then one table of medians, ratios and targets. See README.md.
#
#   test/bench/run.sh            full run (1 GiB file, 100k live handles, 3 runs; ~25 min)
#   QUICK=1 test/bench/run.sh    smoke (< 2 min): small sizes, 1 run
#
# Exit status: 0 ok; 3 if the load generator read data it did not write (any
# server); 1 if Hangar's runs had errors (a server that does not start included).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WORK=${BENCH_DIR:-/tmp/hangar-bench}
BIN=$WORK/bin
GAN_NFS_PORT=20491 GAN_MNT_PORT=20492
export GANESHA_FAILURES=$WORK/failures.txt

# shellcheck source=ganesha.sh
. "$HERE/ganesha.sh"

# ---- inside ganesha's network+mount namespace (re-executed by unshare)
if [[ ${1:-} == --ganesha-inner ]]; then
  shift
  ip link set lo up
  ganesha_serve "$WORK/ganesha" $GAN_NFS_PORT $GAN_MNT_PORT \
    "$BIN/nfsload" run -name ganesha -addr 127.0.0.1:$GAN_NFS_PORT -mountaddr 127.0.0.1:$GAN_MNT_PORT \
    -export "$WORK/ganesha/export" "$@" || exit $?
  exit 0
fi

QUICK=${QUICK:-0}
if ((QUICK)); then
  : "${RUNS:=1}" "${SIZE_MIB:=64}" "${RANDOPS:=5000}" "${FILES:=1000}" "${HANDLES:=5000}" "${GETATTRS:=20000}"
  : "${PHASE_TIMEOUT:=30s}" "${FIO_SECONDS:=2}"
else
  : "${RUNS:=3}" "${SIZE_MIB:=1024}" "${RANDOPS:=200000}" "${FILES:=10000}" "${HANDLES:=100000}" "${GETATTRS:=500000}"
  : "${PHASE_TIMEOUT:=120s}" "${FIO_SECONDS:=5}"
fi
: "${CONNS:=4}" "${DEPTH:=16}"
SERVERS=${SERVERS:-"hangar go-nfs ganesha disk"}
LOAD_FLAGS=(-conns "$CONNS" -depth "$DEPTH" -size "$SIZE_MIB" -randops "$RANDOPS" -files "$FILES"
  -handles "$HANDLES" -getattrs "$GETATTRS" -phase-timeout "$PHASE_TIMEOUT" -out "$WORK/results.jsonl"
  ${PHASES:+-phases "$PHASES"})

log() { printf '== %s %s\n' "$(date -u +%T)" "$*" >&2; }
has() { [[ " $SERVERS " == *" $1 "* ]]; }
drop() { SERVERS=$(sed "s/\b$1\b//" <<<"$SERVERS"); }

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# ---- packages: fio for the disk baseline, ganesha + rpcbind for its baseline.
# A quick run uses what is installed; a full run installs what is missing.
need=()
has disk && ! command -v fio >/dev/null && need+=(fio)
# shellcheck disable=SC2207 # package names have no blanks
has ganesha && need+=($(ganesha_missing))
if ((${#need[@]})); then
  if ((QUICK)) && [[ ${INSTALL:-0} != 1 ]]; then
    log "not installed: ${need[*]} (QUICK skips the baselines that need them; INSTALL=1 installs)"
    [[ " ${need[*]} " == *" fio "* ]] && drop disk
    [[ " ${need[*]} " == *" nfs-ganesha "* ]] && drop ganesha
  else
    log "installing ${need[*]}"
    apt_install "${need[@]}"
  fi
fi

# ---- build
mkdir -p "$BIN"
rm -f "$WORK/results.jsonl" "$WORK/failures.txt"
log "building"
(cd "$ROOT" && go build -o "$BIN/nfsload" ./test/bench/nfsload)
has go-nfs && (cd "$HERE/gonfs" && go build -o "$BIN/gonfs" .)
HANGAR_START=()
if has hangar; then
  if [[ -z ${HANGAR_BIN:-} ]]; then
    HANGAR_BIN=$BIN/hangar
    (cd "$ROOT" && go build -o "$HANGAR_BIN" ./cmd/hangar)
  fi
  HANGAR_START=("$HANGAR_BIN" nfs --root)
fi

# serve NAME PORT CMD... starts a server, waits for its port; sets SPID.
serve() {
  local name=$1 port=$2; shift 2
  "$@" >"$WORK/$name.log" 2>&1 & SPID=$!
  PIDS+=("$SPID")
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && return 0
    kill -0 "$SPID" 2>/dev/null || break
    sleep 0.1
  done
  echo "$name did not start: $(tail -c 300 "$WORK/$name.log")" | tee -a "$WORK/failures.txt" >&2
  return 1
}
stop() { kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; }
fresh() { rm -rf "$1"; mkdir -p "$1"; }

# rc records the worst outcome: 3 verification, 1 Hangar error.
rc=0
note_rc() { # name status
  local name=$1 st=$2
  if ((st == 3)); then rc=3; log "$name: DATA VERIFICATION FAILED"; return; fi
  if ((st != 0)); then
    log "$name: errors (exit $st)"
    [[ $name == hangar* ]] && ((rc == 0)) && rc=1
  fi
  return 0
}

t_all=$(date +%s)
for run in $(seq "$RUNS"); do
  for s in $SERVERS; do
    t0=$(date +%s%N)
    log "run $run/$RUNS: $s"
    st=0
    case $s in
    hangar)
      fresh "$WORK/export.hangar"
      if serve hangar 20501 "${HANGAR_START[@]}" "$WORK/export.hangar" --listen 127.0.0.1:20501; then
        "$BIN/nfsload" run -name hangar -run "$run" -addr 127.0.0.1:20501 "${LOAD_FLAGS[@]}" || st=$?
      else st=1; fi
      stop
      note_rc hangar $st
      if ((run == 1)) && [[ ${ALLOCS:-1} == 1 ]]; then
        # Same workloads with the server in the load generator's process,
        # for heap allocations per RPC (the report subtracts the client's);
        # once is enough: allocations per RPC hardly vary between runs.
        fresh "$WORK/export.inproc"; st=0
        "$BIN/nfsload" run -name hangar-inproc -run "$run" -inproc "$WORK/export.inproc" "${LOAD_FLAGS[@]}" || st=$?
        note_rc hangar-inproc $st
      fi ;;
    go-nfs)
      fresh "$WORK/export.gonfs"
      if serve go-nfs 20511 "$BIN/gonfs" -root "$WORK/export.gonfs" -listen 127.0.0.1:20511; then
        "$BIN/nfsload" run -name go-nfs -run "$run" -addr 127.0.0.1:20511 "${LOAD_FLAGS[@]}" || st=$?
      else st=1; fi
      stop
      note_rc go-nfs $st ;;
    ganesha)
      fresh "$WORK/ganesha/export"
      ganesha_conf "$WORK/ganesha" $GAN_NFS_PORT $GAN_MNT_PORT 3
      unshare --net --mount "$0" --ganesha-inner -run "$run" "${LOAD_FLAGS[@]}" || st=$?
      note_rc ganesha $st ;;
    disk)
      fresh "$WORK/export.disk"
      "$BIN/nfsload" disk -run "$run" -dir "$WORK/export.disk" -size "$SIZE_MIB" -fio-seconds "$FIO_SECONDS" \
        -out "$WORK/results.jsonl" || st=$?
      note_rc disk $st ;;
    esac
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    log "$s run $run: $((ms / 1000)).$(( ms % 1000 / 100 )) s wall"
  done
done
rm -rf "$WORK"/export.*

{
  echo "Hangar NFSv3 benchmark, $(date -u +%FT%TZ), $(nproc) CPUs; ${CONNS} connections × ${DEPTH} outstanding RPCs;"
  echo "file ${SIZE_MIB} MiB, ${RANDOPS} random ops, ${FILES} files, ${HANDLES} live handles, ${GETATTRS} GETATTRs; ${RUNS} run(s); total $(( $(date +%s) - t_all )) s."
  echo
  "$BIN/nfsload" report "$WORK/results.jsonl"
  if [[ -s $WORK/failures.txt ]]; then echo; cat "$WORK/failures.txt"; fi
  true
} | tee "$WORK/report.md"
log "report: $WORK/report.md; results: $WORK/results.jsonl; exit $rc"
exit $rc
