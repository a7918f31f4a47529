package driver

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/hangar-csi/hangar/pkg/csicommon"
)

// Creates no longer wait for each other on the server, yet its capacity
// check stays exact: of 30 concurrent creates where 10 fit, exactly 10
// succeed, and concurrent retries of one name make one volume.
func TestConcurrentCreatesCapacityExact(t *testing.T) {
	ctx := context.Background()
	s := startServer(t, "a", 1000*mib)
	c := newTestController(t, ServerRef{"a", s.addr})
	var wg sync.WaitGroup
	var ok, full atomic.Int64
	ids := make([]string, 30)
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.CreateVolume(ctx, createReq(fmt.Sprint("v", i), 100*mib))
			switch status.Code(err) {
			case codes.OK:
				ok.Add(1)
				ids[i] = r.Volume.VolumeId
			case codes.ResourceExhausted:
				full.Add(1)
			default:
				t.Errorf("v%d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 10 || full.Load() != 20 {
		t.Fatalf("%d created, %d refused; want 10 and 20", ok.Load(), full.Load())
	}
	// Retries of a created name, concurrently, with the server full.
	name := ""
	for i, id := range ids {
		if id != "" {
			name = fmt.Sprint("v", i)
			break
		}
	}
	var same sync.Map
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.CreateVolume(ctx, createReq(name, 100*mib))
			if err != nil {
				t.Errorf("retry of %s: %v", name, err)
				return
			}
			same.Store(r.Volume.VolumeId, true)
		}()
	}
	wg.Wait()
	n := 0
	same.Range(func(any, any) bool { n++; return true })
	if n != 1 {
		t.Fatalf("retries of one name returned %d different volumes", n)
	}
	if got := s.api.Store.Count(); got != 10 {
		t.Fatalf("%d volumes on the server, want 10", got)
	}
}

// ListVolumes pages by the last ID of the previous page; while volumes are
// created and deleted, every page is in order and every volume that exists
// throughout is listed exactly once per pass.
func TestListVolumesPagingDuringChurn(t *testing.T) {
	ctx := context.Background()
	s := startServer(t, "a", 1<<50)
	cc, err := grpc.NewClient("passthrough:///"+s.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	api := csi.NewControllerClient(cc)
	stable := map[string]bool{}
	for i := range 50 {
		r, err := api.CreateVolume(ctx, createReq(fmt.Sprint("stable", i), mib))
		if err != nil {
			t.Fatal(err)
		}
		stable[r.Volume.VolumeId] = true
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r, err := api.CreateVolume(ctx, createReq(fmt.Sprintf("churn%d-%d", w, i), mib))
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := api.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: r.Volume.VolumeId}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	for pass := range 10 {
		seen := map[string]int{}
		token := ""
		for {
			r, err := api.ListVolumes(ctx, &csi.ListVolumesRequest{MaxEntries: 6, StartingToken: token})
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Entries) > 6 {
				t.Fatalf("%d entries with max_entries 6", len(r.Entries))
			}
			prev := token
			for _, e := range r.Entries {
				id := e.Volume.VolumeId
				if id <= prev {
					t.Fatalf("pass %d: %s listed after %s", pass, id, prev)
				}
				prev = id
				seen[id]++
			}
			if r.NextToken == "" {
				break
			}
			token = r.NextToken
		}
		for id := range stable {
			if seen[id] != 1 {
				t.Fatalf("pass %d: %s listed %d times", pass, id, seen[id])
			}
		}
	}
}

// A listing without max_entries is paged by size, on each server and
// across servers, so it never outgrows gRPC's message limit however many
// volumes there are; paging still lists every volume exactly once.
func TestListVolumesPagedBySize(t *testing.T) {
	ctx := context.Background()
	a, b := startServer(t, "a", 1<<50), startServer(t, "b", 1<<50)
	const pageBytes = 2048
	a.api.ListPageBytes, b.api.ListPageBytes = pageBytes, pageBytes
	c := newTestController(t, ServerRef{"a", a.addr}, ServerRef{"b", b.addr})
	c.ListPageBytes = 3 * pageBytes
	var want []string
	for i, s := range []*testServer{a, b, a, b} {
		for j := range 20 {
			r, err := s.api.CreateVolume(ctx, createReq(fmt.Sprintf("v%d-%d", i, j), mib))
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, csicommon.VolumeID(s.api.Name, r.Volume.VolumeId))
		}
	}
	slices.Sort(want)
	var got []string
	tok := ""
	for pages := 0; ; pages++ {
		if pages > len(want) {
			t.Fatal("no end to the listing")
		}
		r, err := c.ListVolumes(ctx, &csi.ListVolumesRequest{StartingToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		// A page may pass the bound by its last entry, on each server.
		if n := proto.Size(r); n > 3*pageBytes+2*pageBytes {
			t.Fatalf("page of %d bytes, bound %d", n, c.ListPageBytes)
		}
		for _, e := range r.Entries {
			got = append(got, e.Volume.VolumeId)
		}
		if tok = r.NextToken; tok == "" {
			if pages == 0 {
				t.Fatalf("%d volumes in one page of %d bytes", len(r.Entries), proto.Size(r))
			}
			break
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listed\n%v\nwant\n%v", got, want)
	}

	// Snapshots page the same way.
	sreq := &csi.CreateSnapshotRequest{SourceVolumeId: want[0]}
	for i := range 100 {
		sreq.Name = fmt.Sprint("snap", i)
		if _, err := c.CreateSnapshot(ctx, sreq); err != nil {
			t.Fatal(err)
		}
	}
	seen, tok := 0, ""
	for pages := 0; ; pages++ {
		r, err := c.ListSnapshots(ctx, &csi.ListSnapshotsRequest{StartingToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		if n := proto.Size(r); n > 5*pageBytes {
			t.Fatalf("snapshot page of %d bytes", n)
		}
		seen += len(r.Entries)
		if tok = r.NextToken; tok == "" {
			if pages == 0 {
				t.Fatalf("%d snapshots in one page of %d bytes", len(r.Entries), proto.Size(r))
			}
			break
		}
	}
	if seen != 100 {
		t.Fatalf("listed %d snapshots, want 100", seen)
	}
}
