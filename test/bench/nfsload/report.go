package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
)

// metricDef is one row of the comparison table. Targets are the minimum
// speedups of Hangar over each baseline.
type metricDef struct {
	key, label, unit string
	lowerBetter      bool
	targets          map[string]float64
}

var (
	tputTargets = map[string]float64{"go-nfs": 5, "ganesha": 2}
	seqTargets  = map[string]float64{"go-nfs": 5, "ganesha": 2, "disk": 0.8}
)

var metricDefs = []metricDef{
	{"seq_write_MiBps", "seq write 1 MiB UNSTABLE+COMMIT", "MiB/s", false, seqTargets},
	{"commit_ms", "  final COMMIT", "ms", true, nil},
	{"seq_read_MiBps", "seq read 1 MiB", "MiB/s", false, seqTargets},
	{"rand_read_kIOPS", "4 KiB random read", "k IOPS", false, tputTargets},
	{"rand_write_kIOPS", "4 KiB random write (+COMMIT)", "k IOPS", false, tputTargets},
	{"meta_files_per_s", "CREATE+4K FILE_SYNC WRITE+GETATTR", "files/s", false, tputTargets},
	{"readdirplus_kentries_per_s", "READDIRPLUS", "k entries/s", false, tputTargets},
	{"remove_ops_per_s", "REMOVE", "ops/s", false, tputTargets},
	{"handles_create_per_s", "CREATE (empty, handles kept)", "files/s", false, tputTargets},
	{"handles_create_s", "  time to create the live handles", "s", true, nil},
	{"handles_created", "  live handles", "count", false, nil},
	{"getattr_kops", "GETATTR over the live handles", "k ops/s", false, tputTargets},
}

var phaseOrder = []string{"seq_write", "seq_read", "rand_write", "rand_read", "meta_create", "readdirplus", "remove", "handles_create", "getattr"}

var phaseProc = map[string]string{
	"seq_write": "WRITE 1 MiB", "seq_read": "READ 1 MiB", "rand_write": "WRITE 4 KiB", "rand_read": "READ 4 KiB",
	"meta_create": "CREATE/WRITE 4K/GETATTR", "readdirplus": "READDIRPLUS (per RPC)", "remove": "REMOVE",
	"handles_create": "CREATE", "getattr": "GETATTR",
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtNum(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

type serverRuns struct {
	runs   []*result
	errors []string
	notes  []string
}

func (s *serverRuns) med(get func(*result) map[string]float64, key string) float64 {
	var v []float64
	for _, r := range s.runs {
		if x, ok := get(r)[key]; ok {
			v = append(v, x)
		}
	}
	return median(v)
}

func metricsOf(r *result) map[string]float64 { return r.Metrics }
func phasesOf(r *result) map[string]float64  { return r.PhaseS }
func allocsOf(r *result) map[string]float64  { return r.Allocs }
func bytesOf(r *result) map[string]float64   { return r.AllocBytes }

func cmdReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	hangar := fs.String("hangar", "hangar", "name of the server under test")
	inproc := fs.String("inproc", "hangar-inproc", "name of the in-process Hangar runs (allocation figures)")
	baselines := fs.String("baselines", "go-nfs,ganesha,disk", "baseline names, in column order")
	fs.Parse(args)
	if fs.NArg() == 0 {
		return fmt.Errorf("report: results file required")
	}
	servers := map[string]*serverRuns{}
	for _, path := range fs.Args() {
		if err := readResults(path, servers); err != nil {
			return err
		}
	}
	writeReport(os.Stdout, servers, *hangar, *inproc, strings.Split(*baselines, ","))
	return nil
}

func readResults(path string, servers map[string]*serverRuns) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if len(strings.TrimSpace(sc.Text())) == 0 {
			continue
		}
		r := &result{}
		if err := json.Unmarshal(sc.Bytes(), r); err != nil {
			return fmt.Errorf("report: %s: %w", path, err)
		}
		s := servers[r.Server]
		if s == nil {
			s = &serverRuns{}
			servers[r.Server] = s
		}
		s.runs = append(s.runs, r)
		for _, e := range r.Errors {
			s.errors = appendUnique(s.errors, fmt.Sprintf("run %d: %s", r.Run, e))
		}
		for _, n := range r.Notes {
			s.notes = appendUnique(s.notes, n)
		}
	}
	return sc.Err()
}

func appendUnique(l []string, s string) []string {
	if slices.Contains(l, s) {
		return l
	}
	return append(l, s)
}

func writeReport(w io.Writer, servers map[string]*serverRuns, hangar, inproc string, baselines []string) {
	cols := []string{hangar}
	var bases []string
	for _, b := range baselines {
		if servers[b] != nil {
			bases = append(bases, b)
		}
	}
	cols = append(cols, bases...)
	empty := &serverRuns{}
	get := func(name string) *serverRuns {
		if s := servers[name]; s != nil {
			return s
		}
		return empty
	}
	runs := []string{}
	for _, c := range cols {
		runs = append(runs, fmt.Sprintf("%s %d", c, len(get(c).runs)))
	}
	fmt.Fprintf(w, "Medians per server (runs: %s). Ratios are Hangar's speedup over each baseline (>1 = Hangar better).\n\n", strings.Join(runs, ", "))

	hdr := []string{"metric", "unit"}
	hdr = append(hdr, cols...)
	for _, b := range bases {
		hdr = append(hdr, hangar+"/"+b)
	}
	hdr = append(hdr, "target", "met")
	var rows [][]string
	for _, m := range metricDefs {
		row := []string{m.label, m.unit}
		vals := map[string]float64{}
		for _, c := range cols {
			vals[c] = get(c).med(metricsOf, m.key)
			row = append(row, fmtNum(vals[c]))
		}
		var tg, miss []string
		met := true
		for _, b := range bases {
			ratio := vals[hangar] / vals[b]
			if m.lowerBetter {
				ratio = vals[b] / vals[hangar]
			}
			if m.key == "handles_created" {
				ratio = math.NaN()
			}
			cell := fmtNum(ratio) + "×"
			if math.IsNaN(ratio) || math.IsInf(ratio, 0) {
				cell = "–"
			}
			row = append(row, cell)
			if t, ok := m.targets[b]; ok {
				tg = append(tg, fmt.Sprintf("≥%g× %s", t, b))
				if math.IsNaN(vals[hangar]) || (!math.IsNaN(ratio) && ratio < t) {
					met = false
					miss = append(miss, b)
				}
			}
		}
		switch {
		case len(tg) == 0:
			row = append(row, "", "")
		case met:
			row = append(row, strings.Join(tg, ", "), "yes")
		default:
			row = append(row, strings.Join(tg, ", "), "NO ("+strings.Join(miss, ",")+")")
		}
		rows = append(rows, row)
	}
	table(w, hdr, rows)

	fmt.Fprintf(w, "\nPhase wall time, seconds (median):\n\n")
	hdr = append([]string{"phase"}, cols...)
	if servers[inproc] != nil {
		hdr = append(hdr, inproc)
	}
	rows = nil
	for _, p := range phaseOrder {
		row := []string{p}
		for _, c := range hdr[1:] {
			row = append(row, fmtNum(get(c).med(phasesOf, p)))
		}
		rows = append(rows, row)
	}
	table(w, hdr, rows)

	if s := servers[inproc]; s != nil {
		client := get(hangar)
		fmt.Fprintf(w, "\nHangar server heap allocations per RPC: runtime/metrics /gc/heap/allocs sampled around each phase\n"+
			"with the server in the load generator's process (%s), minus the same phase's figure with the\n"+
			"server in its own process (%s: the load generator alone). Medians; a phase's own setup\n"+
			"(one CREATE/MKDIR/COMMIT) is spread over its RPCs.\n\n", inproc, hangar)
		hdr = []string{"phase", "procedure", "server allocs/op", "server B/op", "process allocs/op", "load generator allocs/op"}
		rows = nil
		for _, p := range phaseOrder {
			in, cl := s.med(allocsOf, p), client.med(allocsOf, p)
			inb, clb := s.med(bytesOf, p), client.med(bytesOf, p)
			if math.IsNaN(cl) {
				cl, clb = 0, 0
			}
			rows = append(rows, []string{p, phaseProc[p], fmtNum(in - cl), fmtNum(inb - clb), fmtNum(in), fmtNum(cl)})
		}
		table(w, hdr, rows)
	}

	names := append(slices.Clone(cols), inproc)
	for _, c := range names {
		s := servers[c]
		if s == nil || (len(s.errors) == 0 && len(s.notes) == 0) {
			continue
		}
		fmt.Fprintf(w, "\n%s:\n", c)
		for _, e := range s.errors {
			fmt.Fprintf(w, "  error: %s\n", e)
		}
		for _, n := range s.notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
	}
}

// table prints a Markdown table with aligned columns.
func table(w io.Writer, hdr []string, rows [][]string) {
	width := make([]int, len(hdr))
	for i, h := range hdr {
		width[i] = len([]rune(h))
	}
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	line := func(cells []string) {
		var b strings.Builder
		b.WriteString("|")
		for i, c := range cells {
			b.WriteString(" " + c + strings.Repeat(" ", width[i]-len([]rune(c))) + " |")
		}
		fmt.Fprintln(w, b.String())
	}
	line(hdr)
	sep := make([]string, len(hdr))
	for i := range sep {
		sep[i] = strings.Repeat("-", width[i])
	}
	line(sep)
	for _, r := range rows {
		line(r)
	}
}
