package main

import (
	"context"
	"flag"
	"net"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/hangar-csi/hangar/pkg/endpoint"
	"github.com/hangar-csi/hangar/pkg/kubeletplugin"
	"github.com/hangar-csi/hangar/pkg/metrics"
)

// metricsFlags is the --metrics-listen flag every role has.
type metricsFlags struct{ listen *string }

func addMetricsFlags(fs *flag.FlagSet) *metricsFlags {
	return &metricsFlags{listen: fs.String("metrics-listen", "", "serve Prometheus metrics at http://ADDR/metrics (host:port; empty: no metrics)")}
}

// start listens on --metrics-listen and serves until ctx ends; the registry
// is nil when the flag is empty.
func (m *metricsFlags) start(ctx context.Context, log logr.Logger) (*prometheus.Registry, error) {
	if *m.listen == "" {
		return nil, nil
	}
	l, err := net.Listen("tcp", *m.listen)
	if err != nil {
		return nil, usagef("--metrics-listen: %v", err)
	}
	reg := metrics.NewRegistry()
	go func() {
		if err := metrics.ServeListener(ctx, l, reg, log.WithName("metrics")); err != nil {
			log.Error(err, "metrics endpoint stopped")
		}
	}()
	return reg, nil
}

// registerer is reg as a Registerer, nil (not a typed nil) without metrics.
func registerer(reg *prometheus.Registry) prometheus.Registerer {
	if reg == nil {
		return nil
	}
	return reg
}

// grpcMetrics are the gRPC server options that count a CSI service's
// calls, if metrics are on.
func grpcMetrics(reg *prometheus.Registry, component string) []grpc.ServerOption {
	if reg == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(metrics.GRPCInterceptor(component, reg))}
}

// healthFlags is the --health-listen flag of the CSI roles.
type healthFlags struct{ listen *string }

// healthProbeTimeout bounds each CSI Probe behind /healthz; the kubelet's
// probe has its own timeout on top.
const healthProbeTimeout = 4 * time.Second

func addHealthFlags(fs *flag.FlagSet) *healthFlags {
	return &healthFlags{listen: fs.String("health-listen", "", "serve http://ADDR/healthz, which calls CSI Probe on --csi-endpoint, for the kubelet's liveness probe (replaces the livenessprobe sidecar; empty: off)")}
}

// start serves /healthz until ctx ends, probing the CSI endpoint ep.
func (h *healthFlags) start(ctx context.Context, log logr.Logger, ep string) error {
	if *h.listen == "" {
		return nil
	}
	target, err := endpoint.DialTarget(ep)
	if err != nil {
		return usagef("--csi-endpoint: %v", err)
	}
	l, err := net.Listen("tcp", *h.listen)
	if err != nil {
		return usagef("--health-listen: %v", err)
	}
	hh, err := kubeletplugin.NewHealth(target, healthProbeTimeout, log.WithName("health"))
	if err != nil {
		l.Close()
		return err
	}
	go func() {
		defer hh.Close()
		if err := kubeletplugin.ServeHealth(ctx, l, hh); err != nil {
			log.Error(err, "health endpoint stopped")
		}
	}()
	return nil
}
