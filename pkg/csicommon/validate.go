package csicommon

import (
	"fmt"
	"slices"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DefaultCapacity is the capacity of a volume created without a capacity
// range.
const DefaultCapacity = 1 << 30

// Parameters accepted in CreateVolume (StorageClass parameters): Hangar's
// own and the metadata keys external-provisioner adds with
// --extra-create-metadata. Its secret and fstype keys never reach the
// driver.
var acceptedParameters = []string{
	ParamOnDelete,
	ParamMaxInodes,
	ParamRootSquash,
	ParamAnonUID,
	ParamAnonGID,
	ParamNFSVersion,
	ParamPVName,
	ParamPVCName,
	ParamPVCNamespace,
}

// ValidateParameters refuses unknown StorageClass parameters, naming them.
func ValidateParameters(p map[string]string) error {
	var unknown []string
	for k := range p {
		if !slices.Contains(acceptedParameters, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		if m, ok := p[ParamOnDelete]; ok && !slices.Contains(OnDeleteModes, m) {
			return status.Errorf(codes.InvalidArgument, "parameter %q is %q; want one of %s", ParamOnDelete, m, strings.Join(OnDeleteModes, ", "))
		}
		if v, ok := p[ParamNFSVersion]; ok {
			if err := CheckNFSVersion("parameter", v); err != nil {
				return err
			}
		}
		if err := validKubernetesNames(p); err != nil {
			return err
		}
		_, err := ParseVolumeParams(p)
		return err
	}
	slices.Sort(unknown)
	return status.Errorf(codes.InvalidArgument, "unknown parameter(s) %s; %s accepts only %s (check the StorageClass parameters)",
		strings.Join(quoteAll(unknown), ", "), DriverName, strings.Join(quoteAll(acceptedParameters), ", "))
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = fmt.Sprintf("%q", v)
	}
	return out
}

var supportedModes = []csi.VolumeCapability_AccessMode_Mode{
	csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER,
	csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER,
	csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER,
	csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER,
	csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY,
	csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY,
}

// CheckCapability explains why c is unsupported, or returns "".
func CheckCapability(c *csi.VolumeCapability) string {
	if c == nil {
		return "volume capability is empty"
	}
	if c.GetBlock() != nil {
		return "block volumes are not supported: Hangar serves file systems over NFS (use volumeMode: Filesystem)"
	}
	m := c.GetMount()
	if m == nil {
		return "volume capability has no access type; only mount is supported"
	}
	if fs := m.GetFsType(); fs != "" && fs != "nfs" {
		return fmt.Sprintf("fs_type %q is not supported: Hangar volumes are NFS (leave fsType empty)", fs)
	}
	mode := c.GetAccessMode().GetMode()
	if !slices.Contains(supportedModes, mode) {
		return fmt.Sprintf("access mode %s is not supported", mode)
	}
	return ""
}

// ValidateCapabilities checks that caps is non-empty and every capability
// is supported.
func ValidateCapabilities(caps []*csi.VolumeCapability) error {
	if len(caps) == 0 {
		return status.Error(codes.InvalidArgument, "volume capabilities are required")
	}
	for _, c := range caps {
		if why := CheckCapability(c); why != "" {
			return status.Error(codes.InvalidArgument, why)
		}
	}
	return nil
}

// ReadOnlyMode reports access modes that must be mounted read-only.
func ReadOnlyMode(c *csi.VolumeCapability) bool {
	switch c.GetAccessMode().GetMode() {
	case csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY, csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY:
		return true
	}
	return false
}

// MinCapacity is the smallest volume Hangar makes: smaller requests are
// rounded up to it. A volume's root directory and first file already take
// blocks of the quota, so a few bytes would be a volume that holds nothing.
const MinCapacity = 1 << 20

// Capacity picks the capacity of a volume from a capacity range: the
// required bytes, or DefaultCapacity bounded by the limit, and at least
// MinCapacity. A limit below MinCapacity is OutOfRange.
func Capacity(r *csi.CapacityRange) (int64, error) {
	req, lim := r.GetRequiredBytes(), r.GetLimitBytes()
	var c int64
	switch {
	case req < 0 || lim < 0:
		return 0, status.Errorf(codes.InvalidArgument, "capacity range must not be negative (required %d, limit %d)", req, lim)
	case lim > 0 && req > lim:
		return 0, status.Errorf(codes.InvalidArgument, "required capacity %d exceeds limit %d", req, lim)
	case req > 0:
		c = req
	case lim > 0:
		c = min(lim, DefaultCapacity)
	default:
		c = DefaultCapacity
	}
	if lim > 0 && lim < MinCapacity {
		return 0, status.Errorf(codes.OutOfRange, "limit %d bytes is below the smallest volume Hangar makes, %d bytes (1 MiB)", lim, MinCapacity)
	}
	return max(c, MinCapacity), nil
}

// ValidateCreate checks a CreateVolume request and returns the capacity to
// create.
func ValidateCreate(req *csi.CreateVolumeRequest) (int64, error) {
	if req.GetName() == "" {
		return 0, status.Error(codes.InvalidArgument, "volume name is required")
	}
	if err := ValidateCapabilities(req.GetVolumeCapabilities()); err != nil {
		return 0, err
	}
	if err := ValidateParameters(req.GetParameters()); err != nil {
		return 0, err
	}
	if err := ValidateMutableParameters(req.GetMutableParameters()); err != nil {
		return 0, err
	}
	if cs := req.GetVolumeContentSource(); cs != nil && cs.GetSnapshot() == nil && cs.GetVolume() == nil {
		return 0, status.Error(codes.InvalidArgument, "volume_content_source names neither a snapshot nor a volume")
	}
	if err := CheckTopologyRequirement("accessibility_requirements", req.GetAccessibilityRequirements()); err != nil {
		return 0, err
	}
	return Capacity(req.GetCapacityRange())
}

// controllerCapabilities are the controller RPCs Hangar implements.
var controllerCapabilities = []csi.ControllerServiceCapability_RPC_Type{
	csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
	csi.ControllerServiceCapability_RPC_LIST_VOLUMES,
	csi.ControllerServiceCapability_RPC_GET_CAPACITY,
	csi.ControllerServiceCapability_RPC_EXPAND_VOLUME,
	csi.ControllerServiceCapability_RPC_GET_VOLUME,
	csi.ControllerServiceCapability_RPC_GET_VOLUME_HEALTH,
	csi.ControllerServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER,
	csi.ControllerServiceCapability_RPC_PUBLISH_UNPUBLISH_VOLUME,
	csi.ControllerServiceCapability_RPC_PUBLISH_READONLY,
	// Live volumes.
	csi.ControllerServiceCapability_RPC_MODIFY_VOLUME,
	csi.ControllerServiceCapability_RPC_LIST_VOLUMES_PUBLISHED_NODES,
	csi.ControllerServiceCapability_RPC_LIST_VOLUME_HEALTH,
	csi.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT,
	csi.ControllerServiceCapability_RPC_LIST_SNAPSHOTS,
	csi.ControllerServiceCapability_RPC_GET_SNAPSHOT,
	csi.ControllerServiceCapability_RPC_CLONE_VOLUME,
}

// ControllerCapabilities is the ControllerGetCapabilities response.
func ControllerCapabilities() *csi.ControllerGetCapabilitiesResponse {
	resp := &csi.ControllerGetCapabilitiesResponse{}
	for _, c := range controllerCapabilities {
		resp.Capabilities = append(resp.Capabilities, &csi.ControllerServiceCapability{
			Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{Type: c}},
		})
	}
	return resp
}

// ValidateVolumeCapabilities answers ValidateVolumeCapabilities for an
// existing volume.
func ValidateVolumeCapabilities(req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	if len(req.GetVolumeCapabilities()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "volume capabilities are required")
	}
	for _, c := range req.GetVolumeCapabilities() {
		if why := CheckCapability(c); why != "" {
			return &csi.ValidateVolumeCapabilitiesResponse{Message: why}, nil
		}
	}
	if err := ValidateParameters(req.GetParameters()); err != nil {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: status.Convert(err).Message()}, nil
	}
	if err := ValidateMutableParameters(req.GetMutableParameters()); err != nil {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: status.Convert(err).Message()}, nil
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext:      req.GetVolumeContext(),
		VolumeCapabilities: req.GetVolumeCapabilities(),
		Parameters:         req.GetParameters(),
		MutableParameters:  req.GetMutableParameters(),
	}}, nil
}

// ValidatePublish checks the fields of a ControllerPublishVolume request.
func ValidatePublish(req *csi.ControllerPublishVolumeRequest) error {
	switch {
	case req.GetVolumeId() == "":
		return status.Error(codes.InvalidArgument, "volume ID is required")
	case req.GetNodeId() == "":
		return status.Error(codes.InvalidArgument, "node ID is required")
	case req.GetVolumeCapability() == nil:
		return status.Error(codes.InvalidArgument, "volume capability is required")
	}
	if why := CheckCapability(req.GetVolumeCapability()); why != "" {
		return status.Error(codes.InvalidArgument, why)
	}
	return nil
}

// SingleNodeMode reports access modes that allow one node only.
func SingleNodeMode(c *csi.VolumeCapability) bool {
	switch c.GetAccessMode().GetMode() {
	case csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER,
		csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY,
		csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER,
		csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER:
		return true
	}
	return false
}
