package server

import (
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/hangar-csi/hangar/pkg/csicommon"
	"github.com/hangar-csi/hangar/pkg/metrics"
	"github.com/hangar-csi/hangar/pkg/vfs"
)

// instrument registers the server's metrics with reg: it returns the file
// system the NFS server should serve (counting every operation) and the
// gRPC options that count API calls, and wraps the NFS listener to count
// connections.
func (s *Server) instrument(reg prometheus.Registerer, vols *volumes) (vfs.FS, []grpc.ServerOption) {
	// Changes take their volume's hold, so snapshots can stop them.
	served := s.fs.Holding()
	if reg == nil {
		return served, nil
	}
	m := metrics.NewNFS(served, s.fs.VolumeOf, reg)
	vols.onRemove = m.Forget
	s.nfsL = metrics.CountConns(s.nfsL, reg)
	reg.MustRegister(metrics.NewUsageCollector(func() []metrics.VolumeStat {
		var out []metrics.VolumeStat
		for _, v := range s.store.List() {
			if u, err := s.fs.Usage(csicommon.ExportPath(v.ID)); err == nil {
				out = append(out, metrics.VolumeStat{ID: v.ID, Bytes: u.Bytes, Inodes: u.Inodes, MaxBytes: u.MaxBytes, MaxInodes: u.MaxInodes})
			}
		}
		return out
	}))
	return m, []grpc.ServerOption{grpc.ChainUnaryInterceptor(metrics.GRPCInterceptor("server", reg))}
}
