package metrics

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/hangar-csi/hangar/pkg/vfs"
	"github.com/hangar-csi/hangar/pkg/vfs/vfstest"
)

func oneVolume(id string) VolumeOf {
	return func(h vfs.Handle) (string, bool) { return id, len(h) > 0 }
}

func TestNFSCounts(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	mem := vfstest.NewMemFS()
	mem.AddExport("/")
	m := NewNFS(mem, oneVolume("v1"), reg)
	root, err := m.Mount(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	h, _, _, err := m.Create(ctx, vfs.Cred{}, root, "f", vfs.CreateGuarded, vfs.SetAttr{}, vfs.Verifier{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := m.Write(ctx, vfs.Cred{}, h, 0, make([]byte, 1000), vfs.FileSync); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := m.Lookup(ctx, vfs.Cred{}, root, "missing"); err == nil {
		t.Fatal("lookup of a missing name succeeded")
	}
	if _, err := m.GetAttr(ctx, vfs.Handle(nil)); err == nil {
		t.Fatal("getattr of an empty handle succeeded")
	}
	for _, c := range []struct {
		got  float64
		want float64
		what string
	}{
		{value(m.calls.WithLabelValues("v1", "MNT")), 1, "mounts"},
		{value(m.calls.WithLabelValues("v1", "CREATE")), 1, "creates"},
		{value(m.calls.WithLabelValues("v1", "LOOKUP")), 1, "lookups"},
		{value(m.errs.WithLabelValues("v1", "LOOKUP")), 1, "lookup errors"},
		{value(m.errs.WithLabelValues("v1", "CREATE")), 0, "create errors"},
		{value(m.wbytes.WithLabelValues("v1")), 1000, "bytes written"},
		{value(m.calls.WithLabelValues(UnknownVolume, "GETATTR")), 1, "calls on unknown handles"},
		{value(m.inflight), 0, "in flight"},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
		}
	}
	m.Forget("v1")
	ch := make(chan prometheus.Metric, 100)
	m.calls.Collect(ch)
	close(ch)
	if n := len(ch); n != int(nOps) { // the unknown volume's
		t.Errorf("%d series left after Forget, want %d", n, nOps)
	}
}

func value(c prometheus.Metric) float64 {
	var d dto.Metric
	if err := c.Write(&d); err != nil {
		panic(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// BenchmarkNFSGetAttr is the decorator's cost on the cheapest operation.
func BenchmarkNFSGetAttr(b *testing.B) {
	ctx := context.Background()
	for _, wrapped := range []bool{false, true} {
		name := "bare"
		if wrapped {
			name = "metrics"
		}
		b.Run(name, func(b *testing.B) {
			mem := vfstest.NewMemFS()
			mem.AddExport("/")
			var fs vfs.FS = mem
			if wrapped {
				fs = NewNFS(fs, oneVolume("v1"), prometheus.NewRegistry())
			}
			root, _ := fs.Mount(ctx, "/")
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := fs.GetAttr(ctx, root); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
