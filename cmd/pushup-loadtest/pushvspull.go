package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/pushuphq/pushup/loadtest"
)

// parsePushVsPull maps the push-vs-pull flags onto its config.
func parsePushVsPull(args []string, stderr io.Writer) (loadtest.PushVsPullConfig, *sweepFlags, error) {
	cfg := loadtest.DefaultPushVsPullConfig()
	f := &sweepFlags{}
	fs := flag.NewFlagSet("pushup-loadtest push-vs-pull", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.register(fs, &cfg.SweepConfig, "docs/results/push-vs-pull")
	ccs := fs.String("cc", joinInts(cfg.CCs), "numbers of concurrent connections (subscribers), comma-separated")
	intervals := fs.String("intervals", joinDurations(cfg.Intervals), "publish intervals at the paper's scale (multiplied by -time-scale), comma-separated")
	methods := fs.String("methods", strings.Join(cfg.Methods, ","), "methods to compare: CP (client pull, -model=event), MLP (long polling, -model=thread), ELP (long polling, -model=event)")
	fs.DurationVar(&cfg.PullInterval, "pull-interval", cfg.PullInterval, "client pull's period at the paper's scale (multiplied by -time-scale)")
	fs.DurationVar(&cfg.Hold, "hold", cfg.Hold, "long polls' hold at the paper's scale (multiplied by -time-scale; at most pushupd's -max-timeout)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: pushup-loadtest push-vs-pull [flags]\n\n"+
			"The paper's Tables 1 and 2 (Figures 7 and 8): for each cc and publish interval, the\n"+
			"subscribers' network traffic per publish interval (NT) and the mean publish trip\n"+
			"time (MPT) of client pull (CP) and of long polling against -model=thread (MLP) and\n"+
			"-model=event (ELP). Each run starts its own pushupd. The full grid at -time-scale 1\n"+
			"takes about two hours; see docs/EXPERIMENTS.md.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := f.parse(fs, args); err != nil {
		return cfg, nil, err
	}
	var err error
	if cfg.CCs, err = intList(*ccs); err != nil {
		return cfg, nil, fmt.Errorf("-cc: %w", err)
	}
	if cfg.Intervals, err = durationList(*intervals); err != nil {
		return cfg, nil, fmt.Errorf("-intervals: %w", err)
	}
	if cfg.Methods, err = wordList(*methods, loadtest.Methods); err != nil {
		return cfg, nil, fmt.Errorf("-methods: %w", err)
	}
	f.finish(&cfg.SweepConfig, stderr)
	return cfg, f, cfg.Validate()
}

func runPushVsPull(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, f, err := parsePushVsPull(args, stderr)
	if err != nil {
		return err
	}
	return runSweep(ctx, f, args, stdout, stderr, func(ctx context.Context) (loadtest.Report, error) {
		return loadtest.RunPushVsPull(ctx, cfg)
	})
}
