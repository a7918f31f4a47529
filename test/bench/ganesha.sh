#!/usr/bin/env bash
# nfs-ganesha (VFS FSAL) for the benchmarks, shared by run.sh and kernel.sh.
# Sourced, it defines the functions below; executed, it runs one of them:
#   ganesha.sh serve DIR NFS_PORT MNT_PORT [CMD...]
#
# ganesha refuses to start unless it can register with rpcbind, and rpcbind
# takes port 111. So serve runs (in a mount namespace the caller makes with
# `unshare --mount`) rpcbind in a network namespace of its own, on a private
# /run: ganesha registers through /run/rpcbind.sock, which a path reaches
# from any network namespace, and serves from the caller's network namespace
# (run.sh: a lo-only one; kernel.sh: the host's loopback, where QEMU's user
# network reaches it).

# ganesha_missing: the packages to install for ganesha, if any.
ganesha_missing() {
  if ! command -v ganesha.nfsd >/dev/null || [[ ! -e /usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so ]] \
    || ! command -v rpcbind >/dev/null; then
    echo nfs-ganesha nfs-ganesha-vfs rpcbind
  fi
}

# apt_install PKG...: install without starting their services (ganesha runs
# only where we start it).
apt_install() {
  local made=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made=1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
  ((made)) && rm -f /usr/sbin/policy-rc.d
  return 0
}

# ganesha_conf DIR NFS_PORT MNT_PORT PROTOCOLS [BIND_ADDR]: DIR/ganesha.conf
# exporting DIR/export (at the same path for MOUNT and in the v4 pseudo fs).
# PROTOCOLS is "3" or "3, 4" (v4 means 4.1 and 4.2; no grace period: this
# server has no clients to wait for).
ganesha_conf() {
  local G=$1 nfs=$2 mnt=$3 protos=$4 bind=${5:-}
  mkdir -p "$G/export" "$G/state"
  cat >"$G/ganesha.conf" <<CONF
NFS_CORE_PARAM {
    ${bind:+Bind_addr = $bind;}
    NFS_Port = $nfs;
    MNT_Port = $mnt;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
    Protocols = $protos;
}
NFSV4 { Graceless = true; Minor_Versions = 1, 2; RecoveryRoot = $G/state; }
EXPORT {
    Export_Id = 1;
    Path = $G/export;
    Pseudo = $G/export;
    Access_Type = RW;
    Squash = No_Root_Squash;
    Protocols = $protos;
    Transports = TCP;
    SecType = sys;
    FSAL { Name = VFS; }
}
LOG { Default_Log_Level = EVENT; }
CONF
}

# ganesha_serve DIR NFS_PORT MNT_PORT [CMD...]: run rpcbind and ganesha (with
# DIR/ganesha.conf) until CMD ends, or until a signal without CMD. Must run
# in a private mount namespace: it mounts a tmpfs on /run. A start that
# fails is also appended to $GANESHA_FAILURES when set.
ganesha_serve() {
  local G=$1 nfs=$2 mnt=$3; shift 3
  local up=0 st=0
  # Global, not local: the EXIT trap may run after this function returned.
  GANESHA_PIDS=()
  # shellcheck disable=SC2317 # called by the traps
  stop_all() { for p in "${GANESHA_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
  trap stop_all EXIT
  trap 'exit 143' TERM INT
  mount -t tmpfs tmpfs /run
  mkdir -p /run/rpcbind && chown _rpc /run/rpcbind 2>/dev/null || true
  unshare --net sh -c 'ip link set lo up; exec rpcbind -f' & GANESHA_PIDS+=($!)
  for _ in $(seq 50); do [[ -S /run/rpcbind.sock ]] && break; sleep 0.1; done
  ganesha.nfsd -F -L "$G/ganesha.log" -f "$G/ganesha.conf" -p /run/ganesha.pid & GANESHA_PIDS=($! "${GANESHA_PIDS[@]}")
  for _ in $(seq 150); do (exec 3<>/dev/tcp/127.0.0.1/"$mnt") 2>/dev/null && { up=1; break; }; sleep 0.1; done
  if ((!up)); then echo "ganesha did not start: $(tail -c 300 "$G/ganesha.log")" | tee -a "${GANESHA_FAILURES:-/dev/null}" >&2; return 1; fi
  if (($#)); then "$@" || st=$?; return $st; fi
  echo "ganesha: serving on 127.0.0.1:$nfs (MOUNT $mnt)" >&2
  wait "${GANESHA_PIDS[0]}"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  case ${1:-} in
    serve) shift; ganesha_serve "$@" ;;
    *) echo "usage: $0 serve DIR NFS_PORT MNT_PORT [CMD...]" >&2; exit 2 ;;
  esac
fi
