#!/usr/bin/env bash
# In-guest comparison through the real Linux kernel NFS client: Hangar
# (`hangar nfs`) vs the guest's own kernel nfsd and vs nfs-ganesha (on the
# host, with Hangar), all exporting a tmpfs, same mount options, over NFSv3
# and NFSv4.1. Prints seconds per workload and the ratios knfsd_time /
# hangar_time and ganesha_time / hangar_time (> 1: Hangar is faster). See
# README.md.
#
#   test/bench/kernel.sh              FILES=2000 FSMARK=1000 DD_MB=64 ROUNDS=2
#   QUICK=1 test/bench/kernel.sh      FILES=300 FSMARK=200 DD_MB=16 ROUNDS=1
#   PROFILE=1 ...                     also writes hangar's CPU profile to $VMDIR/hangar.prof
#   STRACE=1 (WHERE=host)             counts hangar's syscalls into $VMDIR/strace.txt
#   SERVERS="knfsd hangar ganesha"    which servers (default all; ganesha only with WHERE=host)
#   VERS="3 4.1"                      which NFS versions (default both)
#   HANGAR_ENV="GODEBUG=... GOMAXPROCS=1" (WHERE=guest) environment of hangar in the guest
#
# The guest is the e2e suite's (test/e2e/vm/setup.sh: Debian's cloud kernel,
# busybox initramfs, cached in HANGAR_E2E_CACHE, default .cache/e2e) plus a
# layer with the kernel nfsd and its tools (knfsd-image.sh).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${HANGAR_E2E_CACHE:-$ROOT/.cache/e2e}
export VMDIR=${VMDIR:-/tmp/hangar-kbench}
if ((${QUICK:-0})); then : "${FILES:=300}" "${FSMARK:=200}" "${DD_MB:=16}" "${ROUNDS:=1}"
else : "${FILES:=2000}" "${FSMARK:=1000}" "${DD_MB:=64}" "${ROUNDS:=2}"; fi
VERS=${VERS:-3 4.1}
# shellcheck source=ganesha.sh
. "$HERE/ganesha.sh"
mkdir -p "$VMDIR" "$CACHE"
"$ROOT/test/e2e/vm/setup.sh" "$CACHE"
"$HERE/knfsd-image.sh" "$CACHE" "$CACHE/knfsd.cpio.gz"
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
# nfs-ganesha on the host next to Hangar, NFS and MOUNT on these ports.
GPORT=${GANESHA_PORT:-20751} GMNT_PORT=$((${GANESHA_PORT:-20751} + 1))
GDIR=$VMDIR/ganesha
if [[ $WHERE == host ]]; then SERVERS=${SERVERS:-knfsd hangar ganesha}; else SERVERS=${SERVERS:-knfsd hangar}; fi
has() { [[ " $SERVERS " == *" $1 "* ]]; }
drop() { SERVERS=$(sed "s/\b$1\b//" <<<"$SERVERS"); }
if has ganesha; then
  if [[ $WHERE != host ]]; then echo "kernel.sh: no ganesha with WHERE=$WHERE (it runs on the host)" >&2; drop ganesha
  elif missing=$(ganesha_missing) && [[ -n $missing ]]; then
    if ((${QUICK:-0})) && [[ ${INSTALL:-0} != 1 ]]; then
      echo "kernel.sh: not installed: $missing (QUICK skips ganesha; INSTALL=1 installs)" >&2; drop ganesha
    else
      # shellcheck disable=SC2086 # package names
      apt_install $missing
    fi
  fi
fi
LOG=$VMDIR/kernel.log
NETDEV=user,id=n0 NFS_HOST=
SPID= GPID=
# tmpfs DIR: a tmpfs of its own on DIR, as the guest's servers export.
tmpfs() {
  mkdir -p "$1"
  mountpoint -q "$1" || mount -t tmpfs -o size=1g hangar-kbench "$1" 2>/dev/null \
    || echo "kernel.sh: export is not a tmpfs (mount failed): $(df -T "$1" | tail -1)" >&2
}
cleanup() {
  [[ -n $SPID ]] && { kill -INT "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null || true; }
  [[ -n $GPID ]] && { kill "$GPID" 2>/dev/null; wait "$GPID" 2>/dev/null || true; }
  for d in "$VMDIR/export" "$GDIR/export"; do mountpoint -q "$d" && umount "$d"; done
  true
}
trap cleanup EXIT
if [[ $WHERE == host ]]; then
  tmpfs "$VMDIR/export"
  prof=(); ((${PROFILE:-0})) && prof=(--cpuprofile "$VMDIR/hangar.prof")
  ${STRACE:+strace -f -c -o "$VMDIR/strace.txt"} "$BIN" nfs --root "$VMDIR/export" --listen 127.0.0.1:$PORT "${prof[@]}" >"$VMDIR/hangar.log" 2>&1 &
  SPID=$!
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
  if has ganesha; then
    tmpfs "$GDIR/export"
    find "$GDIR/export" -mindepth 1 -delete
    ganesha_conf "$GDIR" "$GPORT" "$GMNT_PORT" "3, 4" 127.0.0.1
    # Its own mount namespace for the private /run of its rpcbind (ganesha.sh).
    unshare --mount "$HERE/ganesha.sh" serve "$GDIR" "$GPORT" "$GMNT_PORT" 2>"$VMDIR/ganesha.out" &
    GPID=$!
    for _ in $(seq 200); do grep -q serving "$VMDIR/ganesha.out" && break; kill -0 $GPID 2>/dev/null || break; sleep 0.1; done
    grep -q serving "$VMDIR/ganesha.out" || { cat "$VMDIR/ganesha.out" >&2; exit 1; }
  fi
  # OPEN_NET=1 (default): QEMU's open user network, the guest reaches host
  # loopback at 10.0.2.2. OPEN_NET=0: restricted, with a per-connection `nc`
  # forward whose latency (~20 ms a call here) then bounds every small-file row.
  if ((${OPEN_NET:-1})); then NFS_HOST=10.0.2.2
  else
    NETDEV+=",restrict=on,guestfwd=tcp:10.0.2.100:$PORT-cmd:busybox nc 127.0.0.1 $PORT" NFS_HOST=10.0.2.100
    if has ganesha; then for p in $GPORT $GMNT_PORT; do NETDEV+=",guestfwd=tcp:10.0.2.100:$p-cmd:busybox nc 127.0.0.1 $p"; done; fi
  fi
fi
# The run layer: the guest script as /e2e/run.sh (the base image's init
# runs it), the binaries in /e2e/bin, the settings in /e2e/env.
RUNL=$VMDIR/run
rm -rf "$RUNL" && mkdir -p "$RUNL/e2e/bin"
install -m755 "$HERE/kernel-guest.sh" "$RUNL/e2e/run.sh"
install -m755 "$BIN" "$RUNL/e2e/bin/hangar"
install -m755 "$VMDIR/kguest" "$RUNL/e2e/bin/kguest"
{
  for v in FILES FSMARK DD_MB ROUNDS VERS; do printf '%s=%q\n' "$v" "${!v}"; done
  printf 'SERVERS=%q\nPROFILE=%q\nHANGAR_ENV=%q\n' "$SERVERS" "${PROFILE:-0}" "${HANGAR_ENV:-}"
  [[ $WHERE == host ]] && printf 'HANGAR_PORT=%s\nNFS_HOST=%s\n' "$PORT" "$NFS_HOST"
  has ganesha && printf 'GANESHA_PORT=%s\nGANESHA_MNT_PORT=%s\nGANESHA_EXPORT=%q\n' "$GPORT" "$GMNT_PORT" "$GDIR/export"
} >"$RUNL/e2e/env"
(cd "$RUNL" && find . -print0 | sort -z | cpio --null -o -H newc --quiet) | gzip -1 >"$VMDIR/run.cpio.gz"
cat "$CACHE/base.cpio.gz" "$CACHE/knfsd.cpio.gz" "$VMDIR/run.cpio.gz" >"$VMDIR/initrd"
set +e
timeout -s KILL 3000 qemu-system-x86_64 -accel tcg -cpu max -smp 1 -m 3072 \
  -display none -monitor none -serial stdio -no-reboot \
  -kernel "$CACHE/vmlinuz" -initrd "$VMDIR/initrd" \
  -append "console=ttyS0 panic=-1 no_timer_check quiet loglevel=3 rdinit=/init" \
  -netdev "$NETDEV" -device virtio-net-pci,netdev=n0 -device virtio-rng-pci \
  </dev/null >"$LOG" 2>&1
rc=$?
set -e
tr -d '\r' <"$LOG" >"$LOG.txt"
if [[ -n $SPID ]]; then
  # strace does not pass SIGINT on: stop hangar itself, its child.
  if [[ -n ${STRACE:-} ]]; then kill -INT $(pgrep -P "$SPID") 2>/dev/null || true; else kill -INT "$SPID"; fi
  wait "$SPID" || true; SPID=
fi
if [[ -n $GPID ]]; then kill "$GPID"; wait "$GPID" || true; GPID=; fi
if ((${PROFILE:-0})) && [[ $WHERE == guest ]]; then
  sed -n '/^KB-PROF-BEGIN/,/^KB-PROF-END/p' "$LOG.txt" | sed '1d;$d' | base64 -d >"$VMDIR/hangar.prof" || true
fi
((${PROFILE:-0})) && echo "CPU profile: $VMDIR/hangar.prof (go tool pprof -top $BIN $VMDIR/hangar.prof)"
grep -E '^KB-(FAIL|LOG)' "$LOG.txt" || true
if ! grep -q '^KB-DONE' "$LOG.txt" || ! grep -q '^E2E-EXIT=0' "$LOG.txt"; then echo "kernel.sh: guest did not finish (rc=$rc); see $LOG.txt" >&2; tail -20 "$LOG.txt" >&2; exit 1; fi
echo "kernel client, hangar on the $WHERE: FILES=$FILES FSMARK=$FSMARK (4 KiB) DD_MB=$DD_MB ROUNDS=$ROUNDS; seconds (median), ratio = <server>/hangar per NFS version (target >= 1.0)"
# Lines "KB <server>-v<vers> <workload> <seconds>". Per version: seconds of
# each server, then each other server's time over Hangar's.
awk -v vers="$VERS" -v servers="$SERVERS" '/^KB /{ k=$3" "$2; t[k]=t[k]" "$4; if (!($3 in seen)) {seen[$3]=1; order[n++]=$3} }
function med(s,   a, k, i, j, x) { if (s == "") return -1; k=split(s, a, " "); for (i=2;i<=k;i++){x=a[i]; for(j=i-1;j>=1&&a[j]>x;j--)a[j+1]=a[j]; a[j+1]=x}
  return (k%2) ? a[(k+1)/2] : (a[k/2]+a[k/2+1])/2 }
function cell(v) { return v < 0 ? sprintf("%12s", "-") : sprintf("%12.2f", v) }
END { nv=split(vers, V, " "); ns=split(servers, S, " "); printf "%-14s", "workload";
  for (i=1;i<=nv;i++) { for (j=1;j<=ns;j++) printf " %12s", S[j]"-v"V[i];
    for (j=1;j<=ns;j++) if (S[j] != "hangar") printf " %8s", substr(S[j], 1, 1)"/h-v"V[i] }
  printf "\n";
  for (r=0;r<n;r++) { w=order[r]; printf "%-14s", w;
    for (i=1;i<=nv;i++) { h=med(t[w" hangar-v"V[i]]);
      for (j=1;j<=ns;j++) printf " %s", cell(med(t[w" "S[j]"-v"V[i]]));
      for (j=1;j<=ns;j++) if (S[j] != "hangar") { x=med(t[w" "S[j]"-v"V[i]]); printf " %8s", (x>0 && h>0) ? sprintf("%.2f", x/h) : "-" } }
    printf "\n" } }' "$LOG.txt"
# Lines "KS <server>-v<vers> <row> <op> <calls> <rtt ms> <execute ms>" (the
# client's mountstats, summed over rounds): what each server made the client
# send, and how long each call took from send to reply.
echo
echo "operations the client sent per row (all rounds): calls, mean RTT per call; then per operation calls/mean RTT µs"
awk '/^KS /{ k=$3" "$2; c[k]+=$5; r[k]+=$6; oc[k" "$4]+=$5; orr[k" "$4]+=$6; if (!(k in seen)) {seen[k]=1; order[n++]=k}
  if (!((k, $4) in has)) { has[k, $4]=1; ops[k]=ops[k]" "$4 } }
END { for (i=0;i<n;i++) { k=order[i]; split(k, a, " "); line=sprintf("%-14s %-12s %7d calls %7.0f µs", a[1], a[2], c[k], c[k] ? 1000*r[k]/c[k] : 0)
    m=split(ops[k], o, " "); for (j=1;j<=m;j++) { x=k" "o[j]; line=line sprintf("  %s %d/%.0f", o[j], oc[x], 1000*orr[x]/oc[x]) }
    print line } }' "$LOG.txt"
# Lines "KC <server>-v<vers> <row> user nice sys idle iowait irq softirq ctxt
# hangar-user hangar-sys" (guest /proc/stat ticks of 10 ms): where the
# guest's one CPU went during each row, and context switches per call.
echo
echo "the guest's CPU per row (all rounds), % of ticks: user, system, softirq, idle; hangar's own user+system; context switches per call"
grep -E '^KB-INFO' "$LOG.txt" | sed 's/^KB-INFO /  guest: /'
awk '/^KS /{ calls[$3" "$2]+=$5 }
/^KC /{ k=$3" "$2; if (!(k in seen)) {seen[k]=1; order[n++]=k}; for (i=4;i<=14;i++) v[k, i]+=$i }
END { for (i=0;i<n;i++) { k=order[i]; split(k, a, " "); tot=0; for (j=4;j<=10;j++) tot+=v[k, j]; if (!tot) tot=1
    printf "%-14s %-12s user %3.0f%%  sys %3.0f%%  softirq %3.0f%%  idle %3.0f%%  hangar %3.0f%%  ctxt/call %5.1f\n", a[1], a[2],
      100*(v[k,4]+v[k,5])/tot, 100*v[k,6]/tot, 100*(v[k,9]+v[k,10])/tot, 100*(v[k,7]+v[k,8])/tot, 100*(v[k,12]+v[k,13])/tot,
      calls[k] ? v[k,11]/calls[k] : 0 } }' "$LOG.txt"
