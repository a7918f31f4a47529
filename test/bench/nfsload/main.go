// Command nfsload is Hangar's NFSv3 benchmark: a protocol-level load
// generator (many outstanding RPCs over several TCP connections, hand-written
// XDR, every byte it reads verified), a local-disk baseline and the report
// that compares servers. test/bench/run.sh drives it.
//
//	nfsload run    -name NAME -addr HOST:PORT [flags]   one run against one server, appends JSON
//	nfsload disk   -name disk -dir DIR [flags]          dd and fio on the local disk, appends JSON
//	nfsload report FILE                                 medians, ratios and targets as tables
//	nfsload serve  -root DIR -listen ADDR               Hangar's server alone
//
// Exit status: 0 ok, 1 errors (including timeouts), 3 data verification failed.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = cmdRun(os.Args[2:])
	case "disk":
		err = cmdDisk(os.Args[2:])
	case "report":
		err = cmdReport(os.Args[2:])
	case "serve":
		err = cmdServe(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nfsload:", err)
		var ve *verifyError
		if errors.As(err, &ve) {
			os.Exit(3)
		}
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: nfsload run|disk|report|serve [flags] (see -h of each)")
	os.Exit(2)
}

func appendJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if path == "" || path == "-" {
		_, err = fmt.Printf("%s\n", b)
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("open results: %w", err)
	}
	defer f.Close()
	_, err = fmt.Fprintf(f, "%s\n", b)
	return err
}

func cmdRun(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	var cfg loadConfig
	name := fs.String("name", "server", "server name in the report")
	run := fs.Int("run", 1, "run number, for the record")
	out := fs.String("out", "-", "append the JSON result to this file")
	inproc := fs.String("inproc", "", "serve this directory with Hangar's server inside this process and ignore -addr")
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:2049", "NFS server address")
	fs.StringVar(&cfg.MountAddr, "mountaddr", "", "MOUNT server address (default: -addr)")
	fs.StringVar(&cfg.Export, "export", "/", "export path to mount")
	fs.IntVar(&cfg.Conns, "conns", 4, "TCP connections")
	fs.IntVar(&cfg.Depth, "depth", 16, "outstanding RPCs per connection")
	sizeMiB := fs.Int64("size", 1024, "sequential file size, MiB")
	fs.IntVar(&cfg.RandOps, "randops", 200000, "4 KiB random reads, and as many random writes")
	fs.IntVar(&cfg.MetaFiles, "files", 10000, "files in the create/readdirplus/remove phases")
	fs.IntVar(&cfg.Handles, "handles", 200000, "files created (handles kept live) for the GETATTR phase")
	fs.IntVar(&cfg.GetattrOps, "getattrs", 500000, "GETATTR calls over the live handles")
	fs.DurationVar(&cfg.PhaseTimeout, "phase-timeout", 5*time.Minute, "limit per phase; a phase that hits it is reported as failed")
	fs.Uint64Var(&cfg.Seed, "seed", uint64(time.Now().UnixNano()), "data pattern seed")
	cpuprof := fs.String("cpuprofile", "", "write a CPU profile of the load generator here")
	only := fs.String("phases", "", "comma-separated phases to run (and those they need); default all")
	fs.Parse(args)
	if *only != "" {
		cfg.Only = map[string]bool{}
		for _, p := range strings.Split(*only, ",") {
			cfg.Only[strings.TrimSpace(p)] = true
		}
	}
	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if cfg.MountAddr == "" {
		cfg.MountAddr = cfg.Addr
	}
	cfg.Size = *sizeMiB << 20
	if cfg.Size <= 0 {
		return errors.New("-size must be positive")
	}
	res := &result{Server: *name, Run: *run}
	if *inproc != "" {
		addr, stop, err := startInproc(*inproc)
		if err != nil {
			res.InProc = true
			res.fail("setup", err)
			if aerr := appendJSON(*out, res); aerr != nil {
				return aerr
			}
			return err
		}
		defer stop()
		cfg.Addr, cfg.MountAddr, cfg.Export = addr, addr, "/"
		res.InProc = true
	}
	t0 := time.Now()
	lerr := runLoad(cfg, res)
	fmt.Fprintf(os.Stderr, "nfsload: %s run %d: %.1f s", *name, *run, time.Since(t0).Seconds())
	for _, e := range res.Errors {
		fmt.Fprintf(os.Stderr, "\n  error: %s", e)
	}
	fmt.Fprintln(os.Stderr)
	if err := appendJSON(*out, res); err != nil {
		return err
	}
	if res.Verify {
		return &verifyError{lerr.Error()}
	}
	return lerr
}
