// Command pushup-loadtest drives real pushupd processes from one client
// process and reports the paper's metrics (NT, MPT, RMP, SMU). Each
// experiment is a subcommand; run one with -h for its flags.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

// command is one experiment.
type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = []command{
	{"fanout", "park N subscribers on one channel, measure RSS per parked subscriber, then fan out a few messages", runFanout},
	{"cluster", "trip time across nodes and replication throughput of a local cluster, unicast vs gossip", runCluster},
	{"push-vs-pull", "network traffic and trip time of client pull vs long polling, thread and event (Tables 1-2, Figs 7-8)", runPushVsPull},
	{"event-vs-thread", "server memory, trip time and RMP of the event, goroutine and thread models as cc grows (Figs 9-11)", runEventVsThread},
	{"scale-out", "trip time and RMP with 1 to 4 nodes in a cluster behind HAProxy, as cc grows (Figs 12-13)", runScaleOut},
	{"drain", "requests per second a node's SIGTERM sends to the node its subscribers move to, with and without -drain-spread", runDrain},
	{"compare", "PushUp, Nginx+Nchan and the kernel-only floor in one run: CPU, syscalls and bytes per delivery, trip time, memory, wrk cached-subscribe rate, ratios and issue 12 targets", runCompare},
	{"floor", "compare without the wrk phase: what one delivery costs for the floor server, PushUp and Nchan", runFloor},
	{"replot", "redraw the tables and figures of committed push-vs-pull, event-vs-thread or scale-out results from their JSON", runReplot},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "pushup-loadtest:", err)
		os.Exit(1)
	}
}

// errUsage: the command line was wrong; usage has been printed.
var errUsage = errors.New("usage")

// dispatch runs the subcommand args[0] with the rest of args.
func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return errUsage
		}
		return flag.ErrHelp
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		return c.run(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "pushup-loadtest: unknown experiment %q\n\n", args[0])
	usage(stderr)
	return errUsage
}

// startCPUProfile profiles this process into path until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: pushup-loadtest <experiment> [flags]\n\nExperiments:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-16s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun pushup-loadtest <experiment> -h for its flags.\n")
}

// parseFlags parses args with fs and refuses stray arguments: a typo must
// not cost a long run.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("unexpected arguments %q (flags start with -)", fs.Args())
	}
	return nil
}

// writeResult prints a report for people on stdout with write, then, if
// jsonPath is set, writes rep there as JSON.
func writeResult(stdout io.Writer, write func(io.Writer) error, jsonPath string, rep any) error {
	if err := write(stdout); err != nil {
		return err
	}
	if jsonPath == "" {
		return nil
	}
	return writeJSONFile(jsonPath, rep)
}

// writeJSONFile writes v to path as indented JSON, for -json.
func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
