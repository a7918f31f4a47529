package driver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	mount "k8s.io/mount-utils"
)

// KernelMounter mounts with mount(2) itself instead of running mount(8) and
// its mount.nfs helper, so the node plugin's image is the static binary and
// nothing else. The kernel's NFS client parses the same text options
// mount.nfs hands it; what mount.nfs adds is done here: generic options
// (ro, nosuid, noatime, …) become mount flags, and the server's address is
// passed as addr= (the kernel resolves no host names). Listing and checking
// mount points read /proc as mount-utils does.
type KernelMounter struct {
	// Interface answers List, IsLikelyNotMountPoint and the other queries;
	// its Mount and Unmount, which run mount(8), are never called.
	mount.Interface
	// Resolve looks up a server's host name; nil uses the system resolver.
	Resolve func(ctx context.Context, host string) ([]net.IPAddr, error)
}

// NewKernelMounter returns a KernelMounter answering queries from /proc.
func NewKernelMounter() *KernelMounter {
	return &KernelMounter{Interface: mount.New("")}
}

// maxMountData is the most option text mount(2) takes (one page).
const maxMountData = 4096

// mountFlags are the generic options mount(8) turns into mount(2) flags;
// a false flag clears what the true one sets.
var mountFlags = map[string]struct {
	set   bool
	flags uintptr
}{
	"ro": {true, unix.MS_RDONLY}, "rw": {false, unix.MS_RDONLY},
	"nosuid": {true, unix.MS_NOSUID}, "suid": {false, unix.MS_NOSUID},
	"nodev": {true, unix.MS_NODEV}, "dev": {false, unix.MS_NODEV},
	"noexec": {true, unix.MS_NOEXEC}, "exec": {false, unix.MS_NOEXEC},
	"sync": {true, unix.MS_SYNCHRONOUS}, "async": {false, unix.MS_SYNCHRONOUS},
	"dirsync": {true, unix.MS_DIRSYNC},
	"noatime": {true, unix.MS_NOATIME}, "atime": {false, unix.MS_NOATIME},
	"nodiratime": {true, unix.MS_NODIRATIME}, "diratime": {false, unix.MS_NODIRATIME},
	"relatime": {true, unix.MS_RELATIME}, "norelatime": {false, unix.MS_RELATIME},
	"strictatime": {true, unix.MS_STRICTATIME},
	"lazytime":    {true, unix.MS_LAZYTIME}, "nolazytime": {false, unix.MS_LAZYTIME},
	"silent": {true, unix.MS_SILENT}, "loud": {false, unix.MS_SILENT},
}

// userspaceOnly are fstab and mount(8) options that mean nothing to the
// kernel; mount(8) drops them too.
var userspaceOnly = map[string]bool{"defaults": true, "auto": true, "noauto": true, "_netdev": true, "nofail": true,
	"user": true, "nouser": true, "users": true, "owner": true, "group": true}

// mountArgs splits options into mount(2) flags and the file system's own
// option text.
func mountArgs(options []string) (flags uintptr, data []string, err error) {
	for _, o := range options {
		for _, o := range strings.Split(o, ",") {
			name, _, _ := strings.Cut(o, "=")
			switch f, ok := mountFlags[o]; {
			case o == "":
			case ok && f.set:
				flags |= f.flags
			case ok:
				flags &^= f.flags
			case userspaceOnly[o], strings.HasPrefix(o, "x-"), name == "comment":
			case o == "bind":
				flags |= unix.MS_BIND
			case o == "rbind":
				flags |= unix.MS_BIND | unix.MS_REC
			case name == "bind" || name == "rbind" || name == "remount" || name == "move":
				return 0, nil, fmt.Errorf("mount option %q is not supported by the kernel mounter", o)
			default:
				data = append(data, o)
			}
		}
	}
	return flags, data, nil
}

// nfsHost returns the server host of an NFS source "host:/path" or
// "[v6]:/path".
func nfsHost(source string) (string, error) {
	i := strings.Index(source, ":/")
	if i <= 0 {
		return "", fmt.Errorf("NFS source %q is not host:/path", source)
	}
	host := source[:i]
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	if host == "" {
		return "", fmt.Errorf("NFS source %q has no host", source)
	}
	return host, nil
}

func (m *KernelMounter) Mount(source, target, fstype string, options []string) error {
	return m.MountSensitiveWithoutSystemdWithMountFlags(source, target, fstype, options, nil, nil)
}

func (m *KernelMounter) MountSensitive(source, target, fstype string, options, sensitive []string) error {
	return m.MountSensitiveWithoutSystemdWithMountFlags(source, target, fstype, options, sensitive, nil)
}

func (m *KernelMounter) MountSensitiveWithoutSystemd(source, target, fstype string, options, sensitive []string) error {
	return m.MountSensitiveWithoutSystemdWithMountFlags(source, target, fstype, options, sensitive, nil)
}

// MountSensitiveWithoutSystemdWithMountFlags mounts with mount(2); the
// sensitive options are passed but never appear in an error.
func (m *KernelMounter) MountSensitiveWithoutSystemdWithMountFlags(source, target, fstype string, options, sensitive, extra []string) error {
	flags, data, err := mountArgs(append(append([]string(nil), options...), extra...))
	if err != nil {
		return err
	}
	if flags&unix.MS_BIND != 0 {
		return bindMount(source, target, flags)
	}
	_, secret, err := mountArgs(sensitive)
	if err != nil {
		return err
	}
	if fstype == "nfs" && !hasOption(data, "addr") {
		addr, err := m.serverAddr(source)
		if err != nil {
			return err
		}
		data = append(data, "addr="+addr)
	}
	text := strings.Join(append(append([]string(nil), data...), secret...), ",")
	if len(text) >= maxMountData {
		return fmt.Errorf("mount options are %d bytes; mount(2) takes at most %d", len(text), maxMountData-1)
	}
	if err := unix.Mount(source, target, fstype, flags, text); err != nil {
		return fmt.Errorf("mount(2) %s on %s type %s (%s): %w%s", source, target, fstype, strings.Join(data, ","), err, mountHint(err))
	}
	return nil
}

// bindMount makes a bind mount with flags such as ro or nodev. The node
// plugin runs in a container whose publications reach kubelet's mount
// namespace by propagation, which copies a mount as it is when attached:
// a bind made read-only by a later remount (as mount(8) does) stays
// read-write on the host. So the bind is cloned detached, given its flags,
// and only then attached; kernels before 5.12 (no mount_setattr) get
// mount(8)'s way.
func bindMount(source, target string, flags uintptr) error {
	rest := flags &^ (unix.MS_BIND | unix.MS_REC)
	if rest == 0 {
		if err := unix.Mount(source, target, "", flags, ""); err != nil {
			return fmt.Errorf("bind mount(2) %s on %s: %w", source, target, err)
		}
		return nil
	}
	err := detachedBind(source, target, flags)
	if !errors.Is(err, unix.ENOSYS) {
		return err
	}
	if err := unix.Mount(source, target, "", flags&(unix.MS_BIND|unix.MS_REC), ""); err != nil {
		return fmt.Errorf("bind mount(2) %s on %s: %w", source, target, err)
	}
	// A remount replaces the bind's per-mount flags: keep the nodev,
	// nosuid, noexec (and atime mode) it inherited from source, or a
	// read-only publication would be weaker than the staged mount.
	var st unix.Statfs_t
	if err := unix.Statfs(target, &st); err != nil {
		unix.Unmount(target, unix.MNT_DETACH)
		return fmt.Errorf("reading the flags of bind mount %s on %s: %w", source, target, err)
	}
	keep := []struct {
		st    int64
		flag  uintptr
		atime bool
	}{{unix.ST_NODEV, unix.MS_NODEV, false}, {unix.ST_NOSUID, unix.MS_NOSUID, false}, {unix.ST_NOEXEC, unix.MS_NOEXEC, false},
		{unix.ST_NOATIME, unix.MS_NOATIME, true}, {unix.ST_NODIRATIME, unix.MS_NODIRATIME, true}, {unix.ST_RELATIME, unix.MS_RELATIME, true}}
	atimeSet := rest&(unix.MS_NOATIME|unix.MS_NODIRATIME|unix.MS_RELATIME|unix.MS_STRICTATIME) != 0
	for _, k := range keep {
		if st.Flags&k.st != 0 && !(k.atime && atimeSet) {
			rest |= k.flag
		}
	}
	if err := unix.Mount("", target, "", unix.MS_REMOUNT|unix.MS_BIND|rest, ""); err != nil {
		unix.Unmount(target, unix.MNT_DETACH)
		return fmt.Errorf("applying options to bind mount %s on %s: %w", source, target, err)
	}
	return nil
}

// mountAttrs maps mount(2)'s per-mount flags to mount_setattr(2)'s; the
// others (sync, dirsync, lazytime) belong to the file system, which a bind
// cannot change.
var mountAttrs = []struct {
	flag uintptr
	attr uint64
}{{unix.MS_RDONLY, unix.MOUNT_ATTR_RDONLY}, {unix.MS_NOSUID, unix.MOUNT_ATTR_NOSUID}, {unix.MS_NODEV, unix.MOUNT_ATTR_NODEV},
	{unix.MS_NOEXEC, unix.MOUNT_ATTR_NOEXEC}, {unix.MS_NOATIME, unix.MOUNT_ATTR_NOATIME}, {unix.MS_NODIRATIME, unix.MOUNT_ATTR_NODIRATIME},
	{unix.MS_RELATIME, unix.MOUNT_ATTR_RELATIME}, {unix.MS_STRICTATIME, unix.MOUNT_ATTR_STRICTATIME}}

// detachedBind clones source's mount (with its nodev, nosuid... as a bind
// does), adds flags to the clone while nothing can see it, then attaches
// it at target. ENOSYS means the kernel lacks the new mount API.
func detachedBind(source, target string, flags uintptr) error {
	treeFlags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC)
	if flags&unix.MS_REC != 0 {
		treeFlags |= unix.AT_RECURSIVE
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, source, treeFlags)
	if err != nil {
		return fmt.Errorf("open_tree(2) %s: %w", source, err)
	}
	// Closing a detached tree that was never attached unmounts it.
	defer unix.Close(fd)
	var attr unix.MountAttr
	for _, m := range mountAttrs {
		if flags&m.flag != 0 {
			attr.Attr_set |= m.attr
		}
	}
	if attr.Attr_set&(unix.MOUNT_ATTR_NOATIME|unix.MOUNT_ATTR_RELATIME|unix.MOUNT_ATTR_STRICTATIME) != 0 {
		attr.Attr_clr = unix.MOUNT_ATTR__ATIME // the atime modes are one field
	}
	setFlags := uint(unix.AT_EMPTY_PATH)
	if flags&unix.MS_REC != 0 {
		setFlags |= unix.AT_RECURSIVE
	}
	if err := unix.MountSetattr(fd, "", setFlags, &attr); err != nil {
		return fmt.Errorf("mount_setattr(2) on the bind of %s: %w", source, err)
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount(2) bind of %s to %s: %w", source, target, err)
	}
	return nil
}

func hasOption(opts []string, name string) bool {
	for _, o := range opts {
		if n, _, _ := strings.Cut(o, "="); n == name {
			return true
		}
	}
	return false
}

// serverAddr is the IP address of source's server.
func (m *KernelMounter) serverAddr(source string) (string, error) {
	host, err := nfsHost(source)
	if err != nil {
		return "", err
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.String(), nil
	}
	resolve := m.Resolve
	if resolve == nil {
		resolve = net.DefaultResolver.LookupIPAddr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ips, err := resolve(ctx, host)
	if err != nil {
		return "", fmt.Errorf("resolving NFS server %s: %w", host, err)
	}
	if len(ips) == 0 {
		return "", fmt.Errorf("NFS server %s has no address", host)
	}
	return ips[0].IP.String(), nil
}

// mountHint says in words what mount.nfs would have said for an errno.
func mountHint(err error) string {
	switch {
	case errors.Is(err, unix.EACCES):
		return " (access denied by server: this node is not allowed to mount the export)"
	case errors.Is(err, unix.ECONNREFUSED):
		return " (connection refused: no NFS server on that port)"
	case errors.Is(err, unix.ETIMEDOUT), errors.Is(err, unix.EHOSTUNREACH), errors.Is(err, unix.ENETUNREACH):
		return " (NFS server unreachable)"
	case errors.Is(err, unix.ENODEV):
		return " (the kernel has no NFS client: modprobe nfs)"
	case errors.Is(err, unix.EPROTONOSUPPORT):
		return " (the kernel's NFS client lacks this NFS version: modprobe nfsv4, or use nfsVersion \"3\")"
	case errors.Is(err, unix.EINVAL):
		return " (the kernel refused an option; see dmesg)"
	case errors.Is(err, unix.EPERM):
		return " (mounting needs CAP_SYS_ADMIN)"
	}
	return ""
}

// Unmount unmounts target with umount(2). Unlike umount.nfs it sends the
// server no UMNT: Hangar's MOUNT list (DUMP) is informational and bounded,
// and access follows ControllerUnpublishVolume, not UMNT.
func (m *KernelMounter) Unmount(target string) error {
	if err := unix.Unmount(target, 0); err != nil {
		return fmt.Errorf("umount(2) %s: %w", target, err)
	}
	return nil
}
