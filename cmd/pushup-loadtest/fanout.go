package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/pushuphq/pushup/loadtest"
)

// parseFanout maps the fanout flags onto loadtest.FanoutConfig. jsonPath
// is where to write the JSON report and cpuProfile where to write a CPU
// profile of this process, empty for none.
func parseFanout(args []string, stderr io.Writer) (cfg loadtest.FanoutConfig, jsonPath, cpuProfile string, err error) {
	cfg = loadtest.DefaultFanoutConfig()
	fs := flag.NewFlagSet("pushup-loadtest fanout", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&cfg.Subscribers, "n", cfg.Subscribers, "subscribers to park, one TCP connection each")
	fs.StringVar(&cfg.Channel, "channel", cfg.Channel, "the channel every subscriber listens to")
	fs.DurationVar(&cfg.Hold, "hold", cfg.Hold, "long-poll timeout each request asks for (at most the server's -max-timeout)")
	fs.IntVar(&cfg.Messages, "messages", cfg.Messages, "messages to publish once everyone is parked")
	fs.DurationVar(&cfg.Interval, "interval", cfg.Interval, "time between two publishes")
	fs.IntVar(&cfg.PayloadSize, "payload", cfg.PayloadSize, fmt.Sprintf("bytes of data per message (at least %d)", loadtest.MinPayloadSize))
	fs.StringVar(&cfg.Pushupd, "pushupd", "", "pushupd binary to run (default: go build ./cmd/pushupd into a temporary directory)")
	fs.StringVar(&cfg.Model, "model", "", "server concurrency model, passed as -model: "+strings.Join(loadtest.Models, " or ")+" (default: pass nothing)")
	serverArgs := fs.String("pushupd-args", "", "extra pushupd flags, space-separated, e.g. \"-max-timeout 3m\"")
	fs.DurationVar(&cfg.WarmUp, "warmup", cfg.WarmUp, "how long the server runs before the baseline RSS is taken")
	fs.DurationVar(&cfg.ConnectTimeout, "connect-timeout", cfg.ConnectTimeout, "how long connecting and parking everyone may take")
	fs.DurationVar(&cfg.Drain, "drain", cfg.Drain, "after the last publish, how long to wait for every delivery")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "bound on the whole run")
	fs.StringVar(&jsonPath, "json", "", "also write the report as JSON to this file")
	quiet := fs.Bool("quiet", false, "no progress line on stderr")
	serverLog := fs.Bool("server-log", false, "copy pushupd's log to stderr")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write this process's CPU profile to this file, to check the load tester is not the bottleneck")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: pushup-loadtest fanout [flags]\n\n"+
			"Starts pushupd, parks -n long-polling subscribers on one channel over real TCP\n"+
			"from this process, reports server RSS per parked subscriber, then publishes\n"+
			"-messages messages -interval apart and reports trip times, received-message\n"+
			"percentage and peak RSS during the fan-out.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return cfg, "", "", err
	}
	cfg.ServerArgs = strings.Fields(*serverArgs)
	if !*quiet {
		cfg.Progress = stderr
	}
	if *serverLog {
		cfg.DaemonLog = stderr
	}
	return cfg, jsonPath, cpuProfile, nil
}

func runFanout(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, jsonPath, cpuProfile, err := parseFanout(args, stderr)
	if err != nil {
		return err
	}
	if cpuProfile != "" {
		stop, err := startCPUProfile(cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	rep, err := loadtest.RunFanout(ctx, cfg)
	if err != nil {
		return err
	}
	return writeResult(stdout, rep.WriteTable, jsonPath, rep)
}
