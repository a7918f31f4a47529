// Command e2eguest runs inside the e2e QEMU guests (static build). It holds
// the guest-side halves of the e2e cases: a CSI node client, a tree
// integrity checker, a streaming writer, a commit-protocol writer/reader and
// the guest end of the host control channel.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmds := map[string]func([]string) error{
		"ctl":     ctlMain,
		"csi":     csiMain,
		"tree":    treeMain,
		"stream":  streamMain,
		"commit":  commitMain,
		"junit":   junitMain,
		"lock":    lockMain,
		"forward": forwardMain,
		"sparse":  sparseMain,
	}
	f, ok := cmds[os.Args[1]]
	if !ok {
		usage()
	}
	if err := f(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "e2eguest %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: e2eguest ctl|csi|tree|stream|commit|junit|lock|forward|sparse ...")
	os.Exit(2)
}
