package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/pushuphq/pushup/internal/testbed"
	"github.com/pushuphq/pushup/loadtest"
)

// parseCompare maps the compare flags onto its config. floor is the same
// run without the cached-subscribe phase by default (see runFloor).
func parseCompare(name string, args []string, stderr io.Writer) (cfg loadtest.CompareConfig, jsonPath string, err error) {
	cfg = loadtest.DefaultCompareConfig()
	if name == "floor" {
		cfg.Cached.Duration = 0
	}
	cfg.Syscalls = loadtest.PerfAvailable()
	fs := flag.NewFlagSet("pushup-loadtest "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	targets := strings.Join(cfg.Targets, ",")
	targetsHelp := "servers to run in turn, in this order: " + strings.Join(loadtest.CompareTargets, ", ") + " (with -transport=sse: default pushup,nchan)"
	fs.StringVar(&targets, "targets", targets, targetsHelp)
	fs.StringVar(&targets, "brokers", targets, "the same as -targets (its older name)")
	fs.StringVar(&cfg.Transport, "transport", cfg.Transport, "what subscribers do: longpoll, or sse (one server-sent event stream each; needed for centrifugo; no floor)")
	fs.StringVar(&cfg.Centrifugo, "centrifugo", "", "centrifugo binary (default: $"+testbed.CentrifugoEnv+", the PATH, or $(go env GOPATH)/bin; `go install github.com/centrifugal/centrifugo/v6@v6.9.1`)")
	fs.IntVar(&cfg.Subscribers, "n", cfg.Subscribers, "subscribers on one channel, one connection each (within the open-file limit)")
	fs.DurationVar(&cfg.Hold, "hold", cfg.Hold, "long-poll hold on every broker (the floor holds until the next publish)")
	fs.IntVar(&cfg.Workers, "nginx-workers", cfg.Workers, "nginx worker_processes (pushupd uses every core; Debian's Nchan crashed with 2 here, see docs/BENCHMARKS.md)")
	fs.IntVar(&cfg.Messages, "messages", cfg.Messages, "messages to publish")
	fs.DurationVar(&cfg.Interval, "interval", cfg.Interval, "time between messages")
	fs.IntVar(&cfg.PayloadSize, "payload", cfg.PayloadSize, fmt.Sprintf("bytes per message (at least %d)", loadtest.MinPayloadSize))
	fs.StringVar(&cfg.Pushupd, "pushupd", "", "pushupd binary (default: go build ./cmd/pushupd into a temporary directory)")
	fs.StringVar(&cfg.Nginx, "nginx", "", "nginx binary (default: $"+testbed.NginxEnv+" or /usr/sbin/nginx)")
	fs.StringVar(&cfg.NchanModule, "nchan-module", "", "Nchan dynamic module (default: $"+testbed.NchanModuleEnv+" or Debian's libnginx-mod-nchan)")
	fs.DurationVar(&cfg.ConnectTimeout, "connect-timeout", cfg.ConnectTimeout, "how long connecting and parking every subscriber may take")
	fs.DurationVar(&cfg.Drain, "drain", cfg.Drain, "after the last publish, how long to wait for every delivery")
	fs.DurationVar(&cfg.Settle.Window, "settle", cfg.Settle.Window, "memory counts as settled once RSS has held within 1% (or 256 KiB) this long; the figure is the mean over it")
	fs.DurationVar(&cfg.Settle.Timeout, "settle-timeout", cfg.Settle.Timeout, "the longest wait for memory to settle (the report then says \"not settled\")")
	fs.DurationVar(&cfg.ParkedWait, "parked-wait", cfg.ParkedWait, "how long every subscriber has waited before parked memory is read (longer than the servers' per-connection timers)")
	fs.BoolVar(&cfg.Syscalls, "syscalls", cfg.Syscalls, "count each target's system calls during the fan-out with perf stat (default: on if perf is installed; apt-get install linux-perf)")
	fs.StringVar(&cfg.ProfileDir, "perf-record", "", "also sample each target's stacks (user and kernel) during the fan-out into DIR/<target>.perf.data; costs CPU, so compare CPU figures only between runs without it")
	fs.DurationVar(&cfg.Cached.Duration, "cached-duration", cfg.Cached.Duration, "wrk's run per broker for the cached-subscribe rate (pushup, nchan; keep-alive, one cached message); 0 skips it")
	fs.IntVar(&cfg.Cached.Connections, "cached-connections", cfg.Cached.Connections, "wrk -c")
	fs.IntVar(&cfg.Cached.Threads, "cached-threads", cfg.Cached.Threads, "wrk -t")
	fs.StringVar(&cfg.Cached.Wrk, "wrk", "", "wrk binary (default: wrk on the PATH; apt-get install wrk)")
	fs.BoolVar(&cfg.Cached.Require, "require-wrk", false, "fail when wrk is missing, instead of skipping the cached-subscribe row with a note")
	fs.StringVar(&jsonPath, "json", "", "also write the report as JSON to this file")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: pushup-loadtest %s [flags]\n\n"+
			"PushUp side by side with Nginx+Nchan and the floor server (only what the kernel\n"+
			"must do per delivery: one write of a fixed answer and one read of the re-poll per\n"+
			"parked connection, around one edge-triggered epoll set). Each target is started\n"+
			"in turn; the same client parks -n long polls on one channel and the same publisher\n"+
			"sends -messages. Per target: CPU (user, sys), system calls (perf stat) and bytes\n"+
			"written per delivery, trip times, RSS and PSS per parked subscriber, peak RSS in\n"+
			"the fan-out, the kernel's TCP buffers (/proc/net/sockstat) and slab per\n"+
			"subscriber; then wrk's cached-subscribe rate on pushup and nchan; then the ratios\n"+
			"and issue 12's targets, PASS or MISS. `floor` is the same run without wrk.\n"+
			"Nchan needs nginx and its module: sudo apt-get install -y nginx-light libnginx-mod-nchan.\n"+
			"With -transport=sse each subscriber holds a stream: PushUp's /v1/events, Nchan's\n"+
			"EventSource, Centrifugo's uni SSE (-targets=pushup,nchan,centrifugo).\n\nFlags:\n", name)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return cfg, "", err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if cfg.Transport == loadtest.TransportSSE && !set["targets"] && !set["brokers"] {
		targets = "pushup,nchan" // the floor serves long polls only
	}
	if cfg.Targets, err = wordList(targets, loadtest.CompareTargets); err != nil {
		return cfg, "", fmt.Errorf("-targets: %w", err)
	}
	if !*quiet {
		cfg.Log = stderr
	}
	return cfg, jsonPath, cfg.Validate()
}

func runCompare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return compareCommand(ctx, "compare", args, stdout, stderr)
}

// runFloor is compare without the cached-subscribe phase, by default.
func runFloor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return compareCommand(ctx, "floor", args, stdout, stderr)
}

func compareCommand(ctx context.Context, name string, args []string, stdout, stderr io.Writer) error {
	cfg, jsonPath, err := parseCompare(name, args, stderr)
	if err != nil {
		return err
	}
	if slices.Contains(cfg.Targets, "pushup") {
		bin, _, cleanup, err := testbed.PreparePushupd(ctx, cfg.Pushupd)
		if err != nil {
			return err
		}
		defer cleanup()
		cfg.Pushupd = bin
	}
	rep, err := loadtest.Compare(ctx, cfg)
	if werr := writeResult(stdout, rep.WriteText, jsonPath, rep); werr != nil {
		return werr
	}
	if err != nil {
		return err
	}
	for _, r := range rep.Results {
		if r.Error != "" {
			return fmt.Errorf("%s failed: %s", r.Target, r.Error)
		}
	}
	return nil
}
