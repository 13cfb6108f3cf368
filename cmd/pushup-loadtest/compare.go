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

// parseCompare maps the compare flags onto its config.
func parseCompare(args []string, stderr io.Writer) (cfg loadtest.CompareConfig, jsonPath string, err error) {
	cfg = loadtest.DefaultCompareConfig()
	fs := flag.NewFlagSet("pushup-loadtest compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", strings.Join(cfg.Brokers, ","), "brokers to run in turn: "+strings.Join(loadtest.Brokers, ", "))
	fs.StringVar(&cfg.Transport, "transport", cfg.Transport, "what subscribers do: longpoll, or sse (one server-sent event stream each; needed for centrifugo)")
	fs.StringVar(&cfg.Centrifugo, "centrifugo", "", "centrifugo binary (default: $"+testbed.CentrifugoEnv+", the PATH, or $(go env GOPATH)/bin; `go install github.com/centrifugal/centrifugo/v6@v6.9.1`)")
	fs.IntVar(&cfg.Subscribers, "n", cfg.Subscribers, "subscribers on one channel, one connection each (within the open-file limit)")
	fs.DurationVar(&cfg.Hold, "hold", cfg.Hold, "long-poll hold on every broker")
	fs.IntVar(&cfg.Workers, "nginx-workers", cfg.Workers, "nginx worker_processes (pushupd uses every core; Debian's Nchan crashed with 2 here, see docs/BENCHMARKS.md)")
	fanOutFlags(fs, &cfg)
	fs.StringVar(&jsonPath, "json", "", "also write the report as JSON to this file")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: pushup-loadtest compare [flags]\n\n"+
			"PushUp side by side with other long-polling brokers on this machine: each broker\n"+
			"is started in turn, the same client parks -n long polls on one channel, and the\n"+
			"same publisher sends -messages; reported per broker: memory (PSS over its\n"+
			"processes) per waiting subscriber, peak memory in the fan-out, trip times, RMP.\n"+
			"Nchan needs nginx and its module: sudo apt-get install -y nginx-light libnginx-mod-nchan.\n"+
			"With -transport=sse each subscriber holds a stream: PushUp's /v1/events, Nchan's\n"+
			"EventSource, Centrifugo's uni SSE (-brokers=pushup,nchan,centrifugo).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return cfg, "", err
	}
	if cfg.Brokers, err = wordList(*brokers, loadtest.Brokers); err != nil {
		return cfg, "", fmt.Errorf("-brokers: %w", err)
	}
	if !*quiet {
		cfg.Log = stderr
	}
	return cfg, jsonPath, cfg.Validate()
}

// fanOutFlags registers the fan-out flags compare and floor share: the
// messages, the servers' binaries and the run's timing. Each command
// registers -n, -hold and -nginx-workers itself, as their help differs.
func fanOutFlags(fs *flag.FlagSet, cfg *loadtest.CompareConfig) {
	fs.IntVar(&cfg.Messages, "messages", cfg.Messages, "messages to publish")
	fs.DurationVar(&cfg.Interval, "interval", cfg.Interval, "time between messages")
	fs.IntVar(&cfg.PayloadSize, "payload", cfg.PayloadSize, fmt.Sprintf("bytes per message (at least %d)", loadtest.MinPayloadSize))
	fs.StringVar(&cfg.Pushupd, "pushupd", "", "pushupd binary (default: go build ./cmd/pushupd into a temporary directory)")
	fs.StringVar(&cfg.Nginx, "nginx", "", "nginx binary (default: $"+testbed.NginxEnv+" or /usr/sbin/nginx)")
	fs.StringVar(&cfg.NchanModule, "nchan-module", "", "Nchan dynamic module (default: $"+testbed.NchanModuleEnv+" or Debian's libnginx-mod-nchan)")
	fs.DurationVar(&cfg.ConnectTimeout, "connect-timeout", cfg.ConnectTimeout, "how long connecting and parking every subscriber may take")
	fs.DurationVar(&cfg.Drain, "drain", cfg.Drain, "after the last publish, how long to wait for every delivery")
	fs.DurationVar(&cfg.Settle, "settle", cfg.Settle, "pause before each memory reading")
}

func runCompare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, jsonPath, err := parseCompare(args, stderr)
	if err != nil {
		return err
	}
	bin, _, cleanup, err := testbed.PreparePushupd(ctx, cfg.Pushupd)
	if err != nil {
		return err
	}
	defer cleanup()
	cfg.Pushupd = bin
	rep, err := loadtest.Compare(ctx, cfg)
	if werr := writeResult(stdout, rep.WriteText, jsonPath, rep); werr != nil {
		return werr
	}
	if err != nil {
		return err
	}
	for _, r := range rep.Results {
		if r.Error != "" {
			return fmt.Errorf("%s failed: %s", r.Broker, r.Error)
		}
	}
	return nil
}
