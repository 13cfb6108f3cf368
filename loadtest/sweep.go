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

// A sweep is an experiment of the paper's kind: runs that differ in one or
// two settings (the method or model, the concurrent connections, the
// publish interval, the number of nodes), each reduced to one Point of
// figures for tables and plots. push-vs-pull and event-vs-thread are
// sweeps, and so is scale-out: a run per (nodes, cc) whose ServerSetup
// has that many daemons in a cluster behind HAProxy, its points put in
// Series by node count.

// SweepConfig is what the configuration of every sweep has: where pushupd
// comes from, the time scale, the size of each run's publish schedule, the
// phases of each run, and where logs go.
type SweepConfig struct {
	// Pushupd is the pushupd binary; empty builds ./cmd/pushupd.
	Pushupd string
	// ServerArgs are extra pushupd flags for every run. They come after
	// the flags a run sets (-model, and -max-threads for the thread
	// model), so they may override -max-threads; -model they may not
	// set (each point's model is the sweep's to choose).
	ServerArgs []string
	// Messages is how many messages each run publishes, one per publish
	// interval, and PayloadSize their data size in bytes.
	Messages    int
	PayloadSize int
	// TimeScale multiplies every interval of the paper (publish
	// intervals, client pull's period, long polls' hold), so a grid runs
	// in minutes instead of hours: 0 < TimeScale <= 1.
	TimeScale float64
	// WarmUp, Settle, ConnectTimeout and Drain are as in RunConfig; they
	// are the harness's, not the paper's, and are not scaled.
	WarmUp         time.Duration
	Settle         SettleConfig
	ConnectTimeout time.Duration
	Drain          time.Duration
	// Log, if not nil, gets a line as each run starts and a progress line
	// every ProgressInterval.
	Log              io.Writer
	ProgressInterval time.Duration
	// DaemonLog, if not nil, gets every pushupd's log.
	DaemonLog io.Writer
}

// defaultSweepConfig: the paper's scale, 5 messages of 64 bytes per run,
// a progress line every 5 s (runs last minutes at full scale).
func defaultSweepConfig() SweepConfig {
	rc := DefaultRunConfig()
	return SweepConfig{
		Messages:         5,
		PayloadSize:      64,
		TimeScale:        1,
		WarmUp:           rc.WarmUp,
		Settle:           rc.Settle,
		ConnectTimeout:   rc.ConnectTimeout,
		Drain:            rc.Drain,
		ProgressInterval: 5 * time.Second,
	}
}

// validate reports settings that cannot work, the shared ones and the
// sweep's numbers of concurrent connections; name is the sweep's.
func (c SweepConfig) validate(name string, ccs []int) error {
	if err := checkTimeScale(c.TimeScale); err != nil {
		return err
	}
	if err := checkServerArgs(c.ServerArgs); err != nil {
		return err
	}
	switch {
	case c.Messages < 1:
		return invalid(name, "Messages must be at least 1")
	case c.Log != nil && c.ProgressInterval <= 0:
		return invalid(name, "ProgressInterval must be positive")
	case len(ccs) == 0 || slices.Min(ccs) < 1:
		return invalid(name, "want at least one cc, each at least 1; got %v", ccs)
	}
	return nil
}

// invalid is a sweep's configuration error: ErrInvalidConfig, the sweep's
// name and what is wrong.
func invalid(name, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidConfig, name, fmt.Sprintf(format, args...))
}

// unknown returns the first of got that is not one of known, and
// whether there is one.
func unknown(got, known []string) (string, bool) {
	for _, g := range got {
		if !slices.Contains(known, g) {
			return g, true
		}
	}
	return "", false
}

// fileLimit raises this process's open-file limit (the servers it starts
// inherit it) and refuses, before anything starts, conns connections
// that do not fit in the process who names.
func fileLimit(who string, conns int) (uint64, error) {
	limit, err := testbed.RaiseFileLimit()
	if err != nil {
		return 0, err
	}
	return limit, testbed.CheckFileBudget(who, conns, limit)
}

// preparePushupd returns the pushupd binary a sweep runs (binary, or one
// built from this tree) once it is known to have the flags the sweep
// needs. cleanup removes a build and is never nil.
func preparePushupd(ctx context.Context, sweep, binary string, need ...string) (bin string, cleanup func(), err error) {
	bin, flags, cleanup, err := testbed.PreparePushupd(ctx, binary)
	if err != nil {
		return "", cleanup, err
	}
	if err := testbed.RequireFlags(bin, flags, sweep, need...); err != nil {
		cleanup()
		return "", func() {}, err
	}
	return bin, cleanup, nil
}

// holdScaling says in words what the time scale made of a long-polling
// sweep's hold and publish interval.
func holdScaling(scale float64, hold, interval time.Duration) string {
	if scale == 1 {
		return fmt.Sprintf("1 (long polls held %s, publish every %s)", hold, interval)
	}
	return fmt.Sprintf("%g: every interval x %g; long polls held %s (paper scale %s), publish every %s (%s)",
		scale, scale, scaled(hold, scale), hold, scaled(interval, scale), interval)
}

// run returns one run of a sweep against binary: one pushupd with model,
// cc subscribers on channel polling in mode (poll is the pull period or
// the hold), and one publisher sending Messages messages interval apart.
// Long-polling runs publish once every subscriber waits.
func (c SweepConfig) run(binary, name, channel, model string, cc int, mode Mode, poll, interval time.Duration) RunConfig {
	rc := DefaultRunConfig()
	rc.Name = name
	dc := testbed.DefaultDaemonConfig()
	dc.Binary = binary
	dc.Args = append(modelArgs(model, cc), c.ServerArgs...)
	dc.Log = c.DaemonLog
	rc.Server = ServerSetup{Daemons: []testbed.DaemonConfig{dc}}
	rc.Subscribers.Subscribers = cc
	rc.Subscribers.Channels = []string{channel}
	rc.Subscribers.Mode = mode
	rc.Subscribers.PollInterval = poll
	pc := DefaultPublisherConfig()
	pc.Channels = rc.Subscribers.Channels
	pc.Messages, pc.Interval, pc.PayloadSize = c.Messages, interval, c.PayloadSize
	// A saturated server (the thread model with thousands waiting) can
	// take longer than the default 10 s to answer a publish it has
	// committed. Abandoning the request would turn its message into an
	// "unexpected" one, left out of RMP, and hide the latency; waiting
	// longer records both.
	pc.Timeout = sweepPublishTimeout
	rc.Publishers = []PublisherConfig{pc}
	rc.WaitParked = mode == ModeLongPoll
	rc.WarmUp, rc.Settle, rc.ConnectTimeout, rc.Drain = c.WarmUp, c.Settle, c.ConnectTimeout, c.Drain
	rc.Timeout = rc.WarmUp + 2*rc.Settle.Timeout + rc.ConnectTimeout + time.Duration(c.Messages)*max(interval, pc.Timeout) + rc.Drain + time.Minute
	rc.Progress, rc.ProgressInterval = c.Log, c.ProgressInterval
	return rc
}

// sweepPublishTimeout bounds one publish request of a sweep's publisher.
const sweepPublishTimeout = time.Minute

// Point is one run of a sweep: where it sits in the sweep, and the
// paper's figures from it. A failed run has Error set and no figures.
type Point struct {
	// Series is the line the point belongs to in tables and plots: a
	// push-vs-pull method (CP, MLP, ELP), a server model (event,
	// goroutine, thread), or a node count.
	Series string `json:"series"`
	// Model is the server's -model; Mode the subscribers' polling mode.
	Model string `json:"model"`
	Mode  Mode   `json:"mode"`
	// CC is the number of concurrent connections: subscribers, one TCP
	// connection each.
	CC int `json:"cc"`
	// Nodes is the number of servers.
	Nodes int `json:"nodes"`
	// PaperInterval is the publish interval this point stands for, and
	// PublishInterval the one run: PaperInterval times the time scale.
	PaperInterval   time.Duration `json:"paper_interval_ns"`
	PublishInterval time.Duration `json:"publish_interval_ns"`
	// PollInterval is the pull period (client pull) or the hold (long
	// polling), as run.
	PollInterval time.Duration `json:"poll_interval_ns"`
	// Messages is how many messages were published, one per interval.
	Messages int `json:"messages"`

	// NTPerInterval is NT per publish interval: the subscribers' wire
	// bytes (HTTP, headers included) over Messages whole intervals from
	// the first publish, divided by Messages. Zero without a traffic
	// window (RunConfig.TrafficWindow). RequestsPerInterval likewise
	// counts subscribe requests.
	NTPerInterval       float64 `json:"nt_bytes_per_interval"`
	RequestsPerInterval float64 `json:"requests_per_interval"`
	// TripTime is the publish trip time; its Mean is MPT.
	TripTime LatencySummary `json:"trip_time"`
	// RMP and the counts behind it (see Delivery).
	RMP        float64 `json:"rmp_percent"`
	Expected   int64   `json:"expected"`
	Received   int64   `json:"received"`
	Duplicates int64   `json:"duplicates"`
	// SMU is server RSS with every subscriber connected (and waiting, for
	// long polling), once settled; BaselineRSS before any connected;
	// PeakRSS the highest while publishing.
	SMU         int64 `json:"smu_bytes"`
	BaselineRSS int64 `json:"baseline_rss_bytes"`
	PeakRSS     int64 `json:"peak_rss_bytes"`
	// ParkedThreads and PeakThreads are the servers' OS threads.
	ParkedThreads int64 `json:"parked_threads"`
	PeakThreads   int64 `json:"peak_threads"`
	// ServerCPUSeconds is server CPU time while publishing, summed over
	// the servers, and LoadTesterCPUSeconds this process's over the same
	// window: together near cores x window, the machine is saturated.
	ServerCPUSeconds     float64 `json:"server_cpu_seconds"`
	LoadTesterCPUSeconds float64 `json:"load_tester_cpu_seconds"`
	// BalancerCPUSeconds is HAProxy's CPU time while publishing and
	// BalancerRSS its RSS with every subscriber connected through it;
	// zero without one.
	BalancerCPUSeconds float64 `json:"balancer_cpu_seconds,omitempty"`
	BalancerRSS        int64   `json:"balancer_rss_bytes,omitempty"`
	// WaitingMin and WaitingMax are the fewest and the most subscriptions
	// one server held waiting once all were parked: how evenly a
	// balancer spread them over the nodes. Zero unless long polling.
	WaitingMin int64 `json:"waiting_min,omitempty"`
	WaitingMax int64 `json:"waiting_max,omitempty"`
	// PublishLatencyMax is the slowest publish request's answer time. On
	// loopback a publish takes milliseconds; seconds mean the machine
	// stalled (it is shared with other work), and the point is suspect:
	// run that cell again.
	PublishLatencyMax time.Duration `json:"publish_latency_max_ns"`
	// Errors counts subscriber connection errors of every kind.
	Errors int64 `json:"errors"`
	// Drained reports whether every expected message arrived in time.
	Drained bool `json:"drained"`
	// Error says why the run failed; empty if it did not.
	Error string `json:"error,omitempty"`
}

// OK reports whether the run behind the point succeeded.
func (p Point) OK() bool { return p.Error == "" }

// SMUPerSubscriber is server memory per connected subscriber, bytes:
// (SMU - BaselineRSS) / CC.
func (p Point) SMUPerSubscriber() float64 {
	if p.CC == 0 {
		return 0
	}
	return float64(p.SMU-p.BaselineRSS) / float64(p.CC)
}

// fill sets the figures of p from a run's result.
func (p *Point) fill(r RunResult) {
	if p.Messages > 0 && r.WindowTraffic.Requests > 0 {
		p.NTPerInterval = float64(r.WindowTraffic.Total) / float64(p.Messages)
		p.RequestsPerInterval = float64(r.WindowTraffic.Requests) / float64(p.Messages)
	}
	p.TripTime = r.TripTime
	d := r.Delivery
	p.RMP, p.Expected, p.Received, p.Duplicates = d.RMP, d.Expected, d.Received, d.Duplicates
	p.SMU, p.BaselineRSS, p.PeakRSS = r.Memory.ParkedRSS, r.Memory.BaselineRSS, r.Memory.PeakRSS
	p.ParkedThreads, p.PeakThreads = r.Threads.Parked, r.Threads.Peak
	p.ServerCPUSeconds = r.CPU.PublishSeconds
	p.LoadTesterCPUSeconds = r.CPU.LoadTesterPublishSeconds
	if b := r.Balancer; b != nil {
		p.BalancerCPUSeconds, p.BalancerRSS = b.PublishCPUSeconds, b.ParkedRSS
	}
	if len(r.Waiting) > 0 {
		p.WaitingMin, p.WaitingMax = slices.Min(r.Waiting), slices.Max(r.Waiting)
	}
	p.PublishLatencyMax = r.PublishLatency.Max
	for _, n := range r.Errors {
		p.Errors += n
	}
	p.Drained = r.Timeline.Drained
}

// sweepRun is one run of a sweep and the point it is to give, whose
// coordinates are set and whose figures the run fills in.
type sweepRun struct {
	point Point
	rc    RunConfig
}

// runSweep runs a sweep into r: the machine, the time scale in words
// (scaling), a point and a result per run (one Experiment, RunAll: a
// failed run is a point with its Error, and the sweep goes on), and how
// long it all took. log,
// if not nil, gets the plan with an estimate, then a line as each run
// starts and one for each that fails.
func (r *Report) runSweep(ctx context.Context, runs []sweepRun, scaling string, log io.Writer) {
	name := r.Experiment
	r.Machine = DescribeMachine()
	r.Scaling = scaling
	if log != nil {
		fmt.Fprintf(log, "%s: %d runs, about %s; time scale %s\n", name, len(runs), roundEstimate(estimateDuration(runs)), scaling)
	}
	e := Experiment{Name: name}
	for _, r := range runs {
		e.Runs = append(e.Runs, r.rc)
	}
	start := time.Now()
	results, errs := e.RunAll(ctx, func(i int) {
		if log != nil {
			fmt.Fprintf(log, "== %s run %d/%d: %s (%s so far)\n", name, i+1, len(runs), runs[i].rc.Name, time.Since(start).Round(time.Second))
		}
	})
	points := make([]Point, len(runs))
	for i, r := range runs {
		points[i] = r.point
		if errs[i] != nil {
			points[i].Error = errs[i].Error()
			if log != nil {
				fmt.Fprintf(log, "== %s run %d/%d FAILED: %v\n", name, i+1, len(runs), errs[i])
			}
			continue
		}
		points[i].fill(results[i])
	}
	r.Points, r.Runs = points, results
	r.Duration = time.Since(r.Started)
}

// estimateDuration guesses how long runs take: every phase that waits a
// fixed time (warm-up, settling, the publish schedule or traffic window)
// plus a few seconds each for starting servers, connecting and draining.
// Settling can take longer (up to Settle.Timeout) on a busy machine.
func estimateDuration(runs []sweepRun) time.Duration {
	var d time.Duration
	for _, r := range runs {
		rc := r.rc
		publish := rc.TrafficWindow
		for _, p := range rc.Publishers {
			publish = max(publish, time.Duration(p.Messages-1)*p.Interval)
		}
		connect := time.Duration(rc.Subscribers.Subscribers) * 200 * time.Microsecond
		d += rc.WarmUp + 2*rc.Settle.Window + publish + connect + 3*time.Second
	}
	return d
}

// roundEstimate rounds an estimated duration as people say it: seconds
// under a minute, minutes above.
func roundEstimate(d time.Duration) time.Duration {
	if d < time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(time.Minute)
}

// checkServerArgs refuses extra pushupd flags that set -model: a sweep
// labels each point with the model it chose.
func checkServerArgs(args []string) error {
	for _, a := range args {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && name == "model" {
			return fmt.Errorf("%w: extra pushupd flags must not set -model: the experiment sets it for each run", ErrInvalidConfig)
		}
	}
	return nil
}

// checkTimeScale reports a time scale that is not a shrink factor.
func checkTimeScale(s float64) error {
	if !(s > 0 && s <= 1) {
		return fmt.Errorf("%w: time scale %g: want 0 < scale <= 1 (1 runs the paper's intervals)", ErrInvalidConfig, s)
	}
	return nil
}

// scaled is d times the time scale s, to the microsecond.
func scaled(d time.Duration, s float64) time.Duration {
	return time.Duration(float64(d) * s).Round(time.Microsecond)
}

// threadsFor is the -max-threads a thread-model server needs for cc
// waiting subscribers: one thread each plus room for the runtime, and
// never below Go's default.
func threadsFor(cc int) int { return max(10_000, cc+1024) }

// modelArgs returns pushupd's flags for model: -model, and -max-threads
// for the thread model.
func modelArgs(model string, cc int) []string {
	args := []string{"-model", model}
	if model == "thread" {
		args = append(args, "-max-threads", fmt.Sprint(threadsFor(cc)))
	}
	return args
}
