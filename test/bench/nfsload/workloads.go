package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// loadConfig is one run of the workloads against one server.
type loadConfig struct {
	Addr, MountAddr, Export string
	Conns, Depth            int
	Size                    int64 // sequential file size in bytes
	RandOps                 int
	MetaFiles               int
	Handles                 int
	GetattrOps              int
	PhaseTimeout            time.Duration
	Seed                    uint64
	// Only, if not empty, runs just these phases and those they need
	// (seq_write for the file phases, meta_create for readdirplus and
	// remove, handles_create for getattr): a profiling knob.
	Only map[string]bool
}

// phaseNeeds lists which phases each setup phase serves.
var phaseNeeds = map[string][]string{
	"seq_write":      {"seq_read", "rand_write", "rand_read"},
	"meta_create":    {"readdirplus", "remove"},
	"handles_create": {"getattr"},
}

// skipped reports whether Only leaves phase name out.
func (c *loadConfig) skipped(name string) bool {
	if len(c.Only) == 0 || c.Only[name] {
		return false
	}
	for _, p := range phaseNeeds[name] {
		if c.Only[p] {
			return false
		}
	}
	return true
}

// result is what one run reports; the report subcommand takes medians.
type result struct {
	Server  string             `json:"server"`
	Run     int                `json:"run"`
	InProc  bool               `json:"inproc,omitempty"`
	Metrics map[string]float64 `json:"metrics"`
	PhaseS  map[string]float64 `json:"phase_s"`
	// Allocs and AllocBytes are process-wide heap allocations per RPC of
	// each phase (runtime/metrics), keyed by phase.
	Allocs     map[string]float64 `json:"allocs_per_op"`
	AllocBytes map[string]float64 `json:"alloc_bytes_per_op"`
	Errors     []string           `json:"errors,omitempty"`
	Notes      []string           `json:"notes,omitempty"`
	Verify     bool               `json:"verify_failed,omitempty"`
}

func (r *result) fail(phase string, err error) {
	var ve *verifyError
	if errors.As(err, &ve) {
		r.Verify = true
	}
	r.Errors = append(r.Errors, phase+": "+err.Error())
}

// runner holds one run's state.
type runner struct {
	cfg   loadConfig
	res   *result
	pat   *pattern
	cl    *rpcClient
	root  []byte
	work  []byte
	chunk int
	seqFH []byte
}

// parallel runs fn for i in [0, n) on every caller; it stops at the first
// error or when ctx ends and returns how many calls of fn completed.
func (rn *runner) parallel(ctx context.Context, n int, fn func(ctx context.Context, c *caller, w, i int) error) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next, done atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for w, c := range rn.cl.callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if err := fn(ctx, c, w, int(i)); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if first == nil && int(done.Load()) < n {
		first = fmt.Errorf("stopped after %d of %d operations: %w", done.Load(), n, context.DeadlineExceeded)
	}
	return int(done.Load()), first
}

var allocSamples = []metrics.Sample{{Name: "/gc/heap/allocs:objects"}, {Name: "/gc/heap/allocs:bytes"}}

func heapAllocs() (objs, bytes uint64) {
	metrics.Read(allocSamples)
	return allocSamples[0].Value.Uint64(), allocSamples[1].Value.Uint64()
}

// phase times fn, which returns how many RPCs it made, and records wall time
// and allocations per RPC.
func (rn *runner) phase(name string, fn func(ctx context.Context) (rpcs int, err error)) bool {
	if rn.cfg.skipped(name) {
		return false
	}
	if len(rn.cl.callers) == 0 {
		rn.res.fail(name, errors.New("not run: no connection"))
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), rn.cfg.PhaseTimeout)
	defer cancel()
	o0, b0 := heapAllocs()
	t0 := time.Now()
	rpcs, err := fn(ctx)
	rn.res.PhaseS[name] = time.Since(t0).Seconds()
	o1, b1 := heapAllocs()
	if rpcs > 0 {
		rn.res.Allocs[name] = float64(o1-o0) / float64(rpcs)
		rn.res.AllocBytes[name] = float64(b1-b0) / float64(rpcs)
	}
	if err != nil {
		rn.res.fail(name, err)
		// Calls abandoned by a failed phase may still be answered: start the
		// next phase on fresh connections rather than match stale replies.
		rn.cl.Close()
		if rn.cl, err = dialRPC(context.Background(), rn.cfg.Addr, rn.cfg.Conns, rn.cfg.Depth); err != nil {
			rn.res.fail(name, fmt.Errorf("reconnect: %w", err))
			rn.cl = &rpcClient{}
		}
		return false
	}
	return true
}

func runLoad(cfg loadConfig, res *result) error {
	res.Metrics = map[string]float64{}
	res.PhaseS = map[string]float64{}
	res.Allocs = map[string]float64{}
	res.AllocBytes = map[string]float64{}
	rn := &runner{cfg: cfg, res: res, pat: newPattern(cfg.Seed), chunk: 1 << 20}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.PhaseTimeout)
	defer cancel()

	if err := rn.setup(ctx); err != nil {
		res.fail("setup", err)
		return err
	}
	defer func() { rn.cl.Close() }()

	seqOK := rn.phase("seq_write", rn.seqWrite)
	if seqOK {
		rn.phase("seq_read", rn.seqRead)
		rn.phase("rand_write", rn.randWrite)
		rn.phase("rand_read", rn.randRead)
	}
	var metaDir []byte
	if rn.phase("meta_create", func(ctx context.Context) (int, error) {
		var n int
		var err error
		metaDir, n, err = rn.metaCreate(ctx)
		return n, err
	}) {
		rn.phase("readdirplus", func(ctx context.Context) (int, error) { return rn.readdir(ctx, metaDir) })
		rn.phase("remove", func(ctx context.Context) (int, error) { return rn.remove(ctx, metaDir) })
	}
	var fhs [][]byte
	var ids []uint64
	if rn.phase("handles_create", func(ctx context.Context) (int, error) {
		var n int
		var err error
		fhs, ids, n, err = rn.handlesCreate(ctx)
		return n, err
	}) || len(fhs) > 0 {
		rn.phase("getattr", func(ctx context.Context) (int, error) { return rn.getattr(ctx, fhs, ids) })
	}
	if len(res.Errors) > 0 {
		return errors.New(res.Errors[0])
	}
	return nil
}

func (rn *runner) setup(ctx context.Context) error {
	mc, err := dialRPC(ctx, rn.cfg.MountAddr, 1, 1)
	if err != nil {
		return err
	}
	rn.root, err = mc.callers[0].mount(ctx, rn.cfg.Export)
	mc.Close()
	if err != nil {
		return err
	}
	rn.cl, err = dialRPC(ctx, rn.cfg.Addr, rn.cfg.Conns, rn.cfg.Depth)
	if err != nil {
		return err
	}
	c := rn.cl.callers[0]
	rtmax, wtmax, err := c.fsinfo(ctx, rn.root)
	if err != nil {
		return err
	}
	for rn.chunk > int(min(rtmax, wtmax)) && rn.chunk > pageSize {
		rn.chunk /= 2
	}
	if rn.chunk != 1<<20 {
		rn.res.Notes = append(rn.res.Notes, fmt.Sprintf("server rtmax/wtmax %d/%d: sequential I/O uses %d-byte RPCs", rtmax, wtmax, rn.chunk))
	}
	rn.work, err = c.create(ctx, rn.root, fmt.Sprintf("nfsload.%d.%d", rn.res.Run, time.Now().UnixNano()), true)
	return err
}

func (rn *runner) seqFile() string { return "seq.dat" }

func (rn *runner) seqWrite(ctx context.Context) (int, error) {
	c0 := rn.cl.callers[0]
	fh, err := c0.create(ctx, rn.work, rn.seqFile(), false)
	if err != nil {
		return 1, err
	}
	rn.seqFH = fh
	n := int(rn.cfg.Size / int64(rn.chunk))
	bufs := make([][]byte, len(rn.cl.callers))
	var verf atomic.Uint64
	var sawUnstable atomic.Bool
	t0 := time.Now()
	done, err := rn.parallel(ctx, n, func(ctx context.Context, c *caller, w, i int) error {
		if bufs[w] == nil {
			bufs[w] = make([]byte, rn.chunk)
		}
		off := uint64(i) * uint64(rn.chunk)
		rn.pat.fill(bufs[w], off)
		committed, v, err := c.write(ctx, fh, off, bufs[w], stableUnstable)
		if err != nil {
			return err
		}
		if committed == stableUnstable {
			sawUnstable.Store(true)
			if !verf.CompareAndSwap(0, v) && verf.Load() != v {
				return fmt.Errorf("write verifier changed during the run")
			}
		}
		return nil
	})
	if err != nil {
		return done + 1, err
	}
	tc := time.Now()
	cv, err := c0.commit(ctx, fh)
	if err != nil {
		return done + 2, err
	}
	end := time.Now()
	if sawUnstable.Load() && cv != verf.Load() {
		return done + 2, fmt.Errorf("COMMIT verifier %x differs from WRITE verifier %x", cv, verf.Load())
	}
	if !sawUnstable.Load() {
		rn.res.Notes = append(rn.res.Notes, "server answered every UNSTABLE write as FILE_SYNC/DATA_SYNC")
	}
	a, err := c0.getattr(ctx, fh)
	if err != nil {
		return done + 3, err
	}
	if int64(a.Size) != rn.cfg.Size {
		return done + 3, &verifyError{fmt.Sprintf("file size %d after writing %d", a.Size, rn.cfg.Size)}
	}
	mib := float64(rn.cfg.Size) / (1 << 20)
	rn.res.Metrics["seq_write_MiBps"] = mib / end.Sub(t0).Seconds()
	rn.res.Metrics["commit_ms"] = float64(end.Sub(tc).Microseconds()) / 1000
	return done + 3, nil
}

// readFull reads [off, off+len) into the reply buffer, following short reads,
// and checks it against the pattern.
func (rn *runner) readCheck(ctx context.Context, c *caller, fh []byte, off uint64, count int) (int, error) {
	rpcs := 0
	for count > 0 {
		rpcs++
		data, eof, err := c.read(ctx, fh, off, uint32(count))
		if err != nil {
			return rpcs, err
		}
		if len(data) == 0 {
			return rpcs, &verifyError{fmt.Sprintf("READ at %d returned nothing (eof %v) inside the file", off, eof)}
		}
		// Short reads end on any byte; check whole pages and re-read the rest.
		whole := len(data) &^ (pageSize - 1)
		if whole == 0 {
			whole = len(data)
		}
		if err := rn.pat.check(data[:whole], off); err != nil {
			return rpcs, err
		}
		off += uint64(whole)
		count -= whole
		if rpcs > 64 {
			return rpcs, fmt.Errorf("READ at %d: too many short reads", off)
		}
	}
	return rpcs, nil
}

func (rn *runner) seqRead(ctx context.Context) (int, error) {
	n := int(rn.cfg.Size / int64(rn.chunk))
	var rpcs atomic.Int64
	t0 := time.Now()
	_, err := rn.parallel(ctx, n, func(ctx context.Context, c *caller, w, i int) error {
		k, err := rn.readCheck(ctx, c, rn.seqFH, uint64(i)*uint64(rn.chunk), rn.chunk)
		rpcs.Add(int64(k))
		return err
	})
	if err != nil {
		return int(rpcs.Load()), err
	}
	rn.res.Metrics["seq_read_MiBps"] = float64(rn.cfg.Size) / (1 << 20) / time.Since(t0).Seconds()
	return int(rpcs.Load()), nil
}

func (rn *runner) rngs(salt uint64) []*rand.Rand {
	r := make([]*rand.Rand, len(rn.cl.callers))
	for i := range r {
		r[i] = rand.New(rand.NewPCG(rn.cfg.Seed+salt, uint64(i)))
	}
	return r
}

func (rn *runner) randRead(ctx context.Context) (int, error) {
	pages := uint64(rn.cfg.Size / pageSize)
	rngs := rn.rngs(1)
	var rpcs atomic.Int64
	t0 := time.Now()
	_, err := rn.parallel(ctx, rn.cfg.RandOps, func(ctx context.Context, c *caller, w, i int) error {
		k, err := rn.readCheck(ctx, c, rn.seqFH, rngs[w].Uint64N(pages)*pageSize, pageSize)
		rpcs.Add(int64(k))
		return err
	})
	if err != nil {
		return int(rpcs.Load()), err
	}
	rn.res.Metrics["rand_read_kIOPS"] = float64(rn.cfg.RandOps) / 1000 / time.Since(t0).Seconds()
	return int(rpcs.Load()), nil
}

// randWrite rewrites random pages with the content they already have
// (UNSTABLE, then one COMMIT), so the random reads that follow still verify
// every byte and catch a page written to the wrong offset.
func (rn *runner) randWrite(ctx context.Context) (int, error) {
	pages := uint64(rn.cfg.Size / pageSize)
	rngs := rn.rngs(2)
	bufs := make([][]byte, len(rn.cl.callers))
	t0 := time.Now()
	done, err := rn.parallel(ctx, rn.cfg.RandOps, func(ctx context.Context, c *caller, w, i int) error {
		if bufs[w] == nil {
			bufs[w] = make([]byte, pageSize)
		}
		off := rngs[w].Uint64N(pages) * pageSize
		rn.pat.fill(bufs[w], off)
		_, _, err := c.write(ctx, rn.seqFH, off, bufs[w], stableUnstable)
		return err
	})
	if err != nil {
		return done, err
	}
	if _, err := rn.cl.callers[0].commit(ctx, rn.seqFH); err != nil {
		return done + 1, err
	}
	rn.res.Metrics["rand_write_kIOPS"] = float64(rn.cfg.RandOps) / 1000 / time.Since(t0).Seconds()
	return done + 1, nil
}

func fileName(i int) string { return "f" + strconv.Itoa(i) }

// metaCreate makes MetaFiles files, each CREATE + 4 KiB FILE_SYNC WRITE +
// GETATTR in sequence, many files at once.
func (rn *runner) metaCreate(ctx context.Context) ([]byte, int, error) {
	c0 := rn.cl.callers[0]
	dir, err := c0.create(ctx, rn.work, "meta", true)
	if err != nil {
		return nil, 1, err
	}
	bufs := make([][]byte, len(rn.cl.callers))
	t0 := time.Now()
	done, err := rn.parallel(ctx, rn.cfg.MetaFiles, func(ctx context.Context, c *caller, w, i int) error {
		if bufs[w] == nil {
			bufs[w] = make([]byte, pageSize)
		}
		fh, err := c.create(ctx, dir, fileName(i), false)
		if err != nil {
			return err
		}
		off := uint64(i) * pageSize // stamp each file differently
		rn.pat.fill(bufs[w], off)
		if _, _, err := c.write(ctx, fh, 0, bufs[w], stableFileSync); err != nil {
			return err
		}
		a, err := c.getattr(ctx, fh)
		if err != nil {
			return err
		}
		if a.Type != 1 || a.Size != pageSize {
			return &verifyError{fmt.Sprintf("%s: type %d size %d after a 4 KiB write", fileName(i), a.Type, a.Size)}
		}
		return nil
	})
	if err != nil {
		return dir, 1 + 3*done, err
	}
	rn.res.Metrics["meta_files_per_s"] = float64(rn.cfg.MetaFiles) / time.Since(t0).Seconds()
	return dir, 1 + 3*done, nil
}

// readdir lists the metadata directory with READDIRPLUS and checks that every
// file is there exactly once. A directory listing is a chain of cookies, so
// this phase is one stream of RPCs by nature.
func (rn *runner) readdir(ctx context.Context, dir []byte) (int, error) {
	seen := make([]bool, rn.cfg.MetaFiles)
	entries, missingPlus := 0, 0
	var bad error
	t0 := time.Now()
	rpcs, err := rn.cl.callers[0].readdirplus(ctx, dir, 32768, func(e dirEntry) {
		if e.Name == "." || e.Name == ".." {
			return
		}
		entries++
		i, err := strconv.Atoi(e.Name[min(1, len(e.Name)):])
		if err != nil || e.Name[0] != 'f' || i < 0 || i >= len(seen) || seen[i] {
			if bad == nil {
				bad = &verifyError{fmt.Sprintf("READDIRPLUS: unexpected or repeated entry %q", e.Name)}
			}
			return
		}
		seen[i] = true
		if !e.HasAttr || !e.HasFH {
			missingPlus++
		}
	})
	el := time.Since(t0)
	if err != nil {
		return rpcs, err
	}
	if bad != nil {
		return rpcs, bad
	}
	if entries != rn.cfg.MetaFiles {
		return rpcs, &verifyError{fmt.Sprintf("READDIRPLUS: %d entries, want %d", entries, rn.cfg.MetaFiles)}
	}
	if missingPlus > 0 {
		rn.res.Notes = append(rn.res.Notes, fmt.Sprintf("READDIRPLUS: %d entries without attributes or handle", missingPlus))
	}
	rn.res.Metrics["readdirplus_kentries_per_s"] = float64(entries) / 1000 / el.Seconds()
	rn.res.Metrics["readdirplus_rpcs"] = float64(rpcs)
	return rpcs, nil
}

func (rn *runner) remove(ctx context.Context, dir []byte) (int, error) {
	t0 := time.Now()
	done, err := rn.parallel(ctx, rn.cfg.MetaFiles, func(ctx context.Context, c *caller, w, i int) error {
		return c.remove(ctx, dir, fileName(i))
	})
	if err != nil {
		return done, err
	}
	rn.res.Metrics["remove_ops_per_s"] = float64(rn.cfg.MetaFiles) / time.Since(t0).Seconds()
	left := 0
	rpcs, err := rn.cl.callers[0].readdirplus(ctx, dir, 32768, func(e dirEntry) {
		if e.Name != "." && e.Name != ".." {
			left++
		}
	})
	if err != nil {
		return done + rpcs, err
	}
	if left != 0 {
		return done + rpcs, &verifyError{fmt.Sprintf("%d entries left after removing all", left)}
	}
	return done + rpcs, nil
}

// handlesCreate makes Handles empty files and keeps every handle and fileid.
// If the phase times out, the handles made so far still serve the GETATTR
// phase, and the shortfall is reported.
func (rn *runner) handlesCreate(ctx context.Context) ([][]byte, []uint64, int, error) {
	dir, err := rn.cl.callers[0].create(ctx, rn.work, "many", true)
	if err != nil {
		return nil, nil, 1, err
	}
	n := rn.cfg.Handles
	fhs := make([][]byte, n)
	ids := make([]uint64, n)
	t0 := time.Now()
	done, err := rn.parallel(ctx, n, func(ctx context.Context, c *caller, w, i int) error {
		fh, id, err := c.createAttr(ctx, dir, fileName(i), false)
		fhs[i], ids[i] = fh, id
		return err
	})
	el := time.Since(t0)
	rn.res.Metrics["handles_created"] = float64(done)
	rn.res.Metrics["handles_create_s"] = el.Seconds()
	if done > 0 {
		rn.res.Metrics["handles_create_per_s"] = float64(done) / el.Seconds()
	}
	// parallel hands out indices in order, so the done ones are a prefix up
	// to the few in flight when it stopped: keep the filled ones.
	k := 0
	for i := range fhs {
		if fhs[i] != nil {
			fhs[k], ids[k] = fhs[i], ids[i]
			k++
		}
	}
	return fhs[:k], ids[:k], done + 1, err
}

// getattr sends GETATTR to random live handles and checks that each names
// the file it was created as.
func (rn *runner) getattr(ctx context.Context, fhs [][]byte, ids []uint64) (int, error) {
	if len(fhs) == 0 {
		return 0, errors.New("no handles")
	}
	rngs := rn.rngs(3)
	t0 := time.Now()
	done, err := rn.parallel(ctx, rn.cfg.GetattrOps, func(ctx context.Context, c *caller, w, i int) error {
		j := rngs[w].IntN(len(fhs))
		a, err := c.getattr(ctx, fhs[j])
		if err != nil {
			return fmt.Errorf("handle %d of %d: %w", j, len(fhs), err)
		}
		if a.Type != 1 || a.Size != 0 || (ids[j] != 0 && a.FileID != ids[j]) {
			return &verifyError{fmt.Sprintf("GETATTR of %s: type %d size %d fileid %d, want regular empty file %d", fileName(j), a.Type, a.Size, a.FileID, ids[j])}
		}
		return nil
	})
	el := time.Since(t0)
	rn.res.Metrics["getattr_live_handles"] = float64(len(fhs))
	if err != nil && errors.Is(err, context.DeadlineExceeded) && done > 0 {
		// A slow server still gets a figure: the rate until the time limit.
		rn.res.Metrics["getattr_kops"] = float64(done) / 1000 / el.Seconds()
		rn.res.Notes = append(rn.res.Notes, fmt.Sprintf("GETATTR rate is over %d calls done before the phase time limit", done))
	}
	if err != nil {
		return done, err
	}
	rn.res.Metrics["getattr_kops"] = float64(rn.cfg.GetattrOps) / 1000 / el.Seconds()
	return done, nil
}
