package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"syscall"

	"github.com/go-logr/logr"

	"github.com/hangar-csi/hangar/pkg/nfs"
	"github.com/hangar-csi/hangar/pkg/nfs/nfs4"
	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/volume/localfs"
)

// hangarServer serves dir as export "/" with Hangar's own server: what
// `hangar nfs --root DIR` wires, kept here so the load generator can host
// the server in its own process (allocation figures) and serve without
// cmd/hangar.
func hangarServer(dir, listen string) (addr string, stop func(), err error) {
	key := filepath.Join(os.TempDir(), fmt.Sprintf("nfsload-handle-key.%d", os.Getpid()))
	fs, err := localfs.New(localfs.Options{KeyFile: key, Log: logr.Discard()})
	if err != nil {
		return "", nil, fmt.Errorf("localfs: %w", err)
	}
	if err := fs.AddExport("/", dir, "bench", nil); err != nil {
		fs.Close()
		return "", nil, fmt.Errorf("export %s: %w", dir, err)
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		fs.Close()
		return "", nil, err
	}
	srv := nfs.NewServer(fs, rpc.Options{Log: logr.Discard()}, nfs4.Options{})
	done := make(chan struct{})
	go func() { srv.Serve(l); close(done) }()
	return l.Addr().String(), func() {
		srv.Close()
		<-done
		fs.Close()
		os.Remove(key)
	}, nil
}

// startInproc serves dir with Hangar's server inside this process and
// returns its address.
func startInproc(dir string) (string, func(), error) { return hangarServer(dir, "127.0.0.1:0") }

func cmdServe(args []string) error {
	fl := flag.NewFlagSet("serve", flag.ExitOnError)
	root := fl.String("root", "", "directory to export as /")
	listen := fl.String("listen", "127.0.0.1:2049", "address to listen on")
	cpuprof := fl.String("cpuprofile", "", "write a CPU profile of the server here (until SIGINT/SIGTERM)")
	mutexprof := fl.String("mutexprofile", "", "write a mutex contention profile of the server here")
	fl.Parse(args)
	if *root == "" {
		return fmt.Errorf("serve: -root is required")
	}
	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	if *mutexprof != "" {
		runtime.SetMutexProfileFraction(5)
		defer func() {
			if f, err := os.Create(*mutexprof); err == nil {
				pprof.Lookup("mutex").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	addr, stop, err := hangarServer(*root, *listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "nfsload: Hangar server for %s on %s\n", *root, addr)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	stop()
	return nil
}
