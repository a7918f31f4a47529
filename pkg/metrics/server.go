package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// NewRegistry returns a registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// VolumeStat is one volume's usage and limits (0 = unlimited).
type VolumeStat struct {
	ID                  string
	Bytes, Inodes       uint64
	MaxBytes, MaxInodes uint64
}

// usageCollector reports volume usage gauges, read at scrape time.
type usageCollector struct {
	list                                         func() []VolumeStat
	usedBytes, capacityBytes, usedInodes, inodes *prometheus.Desc
}

// NewUsageCollector reports, per volume, the usage and limits list returns
// at each scrape.
func NewUsageCollector(list func() []VolumeStat) prometheus.Collector {
	l := []string{"volume"}
	return &usageCollector{
		list:          list,
		usedBytes:     prometheus.NewDesc("hangar_volume_used_bytes", "Bytes allocated by the volume's files.", l, nil),
		capacityBytes: prometheus.NewDesc("hangar_volume_capacity_bytes", "The volume's capacity (byte limit); absent when unlimited.", l, nil),
		usedInodes:    prometheus.NewDesc("hangar_volume_used_inodes", "Inodes used by the volume.", l, nil),
		inodes:        prometheus.NewDesc("hangar_volume_inode_limit", "The volume's inode limit; absent when unlimited.", l, nil),
	}
}

func (c *usageCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.usedBytes
	ch <- c.capacityBytes
	ch <- c.usedInodes
	ch <- c.inodes
}

func (c *usageCollector) Collect(ch chan<- prometheus.Metric) {
	for _, v := range c.list() {
		ch <- prometheus.MustNewConstMetric(c.usedBytes, prometheus.GaugeValue, float64(v.Bytes), v.ID)
		ch <- prometheus.MustNewConstMetric(c.usedInodes, prometheus.GaugeValue, float64(v.Inodes), v.ID)
		if v.MaxBytes > 0 {
			ch <- prometheus.MustNewConstMetric(c.capacityBytes, prometheus.GaugeValue, float64(v.MaxBytes), v.ID)
		}
		if v.MaxInodes > 0 {
			ch <- prometheus.MustNewConstMetric(c.inodes, prometheus.GaugeValue, float64(v.MaxInodes), v.ID)
		}
	}
}

// CountConns wraps l so that its open and accepted connections are
// reported (the RPC server has no statistics of its own yet).
func CountConns(l net.Listener, reg prometheus.Registerer) net.Listener {
	cl := &connListener{
		Listener: l,
		open:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "hangar_nfs_connections", Help: "Open NFS client connections."}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{Name: "hangar_nfs_connections_accepted_total", Help: "NFS client connections accepted."}),
	}
	reg.MustRegister(cl.open, cl.accepted)
	return cl
}

type connListener struct {
	net.Listener
	open     prometheus.Gauge
	accepted prometheus.Counter
}

func (l *connListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.accepted.Inc()
	l.open.Inc()
	return &countedConn{Conn: c, open: l.open}, nil
}

type countedConn struct {
	net.Conn
	once sync.Once
	open prometheus.Gauge
}

func (c *countedConn) Close() error {
	c.once.Do(c.open.Dec)
	return c.Conn.Close()
}

// GRPCInterceptor counts and times every unary call of a CSI service
// (component is "controller", "node" or "server").
func GRPCInterceptor(component string, reg prometheus.Registerer) grpc.UnaryServerInterceptor {
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hangar_csi_calls_total", Help: "CSI calls served, per method and gRPC status code.",
		ConstLabels: prometheus.Labels{"component": component},
	}, []string{"method", "code"})
	lat := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "hangar_csi_call_duration_seconds", Help: "Time to serve a CSI call, per method.",
		ConstLabels: prometheus.Labels{"component": component},
		Buckets:     []float64{1e-3, 5e-3, 25e-3, 100e-3, 500e-3, 1, 5, 30, 120},
	}, []string{"method"})
	reg.MustRegister(calls, lat)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		lat.WithLabelValues(info.FullMethod).Observe(time.Since(start).Seconds())
		calls.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
		return resp, err
	}
}

// Serve serves /metrics from reg on addr until ctx ends.
func Serve(ctx context.Context, addr string, reg *prometheus.Registry, log logr.Logger) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics listener: %w", err)
	}
	return ServeListener(ctx, l, reg, log)
}

// ServeListener is Serve on an open listener.
func ServeListener(ctx context.Context, l net.Listener, reg *prometheus.Registry, log logr.Logger) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Info("serving metrics", "addr", l.Addr().String())
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}
