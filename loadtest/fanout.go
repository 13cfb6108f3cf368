package loadtest

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/pushuphq/pushup/internal/testbed"
)

// Models pushupd may be asked to run with -model.
var Models = []string{"event", "goroutine", "thread"}

// FanoutConfig configures the fan-out experiment (issue 3): park many
// long-polling subscribers on one channel of one local pushupd, measure
// server memory per parked subscriber, then publish a few messages and
// measure how fast, and how completely, every subscriber gets each.
type FanoutConfig struct {
	// Pushupd is the pushupd binary; empty builds ./cmd/pushupd into a
	// temporary directory (the command must then run inside the module).
	Pushupd string
	// Model, if set, is passed as -model (one of Models). Empty
	// passes nothing, so builds without the flag work; the report then
	// names the model the server logs, or its default.
	Model string
	// ServerArgs are extra pushupd flags.
	ServerArgs []string
	// Subscribers is how many subscribers to park. 15,000 fits this
	// machine's 20,000-file limit in both processes with room to spare.
	Subscribers int
	// Channel is the one channel everybody subscribes to.
	Channel string
	// Hold is the long-poll timeout each request asks for, at most the
	// server's -max-timeout (120 s by default). It must outlast the run
	// phases so parked requests stay parked while memory is measured.
	Hold time.Duration
	// Messages, Interval and PayloadSize are the publish schedule.
	Messages    int
	Interval    time.Duration
	PayloadSize int
	// WarmUp, Settle, ConnectTimeout, Drain and Timeout are as in
	// RunConfig.
	WarmUp         time.Duration
	Settle         SettleConfig
	ConnectTimeout time.Duration
	Drain          time.Duration
	Timeout        time.Duration
	// Progress, if not nil, gets a status line every second.
	Progress io.Writer
	// DaemonLog, if not nil, gets pushupd's log.
	DaemonLog io.Writer
}

// DefaultFanoutConfig returns issue 3's benchmark: 15,000 subscribers,
// five 256-byte messages two seconds apart, 120 s holds.
func DefaultFanoutConfig() FanoutConfig {
	rc := DefaultRunConfig()
	return FanoutConfig{
		Subscribers:    15_000,
		Channel:        "fanout",
		Hold:           120 * time.Second,
		Messages:       5,
		Interval:       2 * time.Second,
		PayloadSize:    256,
		WarmUp:         rc.WarmUp,
		Settle:         rc.Settle,
		ConnectTimeout: rc.ConnectTimeout,
		Drain:          rc.Drain,
		Timeout:        5 * time.Minute,
	}
}

// runConfig turns the fan-out settings into a run against binary.
func (c FanoutConfig) runConfig(binary string, serverArgs []string) RunConfig {
	rc := DefaultRunConfig()
	rc.Name = "fanout"
	dc := testbed.DefaultDaemonConfig()
	dc.Binary = binary
	dc.Args = serverArgs
	dc.Log = c.DaemonLog
	rc.Server = ServerSetup{Daemons: []testbed.DaemonConfig{dc}}

	rc.Subscribers.Subscribers = c.Subscribers
	rc.Subscribers.Channels = []string{c.Channel}
	rc.Subscribers.Mode = ModeLongPoll
	rc.Subscribers.PollInterval = c.Hold

	pc := DefaultPublisherConfig()
	pc.Channels = []string{c.Channel}
	pc.Messages = c.Messages
	pc.Interval = c.Interval
	pc.PayloadSize = c.PayloadSize
	rc.Publishers = []PublisherConfig{pc}

	rc.WarmUp, rc.Settle, rc.ConnectTimeout = c.WarmUp, c.Settle, c.ConnectTimeout
	rc.Drain, rc.Timeout = c.Drain, c.Timeout
	rc.WaitParked = true
	rc.Progress = c.Progress
	return rc
}

// FanoutReport is the outcome of the fan-out experiment.
type FanoutReport struct {
	// Model is the server's concurrency model as far as it can be known:
	// the -model given, else what the server logs, else the default its
	// -h names; empty if this pushupd build has no -model flag.
	Model string `json:"model"`
	// ModelFlag reports whether this pushupd build has a -model flag.
	ModelFlag   bool   `json:"model_flag"`
	Subscribers int    `json:"subscribers"`
	Channel     string `json:"channel"`
	// RSSPerSubscriber is (ParkedRSS - BaselineRSS) / Subscribers, bytes.
	RSSPerSubscriber float64 `json:"rss_per_parked_subscriber_bytes"`
	// PeakToParked is the peak RSS during fan-out over the parked RSS.
	PeakToParked float64   `json:"peak_to_parked_ratio"`
	Run          RunResult `json:"run"`
}

// RunFanout runs the fan-out experiment.
func RunFanout(ctx context.Context, cfg FanoutConfig) (FanoutReport, error) {
	rep := FanoutReport{Subscribers: cfg.Subscribers, Channel: cfg.Channel}
	if cfg.Model != "" && !slices.Contains(Models, cfg.Model) {
		return rep, fmt.Errorf("%w: model %q: want one of %s", ErrInvalidConfig, cfg.Model, strings.Join(Models, ", "))
	}
	// Check the budget before building anything: it is the likeliest
	// mistake and the cheapest to report.
	if _, err := fileLimit("this load-test process", cfg.Subscribers); err != nil {
		return rep, err
	}

	binary, flags, cleanup, err := testbed.PreparePushupd(ctx, cfg.Pushupd)
	if err != nil {
		return rep, err
	}
	defer cleanup()
	def, hasModel := flags["model"]
	rep.ModelFlag = hasModel
	args := slices.Clone(cfg.ServerArgs)
	switch {
	case cfg.Model != "" && !hasModel:
		return rep, fmt.Errorf("%w: -model=%s was asked for, but %s has no -model flag "+
			"(this build has one concurrency model); omit -model to measure it", ErrUnsupportedFlag, cfg.Model, binary)
	case cfg.Model != "":
		args = append(args, "-model", cfg.Model)
		rep.Model = cfg.Model
	case hasModel:
		rep.Model = def
	}

	rc := cfg.runConfig(binary, args)
	results, err := Experiment{Name: "fanout", Runs: []RunConfig{rc}}.Run(ctx)
	if err != nil {
		return rep, err
	}
	rep.Run = results[0]
	if m := rep.Run.Servers[0].Model; m != "" {
		rep.Model = m // what the server says it runs wins
	}
	mem := rep.Run.Memory
	rep.RSSPerSubscriber = float64(mem.ParkedRSS-mem.BaselineRSS) / float64(cfg.Subscribers)
	if mem.ParkedRSS > 0 {
		rep.PeakToParked = float64(mem.PeakRSS) / float64(mem.ParkedRSS)
	}
	return rep, nil
}

// WriteTable prints the report for people.
func (r FanoutReport) WriteTable(w io.Writer) error {
	run := r.Run
	mem := run.Memory
	model := r.Model
	if model == "" {
		model = "(this pushupd has no -model flag)"
	}
	var b strings.Builder
	row := func(k, format string, args ...any) {
		fmt.Fprintf(&b, "  %-22s %s\n", k, fmt.Sprintf(format, args...))
	}
	b.WriteString("PushUp fan-out\n")
	if len(run.Servers) > 0 {
		s := run.Servers[0]
		row("server", "pushupd pid %d, model %s, args %q", s.PID, model, s.Args)
	}
	row("subscribers", "%d long-polling on channel %q, hold %s, one TCP connection each",
		r.Subscribers, r.Channel, run.PollInterval)
	row("connect / park", "%s / %s", round(run.Timeline.Connect), round(run.Timeline.Park))
	b.WriteString("server memory (RSS)\n")
	settled := "settled"
	if !mem.Settled {
		settled = "NOT settled: figures are the latest means"
	}
	row("baseline", "%s", size(mem.BaselineRSS))
	row("parked", "%s (%s)", size(mem.ParkedRSS), settled)
	row("per parked subscriber", "%.0f B (%.2f KiB)", r.RSSPerSubscriber, r.RSSPerSubscriber/1024)
	row("peak during fan-out", "%s = %.2f x parked (%d samples, every %s)",
		size(mem.PeakRSS), r.PeakToParked, mem.PublishSamples, mem.SampleInterval)
	row("final", "%s", size(mem.FinalRSS))
	if th := run.Threads; th.Peak > 0 {
		row("server OS threads", "%d baseline, %d parked, %d peak", th.Baseline, th.Parked, th.Peak)
	}
	row("server CPU", "%.2f s parking, %.2f s fan-out", run.CPU.ParkSeconds, run.CPU.PublishSeconds)
	row("load tester CPU", "%.2f s fan-out (same machine as the server)", run.CPU.LoadTesterPublishSeconds)
	d := run.Delivery
	fmt.Fprintf(&b, "publish trip time (%d messages of %d B, %s apart)\n",
		d.Published+d.PublishFailed, run.PayloadSize, publishInterval(run.Publishes))
	t := run.TripTime
	row("p50 / p95 / p99 / max", "%s / %s / %s / %s", ms(t.P50), ms(t.P95), ms(t.P99), ms(t.Max))
	row("mean (MPT)", "%s over %d deliveries", ms(t.Mean), t.Count)
	pl := run.PublishLatency
	row("publish request", "answered in %s p50, %s max", ms(pl.P50), ms(pl.Max))
	b.WriteString("delivery\n")
	row("received (RMP)", "%.3f%% (%d of %d expected)", d.RMP, d.Received, d.Expected)
	row("missing / duplicates", "%d / %d", d.Missing, d.Duplicates)
	if d.PublishFailed > 0 || d.Unexpected > 0 || d.Truncated > 0 || d.Foreign > 0 {
		row("anomalies", "publish failed %d, unexpected %d, truncated answers %d, foreign %d",
			d.PublishFailed, d.Unexpected, d.Truncated, d.Foreign)
	}
	if !run.Timeline.Drained {
		row("drain", "NOT drained: gave up %s after the last publish", round(run.Timeline.Drain))
	}
	b.WriteString("traffic (NT, subscribers' wire bytes, headers included)\n")
	row("whole run", "%s (%d requests, %d connections)", size(run.Traffic.Total), run.Traffic.Requests, run.Traffic.Connections)
	row("fan-out window", "%s (%d requests)", size(run.PublishTraffic.Total), run.PublishTraffic.Requests)
	row("TCP/IP (estimate)", "%s more over the whole run, not in NT", size(run.Traffic.EstimatedTCPIPBytes))
	errs := "none"
	if len(run.Errors) > 0 {
		errs = fmt.Sprint(run.Errors)
	}
	row("connection errors", "%s", errs)
	if run.MonitorErrors > 0 {
		row("sampling errors", "%d", run.MonitorErrors)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// size formats a byte count for people.
func size(b int64) string {
	switch {
	case b >= 1<<20 || b <= -1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10 || b <= -1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }

func round(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

// publishInterval is the schedule's interval as it happened, for the
// report's heading.
func publishInterval(recs []PublishRecord) time.Duration {
	if len(recs) < 2 {
		return 0
	}
	span := time.Duration(recs[len(recs)-1].SentAt - recs[0].SentAt)
	return round(span / time.Duration(len(recs)-1))
}
