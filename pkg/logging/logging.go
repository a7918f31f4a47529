// Package logging builds Hangar's logr loggers and the gRPC interceptor that
// gives every CSI call a request ID and a log line.
package logging

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// New returns a logger writing one line per entry to w (stderr if nil):
// format "json" gives JSON objects, anything else key=value text. Entries
// with V(level) above verbosity are dropped.
func New(w io.Writer, format string, verbosity int) logr.Logger {
	if w == nil {
		w = os.Stderr
	}
	fn := func(prefix, args string) {
		if prefix != "" {
			fmt.Fprintf(w, "%s %s: %s\n", time.Now().UTC().Format(time.RFC3339Nano), prefix, args)
			return
		}
		fmt.Fprintf(w, "%s %s\n", time.Now().UTC().Format(time.RFC3339Nano), args)
	}
	opts := funcr.Options{Verbosity: verbosity}
	if format == "json" {
		opts.LogTimestamp = true
		return funcr.NewJSON(func(obj string) { fmt.Fprintln(w, obj) }, opts)
	}
	return funcr.New(fn, opts)
}

type volumeIDGetter interface{ GetVolumeId() string }
type nameGetter interface{ GetName() string }

// UnaryInterceptor logs every call with a fresh request ID, its method,
// volume ID (or name, for creates), duration and status code, and passes a
// logger carrying the request ID to the handler in its context.
func UnaryInterceptor(log logr.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		l := log.WithValues("requestID", requestID(), "method", info.FullMethod)
		if g, ok := req.(volumeIDGetter); ok && g.GetVolumeId() != "" {
			l = l.WithValues("volumeID", g.GetVolumeId())
		} else if g, ok := req.(nameGetter); ok && g.GetName() != "" {
			l = l.WithValues("name", g.GetName())
		}
		start := time.Now()
		resp, err := handler(logr.NewContext(ctx, l), req)
		code := status.Code(err)
		kv := []any{"duration", time.Since(start).String(), "code", code.String()}
		if err != nil && code == codes.NotFound && strings.HasSuffix(info.FullMethod, "ByName") {
			// Lookups by name miss on every server but one: not a failure.
			l.V(1).Info("not found", kv...)
		} else if err != nil {
			l.Info("call failed", append(kv, "error", status.Convert(err).Message())...)
		} else if chatty(info.FullMethod) {
			l.V(1).Info("call done", kv...)
		} else {
			l.Info("call done", kv...)
		}
		return resp, err
	}
}

// FromContext returns the context's logger, or a discarding one.
func FromContext(ctx context.Context) logr.Logger {
	if l, err := logr.FromContext(ctx); err == nil {
		return l
	}
	return logr.Discard()
}

// chatty reports methods that COs call periodically; their successes are
// logged only at V(1).
func chatty(method string) bool {
	for _, suffix := range []string{"/Probe", "/GetPluginInfo", "Capabilities", "/NodeGetVolumeStats", "/NodeGetInfo"} {
		if strings.HasSuffix(method, suffix) {
			return true
		}
	}
	return false
}

func requestID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}
