package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/pushuphq/pushup/loadtest"
)

// parseCluster maps the cluster flags onto loadtest.ClusterConfig.
func parseCluster(args []string, stderr io.Writer) (cfg loadtest.ClusterConfig, jsonPath string, err error) {
	cfg = loadtest.DefaultClusterConfig()
	fs := flag.NewFlagSet("pushup-loadtest cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&cfg.Nodes, "nodes", cfg.Nodes, "cluster size; node 1 takes the publications")
	modes := fs.String("modes", strings.Join(cfg.Modes, ","), "replication modes to measure, comma-separated: "+strings.Join(loadtest.ReplicationModes, ", "))
	fs.IntVar(&cfg.Subscribers, "n", cfg.Subscribers, "long-polling subscribers, spread over the nodes other than node 1")
	fs.DurationVar(&cfg.Hold, "hold", cfg.Hold, "long-poll timeout each request asks for")
	fs.IntVar(&cfg.Messages, "messages", cfg.Messages, "messages of the trip-time schedule")
	fs.DurationVar(&cfg.Interval, "interval", cfg.Interval, "time between two messages of the trip-time schedule")
	fs.IntVar(&cfg.PayloadSize, "payload", cfg.PayloadSize, fmt.Sprintf("bytes of data per message (at least %d)", loadtest.MinPayloadSize))
	fs.BoolVar(&cfg.SameNode, "same-node", cfg.SameNode, "also measure subscribers on node 1, for reference")
	fs.IntVar(&cfg.ThroughputPublishers, "publishers", cfg.ThroughputPublishers, "throughput phase: concurrent publishers (publications in flight at most)")
	fs.IntVar(&cfg.ThroughputMessages, "publish", cfg.ThroughputMessages, "throughput phase: messages each publisher posts, as fast as answers come")
	fs.DurationVar(&cfg.SyncTimeout, "sync-timeout", cfg.SyncTimeout, "throughput phase: how long the nodes may take to hold everything")
	fs.DurationVar(&cfg.JoinTimeout, "join-timeout", cfg.JoinTimeout, "the nodes' -join-timeout (they start together, so each waits this long)")
	fs.StringVar(&cfg.Pushupd, "pushupd", "", "pushupd binary to run (default: go build ./cmd/pushupd into a temporary directory)")
	serverArgs := fs.String("pushupd-args", "", "extra pushupd flags for every node, space-separated, e.g. \"-gossip-interval 20ms\"")
	fs.StringVar(&jsonPath, "json", "", "also write the report as JSON to this file")
	quiet := fs.Bool("quiet", false, "no progress on stderr")
	serverLog := fs.Bool("server-log", false, "copy the nodes' logs to stderr")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: pushup-loadtest cluster [flags]\n\n"+
			"For each replication mode, starts a cluster of -nodes local pushupd processes\n"+
			"and measures the publish trip time to subscribers on other nodes than the\n"+
			"publisher's (and, for reference, on the same node), then replication\n"+
			"throughput: publications posted to node 1 as fast as -publishers concurrent\n"+
			"publishers go, how far the others fall behind, and when all hold everything.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return cfg, "", err
	}
	cfg.Modes = nil
	for _, m := range strings.Split(*modes, ",") {
		if m = strings.TrimSpace(m); m != "" {
			cfg.Modes = append(cfg.Modes, m)
		}
	}
	cfg.ServerArgs = strings.Fields(*serverArgs)
	if !*quiet {
		cfg.Progress = stderr
	}
	if *serverLog {
		cfg.DaemonLog = stderr
	}
	return cfg, jsonPath, cfg.Validate()
}

func runCluster(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, jsonPath, err := parseCluster(args, stderr)
	if err != nil {
		return err
	}
	rep, err := loadtest.RunCluster(ctx, cfg)
	if err != nil {
		return err
	}
	return writeResult(stdout, rep.WriteTable, jsonPath, rep)
}
