package driver

import (
	"errors"
	"fmt"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hangar-csi/hangar/pkg/csicommon"
)

// ServerRef names a storage server and its management API address.
type ServerRef struct {
	Name string
	Addr string // host:port of the gRPC management API
}

// ParseServers parses "name=host:port[,name=host:port...]".
func ParseServers(s string) ([]ServerRef, error) {
	var refs []ServerRef
	seen := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, addr, ok := strings.Cut(item, "=")
		if !ok || addr == "" {
			return nil, fmt.Errorf("server %q: want name=host:port", item)
		}
		if err := csicommon.ValidServerName(name); err != nil {
			return nil, err
		}
		if seen[name] {
			return nil, fmt.Errorf("server name %q given twice", name)
		}
		seen[name] = true
		refs = append(refs, ServerRef{Name: name, Addr: addr})
	}
	if len(refs) == 0 {
		return nil, errors.New("no storage servers given")
	}
	return refs, nil
}

type backend struct {
	name string
	addr string
	conn *grpc.ClientConn
	ctrl csi.ControllerClient
}

// err turns a storage server's error into one naming the server.
func (b *backend) err(op string, err error) error {
	st := status.Convert(err)
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded:
		return status.Errorf(codes.Unavailable, "storage server %s (%s) is unreachable during %s: %s", b.name, b.addr, op, st.Message())
	case codes.Canceled:
		return status.Errorf(codes.Canceled, "%s on storage server %s canceled", op, b.name)
	}
	return status.Errorf(st.Code(), "%s on storage server %s: %s", op, b.name, st.Message())
}

func (b *backend) globalize(v *csi.Volume) *csi.Volume {
	v.VolumeId = csicommon.VolumeID(b.name, v.VolumeId)
	if v.VolumeContext == nil {
		v.VolumeContext = map[string]string{}
	}
	v.VolumeContext[csicommon.ContextServer] = b.name
	return v
}
