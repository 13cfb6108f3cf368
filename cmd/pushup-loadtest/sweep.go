package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pushuphq/pushup/loadtest"
)

// sweepFlags are the flags every sweep (push-vs-pull, event-vs-thread,
// scale-out) shares: where pushupd comes from, the time scale, and where the output
// goes.
type sweepFlags struct {
	serverArgs string
	out        string
	formats    string
	plots      []string // formats, parsed
	quiet      bool
	serverLog  bool
}

// register adds the shared flags to fs; those with a home in sc write
// there.
func (f *sweepFlags) register(fs *flag.FlagSet, sc *loadtest.SweepConfig, outExample string) {
	fs.StringVar(&sc.Pushupd, "pushupd", "", "pushupd binary to run (default: go build ./cmd/pushupd into a temporary directory)")
	fs.StringVar(&f.serverArgs, "pushupd-args", "", "extra pushupd flags for every run, space-separated, e.g. \"-gc-percent 100\" (not -model)")
	fs.Float64Var(&sc.TimeScale, "time-scale", sc.TimeScale, "multiply every interval of the paper (publish, pull, hold) by this, 0 < scale <= 1, so the grid runs in minutes; the output states it")
	fs.IntVar(&sc.Messages, "messages", sc.Messages, "messages each run publishes, one per publish interval")
	fs.IntVar(&sc.PayloadSize, "payload", sc.PayloadSize, fmt.Sprintf("bytes of data per message (at least %d)", loadtest.MinPayloadSize))
	fs.DurationVar(&sc.WarmUp, "warmup", sc.WarmUp, "how long each server runs before its baseline RSS is taken")
	fs.DurationVar(&sc.ConnectTimeout, "connect-timeout", sc.ConnectTimeout, "how long connecting (and parking) every subscriber of a run may take")
	fs.DurationVar(&sc.Drain, "drain", sc.Drain, "after a run's last publish, how long to wait for every delivery")
	fs.StringVar(&f.out, "out", "", "write the report into this directory (created): <experiment>.txt, .md, .csv, .json and the figures, e.g. "+outExample)
	fs.StringVar(&f.formats, "formats", strings.Join(loadtest.PlotFormats, ","), "figure formats to write with -out, comma-separated: svg, png")
	fs.BoolVar(&f.quiet, "quiet", false, "no run headers or progress lines on stderr")
	fs.BoolVar(&f.serverLog, "server-log", false, "copy every pushupd's log (and haproxy's, in scale-out) to stderr")
}

// intList parses "10,100,1000".
func intList(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("%q is not a list of integers", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// durationList parses "10s,20s"; bare numbers are seconds.
func durationList(s string) ([]time.Duration, error) {
	var out []time.Duration
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if secs, err := strconv.ParseFloat(f, 64); err == nil {
			out = append(out, time.Duration(secs*float64(time.Second)))
			continue
		}
		d, err := time.ParseDuration(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a list of durations (e.g. 10s,20s)", s)
		}
		out = append(out, d)
	}
	return out, nil
}

// wordList parses "a,b" and checks every word is one of valid.
func wordList(s string, valid []string) ([]string, error) {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if !slices.Contains(valid, f) {
			return nil, fmt.Errorf("%q: want a comma-separated list of %s", f, strings.Join(valid, ", "))
		}
		out = append(out, f)
	}
	return out, nil
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func joinDurations(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = d.String()
	}
	return strings.Join(s, ",")
}

// parse parses args with fs, refusing stray arguments and checking the
// shared flags before anything runs: a typo must not cost an hour's run.
func (f *sweepFlags) parse(fs *flag.FlagSet, args []string) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if f.formats != "" {
		plots, err := wordList(f.formats, loadtest.PlotFormats)
		if err != nil {
			return fmt.Errorf("-formats: %w", err)
		}
		f.plots = plots
	}
	return nil
}

// finish sets what the shared flags mean for sc once parsed: the extra
// server flags, and where run headers, progress lines and servers' logs
// go.
func (f *sweepFlags) finish(sc *loadtest.SweepConfig, stderr io.Writer) {
	sc.ServerArgs = strings.Fields(f.serverArgs)
	sc.Log, sc.DaemonLog = nil, nil
	if !f.quiet {
		sc.Log = stderr
	}
	if f.serverLog {
		sc.DaemonLog = stderr
	}
}

// writeReport prints the report's tables to stdout and, with -out, writes
// every output file, listing them on stderr.
func (f *sweepFlags) writeReport(rep loadtest.Report, args []string, stdout, stderr io.Writer) error {
	rep.Command = "pushup-loadtest " + rep.Experiment + " " + strings.Join(args, " ")
	if err := rep.WriteText(stdout); err != nil {
		return err
	}
	if f.out == "" {
		return nil
	}
	files, err := rep.WriteFiles(f.out, f.plots)
	for _, name := range files {
		fmt.Fprintln(stderr, "wrote", name)
	}
	return err
}

// runSweep runs an experiment that returns a report, and writes it even
// when ctx ended early (an interrupted sweep's report says which runs
// did not happen).
func runSweep(ctx context.Context, f *sweepFlags, args []string, stdout, stderr io.Writer,
	run func(context.Context) (loadtest.Report, error)) error {
	rep, err := run(ctx)
	if err != nil {
		return err
	}
	if werr := f.writeReport(rep, args, stdout, stderr); werr != nil {
		return werr
	}
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
	return nil
}
