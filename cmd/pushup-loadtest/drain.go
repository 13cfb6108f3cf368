package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pushuphq/pushup/loadtest"
)

// runDrain runs the drain experiment and prints a table, one row per
// spread.
func runDrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := loadtest.DefaultDrainConfig()
	fs := flag.NewFlagSet("pushup-loadtest drain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&cfg.Subscribers, "n", cfg.Subscribers, "subscribers parked on the node that is stopped (two connections each here)")
	spreads := fs.String("spreads", "0s,5s", "comma-separated -drain-spread values to compare; 0s is every subscriber answered at once, without a retry hint")
	fs.DurationVar(&cfg.Window, "window", cfg.Window, "window the peak request rate on the survivor is counted over")
	fs.DurationVar(&cfg.Hold, "hold", cfg.Hold, "long-poll timeout the subscribers ask for")
	fs.StringVar(&cfg.Pushupd, "pushupd", "", "pushupd binary to run (default: go build ./cmd/pushupd into a temporary directory)")
	jsonPath := fs.String("json", "", "also write the report as JSON to this file")
	serverLog := fs.Bool("server-log", false, "copy pushupd's logs to stderr")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: pushup-loadtest drain [flags]\n\n"+
			"For each spread, starts two pushupd on loopback, parks -n long polls on one,\n"+
			"sends it SIGTERM and moves every answered subscriber to the other, waiting\n"+
			"the answer's retry hint first as pushup.js does. Reports the peak rate of\n"+
			"polls the survivor receives.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg.Spreads = nil
	for _, s := range strings.Split(*spreads, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d < 0 {
			return fmt.Errorf("-spreads: %q is not a duration", s)
		}
		cfg.Spreads = append(cfg.Spreads, d)
	}
	cfg.Progress = stderr
	if *serverLog {
		cfg.DaemonLog = stderr
	}
	rep, err := loadtest.RunDrain(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%-8s %8s %8s %8s %16s %16s %10s\n", "spread", "subs", "moved", "hinted",
		"peak/"+cfg.Window.String(), "peak/10ms", "ramp")
	for _, r := range rep.Runs {
		fmt.Fprintf(stdout, "%-8s %8d %8d %8d %12.0f r/s %12.0f r/s %10s\n", r.Spread, r.Subscribers, r.Moved, r.Hinted,
			r.PeakRate, r.Peak10ms, r.Ramp.Round(time.Millisecond))
	}
	if *jsonPath != "" {
		return writeJSONFile(*jsonPath, rep)
	}
	return nil
}
