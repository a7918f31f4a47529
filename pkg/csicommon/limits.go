package csicommon

import (
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// CSI size limits (spec, "Size Limits"): unless a field says otherwise, a
// string is at most 128 bytes, and a map (keys plus values) or a repeated
// string field at most 4 KiB.
const (
	MaxStringBytes = 128
	MaxMapBytes    = 4 << 10
)

// DefaultListPageBytes bounds one List* page to a quarter of gRPC's
// default 4 MiB message limit, whatever the number of volumes.
const DefaultListPageBytes = 1 << 20

// Fields whose own description overrides the general limit: paths "SHOULD
// support the maximum path length allowed by the operating system", node
// IDs are up to 256 bytes.
var fieldLimits = map[protoreflect.Name]int{
	"target_path":         4096,
	"staging_target_path": 4096,
	"volume_path":         4096,
	"volume_publish_path": 4096,
	"node_id":             256,
}

// CheckSizeLimits returns an InvalidArgument error naming the first field
// of m (a CSI request) over its size limit. The oversized value is not
// quoted back.
func CheckSizeLimits(m proto.Message) error {
	if path, n, limit := oversized(m.ProtoReflect(), ""); path != "" {
		return status.Errorf(codes.InvalidArgument, "%s is %d bytes; CSI allows at most %d", path, n, limit)
	}
	return nil
}

func oversized(m protoreflect.Message, prefix string) (path string, n, limit int) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := prefix + string(fd.Name())
		switch {
		case fd.IsMap():
			size := 0
			v.Map().Range(func(k protoreflect.MapKey, e protoreflect.Value) bool {
				size += len(k.String())
				if fd.MapValue().Kind() == protoreflect.StringKind {
					size += len(e.String())
				}
				return true
			})
			if size > MaxMapBytes {
				path, n, limit = name, size, MaxMapBytes
			}
		case fd.IsList():
			l := v.List()
			size := 0
			for i := 0; i < l.Len() && path == ""; i++ {
				switch fd.Kind() {
				case protoreflect.StringKind:
					size += len(l.Get(i).String())
				case protoreflect.MessageKind:
					path, n, limit = oversized(l.Get(i).Message(), fmt.Sprintf("%s[%d].", name, i))
				}
			}
			if path == "" && size > MaxMapBytes {
				path, n, limit = name, size, MaxMapBytes
			}
		case fd.Kind() == protoreflect.StringKind:
			max := MaxStringBytes
			if l, ok := fieldLimits[fd.Name()]; ok {
				max = l
			}
			if len(v.String()) > max {
				path, n, limit = name, len(v.String()), max
			}
		case fd.Kind() == protoreflect.MessageKind:
			path, n, limit = oversized(v.Message(), name+".")
		}
		return path == ""
	})
	return strings.TrimSuffix(path, "."), n, limit
}
