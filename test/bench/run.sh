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

# ---- inside ganesha's network+mount namespace (re-executed by unshare)
if [[ ${1:-} == --ganesha-inner ]]; then
  shift
  G=$WORK/ganesha
  ip link set lo up
  mount -t tmpfs tmpfs /run         # private /run for rpcbind's socket and pid files
  mkdir -p /run/rpcbind && chown _rpc /run/rpcbind 2>/dev/null || true
  PIDS=()
  cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
  trap cleanup EXIT
  rpcbind -f & PIDS+=($!)           # ganesha refuses to start unless it can register
  sleep 0.3
  ganesha.nfsd -F -L "$G/ganesha.log" -f "$G/ganesha.conf" -p /run/ganesha.pid & PIDS=($! "${PIDS[@]}")
  up=0
  for _ in $(seq 150); do (exec 3<>/dev/tcp/127.0.0.1/$GAN_MNT_PORT) 2>/dev/null && { up=1; break; }; sleep 0.1; done
  if ((!up)); then echo "ganesha did not start: $(tail -c 300 "$G/ganesha.log")" | tee -a "$WORK/failures.txt" >&2; exit 1; fi
  "$BIN/nfsload" run -name ganesha -addr 127.0.0.1:$GAN_NFS_PORT -mountaddr 127.0.0.1:$GAN_MNT_PORT \
    -export "$G/export" "$@"
  exit $?
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
  -handles "$HANDLES" -getattrs "$GETATTRS" -phase-timeout "$PHASE_TIMEOUT" -out "$WORK/results.jsonl")

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
if has ganesha && { ! command -v ganesha.nfsd >/dev/null || [[ ! -e /usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so ]] || ! command -v rpcbind >/dev/null; }; then
  need+=(nfs-ganesha nfs-ganesha-vfs rpcbind)
fi
if ((${#need[@]})); then
  if ((QUICK)) && [[ ${INSTALL:-0} != 1 ]]; then
    log "not installed: ${need[*]} (QUICK skips the baselines that need them; INSTALL=1 installs)"
    [[ " ${need[*]} " == *" fio "* ]] && drop disk
    [[ " ${need[*]} " == *" nfs-ganesha "* ]] && drop ganesha
  else
    log "installing ${need[*]}"
    made=0
    # Services must not start on install: ganesha runs only in our namespace.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made=1; fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
    ((made)) && rm -f /usr/sbin/policy-rc.d
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

ganesha_conf() {
  local G=$WORK/ganesha
  fresh "$G/export"; mkdir -p "$G/state"
  cat >"$G/ganesha.conf" <<CONF
NFS_CORE_PARAM {
    # no Bind_addr: in a lo-only namespace ganesha rejects 127.0.0.1 (AI_ADDRCONFIG)
    NFS_Port = $GAN_NFS_PORT;
    MNT_Port = $GAN_MNT_PORT;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
    Protocols = 3;
}
NFSV4 { Graceless = true; RecoveryRoot = $G/state; }
EXPORT {
    Export_Id = 1;
    Path = $G/export;
    Pseudo = /export;
    Access_Type = RW;
    Squash = No_Root_Squash;
    Protocols = 3;
    Transports = TCP;
    SecType = sys;
    FSAL { Name = VFS; }
}
LOG { Default_Log_Level = EVENT; }
CONF
}

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
      ganesha_conf
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
