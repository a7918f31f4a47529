// Package metrics is Hangar's Prometheus instrumentation: a vfs.FS
// decorator counting NFS operations per volume, collectors for volume usage
// and NFS connections, a gRPC interceptor for the CSI services, and the
// /metrics HTTP endpoint.
package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

// op is an NFS procedure as the file system sees it.
type op int

const (
	opGetAttr op = iota
	opSetAttr
	opLookup
	opAccess
	opReadlink
	opRead
	opWrite
	opCreate
	opMkdir
	opSymlink
	opMknod
	opRemove
	opRmdir
	opRename
	opLink
	opReadDir
	opReadDirPlus
	opFSStat
	opCommit
	opMount
	opAllocate
	opDeallocate
	opSeek
	nOps
)

var opNames = [nOps]string{
	"GETATTR", "SETATTR", "LOOKUP", "ACCESS", "READLINK", "READ", "WRITE",
	"CREATE", "MKDIR", "SYMLINK", "MKNOD", "REMOVE", "RMDIR", "RENAME", "LINK",
	"READDIR", "READDIRPLUS", "FSSTAT", "COMMIT", "MNT", "ALLOCATE", "DEALLOCATE", "SEEK",
}

// UnknownVolume labels operations on handles of no current volume (stale
// or forged handles).
const UnknownVolume = "unknown"

// VolumeOf names the volume a handle belongs to; localfs.FS.VolumeOf is one.
type VolumeOf func(vfs.Handle) (string, bool)

// NFS is a vfs.FS that counts every operation of the FS it wraps, per
// volume and procedure: calls, errors, latency, and bytes read and written.
type NFS struct {
	fs  vfs.FS
	vol VolumeOf

	calls, errs    *prometheus.CounterVec
	lat            *prometheus.HistogramVec
	rbytes, wbytes *prometheus.CounterVec
	inflight       prometheus.Gauge

	mu   sync.RWMutex
	vols map[string]*volMetrics
}

var _ vfs.FS = (*NFS)(nil)

// volMetrics are one volume's metric children, resolved once so the hot
// path does no label lookups.
type volMetrics struct {
	calls, errs    [nOps]prometheus.Counter
	lat            [nOps]prometheus.Observer
	rbytes, wbytes prometheus.Counter
}

// latencyBuckets span a cached GETATTR (tens of µs) to a slow fsync.
var latencyBuckets = []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1}

// NewNFS wraps fs; its metrics are registered with reg.
func NewNFS(fs vfs.FS, vol VolumeOf, reg prometheus.Registerer) *NFS {
	labels := []string{"volume", "proc"}
	m := &NFS{
		fs:  fs,
		vol: vol,
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hangar_nfs_ops_total", Help: "NFS operations served, per volume and procedure.",
		}, labels),
		errs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hangar_nfs_op_errors_total", Help: "NFS operations that returned an error status, per volume and procedure.",
		}, labels),
		lat: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hangar_nfs_op_duration_seconds", Help: "Time the file system took per NFS operation.", Buckets: latencyBuckets,
		}, labels),
		rbytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hangar_nfs_read_bytes_total", Help: "Bytes returned by NFS READ, per volume.",
		}, []string{"volume"}),
		wbytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hangar_nfs_written_bytes_total", Help: "Bytes written by NFS WRITE, per volume.",
		}, []string{"volume"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hangar_nfs_ops_in_flight", Help: "NFS operations being served by the file system now.",
		}),
		vols: map[string]*volMetrics{},
	}
	reg.MustRegister(m.calls, m.errs, m.lat, m.rbytes, m.wbytes, m.inflight)
	return m
}

func (m *NFS) volume(id string) *volMetrics {
	m.mu.RLock()
	v := m.vols[id]
	m.mu.RUnlock()
	if v != nil {
		return v
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if v = m.vols[id]; v != nil {
		return v
	}
	v = &volMetrics{rbytes: m.rbytes.WithLabelValues(id), wbytes: m.wbytes.WithLabelValues(id)}
	for o := op(0); o < nOps; o++ {
		v.calls[o] = m.calls.WithLabelValues(id, opNames[o])
		v.errs[o] = m.errs.WithLabelValues(id, opNames[o])
		v.lat[o] = m.lat.WithLabelValues(id, opNames[o])
	}
	m.vols[id] = v
	return v
}

// Forget drops a deleted volume's series.
func (m *NFS) Forget(id string) {
	m.mu.Lock()
	delete(m.vols, id)
	m.mu.Unlock()
	m.rbytes.DeleteLabelValues(id)
	m.wbytes.DeleteLabelValues(id)
	for o := op(0); o < nOps; o++ {
		m.calls.DeleteLabelValues(id, opNames[o])
		m.errs.DeleteLabelValues(id, opNames[o])
		m.lat.DeleteLabelValues(id, opNames[o])
	}
}

// call is one operation being measured.
type call struct {
	v     *volMetrics
	o     op
	start time.Time
}

func (m *NFS) begin(h vfs.Handle, o op) call {
	id, ok := m.vol(h)
	if !ok {
		id = UnknownVolume
	}
	m.inflight.Inc()
	return call{v: m.volume(id), o: o, start: time.Now()}
}

func (m *NFS) end(c call, err error) {
	c.v.lat[c.o].Observe(time.Since(c.start).Seconds())
	c.v.calls[c.o].Inc()
	if err != nil {
		c.v.errs[c.o].Inc()
	}
	m.inflight.Dec()
}

func (m *NFS) Exports(ctx context.Context) []vfs.Export { return m.fs.Exports(ctx) }

func (m *NFS) Mount(ctx context.Context, path string) (vfs.Handle, error) {
	h, err := m.fs.Mount(ctx, path)
	id, ok := m.vol(h)
	if !ok {
		id = UnknownVolume
	}
	v := m.volume(id)
	v.calls[opMount].Inc()
	if err != nil {
		v.errs[opMount].Inc()
	}
	return h, err
}

func (m *NFS) GetAttr(ctx context.Context, h vfs.Handle) (vfs.Attr, error) {
	c := m.begin(h, opGetAttr)
	a, err := m.fs.GetAttr(ctx, h)
	m.end(c, err)
	return a, err
}

func (m *NFS) SetAttr(ctx context.Context, cr vfs.Cred, h vfs.Handle, sa vfs.SetAttr, guard *time.Time) (vfs.Wcc, error) {
	c := m.begin(h, opSetAttr)
	w, err := m.fs.SetAttr(ctx, cr, h, sa, guard)
	m.end(c, err)
	return w, err
}

func (m *NFS) Lookup(ctx context.Context, cr vfs.Cred, dir vfs.Handle, name string) (vfs.Handle, vfs.Attr, *vfs.Attr, error) {
	c := m.begin(dir, opLookup)
	h, a, da, err := m.fs.Lookup(ctx, cr, dir, name)
	m.end(c, err)
	return h, a, da, err
}

func (m *NFS) Access(ctx context.Context, cr vfs.Cred, h vfs.Handle, want uint32) (uint32, vfs.Attr, error) {
	c := m.begin(h, opAccess)
	g, a, err := m.fs.Access(ctx, cr, h, want)
	m.end(c, err)
	return g, a, err
}

func (m *NFS) Readlink(ctx context.Context, cr vfs.Cred, h vfs.Handle) (string, *vfs.Attr, error) {
	c := m.begin(h, opReadlink)
	t, a, err := m.fs.Readlink(ctx, cr, h)
	m.end(c, err)
	return t, a, err
}

func (m *NFS) Read(ctx context.Context, cr vfs.Cred, h vfs.Handle, off uint64, buf []byte) (int, bool, *vfs.Attr, error) {
	c := m.begin(h, opRead)
	n, eof, a, err := m.fs.Read(ctx, cr, h, off, buf)
	c.v.rbytes.Add(float64(n))
	m.end(c, err)
	return n, eof, a, err
}

// ReadFile forwards vfs.FileReader, so that counting keeps READs on the
// file path (data read only as the reply is written); ErrNotSupp sends the caller to Read when
// the wrapped FS has no files to hand out.
func (m *NFS) ReadFile(ctx context.Context, cr vfs.Cred, h vfs.Handle, off uint64, count uint32) (int, int, bool, *vfs.Attr, error) {
	fr, ok := m.fs.(vfs.FileReader)
	if !ok {
		return -1, 0, false, nil, vfs.ErrNotSupp
	}
	c := m.begin(h, opRead)
	fd, n, eof, a, err := fr.ReadFile(ctx, cr, h, off, count)
	c.v.rbytes.Add(float64(n))
	m.end(c, err)
	return fd, n, eof, a, err
}

func (m *NFS) Write(ctx context.Context, cr vfs.Cred, h vfs.Handle, off uint64, data []byte, stable vfs.Stable) (int, vfs.Stable, vfs.Wcc, error) {
	c := m.begin(h, opWrite)
	n, st, w, err := m.fs.Write(ctx, cr, h, off, data, stable)
	c.v.wbytes.Add(float64(n))
	m.end(c, err)
	return n, st, w, err
}

func (m *NFS) Create(ctx context.Context, cr vfs.Cred, dir vfs.Handle, name string, how vfs.CreateHow, sa vfs.SetAttr, verf vfs.Verifier) (vfs.Handle, *vfs.Attr, vfs.Wcc, error) {
	c := m.begin(dir, opCreate)
	h, a, w, err := m.fs.Create(ctx, cr, dir, name, how, sa, verf)
	m.end(c, err)
	return h, a, w, err
}

func (m *NFS) Mkdir(ctx context.Context, cr vfs.Cred, dir vfs.Handle, name string, sa vfs.SetAttr) (vfs.Handle, *vfs.Attr, vfs.Wcc, error) {
	c := m.begin(dir, opMkdir)
	h, a, w, err := m.fs.Mkdir(ctx, cr, dir, name, sa)
	m.end(c, err)
	return h, a, w, err
}

func (m *NFS) Symlink(ctx context.Context, cr vfs.Cred, dir vfs.Handle, name, target string, sa vfs.SetAttr) (vfs.Handle, *vfs.Attr, vfs.Wcc, error) {
	c := m.begin(dir, opSymlink)
	h, a, w, err := m.fs.Symlink(ctx, cr, dir, name, target, sa)
	m.end(c, err)
	return h, a, w, err
}

func (m *NFS) Mknod(ctx context.Context, cr vfs.Cred, dir vfs.Handle, name string, t vfs.FileType, sa vfs.SetAttr, major, minor uint32) (vfs.Handle, *vfs.Attr, vfs.Wcc, error) {
	c := m.begin(dir, opMknod)
	h, a, w, err := m.fs.Mknod(ctx, cr, dir, name, t, sa, major, minor)
	m.end(c, err)
	return h, a, w, err
}

func (m *NFS) Remove(ctx context.Context, cr vfs.Cred, dir vfs.Handle, name string) (vfs.Wcc, error) {
	c := m.begin(dir, opRemove)
	w, err := m.fs.Remove(ctx, cr, dir, name)
	m.end(c, err)
	return w, err
}

func (m *NFS) Rmdir(ctx context.Context, cr vfs.Cred, dir vfs.Handle, name string) (vfs.Wcc, error) {
	c := m.begin(dir, opRmdir)
	w, err := m.fs.Rmdir(ctx, cr, dir, name)
	m.end(c, err)
	return w, err
}

func (m *NFS) Rename(ctx context.Context, cr vfs.Cred, fromDir vfs.Handle, fromName string, toDir vfs.Handle, toName string) (vfs.Wcc, vfs.Wcc, error) {
	c := m.begin(fromDir, opRename)
	fw, tw, err := m.fs.Rename(ctx, cr, fromDir, fromName, toDir, toName)
	m.end(c, err)
	return fw, tw, err
}

func (m *NFS) Link(ctx context.Context, cr vfs.Cred, h vfs.Handle, dir vfs.Handle, name string) (*vfs.Attr, vfs.Wcc, error) {
	c := m.begin(dir, opLink)
	a, w, err := m.fs.Link(ctx, cr, h, dir, name)
	m.end(c, err)
	return a, w, err
}

func (m *NFS) ReadDir(ctx context.Context, cr vfs.Cred, dir vfs.Handle, cookie uint64, verf vfs.Verifier, plus bool, emit func(vfs.DirEntry) bool) (vfs.Verifier, bool, *vfs.Attr, error) {
	o := opReadDir
	if plus {
		o = opReadDirPlus
	}
	c := m.begin(dir, o)
	nv, eof, a, err := m.fs.ReadDir(ctx, cr, dir, cookie, verf, plus, emit)
	m.end(c, err)
	return nv, eof, a, err
}

func (m *NFS) FSStat(ctx context.Context, h vfs.Handle) (vfs.FSStat, *vfs.Attr, error) {
	c := m.begin(h, opFSStat)
	s, a, err := m.fs.FSStat(ctx, h)
	m.end(c, err)
	return s, a, err
}

func (m *NFS) Commit(ctx context.Context, cr vfs.Cred, h vfs.Handle, off uint64, count uint32) (vfs.Wcc, error) {
	c := m.begin(h, opCommit)
	w, err := m.fs.Commit(ctx, cr, h, off, count)
	m.end(c, err)
	return w, err
}

func (m *NFS) WriteVerifier() vfs.Verifier { return m.fs.WriteVerifier() }
