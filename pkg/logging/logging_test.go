package logging

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestInterceptor(t *testing.T) {
	var buf bytes.Buffer
	icpt := UnaryInterceptor(New(&buf, "text", 0))
	var inner logr.Logger
	_, err := icpt(context.Background(), &csi.DeleteVolumeRequest{VolumeId: "s1:0123456789abcdef"},
		&grpc.UnaryServerInfo{FullMethod: "/csi.v1.Controller/DeleteVolume"},
		func(ctx context.Context, req any) (any, error) {
			inner = FromContext(ctx)
			inner.Info("inside")
			return nil, status.Error(codes.Unavailable, "server down")
		})
	if status.Code(err) != codes.Unavailable {
		t.Fatal(err)
	}
	out := buf.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %q", out)
	}
	for _, want := range []string{`"volumeID"="s1:0123456789abcdef"`, `"method"="/csi.v1.Controller/DeleteVolume"`, `"code"="Unavailable"`, `"error"="server down"`, `"duration"=`} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("summary line lacks %s: %s", want, lines[1])
		}
	}
	id := func(l string) string {
		i := strings.Index(l, `"requestID"=`)
		if i < 0 {
			return ""
		}
		return strings.Fields(l[i:])[0]
	}
	if id(lines[0]) == "" || id(lines[0]) != id(lines[1]) {
		t.Errorf("request IDs differ or missing: %q vs %q", lines[0], lines[1])
	}
}

func TestJSON(t *testing.T) {
	var buf bytes.Buffer
	New(&buf, "json", 0).Info("hello", "k", 1)
	if !strings.HasPrefix(buf.String(), "{") || !strings.Contains(buf.String(), `"k":1`) {
		t.Fatalf("%q", buf.String())
	}
}
