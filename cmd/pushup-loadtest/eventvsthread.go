package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/pushuphq/pushup/loadtest"
)

// parseEventVsThread maps the event-vs-thread flags onto its config.
func parseEventVsThread(args []string, stderr io.Writer) (loadtest.EventVsThreadConfig, *sweepFlags, error) {
	cfg := loadtest.DefaultEventVsThreadConfig()
	f := &sweepFlags{}
	fs := flag.NewFlagSet("pushup-loadtest event-vs-thread", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.register(fs, &cfg.SweepConfig, "docs/results/event-vs-thread")
	ccs := fs.String("cc", joinInts(cfg.CCs), "numbers of concurrent connections (subscribers), comma-separated; more than the open-file limit holds is refused")
	models := fs.String("models", strings.Join(cfg.Models, ","), "server models to compare: "+strings.Join(loadtest.Models, ", "))
	fs.DurationVar(&cfg.Hold, "hold", cfg.Hold, "long polls' hold at the paper's scale (multiplied by -time-scale; at most pushupd's -max-timeout)")
	fs.DurationVar(&cfg.Interval, "interval", cfg.Interval, "time between two publishes at the paper's scale (multiplied by -time-scale)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: pushup-loadtest event-vs-thread [flags]\n\n"+
			"The paper's Figures 9-11: for each cc and server model, park cc long-polling\n"+
			"subscribers, take server memory (SMU), then publish -messages messages and take the\n"+
			"mean publish trip time (MPT) and received message percentage (RMP). Each run starts\n"+
			"its own pushupd. See docs/EXPERIMENTS.md.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := f.parse(fs, args); err != nil {
		return cfg, nil, err
	}
	var err error
	if cfg.CCs, err = intList(*ccs); err != nil {
		return cfg, nil, fmt.Errorf("-cc: %w", err)
	}
	if cfg.Models, err = wordList(*models, loadtest.Models); err != nil {
		return cfg, nil, fmt.Errorf("-models: %w", err)
	}
	f.finish(&cfg.SweepConfig, stderr)
	return cfg, f, cfg.Validate()
}

func runEventVsThread(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, f, err := parseEventVsThread(args, stderr)
	if err != nil {
		return err
	}
	return runSweep(ctx, f, args, stdout, stderr, func(ctx context.Context) (loadtest.Report, error) {
		return loadtest.RunEventVsThread(ctx, cfg)
	})
}
