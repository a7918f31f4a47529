package csicommon

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestUsageHealthThreshold(t *testing.T) {
	for _, c := range []struct {
		u    VolumeUsage
		want int
	}{
		{VolumeUsage{Bytes: 949, MaxBytes: 1000}, 0},
		{VolumeUsage{Bytes: 950, MaxBytes: 1000}, 1},
		{VolumeUsage{Bytes: 2000, MaxBytes: 1000}, 1},
		{VolumeUsage{Bytes: 1 << 40}, 0}, // unlimited
		{VolumeUsage{Inodes: 95, MaxInodes: 100}, 1},
	} {
		if got := len(UsageHealth(c.u)); got != c.want {
			t.Errorf("%+v: %d problems, want %d", c.u, got, c.want)
		}
	}
}

func TestParseVolumeParams(t *testing.T) {
	p, err := ParseVolumeParams(map[string]string{ParamMaxInodes: "1000", ParamRootSquash: "true", ParamAnonUID: "0", ParamAnonGID: "4000"})
	if err != nil || p != (VolumeParams{MaxInodes: 1000, RootSquash: true, AnonUID: 0, AnonGID: 4000}) {
		t.Fatalf("%+v %v", p, err)
	}
	if p, _ := ParseVolumeParams(nil); p != (VolumeParams{AnonUID: DefaultAnonID, AnonGID: DefaultAnonID}) || p.InodeLimit(1<<30) != 65536 || p.InodeLimit(1<<20) != minInodes {
		t.Fatalf("defaults: %+v", p)
	}
	for k, v := range map[string]string{ParamMaxInodes: "0", ParamRootSquash: "yes please", ParamAnonUID: "-1", ParamAnonGID: "4294967295"} {
		err := ValidateParameters(map[string]string{k: v})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%q: %v", k, v, err)
		}
	}
}
