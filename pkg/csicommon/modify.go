package csicommon

import (
	"maps"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// MutableParameters are the parameters a live volume's policy can change
// to (ControllerModifyVolume, a Kubernetes VolumeAttributesClass): the
// export's identity mapping and inode limit, which the storage server
// applies to the live export without a remount. Every other parameter is
// fixed at creation (onDelete and the PVC names travel with the data's
// fate, not its policy).
var MutableParameters = []string{ParamRootSquash, ParamAnonUID, ParamAnonGID, ParamMaxInodes}

// ValidateMutableParameters checks mutable parameters, given to
// CreateVolume or ControllerModifyVolume: every key must be mutable (an
// InvalidArgument error names the others) and every value valid.
func ValidateMutableParameters(p map[string]string) error {
	var unknown, immutable []string
	for k := range p {
		switch {
		case slices.Contains(MutableParameters, k):
		case slices.Contains(acceptedParameters, k):
			immutable = append(immutable, k)
		default:
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	slices.Sort(immutable)
	mutable := strings.Join(quoteAll(MutableParameters), ", ")
	switch {
	case len(unknown) > 0:
		return status.Errorf(codes.InvalidArgument, "unknown mutable parameter(s) %s; %s can change only %s (check the VolumeAttributesClass parameters)",
			strings.Join(quoteAll(unknown), ", "), DriverName, mutable)
	case len(immutable) > 0:
		return status.Errorf(codes.InvalidArgument, "parameter(s) %s cannot change after a volume is created; mutable are only %s",
			strings.Join(quoteAll(immutable), ", "), mutable)
	}
	_, err := ParseVolumeParams(p)
	return err
}

// EffectiveParameters is a volume's policy: its creation parameters with
// the mutable ones laid over them (CSI: mutable_parameters take precedence).
func EffectiveParameters(params, mutable map[string]string) map[string]string {
	if len(mutable) == 0 {
		return params
	}
	out := maps.Clone(params)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, mutable)
	return out
}
