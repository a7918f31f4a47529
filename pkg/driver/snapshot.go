package driver

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"strings"
	"sync"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/hangar-csi/hangar/pkg/csicommon"
)

// Snapshot IDs have the volume ID form, <server>:<local-id>: a snapshot
// lives on the server holding its source volume, and calls are routed by
// the prefix like volume calls. Volumes restored or cloned are created on
// the server holding their source, so their data never crosses servers.

func (b *backend) globalizeSnapshot(s *csi.Snapshot) *csi.Snapshot {
	s.SnapshotId = csicommon.VolumeID(b.name, s.SnapshotId)
	s.SourceVolumeId = csicommon.VolumeID(b.name, s.SourceVolumeId)
	if s.GroupSnapshotId != "" {
		s.GroupSnapshotId = csicommon.VolumeID(b.name, s.GroupSnapshotId)
	}
	return s
}

func (b *backend) globalizeGroup(g *csi.VolumeGroupSnapshot) *csi.VolumeGroupSnapshot {
	g.GroupSnapshotId = csicommon.VolumeID(b.name, g.GroupSnapshotId)
	for _, s := range g.Snapshots {
		b.globalizeSnapshot(s)
	}
	return g
}

// globalizeSource rewrites a volume's content source to CSI IDs. A source
// on another server (streamed) is recorded by its CSI ID already.
func (b *backend) globalizeSource(v *csi.Volume) {
	global := func(id *string) {
		if !strings.Contains(*id, ":") {
			*id = csicommon.VolumeID(b.name, *id)
		}
	}
	switch {
	case v.GetContentSource().GetSnapshot() != nil:
		global(&v.ContentSource.GetSnapshot().SnapshotId)
	case v.GetContentSource().GetVolume() != nil:
		global(&v.ContentSource.GetVolume().VolumeId)
	}
}

// streamVolume creates the volume req asks for on dst from a source on
// src: src exports the tree, dst imports it, through this controller.
// req names the source by CSI ID (dst records that), lreq by local ID.
func (c *Controller) streamVolume(ctx context.Context, src, dst *backend, req, lreq *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The new volume must hold the source's contents.
	var source string
	var need int64
	if s := lreq.GetVolumeContentSource().GetSnapshot(); s != nil {
		source = "snapshot/" + s.GetSnapshotId()
		r, err := src.ctrl.GetSnapshot(ctx, &csi.GetSnapshotRequest{SnapshotId: s.GetSnapshotId()})
		if err != nil {
			return nil, err
		}
		need = r.GetSnapshot().GetSizeBytes()
	} else {
		id := lreq.GetVolumeContentSource().GetVolume().GetVolumeId()
		source = "volume/" + id
		r, err := src.ctrl.ControllerGetVolume(ctx, &csi.ControllerGetVolumeRequest{VolumeId: id})
		if err != nil {
			return nil, err
		}
		need = r.GetVolume().GetCapacityBytes()
	}
	greq := proto.Clone(req).(*csi.CreateVolumeRequest)
	capacity, err := csicommon.Capacity(greq.GetCapacityRange())
	if err != nil {
		return nil, err
	}
	if need > capacity {
		if lim := greq.GetCapacityRange().GetLimitBytes(); lim > 0 && lim < need {
			return nil, status.Errorf(codes.OutOfRange, "the source's contents take %d bytes, more than the capacity limit %d", need, lim)
		}
		if greq.CapacityRange == nil {
			greq.CapacityRange = &csi.CapacityRange{}
		}
		greq.CapacityRange.RequiredBytes = need
	}
	recv, err := csicommon.ExportStream(ctx, src.conn, source)
	if err != nil {
		return nil, err
	}
	send, finish, err := csicommon.ImportStream(ctx, dst.conn, greq)
	if err != nil {
		return nil, err
	}
	for {
		f, err := recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			cancel() // the import must not complete a partial tree
			finish()
			return nil, src.err("exporting "+source, err)
		}
		if err := send(f); err != nil {
			break // the import failed: finish says why
		}
	}
	return finish()
}

func (c *Controller) lockName(name string) func() {
	h := fnv.New32a()
	h.Write([]byte(name))
	mu := &c.nameLocks[h.Sum32()%uint32(len(c.nameLocks))]
	mu.Lock()
	return mu.Unlock
}

// findEverywhere asks every server for an object by name; it returns the
// server that has it (nil if none), or the first error of a server that
// could not answer.
func (c *Controller) findEverywhere(ctx context.Context, what string, lookup func(b *backend) error) (*backend, error) {
	found := make([]bool, len(c.servers))
	errs := make([]error, len(c.servers))
	var wg sync.WaitGroup
	for i, b := range c.servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := lookup(b)
			switch status.Code(err) {
			case codes.OK:
				found[i] = true
			case codes.NotFound:
			default:
				errs[i] = b.err("looking up "+what, err)
			}
		}()
	}
	wg.Wait()
	for i, b := range c.servers {
		if found[i] {
			return b, nil
		}
	}
	for _, err := range errs {
		if err != nil {
			return nil, status.Errorf(status.Code(err), "cannot check that %s is unique: %s", what, status.Convert(err).Message())
		}
	}
	return nil, nil
}

func (c *Controller) CreateSnapshot(ctx context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "snapshot name is required")
	}
	if req.GetSourceVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "source_volume_id is required")
	}
	if err := csicommon.CheckTopologyRequirement("accessibility_requirements", req.GetAccessibilityRequirements()); err != nil {
		return nil, err
	}
	b, local, reason := c.route(req.GetSourceVolumeId())
	if b == nil {
		return nil, status.Errorf(codes.NotFound, "source volume %q not found: %s", req.GetSourceVolumeId(), reason)
	}
	defer c.lockName("snapshot\x00" + req.GetName())()
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	owner, err := c.findEverywhere(ctx, fmt.Sprintf("snapshot name %q", req.GetName()), func(s *backend) error {
		_, err := csicommon.GetSnapshotByName(ctx, s.conn, req.GetName())
		return err
	})
	if err != nil {
		return nil, err
	}
	if owner != nil && owner != b {
		return nil, status.Errorf(codes.AlreadyExists, "snapshot %q already exists on storage server %s, of another volume", req.GetName(), owner.name)
	}
	// On the source's server, the server decides whether a retry matches.
	resp, err := b.ctrl.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{
		Name: req.GetName(), SourceVolumeId: local, Parameters: req.GetParameters(), Secrets: req.GetSecrets(),
		AccessibilityRequirements: req.GetAccessibilityRequirements(),
	})
	if err != nil {
		return nil, b.err("CreateSnapshot", err)
	}
	b.globalizeSnapshot(resp.Snapshot)
	return resp, nil
}

func (c *Controller) DeleteSnapshot(ctx context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	if req.GetSnapshotId() == "" {
		return nil, status.Error(codes.InvalidArgument, "snapshot_id is required")
	}
	b, local, err := c.routeDelete(req.GetSnapshotId())
	if err != nil {
		return nil, err
	}
	if b == nil {
		return &csi.DeleteSnapshotResponse{}, nil // not a Hangar ID: nothing to delete
	}
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	if _, err := b.ctrl.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: local, Secrets: req.GetSecrets()}); err != nil {
		return nil, b.err("DeleteSnapshot", err)
	}
	return &csi.DeleteSnapshotResponse{}, nil
}

func (c *Controller) GetSnapshot(ctx context.Context, req *csi.GetSnapshotRequest) (*csi.GetSnapshotResponse, error) {
	if req.GetSnapshotId() == "" {
		return nil, status.Error(codes.InvalidArgument, "snapshot_id is required")
	}
	b, local, reason := c.route(req.GetSnapshotId())
	if b == nil {
		return nil, status.Errorf(codes.NotFound, "snapshot %q not found: %s", req.GetSnapshotId(), reason)
	}
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	resp, err := b.ctrl.GetSnapshot(ctx, &csi.GetSnapshotRequest{SnapshotId: local, Secrets: req.GetSecrets()})
	if err != nil {
		return nil, b.err("GetSnapshot", err)
	}
	b.globalizeSnapshot(resp.Snapshot)
	return resp, nil
}

// ListSnapshots pages through snapshots in (server, local ID) order like
// ListVolumes; a snapshot or source volume filter lists only its server.
func (c *Controller) ListSnapshots(ctx context.Context, req *csi.ListSnapshotsRequest) (*csi.ListSnapshotsResponse, error) {
	limit := int(req.GetMaxEntries())
	if limit < 0 {
		return nil, status.Error(codes.InvalidArgument, "max_entries must not be negative")
	}
	servers := c.servers
	var snapID, srcID string
	for _, f := range []struct {
		id    string
		local *string
	}{{req.GetSnapshotId(), &snapID}, {req.GetSourceVolumeId(), &srcID}} {
		if f.id == "" {
			continue
		}
		b, local, _ := c.route(f.id)
		if b == nil {
			return &csi.ListSnapshotsResponse{}, nil // names nothing that exists
		}
		if len(servers) == 1 && servers[0] != b {
			return &csi.ListSnapshotsResponse{}, nil // the filters name two servers
		}
		servers, *f.local = []*backend{b}, local
	}
	var afterServer, afterID string
	if tok := req.GetStartingToken(); tok != "" {
		var err error
		if afterServer, afterID, err = csicommon.ParseVolumeID(tok); err != nil {
			return nil, status.Errorf(codes.Aborted, "starting_token %q was not issued by this controller (%v); restart listing without a token", tok, err)
		}
	}
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	pageBytes := c.ListPageBytes
	if pageBytes <= 0 {
		pageBytes = csicommon.DefaultListPageBytes
	}
	resp := &csi.ListSnapshotsResponse{}
	size := 0
	for _, b := range servers {
		if b.name < afterServer {
			continue
		}
		sreq := &csi.ListSnapshotsRequest{SnapshotId: snapID, SourceVolumeId: srcID, Secrets: req.GetSecrets()}
		if b.name == afterServer {
			sreq.StartingToken = afterID
		}
		if limit > 0 {
			sreq.MaxEntries = int32(max(limit-len(resp.Entries), 1))
		}
		sresp, err := b.ctrl.ListSnapshots(ctx, sreq)
		if err != nil {
			return nil, b.err("ListSnapshots", err)
		}
		if limit > 0 && len(resp.Entries) == limit {
			if len(sresp.Entries) > 0 {
				resp.NextToken = resp.Entries[limit-1].Snapshot.SnapshotId
				return resp, nil
			}
			continue
		}
		for _, e := range sresp.Entries {
			b.globalizeSnapshot(e.Snapshot)
			resp.Entries = append(resp.Entries, e)
			size += proto.Size(e)
		}
		if sresp.NextToken != "" || (size >= pageBytes && len(resp.Entries) > 0) {
			resp.NextToken = resp.Entries[len(resp.Entries)-1].Snapshot.SnapshotId
			return resp, nil
		}
	}
	return resp, nil
}

// sourceServer routes a CreateVolume content source: the server holding
// it, and the request rewritten to local IDs.
func (c *Controller) sourceServer(req *csi.CreateVolumeRequest) (*backend, *csi.CreateVolumeRequest, error) {
	cs := req.GetVolumeContentSource()
	id, what := cs.GetVolume().GetVolumeId(), "volume"
	if cs.GetSnapshot() != nil {
		id, what = cs.GetSnapshot().GetSnapshotId(), "snapshot"
	}
	b, local, reason := c.route(id)
	if b == nil {
		return nil, nil, status.Errorf(codes.NotFound, "source %s %q not found: %s", what, id, reason)
	}
	out := proto.Clone(req).(*csi.CreateVolumeRequest)
	if s := out.VolumeContentSource.GetSnapshot(); s != nil {
		s.SnapshotId = local
	} else {
		out.VolumeContentSource.GetVolume().VolumeId = local
	}
	return b, out, nil
}

// GroupController is the CSI GroupController service: group snapshots of
// volumes on one storage server.
type GroupController struct {
	csi.UnimplementedGroupControllerServer
	c *Controller
}

// Group returns the controller's GroupController service.
func (c *Controller) Group() *GroupController { return &GroupController{c: c} }

func (g *GroupController) GroupControllerGetCapabilities(ctx context.Context, req *csi.GroupControllerGetCapabilitiesRequest) (*csi.GroupControllerGetCapabilitiesResponse, error) {
	return csicommon.GroupCapabilities(), nil
}

func (g *GroupController) CreateVolumeGroupSnapshot(ctx context.Context, req *csi.CreateVolumeGroupSnapshotRequest) (*csi.CreateVolumeGroupSnapshotResponse, error) {
	c := g.c
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "group snapshot name is required")
	}
	if len(req.GetSourceVolumeIds()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "source_volume_ids is required")
	}
	var b *backend
	var locals []string
	for _, id := range req.GetSourceVolumeIds() {
		vb, local, reason := c.route(id)
		if vb == nil {
			return nil, status.Errorf(codes.NotFound, "source volume %q not found: %s", id, reason)
		}
		if b != nil && vb != b {
			return nil, status.Errorf(codes.InvalidArgument, "source_volume_ids: volumes %q and %q are on different storage servers (%s, %s); a group snapshot's volumes must share one server", req.GetSourceVolumeIds()[0], id, b.name, vb.name)
		}
		b = vb
		locals = append(locals, local)
	}
	defer c.lockName("group\x00" + req.GetName())()
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	owner, err := c.findEverywhere(ctx, fmt.Sprintf("group snapshot name %q", req.GetName()), func(s *backend) error {
		_, err := csicommon.GetGroupSnapshotByName(ctx, s.conn, req.GetName())
		return err
	})
	if err != nil {
		return nil, err
	}
	if owner != nil && owner != b {
		return nil, status.Errorf(codes.AlreadyExists, "group snapshot %q already exists on storage server %s, of other volumes", req.GetName(), owner.name)
	}
	resp, err := csi.NewGroupControllerClient(b.conn).CreateVolumeGroupSnapshot(ctx, &csi.CreateVolumeGroupSnapshotRequest{
		Name: req.GetName(), SourceVolumeIds: locals, Parameters: req.GetParameters(), Secrets: req.GetSecrets(),
	})
	if err != nil {
		return nil, b.err("CreateVolumeGroupSnapshot", err)
	}
	b.globalizeGroup(resp.GroupSnapshot)
	return resp, nil
}

// localSnapshotIDs turns CSI snapshot IDs of server b into local ones.
func localSnapshotIDs(b *backend, ids []string) ([]string, error) {
	var out []string
	for _, id := range ids {
		server, local, err := csicommon.ParseVolumeID(id)
		if err != nil || server != b.name {
			return nil, status.Errorf(codes.InvalidArgument, "snapshot_ids: %q is not a snapshot of storage server %s", id, b.name)
		}
		out = append(out, local)
	}
	return out, nil
}

func (g *GroupController) GetVolumeGroupSnapshot(ctx context.Context, req *csi.GetVolumeGroupSnapshotRequest) (*csi.GetVolumeGroupSnapshotResponse, error) {
	if req.GetGroupSnapshotId() == "" {
		return nil, status.Error(codes.InvalidArgument, "group_snapshot_id is required")
	}
	b, local, reason := g.c.route(req.GetGroupSnapshotId())
	if b == nil {
		return nil, status.Errorf(codes.NotFound, "group snapshot %q not found: %s", req.GetGroupSnapshotId(), reason)
	}
	ids, err := localSnapshotIDs(b, req.GetSnapshotIds())
	if err != nil {
		return nil, err
	}
	ctx, cancel := g.c.callCtx(ctx)
	defer cancel()
	resp, err := csi.NewGroupControllerClient(b.conn).GetVolumeGroupSnapshot(ctx, &csi.GetVolumeGroupSnapshotRequest{GroupSnapshotId: local, SnapshotIds: ids, Secrets: req.GetSecrets()})
	if err != nil {
		return nil, b.err("GetVolumeGroupSnapshot", err)
	}
	b.globalizeGroup(resp.GroupSnapshot)
	return resp, nil
}

func (g *GroupController) DeleteVolumeGroupSnapshot(ctx context.Context, req *csi.DeleteVolumeGroupSnapshotRequest) (*csi.DeleteVolumeGroupSnapshotResponse, error) {
	if req.GetGroupSnapshotId() == "" {
		return nil, status.Error(codes.InvalidArgument, "group_snapshot_id is required")
	}
	b, local, err := g.c.routeDelete(req.GetGroupSnapshotId())
	if err != nil {
		return nil, err
	}
	if b == nil {
		return &csi.DeleteVolumeGroupSnapshotResponse{}, nil // not a Hangar ID: nothing to delete
	}
	ids, err := localSnapshotIDs(b, req.GetSnapshotIds())
	if err != nil {
		return nil, err
	}
	ctx, cancel := g.c.callCtx(ctx)
	defer cancel()
	if _, err := csi.NewGroupControllerClient(b.conn).DeleteVolumeGroupSnapshot(ctx, &csi.DeleteVolumeGroupSnapshotRequest{GroupSnapshotId: local, SnapshotIds: ids, Secrets: req.GetSecrets()}); err != nil {
		return nil, b.err("DeleteVolumeGroupSnapshot", err)
	}
	return &csi.DeleteVolumeGroupSnapshotResponse{}, nil
}
