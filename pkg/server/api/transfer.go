package api

import (
	"context"
	"os"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hangar-csi/hangar/pkg/csicommon"
	"github.com/hangar-csi/hangar/pkg/logging"
	"github.com/hangar-csi/hangar/pkg/volume/treecopy"
)

// transfer is the storage server's side of streaming volumes between
// servers (csicommon.Transfer).
type transfer struct{ a *StorageAPI }

var _ csicommon.Transfer = transfer{}

// Export streams a snapshot's tree, or a volume's as it is at one point in
// time (copied to staging under the hold first, so the hold does not last
// the whole transfer).
func (t transfer) Export(ctx context.Context, source string, send func([]byte) error) error {
	a := t.a
	kind, id, _ := strings.Cut(source, "/")
	var dir string
	switch kind {
	case "snapshot":
		sn, err := a.Store.GetSnapshot(id)
		if err != nil {
			return status.Errorf(codes.NotFound, "source snapshot %s does not exist on server %s", id, a.Name)
		}
		if !sn.Ready {
			return status.Errorf(codes.Unavailable, "source snapshot %s is still being copied; retry when it is ready", id)
		}
		a.markBusy("s"+id, 1)
		defer a.markBusy("s"+id, -1)
		dir = a.Store.SnapshotDir(id)
	case "volume":
		if _, err := a.get(id); err != nil {
			return err
		}
		a.markBusy("v"+id, 1)
		defer a.markBusy("v"+id, -1)
		dir = a.Store.StagingDir()
		if _, _, _, err := a.frozenCopy([]string{id}, []string{dir}, nil); err != nil {
			return status.Errorf(codes.Internal, "server %s: copying volume %s: %v", a.Name, id, err)
		}
		defer os.RemoveAll(dir)
	default:
		return status.Errorf(codes.InvalidArgument, "export source %q is neither snapshot/<id> nor volume/<id>", source)
	}
	st, err := treecopy.Send(dir, send)
	if err != nil {
		return status.Errorf(codes.Internal, "server %s: sending %s: %v", a.Name, source, err)
	}
	logging.FromContext(ctx).Info("tree exported", "source", source, "files", st.Files, "bytes", st.Bytes)
	return nil
}

// Import creates the volume req asks for from a streamed tree. req's
// content source names the source by its CSI ID (on another server) and
// is recorded as such.
func (t transfer) Import(ctx context.Context, req *csi.CreateVolumeRequest, recv func() ([]byte, error)) (*csi.CreateVolumeResponse, error) {
	a := t.a
	capacity, err := csicommon.ValidateCreate(req)
	if err != nil {
		return nil, err
	}
	source := requestSource(req.GetVolumeContentSource())
	if source == nil {
		return nil, status.Error(codes.InvalidArgument, "import needs a volume_content_source")
	}
	if _, err := a.Store.GetByName(req.GetName()); err == nil {
		// A retry: the stream is not needed, the store checks the match.
		return a.create(ctx, req, capacity, source, "")
	}
	if !a.startCreating(req.GetName()) {
		return nil, status.Errorf(codes.Aborted, "volume %q is being created from its content source; retry later", req.GetName())
	}
	defer a.doneCreating(req.GetName())
	if avail, err := a.available(a.Store.Promised()); err == nil && capacity > avail {
		return nil, status.Errorf(codes.ResourceExhausted, "server %s has %d bytes available, volume needs %d", a.Name, avail, capacity)
	}
	stage := a.Store.StagingDir()
	defer os.RemoveAll(stage)
	// The tree may hold at most the new volume's capacity of data.
	st, err := treecopy.Receive(stage, capacity, recv)
	if err == nil {
		err = syncTree(stage)
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "server %s: receiving the tree of %v: %v", a.Name, source, err)
	}
	logging.FromContext(ctx).Info("tree imported", "name", req.GetName(), "files", st.Files, "bytes", st.Bytes)
	return a.create(ctx, req, capacity, source, stage)
}
