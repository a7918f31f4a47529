// Package nfs wires Hangar's NFS server together: NFSv3, MOUNTv3 and
// NFSv4.1 over one vfs.FS, served by one rpc.Server so all share a port
// (clients mount with port=P,mountport=P for v3, or vers=4.1,port=P, and
// need no portmapper).
package nfs

import (
	"context"
	"net"

	"github.com/hangar-csi/hangar/pkg/nfs/mount"
	"github.com/hangar-csi/hangar/pkg/nfs/nfs3"
	"github.com/hangar-csi/hangar/pkg/nfs/nfs4"
	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/vfs"
)

// NewServer returns an rpc.Server serving NFS v3 and v4 (100003) and
// MOUNT v3 (100005) over fs. Call Serve with a listener to start it. Every
// call's context carries the connection's peer address (vfs.ClientOf),
// which fs checks against its exports' policies. v4 configures NFSv4.1
// (its MaxRequest defaults to o's record size).
func NewServer(fs vfs.FS, o rpc.Options, v4 nfs4.Options) *rpc.Server {
	conn := o.ConnContext
	o.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if conn != nil {
			ctx = conn(ctx, c)
		}
		return vfs.WithClient(ctx, c.RemoteAddr())
	}
	s := rpc.NewServer(o)
	s.Register(nfs3.Program, nfs3.Version, nfs3.NewHandler(fs, o.Log.WithName("nfs3")), nfs3.Idempotent)
	if v4.MaxRequest == 0 {
		v4.MaxRequest = o.MaxRecordSize
	}
	s.Register(nfs4.Program, nfs4.Version, nfs4.NewHandler(fs, o.Log.WithName("nfs4"), v4), nfs4.Idempotent)
	s.Register(mount.Program, mount.Version, mount.NewHandler(fs, o.Log.WithName("mount")), mount.Idempotent)
	return s
}
