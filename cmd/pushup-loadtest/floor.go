package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/pushuphq/pushup/internal/testbed"
	"github.com/pushuphq/pushup/loadtest"
)

// parseFloor maps the floor flags onto its config: compare's fan-out
// flags, plus the targets and the perf options.
func parseFloor(args []string, stderr io.Writer) (cfg loadtest.FloorConfig, jsonPath string, err error) {
	cfg = loadtest.DefaultFloorConfig()
	fs := flag.NewFlagSet("pushup-loadtest floor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	targets := fs.String("targets", strings.Join(cfg.Targets, ","), "servers to run in turn: "+strings.Join(loadtest.FloorTargets, ", "))
	fs.IntVar(&cfg.Subscribers, "n", cfg.Subscribers, "long-poll subscribers on one channel, one connection each (within the open-file limit)")
	fs.DurationVar(&cfg.Hold, "hold", cfg.Hold, "long-poll hold on the brokers (the floor holds until the next publish)")
	fs.IntVar(&cfg.Workers, "nginx-workers", cfg.Workers, "nginx worker_processes")
	fanOutFlags(fs, &cfg.CompareConfig)
	fs.BoolVar(&cfg.Syscalls, "syscalls", cfg.Syscalls, "count each target's system calls during the fan-out with perf stat (apt-get install linux-perf)")
	fs.StringVar(&cfg.ProfileDir, "perf-record", "", "also sample each target's stacks (user and kernel) during the fan-out into DIR/<target>.perf.data; costs CPU, so compare CPU figures only between runs without it")
	fs.StringVar(&jsonPath, "json", "", "also write the report as JSON to this file")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: pushup-loadtest floor [flags]\n\n"+
			"What one fan-out delivery costs, per delivery, for the floor server (only what\n"+
			"the kernel must do: one write of a fixed answer and one read of the re-poll per\n"+
			"parked connection, around one edge-triggered epoll set), pushupd and Nginx+Nchan,\n"+
			"each started in turn and measured with compare's client: CPU (user, sys), system\n"+
			"calls (perf stat), bytes written and read, memory per waiting subscriber (RSS, PSS\n"+
			"and the kernel's TCP memory from /proc/net/sockstat), trip times.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return cfg, "", err
	}
	if cfg.Targets, err = wordList(*targets, loadtest.FloorTargets); err != nil {
		return cfg, "", fmt.Errorf("-targets: %w", err)
	}
	if !*quiet {
		cfg.Log = stderr
	}
	return cfg, jsonPath, cfg.Validate()
}

func runFloor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, jsonPath, err := parseFloor(args, stderr)
	if err != nil {
		return err
	}
	for _, t := range cfg.Targets {
		if t != "pushup" {
			continue
		}
		bin, _, cleanup, err := testbed.PreparePushupd(ctx, cfg.Pushupd)
		if err != nil {
			return err
		}
		defer cleanup()
		cfg.Pushupd = bin
	}
	rep, err := loadtest.Floor(ctx, cfg)
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
