package csicommon

import (
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func mountCap(mode csi.VolumeCapability_AccessMode_Mode) *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: mode},
	}
}

func TestVolumeIDRoundTrip(t *testing.T) {
	vid := VolumeID("srv-1.example", "0123456789abcdef")
	s, id, err := ParseVolumeID(vid)
	if err != nil || s != "srv-1.example" || id != "0123456789abcdef" {
		t.Fatalf("ParseVolumeID(%q) = %q, %q, %v", vid, s, id, err)
	}
	for _, bad := range []string{
		"", "0123456789abcdef", ":0123456789abcdef", "s1:", "s1:0123456789ABCDEF", "s1:0123",
		"S1:0123456789abcdef", "-s:0123456789abcdef", "s/x:0123456789abcdef", "s1:../0123456789abcd",
	} {
		if _, _, err := ParseVolumeID(bad); err == nil {
			t.Errorf("ParseVolumeID(%q) accepted", bad)
		}
	}
}

func TestValidateParameters(t *testing.T) {
	ok := map[string]string{"csi.storage.k8s.io/pvc/name": "p", "csi.storage.k8s.io/pvc/namespace": "n", "csi.storage.k8s.io/pv/name": "v"}
	if err := ValidateParameters(ok); err != nil {
		t.Fatal(err)
	}
	err := ValidateParameters(map[string]string{"csi.storage.k8s.io/pvc/name": "p", "zeta": "1", "alpha": "2"})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), `"alpha", "zeta"`) {
		t.Fatalf("unknown keys: %v", err)
	}
}

func TestValidateCapabilities(t *testing.T) {
	for _, m := range supportedModes {
		if err := ValidateCapabilities([]*csi.VolumeCapability{mountCap(m)}); err != nil {
			t.Errorf("mode %s: %v", m, err)
		}
	}
	block := &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}
	ext4 := mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
	ext4.GetMount().FsType = "ext4"
	for name, caps := range map[string][]*csi.VolumeCapability{
		"none":         nil,
		"block":        {block},
		"unknown mode": {mountCap(csi.VolumeCapability_AccessMode_UNKNOWN)},
		"no type":      {{AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER}}},
		"ext4":         {ext4},
		"mixed":        {mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER), block},
	} {
		if err := ValidateCapabilities(caps); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
}

func TestCapacity(t *testing.T) {
	for _, c := range []struct {
		req, lim, want int64
		ok             bool
	}{
		{0, 0, DefaultCapacity, true},
		{100 << 20, 0, 100 << 20, true},
		{100 << 20, 200 << 20, 100 << 20, true},
		{0, 200 << 20, 200 << 20, true},
		{0, 4 << 30, DefaultCapacity, true},
		{300 << 20, 200 << 20, 0, false},
		{-1, 0, 0, false},
		// Below the minimum: rounded up, unless the limit forbids it.
		{1, 0, MinCapacity, true},
		{1, MinCapacity, MinCapacity, true},
		{1, 1000, 0, false},
		{0, 1000, 0, false},
	} {
		got, err := Capacity(&csi.CapacityRange{RequiredBytes: c.req, LimitBytes: c.lim})
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("Capacity(%d, %d) = %d, %v", c.req, c.lim, got, err)
		}
	}
}

func TestValidateCreate(t *testing.T) {
	good := &csi.CreateVolumeRequest{Name: "n", VolumeCapabilities: []*csi.VolumeCapability{mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER)}}
	if _, err := ValidateCreate(good); err != nil {
		t.Fatal(err)
	}
	noName := &csi.CreateVolumeRequest{VolumeCapabilities: good.VolumeCapabilities}
	badParam := &csi.CreateVolumeRequest{Name: "n", VolumeCapabilities: good.VolumeCapabilities, Parameters: map[string]string{"x": "y"}}
	clone := &csi.CreateVolumeRequest{Name: "n", VolumeCapabilities: good.VolumeCapabilities,
		VolumeContentSource: &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: "s:0123456789abcdef"}}}}
	if _, err := ValidateCreate(clone); err != nil {
		t.Errorf("clone: %v", err)
	}
	emptySource := &csi.CreateVolumeRequest{Name: "n", VolumeCapabilities: good.VolumeCapabilities, VolumeContentSource: &csi.VolumeContentSource{}}
	for _, r := range []*csi.CreateVolumeRequest{noName, badParam, emptySource} {
		if _, err := ValidateCreate(r); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%v: %v", r, err)
		}
	}
}

func TestKubernetesNames(t *testing.T) {
	for s, want := range map[string]bool{
		"default": true, "a": true, "kube-system": true, strings.Repeat("a", 63): true,
		"": false, "-a": false, "a-": false, "A": false, "a.b": false, "..": false, "a/b": false, strings.Repeat("a", 64): false,
	} {
		if ValidDNSLabel(s) != want {
			t.Errorf("ValidDNSLabel(%q) = %v", s, !want)
		}
	}
	for s, want := range map[string]bool{
		"data-0": true, "www.example.com": true, strings.Repeat("a", 100): true, strings.Repeat("a", 253): true,
		"": false, ".": false, "..": false, "a..b": false, ".a": false, "a/b": false, "x/../y": false, strings.Repeat("a", 254): false,
	} {
		if ValidDNSSubdomain(s) != want {
			t.Errorf("ValidDNSSubdomain(%q) = %v", s, !want)
		}
	}
}

func TestCheckSizeLimits(t *testing.T) {
	capWith := func(flags ...string) []*csi.VolumeCapability {
		c := mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
		c.GetMount().MountFlags = flags
		return []*csi.VolumeCapability{c}
	}
	for _, c := range []struct {
		m     proto.Message
		field string // "" = within limits
	}{
		{&csi.CreateVolumeRequest{Name: strings.Repeat("n", 128), Parameters: map[string]string{"k": strings.Repeat("v", 4000)}, VolumeCapabilities: capWith("ro", "noatime")}, ""},
		{&csi.CreateVolumeRequest{Name: strings.Repeat("n", 129)}, "name"},
		{&csi.CreateVolumeRequest{Name: "n", Parameters: map[string]string{"k": strings.Repeat("v", 4096)}}, "parameters"},
		{&csi.CreateVolumeRequest{Name: "n", VolumeCapabilities: capWith(strings.Repeat("o", 2100), strings.Repeat("o", 2000))}, "volume_capabilities[0].mount.mount_flags"},
		{&csi.NodePublishVolumeRequest{VolumeId: "v", TargetPath: "/" + strings.Repeat("p", 1000), VolumeContext: map[string]string{}}, ""},
		{&csi.NodePublishVolumeRequest{VolumeId: strings.Repeat("v", 200)}, "volume_id"},
		{&csi.ControllerPublishVolumeRequest{VolumeId: "v", NodeId: strings.Repeat("n", 256)}, ""},
		{&csi.ControllerPublishVolumeRequest{VolumeId: "v", NodeId: strings.Repeat("n", 257)}, "node_id"},
		{&csi.ListVolumesRequest{StartingToken: strings.Repeat("t", 129)}, "starting_token"},
	} {
		err := CheckSizeLimits(c.m)
		if c.field == "" && err != nil || c.field != "" && (status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), c.field+" is ")) {
			t.Errorf("%T: %v, want field %q", c.m, err, c.field)
		}
	}
}
