#!/bin/sh
# Guest side of test/bench/kernel.sh (busybox sh, run as /e2e/run.sh by the
# e2e image's init): the guest's kernel nfsd and `hangar nfs` each export
# their own tmpfs inside this one guest; the guest's kernel client runs the
# same small-file workloads against each, over NFSv3 and NFSv4.1, over
# loopback. With HANGAR_PORT set, hangar runs on the host instead
# (NFS_HOST:HANGAR_PORT); with GANESHA_PORT set, nfs-ganesha on the host
# exports GANESHA_EXPORT there (MOUNT on GANESHA_MNT_PORT).
# Prints "KB <server>-v<vers> <workload> <seconds>" lines, and with PROFILE=1
# a CPU profile of hangar between KB-PROF-BEGIN/END as base64.
# env: FILES (tree size) FSMARK (files per fs_mark run) DD_MB ROUNDS SERVERS VERS
: ${FILES:=2000} ${FSMARK:=1000} ${DD_MB:=64} ${ROUNDS:=1} ${SERVERS:="knfsd hangar"} ${VERS:="3 4.1"}
now() { cut -d' ' -f1 /proc/uptime; }
fail() { echo "KB-FAIL $*"; exit 1; }
M=/mnt/n; mkdir -p $M /srv/knfsd /srv/hangar /src

for f in /sys/devices/system/cpu/vulnerabilities/*; do echo "KB-INFO ${f##*/}: $(cat $f)"; done
echo "KB-INFO cmdline: $(cat /proc/cmdline)"
mount -t tmpfs -o size=1g src /src
kguest tree /src/t "$FILES" || fail "tree"
(cd /src/t && tar cf /src/t.tar .) || fail "tar of the source tree"

mount -t tmpfs -o size=1g kn /srv/knfsd
mount -t tmpfs -o size=1g hg /srv/hangar
# knfsd: every version (the mounts choose v3 or v4.1), 8 threads. A short grace period: v4 OPENs wait for it
# to end, and this server has no clients to wait for.
modprobe nfsd || fail "modprobe nfsd"
mount -t nfsd nfsd /proc/fs/nfsd || fail "mount nfsd"
echo 10 > /proc/fs/nfsd/nfsv4gracetime
echo 10 > /proc/fs/nfsd/nfsv4leasetime
echo "/srv/knfsd 127.0.0.1(rw,no_root_squash,no_subtree_check,insecure,fsid=1)" > /etc/exports
rpcbind || fail rpcbind
exportfs -ra || fail exportfs
rpc.mountd -p 20048 || fail mountd
rpc.nfsd -p 2049 ${NFSD_THREADS:-8} || fail nfsd
grace_end=$(( $(cut -d. -f1 /proc/uptime) + 11 ))

prof= HHOST=127.0.0.1 HPID=
if [ -n "$HANGAR_PORT" ]; then
  HHOST=$NFS_HOST   # hangar runs on the host
else
  HANGAR_PORT=3049
  [ "$PROFILE" = 1 ] && prof="--cpuprofile /tmp/hangar.prof"
  env $HANGAR_ENV hangar nfs --root /srv/hangar --listen 127.0.0.1:3049 $prof >/tmp/hangar.log 2>&1 &
  HPID=$!
  # It prints how to mount once it listens.
  i=0; while ! grep -q "mount with" /tmp/hangar.log && [ $i -lt 300 ]; do usleep 100000; i=$((i+1)); done
fi

# opts SERVER VERS
opts() {
  case $1-$2 in
    knfsd-3) echo vers=3,proto=tcp,port=2049,mountport=20048,mountproto=tcp,nolock,retry=0 ;;
    hangar-3) echo vers=3,proto=tcp,port=$HANGAR_PORT,mountport=$HANGAR_PORT,mountproto=tcp,nolock,retry=0 ;;
    ganesha-3) echo vers=3,proto=tcp,port=$GANESHA_PORT,mountport=$GANESHA_MNT_PORT,mountproto=tcp,nolock,retry=0 ;;
    knfsd-*) echo vers=$2,proto=tcp,port=2049,retry=0 ;;
    hangar-*) echo vers=$2,proto=tcp,port=$HANGAR_PORT,retry=0 ;;
    ganesha-*) echo vers=$2,proto=tcp,port=$GANESHA_PORT,retry=0 ;;
  esac
}
src() { case $1 in knfsd) echo 127.0.0.1:/srv/knfsd ;; hangar) echo $HHOST:/ ;; ganesha) echo $NFS_HOST:$GANESHA_EXPORT ;; esac; }
# Each server has its own mount point, and every row runs against each
# server back to back, so a change in the host's load hits both alike.
mnt() { mkdir -p $M/$1; mount -t nfs -o "$(opts $1 $2)" "$(src $1)" $M/$1 || fail "mount $1 vers=$2"; }
mntall() { for s in $SERVERS; do mnt $s $1; done; }
umntall() { for s in $SERVERS; do umount $M/$s || fail "umount $s"; done; }
# row NAME LABEL CMD...: one row, in seconds (10 ms resolution under TCG)
row() { _n=$1 _l=$2; shift 2; t0=$(now); "$@" || fail "$_l $_n"; t1=$(now); echo "KB $_l $_n $(echo $t0 $t1 | awk '{printf "%.2f", $2-$1}')"; }
# cpusnap FILE: the guest's CPU ticks (user nice system idle iowait irq
# softirq), context switches, and hangar's user and system ticks.
cpusnap() {
  { awk '$1=="cpu"{print $2, $3, $4, $5, $6, $7, $8} $1=="ctxt"{print $2}' /proc/stat
    if [ -n "$HPID" ]; then awk '{print $14, $15}' /proc/$HPID/stat; else echo 0 0; fi; } | tr '\n' ' ' >"$1"
}
# cpudiff LABEL ROW BEFORE AFTER: "KC <label> <row> user nice sys idle iowait irq softirq ctxt hangar-user hangar-sys"
cpudiff() { echo "KC $1 $2 $(awk 'FNR==NR{for(i=1;i<=NF;i++)a[i]=$i; next} {l=""; for(i=1;i<=NF;i++) l=l" "($i-a[i]); print l}' "$3" "$4")"; }
# opsnap SERVER FILE: the client's per-operation counters of that server's
# mount ("OP ops rtt_ms execute_ms", /proc/self/mountstats).
opsnap() {
  awk -v m="$M/$1" '$1=="device"{on=($5==m); p=0; next} on&&/per-op statistics/{p=1; next}
    on&&p&&NF>=9{sub(":","",$1); print $1, $2, $8, $9}' /proc/self/mountstats >"$2"
}
# opdiff LABEL ROW BEFORE AFTER: "KS <label> <row> <op> <calls> <rtt ms> <execute ms>"
# per operation the row sent (BEFORE must not be empty: awk's FNR==NR).
opdiff() {
  awk -v l="$1" -v r="$2" 'FNR==NR{n[$1]=$2; t[$1]=$3; e[$1]=$4; next}
    $2-n[$1]>0{print "KS", l, r, $1, $2-n[$1], $3-t[$1], $4-e[$1]}' "$3" "$4"
}
# mbegin SERVER / mend SERVER VERS ROW: around a row, its operation counts
# (KS) and CPU split (KC).
mbegin() { opsnap $1 /tmp/ops0; cpusnap /tmp/cpu0; }
mend() { cpusnap /tmp/cpu1; opsnap $1 /tmp/ops1; opdiff $1-v$2 $3 /tmp/ops0 /tmp/ops1; cpudiff $1-v$2 $3 /tmp/cpu0 /tmp/cpu1; }
# srow NAME SERVER VERS CMD...: a row against a mounted server, measured.
srow() { _n=$1 _s=$2 _v=$3; shift 3; mbegin $_s; row $_n $_s-v$_v "$@"; mend $_s $_v $_n; }

r=0
while [ $r -lt "$ROUNDS" ]; do
  r=$((r+1))
  for v in $VERS; do
    if [ "$v" != 3 ]; then
      # knfsd's grace period: sleep it out rather than time it.
      left=$(( grace_end - $(cut -d. -f1 /proc/uptime) ))
      [ $left -gt 0 ] && sleep $left
    fi
    mntall $v
    # untar ends with a umount: the client's writes all reach the server.
    # untar's time includes its umount (the operation counts are read just
    # before it, untimed).
    for s in $SERVERS; do
      cpusnap /tmp/cpu0; t0=$(now); (mkdir $M/$s/t && cd $M/$s/t && tar xf /src/t.tar) || fail "$s-v$v untar"; t1=$(now)
      opsnap $s /tmp/ops1
      t2=$(now); umount $M/$s || fail "$s-v$v untar umount"; t3=$(now); cpusnap /tmp/cpu1
      cpudiff $s-v$v untar /tmp/cpu0 /tmp/cpu1
      echo "KB $s-v$v untar $(echo $t0 $t1 $t2 $t3 | awk '{printf "%.2f", $2-$1+$4-$3}')"
      echo "- 0 0 0" >/tmp/ops0; opdiff $s-v$v untar /tmp/ops0 /tmp/ops1
    done
    mntall $v
    for s in $SERVERS; do srow tar $s $v sh -c "cd $M/$s/t && tar cf - . >/dev/null"; done
    for s in $SERVERS; do srow rm-r $s $v rm -r $M/$s/t; done
    for s in $SERVERS; do
      mbegin $s
      set -- $(kguest fsmark $M/$s/fsync "$FSMARK" 4096 fsync) || fail "$s-v$v fsmark fsync"; echo "KB $s-v$v fs_mark-fsync $1"
      mend $s $v fs_mark-fsync
    done
    for s in $SERVERS; do
      mbegin $s
      set -- $(kguest fsmark $M/$s/nofsync "$FSMARK" 4096) || fail "$s-v$v fsmark"; echo "KB $s-v$v fs_mark $1"
      mend $s $v fs_mark
    done
    for s in $SERVERS; do rm -rf $M/$s/fsync $M/$s/nofsync; done
    for s in $SERVERS; do srow dd-write $s $v dd if=/dev/zero of=$M/$s/big bs=1M count=$DD_MB conv=fsync; done 2>/dev/null
    umntall; echo 3 > /proc/sys/vm/drop_caches; mntall $v
    for s in $SERVERS; do srow dd-read $s $v dd if=$M/$s/big of=/dev/null bs=1M; done 2>/dev/null
    for s in $SERVERS; do rm -f $M/$s/big; done
    umntall
  done
done

# Context switches by thread over the whole run (hangar's threads, then the
# busiest of the rest): who switches.
if [ -n "$HPID" ]; then
  for t in /proc/$HPID/task/*; do
    echo "KT hangar/${t##*/} $(awk '/^(non)?voluntary_ctxt_switches/{printf "%s ", $2}' $t/status)$(awk '{print $14, $15}' $t/stat)"
  done
fi
for t in /proc/[0-9]*; do
  [ "${t##*/}" = "$HPID" ] && continue
  echo "KT $(cat $t/comm 2>/dev/null | tr ' ' _)/${t##*/} $(awk '/^(non)?voluntary_ctxt_switches/{printf "%s ", $2}' $t/status 2>/dev/null)$(awk '{print $14, $15}' $t/stat 2>/dev/null)"
done | sort -k3,3nr | head -n 12
if [ -n "$prof" ]; then
  kill -INT $HPID; wait $HPID
  echo KB-PROF-BEGIN; base64 /tmp/hangar.prof; echo KB-PROF-END
fi
[ -n "$HPID" ] && tail -n 5 /tmp/hangar.log | sed 's/^/KB-LOG /'
echo KB-DONE
