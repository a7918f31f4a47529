// Command hangar is the Hangar CSI driver (nfs.hangar.dev): storage server,
// CSI controller, CSI node plugin, an all-in-one mode and a small client, as
// subcommands. Run "hangar help" for the list.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/go-logr/logr"
	"google.golang.org/grpc/status"

	"github.com/hangar-csi/hangar/pkg/csicommon"
	"github.com/hangar-csi/hangar/pkg/logging"
)

// version is set with -ldflags "-X main.version=...".
var version = ""

type command struct {
	name    string
	args    string
	summary string
	flags   func(fs *flag.FlagSet) func(ctx context.Context, log logr.Logger, args []string) error
}

var commands = []command{
	{"server", "", "storage server: volumes on a local data dir, served over NFS, managed over gRPC", serverCmd},
	{"controller", "", "CSI controller (Identity + Controller), routing to storage servers", controllerCmd},
	{"node", "", "CSI node plugin (Identity + Node), mounting volumes over NFS", nodeCmd},
	{"run", "", "all in one process: storage server + controller + node on one CSI socket", runCmd},
	{"volume", "create NAME --size 1Gi | list | get ID|NAME | expand ID --size 2Gi | delete ID | snapshot ID NAME | snapshots [ID] | delete-snapshot SNAP | restore SNAP NAME | clone ID NAME", "CSI client for a running controller", volumeCmd},
	{"nfs", "", "serve one directory over NFSv4.1 and NFSv3 (no CSI)", nfsCmd},
	{"version", "", "print the version", versionCmd},
}

func main() {
	tuneScheduler(os.Args[1:])
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	csicommon.Version = versionString()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			if c := findCommand(args[1]); c != nil {
				fs, _ := newFlagSet(*c, stderr)
				fs.SetOutput(stdout)
				fs.Usage()
				return 0
			}
		}
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c := findCommand(args[0])
	if c == nil {
		fmt.Fprintf(stderr, "hangar: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	fs, logOpts := newFlagSet(*c, stderr)
	action := c.flags(fs)
	rest, err := parseInterspersed(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	log := logging.New(stderr, logOpts.format, logOpts.verbosity)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx = logr.NewContext(ctx, log)
	ctx = context.WithValue(ctx, stdoutKey{}, stdout)
	if err := action(ctx, log, rest); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "hangar %s: %v\n", c.name, err)
			fs.Usage()
			return 2
		}
		if st, ok := status.FromError(err); ok {
			fmt.Fprintf(stderr, "hangar %s: %s: %s\n", c.name, st.Code(), st.Message())
			return 1
		}
		fmt.Fprintf(stderr, "hangar %s: %v\n", c.name, err)
		return 1
	}
	return 0
}

// stdoutKey holds the io.Writer commands print results to (run's stdout).
type stdoutKey struct{}

func stdoutOf(ctx context.Context) io.Writer {
	if w, ok := ctx.Value(stdoutKey{}).(io.Writer); ok {
		return w
	}
	return os.Stdout
}

type usageError struct{ error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

type logOptions struct {
	format    string
	verbosity int
}

func findCommand(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

func newFlagSet(c command, out io.Writer) (*flag.FlagSet, *logOptions) {
	fs := flag.NewFlagSet("hangar "+c.name, flag.ContinueOnError)
	fs.SetOutput(out)
	lo := &logOptions{}
	if c.name != "version" {
		fs.StringVar(&lo.format, "log-format", "text", "log format: text (key=value) or json")
		fs.IntVar(&lo.verbosity, "v", 0, "log verbosity (1 logs every CSI call)")
	}
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: hangar %s [flags] %s\n  %s\n", c.name, c.args, c.summary)
		fs.VisitAll(func(f *flag.Flag) {
			name, u := flag.UnquoteUsage(f)
			fmt.Fprintf(w, "  --%s %s\n    \t%s", f.Name, name, u)
			if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
				fmt.Fprintf(w, " (default %q)", f.DefValue)
			}
			fmt.Fprintln(w)
		})
	}
	return fs, lo
}

// parseInterspersed parses flags that may follow positional arguments
// ("volume create NAME --size 1Gi").
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "hangar %s — CSI driver %s: NFS volumes from Hangar's own NFSv4.1/NFSv3 server on local disk\n\nusage: hangar COMMAND [flags]\n\ncommands:\n", versionString(), csicommon.DriverName)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "  %-10s %s\n\n", "help", "this list; \"hangar help COMMAND\" lists the command's flags")
	for _, c := range commands {
		fs, _ := newFlagSet(c, w)
		c.flags(fs)
		fs.Usage()
		fmt.Fprintln(w)
	}
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func versionCmd(fs *flag.FlagSet) func(context.Context, logr.Logger, []string) error {
	return func(ctx context.Context, log logr.Logger, args []string) error {
		fmt.Printf("hangar %s (%s)\n", versionString(), csicommon.DriverName)
		return nil
	}
}
