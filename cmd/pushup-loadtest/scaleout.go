package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	haproxycfg "github.com/pushuphq/pushup/deploy/haproxy"
	"github.com/pushuphq/pushup/internal/testbed"
	"github.com/pushuphq/pushup/loadtest"
)

// parseScaleOut maps the scale-out flags onto its config.
func parseScaleOut(args []string, stderr io.Writer) (loadtest.ScaleOutConfig, *sweepFlags, error) {
	cfg := loadtest.DefaultScaleOutConfig()
	f := &sweepFlags{}
	fs := flag.NewFlagSet("pushup-loadtest scale-out", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.register(fs, &cfg.SweepConfig, "docs/results/scale-out")
	nodes := fs.String("nodes", joinInts(cfg.Nodes), fmt.Sprintf("cluster sizes, comma-separated, each 1 to %d", loadtest.MaxScaleOutNodes))
	ccs := fs.String("cc", joinInts(cfg.CCs), "numbers of concurrent connections (subscribers), comma-separated; each costs HAProxy two open files, "+
		"so more than (open-file limit - 128) / 2 - 64 (9,872 under 20,000) is refused, not capped")
	fs.StringVar(&cfg.Replication, "replication", cfg.Replication, "the nodes' -replication: "+strings.Join(loadtest.ReplicationModes, " or "))
	fs.StringVar(&cfg.Balance, "balance", cfg.Balance, "HAProxy's algorithm: leastconn (production's) or roundrobin (the paper's)")
	fs.StringVar(&cfg.PublishTo, "publish-to", cfg.PublishTo, "where the publisher posts: haproxy (through the balancer) or nodes (to each node in turn)")
	fs.StringVar(&cfg.HAProxy, "haproxy", "", "haproxy binary (default: $"+testbed.HAProxyEnv+", else /usr/sbin/haproxy, else haproxy on the PATH)")
	fs.DurationVar(&cfg.Hold, "hold", cfg.Hold, "long polls' hold at the paper's scale (multiplied by -time-scale; at most pushupd's -max-timeout)")
	fs.DurationVar(&cfg.Interval, "interval", cfg.Interval, "time between two publishes at the paper's scale (multiplied by -time-scale)")
	fs.DurationVar(&cfg.FormTimeout, "form-timeout", cfg.FormTimeout, "per run, how long the nodes may take to see each other")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: pushup-loadtest scale-out [flags]\n\n"+
			"The paper's Figures 12 and 13: for each cc and cluster size, start that many pushupd\n"+
			"nodes as one cluster with HAProxy in front (deploy/haproxy/local.cfg.tmpl), park cc\n"+
			"long-polling subscribers through HAProxy, publish -messages messages and take the mean\n"+
			"publish trip time (MPT, with percentiles) and the received message percentage (RMP).\n"+
			"Each run starts its own cluster and HAProxy. Needs haproxy (sudo apt-get install -y\n"+
			"haproxy). The nodes, HAProxy and this load tester share this machine's cores: adding\n"+
			"nodes adds processes, not CPU, unlike the paper; the report says how to read it.\n"+
			"-pushupd-args may not set -model or the cluster flags. See docs/EXPERIMENTS.md.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := f.parse(fs, args); err != nil {
		return cfg, nil, err
	}
	var err error
	if cfg.Nodes, err = intList(*nodes); err != nil {
		return cfg, nil, fmt.Errorf("-nodes: %w", err)
	}
	if cfg.CCs, err = intList(*ccs); err != nil {
		return cfg, nil, fmt.Errorf("-cc: %w", err)
	}
	if _, err := wordList(cfg.Replication, loadtest.ReplicationModes); err != nil {
		return cfg, nil, fmt.Errorf("-replication: %w", err)
	}
	if _, err := wordList(cfg.Balance, haproxycfg.Balances); err != nil {
		return cfg, nil, fmt.Errorf("-balance: %w", err)
	}
	if _, err := wordList(cfg.PublishTo, loadtest.PublishTargets); err != nil {
		return cfg, nil, fmt.Errorf("-publish-to: %w", err)
	}
	f.finish(&cfg.SweepConfig, stderr)
	return cfg, f, cfg.Validate()
}

func runScaleOut(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, f, err := parseScaleOut(args, stderr)
	if err != nil {
		return err
	}
	return runSweep(ctx, f, args, stdout, stderr, func(ctx context.Context) (loadtest.Report, error) {
		return loadtest.RunScaleOut(ctx, cfg)
	})
}
