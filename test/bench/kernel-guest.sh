#!/bin/sh
# Guest side of test/bench/kernel.sh (busybox sh): the guest's kernel nfsd and
# `hangar nfs` each export their own tmpfs inside this one guest; the guest's
# kernel client runs the same small-file workloads against each over loopback.
# With HANGAR_PORT set, hangar runs on the host instead (NFS_HOST:HANGAR_PORT).
# Prints "KB <server> <workload> <seconds>" lines, and with PROFILE=1 a CPU
# profile of hangar between KB-PROF-BEGIN/END as base64.
# env: FILES (tree size) FSMARK (files per fs_mark run) DD_MB ROUNDS SERVERS
: ${FILES:=2000} ${FSMARK:=1000} ${DD_MB:=64} ${ROUNDS:=1} ${SERVERS:="knfsd hangar"}
now() { cut -d' ' -f1 /proc/uptime; }
fail() { echo "KB-FAIL $*"; exit 1; }
M=/mnt/n; mkdir -p $M /srv/knfsd /srv/hangar

mount -t tmpfs -o size=1g src /tmp 2>/dev/null || true
kguest tree /tmp/src "$FILES" || fail "tree"
(cd /tmp/src && tar cf /tmp/src.tar .) || fail "tar of the source tree"

mount -t tmpfs -o size=1g kn /srv/knfsd
mount -t tmpfs -o size=1g hg /srv/hangar
# knfsd (as ../shared/reference/vm/guest/knfsd.sh): NFSv3 only, 8 threads.
mount -t nfsd nfsd /proc/fs/nfsd
mkdir -p /run/rpcbind /var/lib/nfs/rpc_pipefs
echo "/srv/knfsd 127.0.0.1(rw,no_root_squash,no_subtree_check,insecure,fsid=1)" > /etc/exports
rpcbind || fail rpcbind
exportfs -ra
rpc.mountd -p 20048 -N 4 || fail mountd
rpc.nfsd -N 4 -N 4.1 -N 4.2 -p 2049 ${NFSD_THREADS:-8} || fail nfsd

prof= HHOST=127.0.0.1
if [ -n "$HANGAR_PORT" ]; then
  HHOST=$NFS_HOST   # hangar runs on the host, reached through QEMU's forward
else
  HANGAR_PORT=3049
  [ "$PROFILE" = 1 ] && prof="--cpuprofile /tmp/hangar.prof"
  hangar nfs --root /srv/hangar --listen 127.0.0.1:3049 $prof >/tmp/hangar.log 2>&1 &
  HPID=$!
  sleep 1
fi

opts() {
  case $1 in
    knfsd) echo vers=3,proto=tcp,port=2049,mountport=20048,mountproto=tcp,nolock,retry=0 ;;
    hangar) echo vers=3,proto=tcp,port=$HANGAR_PORT,mountport=$HANGAR_PORT,mountproto=tcp,nolock,retry=0 ;;
  esac
}
src() { case $1 in knfsd) echo 127.0.0.1:/srv/knfsd ;; hangar) echo $HHOST:/ ;; esac; }
mnt() { mount -t nfs -o "$(opts $1)" "$(src $1)" $M || fail "mount $1"; }
# time NAME SERVER CMD...: one row, in seconds (10 ms resolution under TCG)
row() { name=$1 s=$2; shift 2; t0=$(now); "$@" || fail "$s $name"; t1=$(now); echo "KB $s $name $(echo $t0 $t1 | awk '{printf "%.2f", $2-$1}')"; }

r=0
while [ $r -lt "$ROUNDS" ]; do
  r=$((r+1))
  for s in $SERVERS; do
    mnt $s
    # untar ends with a umount: the client's writes all reach the server.
    row untar $s sh -c "mkdir $M/t && cd $M/t && tar xf /tmp/src.tar && cd / && umount $M"
    mnt $s
    row tar $s sh -c "cd $M/t && tar cf - . >/dev/null"
    row rm-r $s rm -r $M/t
    set -- $(kguest fsmark $M/fsync "$FSMARK" 4096 fsync) || fail "$s fsmark fsync"; echo "KB $s fs_mark-fsync $1"
    set -- $(kguest fsmark $M/nofsync "$FSMARK" 4096) || fail "$s fsmark"; echo "KB $s fs_mark $1"
    rm -rf $M/fsync $M/nofsync
    row dd-write $s dd if=/dev/zero of=$M/big bs=1M count=$DD_MB conv=fsync 2>/dev/null
    umount $M; echo 3 > /proc/sys/vm/drop_caches; mnt $s
    row dd-read $s dd if=$M/big of=/dev/null bs=1M 2>/dev/null
    rm -f $M/big
    umount $M
  done
done

if [ -n "$prof" ]; then
  kill -INT $HPID; wait $HPID
  echo KB-PROF-BEGIN; base64 /tmp/hangar.prof; echo KB-PROF-END
fi
[ -n "$HPID" ] && tail -n 5 /tmp/hangar.log | sed 's/^/KB-LOG /'
echo KB-DONE
