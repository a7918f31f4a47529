package driver

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/hangar-csi/hangar/pkg/csicommon"
	"github.com/hangar-csi/hangar/pkg/endpoint"
	"github.com/hangar-csi/hangar/pkg/logging"
)

// Controller is the CSI Controller service. It is stateless: volumes live
// on storage servers, and every volume ID names its server (see package
// doc), so calls are routed by ID.
type Controller struct {
	csi.UnimplementedControllerServer
	servers []*backend // sorted by name: the global ListVolumes order
	byName  map[string]*backend
	log     logr.Logger
	// CallTimeout bounds each call to a storage server.
	CallTimeout time.Duration
	// ListPageBytes bounds one ListVolumes page across servers (0:
	// csicommon.DefaultListPageBytes).
	ListPageBytes int

	// Same-name CreateVolume calls are serialized so two concurrent
	// retries cannot land on two servers. Striped to keep memory bounded.
	nameLocks [64]sync.Mutex

	// MaxVolumesPerNode, if positive, is how many volumes may be published
	// to one node (the node plugin reports the same number to the CO's
	// scheduler); see checkNodeLimit.
	MaxVolumesPerNode int64
	nodeLocks         [64]sync.Mutex
}

// NewController connects (lazily) to the given storage servers.
func NewController(servers []ServerRef, log logr.Logger, opts ...grpc.DialOption) (*Controller, error) {
	c := &Controller{byName: map[string]*backend{}, log: log, CallTimeout: 30 * time.Second}
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	for _, s := range servers {
		if err := csicommon.ValidServerName(s.Name); err != nil {
			return nil, err
		}
		if c.byName[s.Name] != nil {
			return nil, fmt.Errorf("server name %q given twice", s.Name)
		}
		target, err := endpoint.DialTarget(s.Addr)
		if err != nil {
			return nil, fmt.Errorf("server %s: %w", s.Name, err)
		}
		conn, err := grpc.NewClient(target, opts...)
		if err != nil {
			return nil, fmt.Errorf("server %s: %w", s.Name, err)
		}
		b := &backend{name: s.Name, addr: s.Addr, conn: conn, ctrl: csi.NewControllerClient(conn)}
		c.servers = append(c.servers, b)
		c.byName[s.Name] = b
	}
	slices.SortFunc(c.servers, func(a, b *backend) int { return strings.Compare(a.name, b.name) })
	return c, nil
}

// Close closes the connections to the storage servers.
func (c *Controller) Close() error {
	for _, b := range c.servers {
		b.conn.Close()
	}
	return nil
}

func (c *Controller) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.CallTimeout)
}

// route resolves a CSI volume ID. ok is false for IDs that cannot name an
// existing volume (malformed or naming an unknown server); reason says why.
// routeDelete routes a delete of id (a volume, snapshot or group snapshot).
// An ID that is not Hangar's names nothing, so deleting it succeeds: nil
// backend and nil error. An ID of a server this controller does not know
// is FailedPrecondition: deleting "successfully" would leak it there.
func (c *Controller) routeDelete(id string) (b *backend, local string, err error) {
	server, _, perr := csicommon.ParseVolumeID(id)
	if perr != nil {
		return nil, "", nil
	}
	b, local, reason := c.route(id)
	if b == nil {
		return nil, "", status.Errorf(codes.FailedPrecondition, "%s; add server %q back to --servers to delete it", reason, server)
	}
	return b, local, nil
}

func (c *Controller) route(vid string) (b *backend, local string, reason string) {
	server, id, err := csicommon.ParseVolumeID(vid)
	if err != nil {
		return nil, "", err.Error()
	}
	b = c.byName[server]
	if b == nil {
		return nil, "", fmt.Sprintf("volume %s is on storage server %q, which is not in this controller's --servers list", vid, server)
	}
	return b, id, ""
}

func (c *Controller) CreateVolume(ctx context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	capacity, err := csicommon.ValidateCreate(req)
	if err != nil {
		return nil, err
	}
	h := fnv.New32a()
	h.Write([]byte(req.GetName()))
	mu := &c.nameLocks[h.Sum32()%uint32(len(c.nameLocks))]
	mu.Lock()
	defer mu.Unlock()

	// A stream between servers takes as long as it takes: bounded by the
	// caller's deadline, not CallTimeout.
	streamCtx := ctx
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	log := logging.FromContext(ctx)

	// Idempotency across servers: the name may already exist anywhere, so
	// every server must answer before a new volume is placed.
	type answer struct {
		b     *backend
		found bool
		avail int64
		err   error
	}
	answers := make([]answer, len(c.servers))
	var wg sync.WaitGroup
	for i, b := range c.servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := answer{b: b}
			_, err := csicommon.GetVolumeByName(ctx, b.conn, req.GetName())
			switch status.Code(err) {
			case codes.OK:
				a.found = true
			case codes.NotFound:
				cap, cerr := b.ctrl.GetCapacity(ctx, &csi.GetCapacityRequest{VolumeCapabilities: req.GetVolumeCapabilities()})
				if cerr != nil {
					a.err = b.err("GetCapacity", cerr)
				} else {
					a.avail = cap.GetAvailableCapacity()
				}
			default:
				a.err = b.err("looking up volume name", err)
			}
			answers[i] = a
		}()
	}
	wg.Wait()
	var target *backend
	for _, a := range answers {
		if a.found {
			target = a.b // retry: the server checks compatibility
			break
		}
	}
	if req.GetVolumeContentSource() != nil {
		// Restores and clones are made where their source is, so the data
		// is copied (or shared) locally; only when that server has no
		// room does it stream to the server with the most.
		src, lreq, err := c.sourceServer(req)
		if err != nil {
			return nil, err
		}
		for _, a := range answers {
			if a.err != nil && target == nil {
				return nil, status.Errorf(status.Code(a.err), "cannot create volume %q safely: %s", req.GetName(), status.Convert(a.err).Message())
			}
		}
		var resp *csi.CreateVolumeResponse
		switch {
		case target != nil && target != src:
			// Streamed there before: that server checks the retry against
			// the source's CSI ID it recorded.
			resp, err = target.ctrl.CreateVolume(ctx, req)
		case target == nil:
			target = src
			resp, err = src.ctrl.CreateVolume(ctx, lreq)
			if status.Code(err) == codes.ResourceExhausted {
				var best *answer
				for i, a := range answers {
					if a.b != src && (best == nil || a.avail > best.avail) {
						best = &answers[i]
					}
				}
				if best != nil && best.avail > 0 {
					log.Info("source's server is full; streaming the volume's contents to another", "source", src.name, "target", best.b.name)
					target = best.b
					resp, err = c.streamVolume(streamCtx, src, target, req, lreq)
				}
			}
		default:
			resp, err = src.ctrl.CreateVolume(ctx, lreq)
		}
		if err != nil {
			return nil, target.err("CreateVolume", err)
		}
		target.globalize(resp.Volume)
		target.globalizeSource(resp.Volume)
		return resp, nil
	}
	if target == nil {
		var best *answer
		for i, a := range answers {
			if a.err != nil {
				return nil, status.Errorf(status.Code(a.err), "cannot create volume %q safely: %s", req.GetName(), status.Convert(a.err).Message())
			}
			if best == nil || a.avail > best.avail {
				best = &answers[i]
			}
		}
		if best == nil {
			return nil, status.Error(codes.FailedPrecondition, "no storage servers configured")
		}
		if best.avail < capacity {
			return nil, status.Errorf(codes.ResourceExhausted, "no storage server can fit %d bytes; the most free is %s with %d bytes", capacity, best.b.name, best.avail)
		}
		target = best.b
		log.V(1).Info("placing volume", "server", target.name, "available", best.avail)
	}
	resp, err := target.ctrl.CreateVolume(ctx, req)
	if err != nil {
		return nil, target.err("CreateVolume", err)
	}
	target.globalize(resp.Volume)
	target.globalizeSource(resp.Volume)
	return resp, nil
}

func (c *Controller) DeleteVolume(ctx context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	}
	b, local, err := c.routeDelete(req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	if b == nil {
		return &csi.DeleteVolumeResponse{}, nil // not a Hangar ID: nothing to delete
	}
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	if _, err := b.ctrl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: local, Secrets: req.GetSecrets()}); err != nil {
		return nil, b.err("DeleteVolume", err)
	}
	return &csi.DeleteVolumeResponse{}, nil
}

func (c *Controller) ControllerGetVolume(ctx context.Context, req *csi.ControllerGetVolumeRequest) (*csi.ControllerGetVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	}
	b, local, reason := c.route(req.GetVolumeId())
	if b == nil {
		return nil, status.Errorf(codes.NotFound, "volume %q not found: %s", req.GetVolumeId(), reason)
	}
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	resp, err := b.ctrl.ControllerGetVolume(ctx, &csi.ControllerGetVolumeRequest{VolumeId: local})
	if err != nil {
		return nil, b.err("ControllerGetVolume", err)
	}
	b.globalize(resp.Volume)
	return resp, nil
}

func (c *Controller) ValidateVolumeCapabilities(ctx context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	}
	if len(req.GetVolumeCapabilities()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "volume capabilities are required")
	}
	b, local, reason := c.route(req.GetVolumeId())
	if b == nil {
		return nil, status.Errorf(codes.NotFound, "volume %q not found: %s", req.GetVolumeId(), reason)
	}
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	if _, err := b.ctrl.ControllerGetVolume(ctx, &csi.ControllerGetVolumeRequest{VolumeId: local}); err != nil {
		return nil, b.err("ValidateVolumeCapabilities", err)
	}
	return csicommon.ValidateVolumeCapabilities(req)
}

func (c *Controller) ControllerExpandVolume(ctx context.Context, req *csi.ControllerExpandVolumeRequest) (*csi.ControllerExpandVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	}
	if req.GetCapacityRange() == nil {
		return nil, status.Error(codes.InvalidArgument, "capacity range is required")
	}
	if req.GetVolumeCapability() != nil {
		if why := csicommon.CheckCapability(req.GetVolumeCapability()); why != "" {
			return nil, status.Error(codes.InvalidArgument, why)
		}
	}
	b, local, reason := c.route(req.GetVolumeId())
	if b == nil {
		return nil, status.Errorf(codes.NotFound, "volume %q not found: %s", req.GetVolumeId(), reason)
	}
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	resp, err := b.ctrl.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: local, CapacityRange: req.GetCapacityRange()})
	if err != nil {
		return nil, b.err("ControllerExpandVolume", err)
	}
	// NFS clients see the new size at once; nothing to do on nodes.
	resp.NodeExpansionRequired = false
	return resp, nil
}

// ListVolumes pages through all servers' volumes in (server name, local ID)
// order. The token is the CSI ID of the last volume returned, so deleting
// it between pages does not break paging.
func (c *Controller) ListVolumes(ctx context.Context, req *csi.ListVolumesRequest) (*csi.ListVolumesResponse, error) {
	max := int(req.GetMaxEntries())
	if max < 0 {
		return nil, status.Error(codes.InvalidArgument, "max_entries must not be negative")
	}
	var afterServer, afterID string
	if tok := req.GetStartingToken(); tok != "" {
		var err error
		if afterServer, afterID, err = csicommon.ParseVolumeID(tok); err != nil {
			return nil, status.Errorf(codes.Aborted, "starting_token %q was not issued by this controller (%v); restart listing without a token", tok, err)
		}
	}
	limit := c.ListPageBytes
	if limit <= 0 {
		limit = csicommon.DefaultListPageBytes
	}
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	resp := &csi.ListVolumesResponse{}
	size := 0
	for _, b := range c.servers {
		if b.name < afterServer {
			continue
		}
		sreq := &csi.ListVolumesRequest{}
		if b.name == afterServer {
			sreq.StartingToken = afterID
		}
		if max > 0 {
			left := max - len(resp.Entries)
			if left == 0 {
				// Page full: only learn whether anything follows.
				sreq.MaxEntries = 1
			} else {
				sreq.MaxEntries = int32(left)
			}
		}
		sresp, err := b.ctrl.ListVolumes(ctx, sreq)
		if err != nil {
			return nil, b.err("ListVolumes", err)
		}
		if max > 0 && len(resp.Entries) == max {
			if len(sresp.Entries) > 0 {
				resp.NextToken = resp.Entries[max-1].Volume.VolumeId
				return resp, nil
			}
			continue
		}
		for _, e := range sresp.Entries {
			b.globalize(e.Volume)
			resp.Entries = append(resp.Entries, e)
			size += proto.Size(e)
		}
		// Each server bounds its page; many servers' pages together
		// must not exceed the message limit either.
		if sresp.NextToken != "" || (size >= limit && len(resp.Entries) > 0) {
			resp.NextToken = resp.Entries[len(resp.Entries)-1].Volume.VolumeId
			return resp, nil
		}
	}
	return resp, nil
}

// GetCapacity reports the sum of the servers' available capacity, and the
// largest single server's as the maximum volume size. Unreachable servers
// count as having none.
func (c *Controller) GetCapacity(ctx context.Context, req *csi.GetCapacityRequest) (*csi.GetCapacityResponse, error) {
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	log := logging.FromContext(ctx)
	var sum, largest int64
	var reached int
	var lastErr error
	for _, b := range c.servers {
		r, err := b.ctrl.GetCapacity(ctx, &csi.GetCapacityRequest{VolumeCapabilities: req.GetVolumeCapabilities(), Parameters: req.GetParameters(), AccessibleTopology: req.GetAccessibleTopology()})
		if err != nil {
			lastErr = b.err("GetCapacity", err)
			log.Info("storage server capacity unknown", "server", b.name, "error", status.Convert(lastErr).Message())
			continue
		}
		reached++
		sum += r.GetAvailableCapacity()
		largest = max(largest, r.GetAvailableCapacity())
	}
	if reached == 0 && lastErr != nil {
		return nil, lastErr
	}
	return &csi.GetCapacityResponse{AvailableCapacity: sum, MaximumVolumeSize: wrapperspb.Int64(largest)}, nil
}

func (c *Controller) ControllerGetCapabilities(ctx context.Context, req *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	return csicommon.ControllerCapabilities(), nil
}

func (c *Controller) ControllerPublishVolume(ctx context.Context, req *csi.ControllerPublishVolumeRequest) (*csi.ControllerPublishVolumeResponse, error) {
	if err := csicommon.ValidatePublish(req); err != nil {
		return nil, err
	}
	b, local, reason := c.route(req.GetVolumeId())
	if b == nil {
		return nil, status.Errorf(codes.NotFound, "volume %q not found: %s", req.GetVolumeId(), reason)
	}
	if _, _, err := csicommon.ParseNodeID(req.GetNodeId()); err != nil {
		return nil, status.Error(codes.NotFound, err.Error())
	}
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	if c.MaxVolumesPerNode > 0 {
		unlock, err := c.checkNodeLimit(ctx, req.GetVolumeId(), req.GetNodeId())
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	sreq := &csi.ControllerPublishVolumeRequest{
		VolumeId:         local,
		NodeId:           req.GetNodeId(),
		VolumeCapability: req.GetVolumeCapability(),
		Readonly:         req.GetReadonly(),
	}
	resp, err := b.ctrl.ControllerPublishVolume(ctx, sreq)
	if err != nil {
		return nil, b.err("ControllerPublishVolume", err)
	}
	return resp, nil
}

func (c *Controller) ControllerUnpublishVolume(ctx context.Context, req *csi.ControllerUnpublishVolumeRequest) (*csi.ControllerUnpublishVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	}
	b, local, reason := c.route(req.GetVolumeId())
	if b == nil {
		// Not a volume any configured server could hold: nothing to revoke.
		logging.FromContext(ctx).Info("unpublish of unknown volume", "volumeID", req.GetVolumeId(), "reason", reason)
		return &csi.ControllerUnpublishVolumeResponse{}, nil
	}
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	if _, err := b.ctrl.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: local, NodeId: req.GetNodeId()}); err != nil {
		return nil, b.err("ControllerUnpublishVolume", err)
	}
	return &csi.ControllerUnpublishVolumeResponse{}, nil
}

// ControllerGetVolumeHealth asks the volume's storage server; a server that
// does not answer makes the volume INACCESSIBLE rather than an error.
func (c *Controller) ControllerGetVolumeHealth(ctx context.Context, req *csi.ControllerGetVolumeHealthRequest) (*csi.ControllerGetVolumeHealthResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	}
	b, local, reason := c.route(req.GetVolumeId())
	if b == nil {
		return nil, status.Errorf(codes.NotFound, "volume %q not found: %s", req.GetVolumeId(), reason)
	}
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	resp, err := b.ctrl.ControllerGetVolumeHealth(ctx, &csi.ControllerGetVolumeHealthRequest{VolumeId: local})
	switch status.Code(err) {
	case codes.OK:
		resp.GetVolumeHealth().VolumeId = req.GetVolumeId()
		return resp, nil
	case codes.Unavailable, codes.DeadlineExceeded:
		return &csi.ControllerGetVolumeHealthResponse{VolumeHealth: &csi.VolumeHealth{
			VolumeId: req.GetVolumeId(),
			HealthStatuses: []*csi.VolumeHealth_VolumeHealthEntry{{
				Status:  csi.VolumeHealthErrorType_INACCESSIBLE,
				Reason:  csicommon.ReasonServerUnreachable,
				Message: fmt.Sprintf("storage server %s (%s) does not answer: %s; check that its pod or service is running", b.name, b.addr, status.Convert(err).Message()),
			}},
		}}, nil
	}
	return nil, b.err("ControllerGetVolumeHealth", err)
}

// ControllerModifyVolume changes a volume's mutable parameters on its
// storage server, which validates them.
func (c *Controller) ControllerModifyVolume(ctx context.Context, req *csi.ControllerModifyVolumeRequest) (*csi.ControllerModifyVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	}
	b, local, reason := c.route(req.GetVolumeId())
	if b == nil {
		return nil, status.Errorf(codes.NotFound, "volume %q not found: %s", req.GetVolumeId(), reason)
	}
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	resp, err := b.ctrl.ControllerModifyVolume(ctx, &csi.ControllerModifyVolumeRequest{VolumeId: local, MutableParameters: req.GetMutableParameters()})
	if err != nil {
		return nil, b.err("ControllerModifyVolume", err)
	}
	return resp, nil
}

// ControllerListVolumeHealth pages through every server's volumes with an
// adverse condition, in (server name, local ID) order; the token is the CSI
// ID of the last entry returned. A server that does not answer is skipped
// (its volumes' health is unknown here, and ControllerGetVolumeHealth
// reports them INACCESSIBLE).
func (c *Controller) ControllerListVolumeHealth(ctx context.Context, req *csi.ControllerListVolumeHealthRequest) (*csi.ControllerListVolumeHealthResponse, error) {
	max := int(req.GetMaxEntries())
	if max < 0 {
		return nil, status.Error(codes.InvalidArgument, "max_entries must not be negative")
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
	resp := &csi.ControllerListVolumeHealthResponse{}
	for _, b := range c.servers {
		if b.name < afterServer {
			continue
		}
		sreq := &csi.ControllerListVolumeHealthRequest{}
		if b.name == afterServer {
			sreq.StartingToken = afterID
		}
		if max > 0 {
			// One more than fits tells whether a next page exists.
			sreq.MaxEntries = int32(max - len(resp.Entries) + 1)
		}
		sresp, err := b.ctrl.ControllerListVolumeHealth(ctx, sreq)
		if err != nil {
			logging.FromContext(ctx).Info("volume health of a storage server unknown", "server", b.name, "error", status.Convert(b.err("ControllerListVolumeHealth", err)).Message())
			continue
		}
		for _, h := range sresp.Entries {
			if max > 0 && len(resp.Entries) == max {
				resp.NextToken = resp.Entries[max-1].VolumeId
				return resp, nil
			}
			h.VolumeId = csicommon.VolumeID(b.name, h.VolumeId)
			resp.Entries = append(resp.Entries, h)
		}
	}
	return resp, nil
}
