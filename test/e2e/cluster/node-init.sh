#!/bin/sh
# /init of a cluster node VM: bring up the kernel side a kubelet needs
# (cgroup2, modules, sysctls, two NICs), containerd with the images the
# host put in /node/images, a relay for the `kubernetes` Service, then the
# kubelet. Logs: containerd -> /dev/ttyS1, kubelet -> /dev/ttyS2 (files on
# the host). Runs until the host kills the VM.
#
# /node/env (from the host): NODE_NAME, NODE_IP (eth0, on the bridge the
# test's network namespace holds), GATEWAY (the bridge's address, where the
# apiserver is), API_PORT, POD_CIDR (this node's pod range), NODE_LABELS,
# DATA_DISK (a block device to mount at /var/lib/hangar, optional).
export PATH=/usr/local/bin:/bin:/sbin:/usr/bin:/usr/sbin
# pivot_root(2), which runc needs (its no-pivot mode leaks mounts back to
# the host when a pod asks for Bidirectional propagation), cannot leave
# the initramfs: move everything to a tmpfs and make that the root.
if [ ! -e /.noderoot ]; then
  mkdir -p /newroot && mount -t tmpfs -o size=90% root /newroot
  for d in /*; do
    case $d in /proc|/sys|/dev|/newroot) ;; *) cp -a "$d" /newroot/ ;; esac
  done
  mkdir -p /newroot/proc /newroot/sys /newroot/dev && touch /newroot/.noderoot
  exec switch_root /newroot /init
fi
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts && mount -t tmpfs shm /dev/shm
mount -t tmpfs -o size=50% tmp /tmp
mount -t tmpfs run /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
echo 3 > /proc/sys/kernel/printk
# Mounts the kubelet and the node plugin make must propagate.
mount --make-rshared /
for d in /var/lib/containerd /var/lib/kubelet /var/log/pods /var/lib/hangar; do
  mkdir -p $d && mount -t tmpfs -o size=60% tmp $d
done
mount --make-rshared /var/lib/kubelet
. /node/env
for m in virtio_pci virtio_net virtio_rng virtio_blk nfsv3 nfsv4 overlay bridge veth br_netfilter; do modprobe $m; done
if [ -n "$DATA_DISK" ]; then
  n=0; while [ ! -b "$DATA_DISK" ] && [ $n -lt 100 ]; do usleep 50000; n=$((n+1)); done
  umount /var/lib/hangar && mount -t ext4 "$DATA_DISK" /var/lib/hangar || echo "NODE-FAIL data disk $DATA_DISK"
fi
for c in cpu cpuset memory pids io; do echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null; done
sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=0 vm.overcommit_memory=1 kernel.panic=10 kernel.panic_on_oops=1 \
  kernel.keys.root_maxkeys=1000000 kernel.keys.root_maxbytes=25000000 2>/dev/null

n=0; while [ ! -e /sys/class/net/eth0 ] && [ $n -lt 100 ]; do usleep 50000; n=$((n+1)); done
ip link set lo up
ip addr add "$NODE_IP/24" dev eth0 && ip link set eth0 up
ip route add default via "$GATEWAY"
# The `kubernetes` Service (first address of the service range) is held
# here and relayed to the apiserver: pods reach it through their gateway
# (there is no kube-proxy).
ip addr add 10.0.0.1/32 dev lo
hostname "$NODE_NAME"
echo "127.0.0.1 localhost $NODE_NAME" > /etc/hosts
echo "NODE-BOOTED $NODE_NAME uptime=$(cut -d' ' -f1 /proc/uptime)"

mkdir -p /etc/containerd /etc/cni/net.d /etc/kubernetes /var/lib/kubelet/plugins_registry
cat > /etc/containerd/config.toml <<EOF
version = 3
[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = 'hangar.test/pause:1'
[plugins.'io.containerd.cri.v1.runtime']
  enable_selinux = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['/opt/cni/bin']
    conf_dir = '/etc/cni/net.d'
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = 'io.containerd.runc.v2'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      BinaryName = '/usr/sbin/runc'
      SystemdCgroup = false
EOF
cat > /etc/cni/net.d/10-bridge.conflist <<EOF
{"cniVersion": "1.0.0", "name": "pods", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "loopback"}]}
EOF
containerd >/dev/ttyS1 2>&1 &
n=0; while ! ctr version >/dev/null 2>&1 && [ $n -lt 600 ]; do usleep 100000; n=$((n+1)); done
for i in /node/images/*.tar; do
  ctr -n k8s.io images import --all-platforms --no-unpack "$i" >/dev/null || echo "NODE-FAIL import $i"
done
echo "NODE-IMAGES $(ctr -n k8s.io images ls -q | tr '\n' ' ')"

e2eguest forward 10.0.0.1:443 "$GATEWAY:$API_PORT" >/dev/ttyS1 2>&1 &

cat > /etc/kubernetes/kubelet.yaml <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# The test apiserver calls the kubelet (exec, logs) without a client
# certificate; the node network exists only inside the test's namespace.
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
failSwapOn: false
resolvConf: /etc/resolv.conf
# tmpfs-backed node: (almost) no evictions for disk or memory pressure in
# a test VM.
evictionHard: {memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
enforceNodeAllocatable: []
protectKernelDefaults: false
localStorageCapacityIsolation: false
serializeImagePulls: false
podCIDR: $POD_CIDR
maxPods: 30
syncFrequency: 10s
nodeStatusUpdateFrequency: 10s
fileCheckFrequency: 10s
# A starved TCG guest can take minutes to create and start a container:
# the default 2 min ended such calls with RunContainerError and a retry
# from scratch (backoff included).
runtimeRequestTimeout: 10m
EOF
kubelet --config=/etc/kubernetes/kubelet.yaml --kubeconfig=/node/kubeconfig --node-ip="$NODE_IP" \
  --hostname-override="$NODE_NAME" --node-labels="$NODE_LABELS" --v=1 >/dev/ttyS2 2>&1 &
echo "NODE-KUBELET-STARTED uptime=$(cut -d' ' -f1 /proc/uptime)"
while :; do sleep 3600; done
