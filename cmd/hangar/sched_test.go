package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestNFSServerTunesScheduler: a serving process re-executes itself with
// sysmon kept awake (GODEBUG's schedtrace, see sched.go), keeping the
// GODEBUG settings it was given, and leaves a schedtrace it was given alone.
func TestNFSServerTunesScheduler(t *testing.T) {
	for _, c := range []struct{ given, want string }{
		{"", schedtraceSetting},
		{"madvdontneed=1", "madvdontneed=1," + schedtraceSetting},
		{"schedtrace=0", "schedtrace=0"},
	} {
		t.Run(fmt.Sprintf("GODEBUG=%q", c.given), func(t *testing.T) {
			cmd, _ := startNFS(t, t.TempDir(), freeAddr(t), "GODEBUG="+c.given)
			// The re-exec keeps the pid; the environment is the new one.
			environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", cmd.Process.Pid))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, kv := range bytes.Split(environ, []byte{0}) {
				if v, ok := strings.CutPrefix(string(kv), "GODEBUG="); ok {
					got = append(got, v)
				}
			}
			if len(got) != 1 || got[0] != c.want {
				t.Fatalf("the server's GODEBUG = %q, want %q alone", got, c.want)
			}
		})
	}
}
