package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
)

// An NFS server's clients mostly wait for each reply before sending their
// next call, so the process goes idle between calls. Go's sysmon thread
// then sleeps deeply, the next call's first system call wakes it, and it
// polls every 20 µs again: a wakeup and two context switches for every
// few dozen microseconds of a call. With one P (GOMAXPROCS=1: a one-CPU
// node or CPU limit) it also takes the P from every system call slower than
// its tick and hands it to another thread. In a one-vCPU guest through the
// kernel client this was 30% of the server's CPU and 15–19 context
// switches per call; with two Ps and sysmon kept out of deep sleep it is
// 6–7, what the kernel's own nfsd causes (test/bench/README.md).
//
// The runtime keeps sysmon out of deep sleep only while GODEBUG's
// schedtrace is set, and reads GODEBUG only at start, hence the re-exec.
// The period is the longest there is (24.8 days of uptime), so the trace
// line it enables is printed at most that often. An idle server's sysmon
// then wakes every 10 ms instead of sleeping.
const schedtraceSetting = "schedtrace=2147483647"

// servesNFS lists the commands whose process is an NFS server.
var servesNFS = map[string]bool{"server": true, "run": true, "nfs": true}

// tuneScheduler prepares the Go runtime of a process that serves NFS: at
// least two Ps, and sysmon kept awake (by re-executing itself with GODEBUG
// set, unless GODEBUG already says what schedtrace is). GOMAXPROCS or
// GODEBUG=schedtrace=0 in the environment leave the runtime's defaults.
func tuneScheduler(args []string) {
	if len(args) == 0 || !servesNFS[args[0]] {
		return
	}
	godebug := os.Getenv("GODEBUG")
	if !strings.Contains(godebug, "schedtrace=") {
		if godebug != "" {
			godebug += ","
		}
		// Replace GODEBUG rather than add a second one: getenv takes the first.
		env := []string{"GODEBUG=" + godebug + schedtraceSetting}
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "GODEBUG=") {
				env = append(env, kv)
			}
		}
		// Only returns on failure: then serve as we are.
		err := syscall.Exec("/proc/self/exe", os.Args, env)
		fmt.Fprintf(os.Stderr, "hangar: re-executing with GODEBUG=%s: %v (serving without it)\n", schedtraceSetting, err)
	}
	if os.Getenv("GOMAXPROCS") == "" && runtime.GOMAXPROCS(0) < 2 {
		runtime.GOMAXPROCS(2)
	}
}
