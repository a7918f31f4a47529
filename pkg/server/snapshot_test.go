package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/hangar-csi/hangar/pkg/logging"
	"github.com/hangar-csi/hangar/pkg/nfs/nfs3"
	"github.com/hangar-csi/hangar/pkg/nfs/nfsclient"
	"github.com/hangar-csi/hangar/pkg/vfs"
	"github.com/hangar-csi/hangar/pkg/volume/loopfs"
)

// pauses collects the "pause" of every "snapshot taken" log line.
type pauses struct {
	mu  sync.Mutex
	all []string
}

func (p *pauses) Write(b []byte) (int, error) {
	for _, line := range bytes.Split(b, []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(line, &m) == nil && m["msg"] == "snapshot taken" {
			p.mu.Lock()
			p.all = append(p.all, fmt.Sprintf("%v(%v)", m["pause"], m["mode"]))
			p.mu.Unlock()
		}
	}
	return len(b), nil
}

type snapEnv struct {
	srv    *Server
	c      csi.ControllerClient
	g      csi.GroupControllerClient
	pauses *pauses
	stop   func()
}

// startOn runs a storage server with its data on dir.
func startOn(t *testing.T, dir, nfsAddr string) *snapEnv {
	t.Helper()
	p := &pauses{}
	srv, err := New(Options{DataDir: dir, Name: "t", NFSListen: nfsAddr, APIListen: "127.0.0.1:0", Log: logging.New(p, "json", 0)})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve() }()
	conn, err := grpc.NewClient("passthrough:///"+srv.APIAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	e := &snapEnv{srv: srv, c: csi.NewControllerClient(conn), g: csi.NewGroupControllerClient(conn), pauses: p}
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			conn.Close()
			srv.Close()
			if err := <-errc; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(e.stop)
	return e
}

func (e *snapEnv) volume(t *testing.T, name string, size int64, src *csi.VolumeContentSource) *csi.Volume {
	t.Helper()
	r, err := e.c.CreateVolume(context.Background(), &csi.CreateVolumeRequest{
		Name:          name,
		CapacityRange: &csi.CapacityRange{RequiredBytes: size},
		VolumeCapabilities: []*csi.VolumeCapability{{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
		}},
		VolumeContentSource: src,
	})
	if err != nil {
		t.Fatalf("CreateVolume %s: %v", name, err)
	}
	return r.Volume
}

func (e *snapEnv) snapshot(t *testing.T, name, vol string) *csi.Snapshot {
	t.Helper()
	r, err := e.c.CreateSnapshot(context.Background(), &csi.CreateSnapshotRequest{Name: name, SourceVolumeId: vol})
	if err != nil {
		t.Fatalf("CreateSnapshot %s: %v", name, err)
	}
	if !r.Snapshot.ReadyToUse {
		t.Fatalf("snapshot %s of a small volume not ready at once", name)
	}
	return r.Snapshot
}

func mountVol(t *testing.T, addr, id string) (*nfsclient.Client, vfs.Handle) {
	t.Helper()
	ctx := context.Background()
	nc, err := nfsclient.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	root, err := nc.Mount(ctx, "/"+id)
	if err != nil {
		t.Fatal(err)
	}
	return nc, root
}

// Every record is 16 bytes: a sequence number and its complement, so a
// torn or zero-filled record is detected.
const recLen = 16

func record(seq uint64) []byte {
	b := make([]byte, recLen)
	binary.BigEndian.PutUint64(b, seq)
	binary.BigEndian.PutUint64(b[8:], ^seq)
	return b
}

// records counts the valid records of file p, which must be nothing but a
// prefix 0..n-1 of them.
func records(t *testing.T, p string) int {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("snapshot lacks %s: %v", p, err)
	}
	if len(b)%recLen != 0 {
		t.Errorf("%s: %d bytes, a torn record", p, len(b))
	}
	for i := 0; i+recLen <= len(b); i += recLen {
		if !bytes.Equal(b[i:i+recLen], record(uint64(i/recLen))) {
			t.Errorf("%s: record %d is %x: not a prefix of the records written", p, i/recLen, b[i:i+recLen])
			return i / recLen
		}
	}
	return len(b) / recLen
}

var fsKinds = []string{"xfs", "btrfs", "ext4"}

// TestSnapshotPointInTime: writers append sequence-numbered records over
// the NFS wire, each to file A (UNSTABLE, then COMMIT) and then to file B
// (FILE_SYNC), while snapshots are taken. Every snapshot must hold, in
// both files, a prefix of the records holding every record acknowledged
// before the CreateSnapshot call, and A and B must be at most one record
// apart with A ahead: a state the volume really had. Without the hold the
// copy reads A and B at different moments (hundreds of files lie between
// them), so B can get ahead of A or A run far ahead of B.
func TestSnapshotPointInTime(t *testing.T) {
	for _, kind := range fsKinds {
		t.Run(kind, func(t *testing.T) {
			mnt := loopfs.Mount(t, kind, 1<<30)
			e := startOn(t, filepath.Join(mnt, "data"), "127.0.0.1:0")
			vol := e.volume(t, "pit", 256<<20, nil)
			dir := e.srv.Store().VolumeDir(vol.VolumeId)
			// Padding the copy walks through between the writers' files.
			for i := range 400 {
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("pad%03d", i)), bytes.Repeat([]byte{byte(i)}, 8192), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			const writers = 3
			var acked [writers]atomic.Int64 // records acknowledged in both files
			for i := range acked {
				acked[i].Store(-1)
			}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			for w := range writers {
				nc, root := mountVol(t, e.srv.NFSListenAddr(), vol.VolumeId)
				a, err := nc.Create(ctx, root, fmt.Sprintf("a%d", w), 0o644, vfs.CreateUnchecked)
				if err != nil {
					t.Fatal(err)
				}
				b, err := nc.Create(ctx, root, fmt.Sprintf("b%d", w), 0o644, vfs.CreateUnchecked)
				if err != nil {
					t.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					// A change held longer than the server waits is
					// JUKEBOX: retried, as the kernel client does.
					retry := func(op func() error) error {
						for {
							err := op()
							if !nfsclient.IsStatus(err, nfs3.StatusJukebox) {
								return err
							}
						}
					}
					for seq := uint64(0); ctx.Err() == nil; seq++ {
						if err := retry(func() error {
							_, _, _, err := nc.Write(ctx, a, seq*recLen, record(seq), vfs.Unstable)
							return err
						}); err != nil {
							errs <- err
							return
						}
						if _, err := nc.Commit(ctx, a); err != nil {
							errs <- err
							return
						}
						if err := retry(func() error {
							_, _, _, err := nc.Write(ctx, b, seq*recLen, record(seq), vfs.FileSync)
							return err
						}); err != nil {
							errs <- err
							return
						}
						acked[w].Store(int64(seq))
					}
				}()
			}
			for acked[writers-1].Load() < 10 {
				time.Sleep(time.Millisecond) // let the writers get going
			}
			var took []time.Duration
			for i := range 8 {
				var before [writers]int64
				for w := range before {
					before[w] = acked[w].Load()
				}
				start := time.Now()
				sn := e.snapshot(t, fmt.Sprintf("pit-%d", i), vol.VolumeId)
				took = append(took, time.Since(start))
				sdir := e.srv.Store().SnapshotDir(sn.SnapshotId)
				for w := range writers {
					na := records(t, filepath.Join(sdir, fmt.Sprintf("a%d", w)))
					nb := records(t, filepath.Join(sdir, fmt.Sprintf("b%d", w)))
					if int64(nb) < before[w]+1 {
						t.Errorf("snapshot %d, writer %d: %d records, but %d were acknowledged before the snapshot call", i, w, nb, before[w]+1)
					}
					if na < nb || na > nb+1 {
						t.Errorf("snapshot %d, writer %d: A has %d records, B %d: not a state the volume had", i, w, na, nb)
					}
				}
			}
			cancel()
			wg.Wait()
			close(errs)
			for err := range errs {
				if ctx.Err() == nil || !strings.Contains(err.Error(), "context canceled") {
					t.Errorf("writer: %v", err)
				}
			}
			var n int64
			for w := range acked {
				n += acked[w].Load() + 1
			}
			e.pauses.mu.Lock()
			t.Logf("%s: %d records written during 8 snapshots; CreateSnapshot took %v; writes held for %v", kind, n, took, e.pauses.all)
			e.pauses.mu.Unlock()
		})
	}
}

// TestRestoreRoundTrip: data -> snapshot -> change -> restore: the
// restored volume holds the snapshot's bytes exactly, is writable with its
// own quota, survives a restart with the snapshot, and deleting the source
// volume keeps the snapshot.
func TestRestoreRoundTrip(t *testing.T) {
	for _, kind := range fsKinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			mnt := loopfs.Mount(t, kind, 1<<30)
			data := filepath.Join(mnt, "data")
			e := startOn(t, data, "127.0.0.1:0")
			src := e.volume(t, "src", 32<<20, nil)
			nc, root := mountVol(t, e.srv.NFSListenAddr(), src.VolumeId)
			payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
			f, err := nc.Create(ctx, root, "file", 0o640, vfs.CreateUnchecked)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, _, err := nc.Write(ctx, f, 0, payload, vfs.FileSync); err != nil {
				t.Fatal(err)
			}
			sub, err := nc.Mkdir(ctx, root, "sub", 0o750)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := nc.Symlink(ctx, sub, "link", "../file"); err != nil {
				t.Fatal(err)
			}
			if err := nc.Link(ctx, f, sub, "hard"); err != nil {
				t.Fatal(err)
			}
			sn := e.snapshot(t, "snap", src.VolumeId)
			if sn.SizeBytes < int64(len(payload)) {
				t.Errorf("snapshot size %d, want at least %d", sn.SizeBytes, len(payload))
			}
			// Change the source after the snapshot.
			if _, _, _, err := nc.Write(ctx, f, 0, []byte("CHANGED"), vfs.FileSync); err != nil {
				t.Fatal(err)
			}
			if err := nc.Remove(ctx, sub, "link"); err != nil {
				t.Fatal(err)
			}
			restored := e.volume(t, "restored", 32<<20, &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: sn.SnapshotId}}})
			if restored.GetContentSource().GetSnapshot().GetSnapshotId() != sn.SnapshotId {
				t.Errorf("restored volume's content source %v", restored.GetContentSource())
			}
			clone := e.volume(t, "clone", 32<<20, &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: src.VolumeId}}})

			check := func(vol string, want []byte, link bool) {
				t.Helper()
				rc, rroot := mountVol(t, e.srv.NFSListenAddr(), vol)
				h, _, err := rc.Lookup(ctx, rroot, "file")
				if err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, len(want)+10)
				var got []byte
				for off := 0; ; {
					n, eof, err := rc.Read(ctx, h, uint64(off), buf[:min(len(buf), 64<<10)])
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, buf[:n]...)
					off += n
					if eof || n == 0 {
						break
					}
				}
				if !bytes.Equal(got, want) {
					t.Errorf("volume %s: file differs from what it should hold (%d bytes, want %d)", vol, len(got), len(want))
				}
				rsub, _, err := rc.Lookup(ctx, rroot, "sub")
				if err != nil {
					t.Fatal(err)
				}
				lh, _, err := rc.Lookup(ctx, rsub, "link")
				if (err == nil) != link {
					t.Errorf("volume %s: symlink present %v, want %v", vol, err == nil, link)
				}
				if link {
					if target, err := rc.Readlink(ctx, lh); err != nil || target != "../file" {
						t.Errorf("symlink target %q, %v", target, err)
					}
				}
				hh, hattr, err := rc.Lookup(ctx, rsub, "hard")
				if err != nil || hattr.Nlink != 2 {
					t.Errorf("hard link: %v, nlink %d", err, hattr.Nlink)
				}
				// Writable, and independent of its source.
				if _, _, _, err := rc.Write(ctx, hh, 0, []byte("mine"), vfs.FileSync); err != nil {
					t.Errorf("volume %s not writable: %v", vol, err)
				}
			}
			changed := append([]byte("CHANGED"), payload[7:]...)
			check(restored.VolumeId, payload, true)
			check(clone.VolumeId, changed, false)
			// The writes to the copies did not reach the source or snapshot.
			if b, _ := os.ReadFile(filepath.Join(e.srv.Store().SnapshotDir(sn.SnapshotId), "file")); !bytes.Equal(b, payload) {
				t.Error("snapshot changed")
			}
			if b, _ := os.ReadFile(filepath.Join(e.srv.Store().VolumeDir(src.VolumeId), "file")); !bytes.Equal(b, changed) {
				t.Error("source changed by a write to its clone")
			}
			// Its own quota: usage rescanned.
			if u, err := e.srv.fs.Usage("/" + restored.VolumeId); err != nil || u.Bytes < uint64(len(payload)) {
				t.Errorf("restored volume usage %+v, %v", u, err)
			}

			// Deleting the source keeps the snapshot; restart keeps both.
			if _, err := e.c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: src.VolumeId}); err != nil {
				t.Fatal(err)
			}
			addr := e.srv.NFSListenAddr()
			e.stop()
			e = startOn(t, data, addr)
			l, err := e.c.ListSnapshots(ctx, &csi.ListSnapshotsRequest{SourceVolumeId: src.VolumeId})
			if err != nil || len(l.Entries) != 1 || l.Entries[0].Snapshot.SnapshotId != sn.SnapshotId || !l.Entries[0].Snapshot.ReadyToUse ||
				l.Entries[0].Snapshot.SizeBytes != sn.SizeBytes || !l.Entries[0].Snapshot.CreationTime.AsTime().Equal(sn.CreationTime.AsTime()) {
				t.Fatalf("after restart: %v, %v", l, err)
			}
			again := e.volume(t, "again", 32<<20, &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: sn.SnapshotId}}})
			check(again.VolumeId, payload, true)
			// Too small a volume for the snapshot's contents.
			_, err = e.c.CreateVolume(ctx, &csi.CreateVolumeRequest{
				Name: "tiny", CapacityRange: &csi.CapacityRange{RequiredBytes: 4096, LimitBytes: 4096},
				VolumeCapabilities:  []*csi.VolumeCapability{{AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}}, AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER}}},
				VolumeContentSource: &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: sn.SnapshotId}}},
			})
			if status.Code(err) != codes.OutOfRange {
				t.Errorf("restore into 4 KiB: %v, want OutOfRange", err)
			}
		})
	}
}

// TestSnapshotSpace: a full copy is charged to GetCapacity and deleting the
// last reference frees it; a reflink snapshot takes (almost) nothing until
// the volume changes.
func TestSnapshotSpace(t *testing.T) {
	for _, kind := range fsKinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			mnt := loopfs.Mount(t, kind, 1<<30)
			e := startOn(t, filepath.Join(mnt, "data"), "127.0.0.1:0")
			vol := e.volume(t, "v", 64<<20, nil)
			nc, root := mountVol(t, e.srv.NFSListenAddr(), vol.VolumeId)
			f, err := nc.Create(ctx, root, "f", 0o644, vfs.CreateUnchecked)
			if err != nil {
				t.Fatal(err)
			}
			chunk := bytes.Repeat([]byte{7}, 1<<20)
			for i := range 16 {
				if _, _, _, err := nc.Write(ctx, f, uint64(i)<<20, chunk, vfs.FileSync); err != nil {
					t.Fatal(err)
				}
			}
			capacity := func() int64 {
				loopfs.UsedBytes(t, mnt) // commits btrfs's transaction
				r, err := e.c.GetCapacity(ctx, &csi.GetCapacityRequest{})
				if err != nil {
					t.Fatal(err)
				}
				return r.AvailableCapacity
			}
			before, usedBefore := capacity(), loopfs.UsedBytes(t, mnt)
			sn := e.snapshot(t, "s", vol.VolumeId)
			after, usedAfter := capacity(), loopfs.UsedBytes(t, mnt)
			t.Logf("%s: snapshot of 16 MiB: disk use +%d bytes, available capacity -%d bytes", kind, usedAfter-usedBefore, before-after)
			if loopfs.Reflink(kind) {
				if usedAfter-usedBefore > 2<<20 {
					t.Errorf("reflink snapshot took %d bytes", usedAfter-usedBefore)
				}
			} else if before-after < 16<<20 {
				t.Errorf("full-copy snapshot of 16 MiB lowered available capacity by only %d", before-after)
			}
			if _, err := e.c.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: sn.SnapshotId}); err != nil {
				t.Fatal(err)
			}
			freed := capacity()
			if freed < before-(1<<20) {
				t.Errorf("after deleting the snapshot available capacity is %d, was %d before it", freed, before)
			}
		})
	}
}

// TestGroupSnapshot: one point in time across volumes; members cannot be
// deleted alone; deleting the group deletes them.
func TestGroupSnapshot(t *testing.T) {
	ctx := context.Background()
	mnt := loopfs.Mount(t, "xfs", 1<<30)
	e := startOn(t, filepath.Join(mnt, "data"), "127.0.0.1:0")
	var ids []string
	for i := range 3 {
		v := e.volume(t, fmt.Sprintf("db-%d", i), 16<<20, nil)
		if err := os.WriteFile(filepath.Join(e.srv.Store().VolumeDir(v.VolumeId), "data"), []byte(v.VolumeId), 0o644); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, v.VolumeId)
	}
	r, err := e.g.CreateVolumeGroupSnapshot(ctx, &csi.CreateVolumeGroupSnapshotRequest{Name: "g", SourceVolumeIds: ids})
	if err != nil {
		t.Fatal(err)
	}
	gs := r.GroupSnapshot
	if len(gs.Snapshots) != 3 || !gs.ReadyToUse {
		t.Fatalf("group %v", gs)
	}
	var members []string
	for _, s := range gs.Snapshots {
		members = append(members, s.SnapshotId)
		if s.GroupSnapshotId != gs.GroupSnapshotId {
			t.Errorf("member %s names group %q", s.SnapshotId, s.GroupSnapshotId)
		}
		if b, _ := os.ReadFile(filepath.Join(e.srv.Store().SnapshotDir(s.SnapshotId), "data")); string(b) != s.SourceVolumeId {
			t.Errorf("member %s holds %q", s.SnapshotId, b)
		}
	}
	// Retry: same group; same name other volumes: AlreadyExists.
	if r2, err := e.g.CreateVolumeGroupSnapshot(ctx, &csi.CreateVolumeGroupSnapshotRequest{Name: "g", SourceVolumeIds: []string{ids[2], ids[0], ids[1]}}); err != nil || r2.GroupSnapshot.GroupSnapshotId != gs.GroupSnapshotId {
		t.Errorf("retry: %v %v", r2, err)
	}
	if _, err := e.g.CreateVolumeGroupSnapshot(ctx, &csi.CreateVolumeGroupSnapshotRequest{Name: "g", SourceVolumeIds: ids[:2]}); status.Code(err) != codes.AlreadyExists {
		t.Errorf("same name, other volumes: %v", err)
	}
	if _, err := e.c.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: members[0]}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("deleting a member alone: %v", err)
	}
	if _, err := e.g.DeleteVolumeGroupSnapshot(ctx, &csi.DeleteVolumeGroupSnapshotRequest{GroupSnapshotId: gs.GroupSnapshotId, SnapshotIds: members[:1]}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("delete with wrong members: %v", err)
	}
	if _, err := e.g.DeleteVolumeGroupSnapshot(ctx, &csi.DeleteVolumeGroupSnapshotRequest{GroupSnapshotId: gs.GroupSnapshotId, SnapshotIds: members}); err != nil {
		t.Fatal(err)
	}
	if l, err := e.c.ListSnapshots(ctx, &csi.ListSnapshotsRequest{}); err != nil || len(l.Entries) != 0 {
		t.Errorf("after deleting the group: %v %v", l, err)
	}
	if _, err := e.g.GetVolumeGroupSnapshot(ctx, &csi.GetVolumeGroupSnapshotRequest{GroupSnapshotId: gs.GroupSnapshotId}); status.Code(err) != codes.NotFound {
		t.Errorf("get deleted group: %v", err)
	}
}

// BenchmarkSnapshotPause snapshots a 1 GiB volume (64 files of 16 MiB) on
// each file system and reports how long writes were held (the log's
// pause), the CreateSnapshot time and the disk space the snapshot took.
// go test -run '^$' -bench SnapshotPause -benchtime 3x ./pkg/server
func BenchmarkSnapshotPause(b *testing.B) {
	for _, kind := range fsKinds {
		b.Run(kind, func(b *testing.B) {
			ctx := context.Background()
			mnt := loopfs.Mount(b, kind, 4<<30)
			e := startOnB(b, filepath.Join(mnt, "data"))
			r, err := e.c.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "big", CapacityRange: &csi.CapacityRange{RequiredBytes: 2 << 30},
				VolumeCapabilities: []*csi.VolumeCapability{{AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}}, AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER}}}})
			if err != nil {
				b.Fatal(err)
			}
			dir := e.srv.Store().VolumeDir(r.Volume.VolumeId)
			chunk := bytes.Repeat([]byte{1}, 16<<20)
			for i := range 64 {
				chunk[0] = byte(i)
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d", i)), chunk, 0o644); err != nil {
					b.Fatal(err)
				}
			}
			// Rescan usage so the API sees 1 GiB (written behind its back).
			e.srv.fs.RemoveExport("/" + r.Volume.VolumeId)
			if err := e.srv.api.ExportAll(); err != nil {
				b.Fatal(err)
			}
			var total time.Duration
			var used int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				before := loopfs.UsedBytes(b, mnt)
				start := time.Now()
				s, err := e.c.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: fmt.Sprint("s", i), SourceVolumeId: r.Volume.VolumeId})
				if err != nil {
					b.Fatal(err)
				}
				for !s.Snapshot.ReadyToUse {
					time.Sleep(10 * time.Millisecond)
					g, err := e.c.GetSnapshot(ctx, &csi.GetSnapshotRequest{SnapshotId: s.Snapshot.SnapshotId})
					if err != nil {
						b.Fatal(err)
					}
					s.Snapshot = g.Snapshot
				}
				total += time.Since(start)
				used += loopfs.UsedBytes(b, mnt) - before
				b.StopTimer()
				if _, err := e.c.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: s.Snapshot.SnapshotId}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			e.pauses.mu.Lock()
			b.Logf("%s: 1 GiB volume: snapshot ready after %v on average; space %d MiB per snapshot; writes held %v", kind, total/time.Duration(b.N), used/int64(b.N)>>20, e.pauses.all)
			e.pauses.mu.Unlock()
		})
	}
}

func startOnB(b *testing.B, dir string) *snapEnv {
	p := &pauses{}
	srv, err := New(Options{DataDir: dir, Name: "t", NFSListen: "127.0.0.1:0", APIListen: "127.0.0.1:0", Log: logging.New(p, "json", 0)})
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve()
	conn, err := grpc.NewClient("passthrough:///"+srv.APIAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close(); srv.Close() })
	return &snapEnv{srv: srv, c: csi.NewControllerClient(conn), pauses: p}
}
