package loadtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Push-vs-pull methods, in the paper's names (section 4): how subscribers
// learn of a message.
const (
	// MethodCP is client pull: each subscriber polls with timeout=0 every
	// pull interval. Served by -model=event (pulls never wait, so the
	// model only changes how each poll is read).
	MethodCP = "CP"
	// MethodMLP is multithreaded long polling: each subscriber re-polls
	// at once after each answer, and the server (-model=thread) holds
	// each waiting request on an OS thread of its own.
	MethodMLP = "MLP"
	// MethodELP is event-driven long polling: the same subscribers
	// against -model=event.
	MethodELP = "ELP"
)

// Methods are the push-vs-pull methods, in the paper's order.
var Methods = []string{MethodCP, MethodMLP, MethodELP}

// methodSetup returns the server model and the subscribers' mode of a
// method.
func methodSetup(method string) (model string, mode Mode) {
	switch method {
	case MethodCP:
		return "event", ModePull
	case MethodMLP:
		return "thread", ModeLongPoll
	}
	return "event", ModeLongPoll
}

// PushVsPullConfig configures the push-vs-pull experiment (the paper's
// Tables 1 and 2, Figures 7 and 8): for each number of concurrent
// connections and each publish interval, the subscribers' network
// traffic per interval (NT) and the mean publish trip time (MPT) of
// client pull and of long polling against the thread and event models.
// Every run starts its own pushupd.
type PushVsPullConfig struct {
	SweepConfig
	// CCs are the numbers of concurrent connections (subscribers).
	CCs []int
	// Intervals are the publish intervals, at the paper's scale; each run
	// uses Intervals[i] * TimeScale.
	Intervals []time.Duration
	// Methods are the methods to compare (MethodCP, MethodMLP, MethodELP).
	Methods []string
	// PullInterval is client pull's period and Hold long polling's hold
	// (the timeout parameter), at the paper's scale: 1 s and 50 s.
	PullInterval time.Duration
	Hold         time.Duration
}

// DefaultPushVsPullConfig returns the paper's grid at full scale: cc in
// {10, 100, 1000} x publish interval in {10, 20, 30, 40, 50} s, client
// pull every 1 s, long polls held 50 s, 5 messages of 64 bytes per run,
// so NT is measured over 5 whole intervals.
func DefaultPushVsPullConfig() PushVsPullConfig {
	sc := defaultSweepConfig()
	sc.ConnectTimeout = time.Minute // at most 1,000 subscribers
	return PushVsPullConfig{
		SweepConfig:  sc,
		CCs:          []int{10, 100, 1000},
		Intervals:    []time.Duration{10 * time.Second, 20 * time.Second, 30 * time.Second, 40 * time.Second, 50 * time.Second},
		Methods:      slices.Clone(Methods),
		PullInterval: time.Second,
		Hold:         50 * time.Second,
	}
}

// Validate reports a configuration that cannot work.
func (c PushVsPullConfig) Validate() error {
	bad := func(format string, args ...any) error { return invalid("push-vs-pull", format, args...) }
	if err := c.validate("push-vs-pull", c.CCs); err != nil {
		return err
	}
	switch {
	case len(c.Intervals) == 0 || slices.Min(c.Intervals) <= 0:
		return bad("want at least one publish interval, each positive; got %v", c.Intervals)
	case len(c.Methods) == 0:
		return bad("no methods")
	case c.PullInterval <= 0 || c.Hold <= 0:
		return bad("PullInterval and Hold must be positive")
	}
	if m, ok := unknown(c.Methods, Methods); ok {
		return bad("method %q: want %s", m, strings.Join(Methods, ", "))
	}
	return nil
}

// runs lays out the grid: for each cc, each interval, each method, one
// run against binary (whose flags have been checked).
func (c PushVsPullConfig) runs(binary string) []sweepRun {
	var out []sweepRun
	for _, cc := range c.CCs {
		for _, paper := range c.Intervals {
			interval := scaled(paper, c.TimeScale)
			for _, method := range c.Methods {
				model, mode := methodSetup(method)
				poll := scaled(c.Hold, c.TimeScale)
				if mode == ModePull {
					poll = scaled(c.PullInterval, c.TimeScale)
				}
				rc := c.run(binary, fmt.Sprintf("%s cc=%d interval=%s", method, cc, paper), "push-vs-pull", model, cc, mode, poll, interval)
				rc.TrafficWindow = time.Duration(c.Messages) * interval
				out = append(out, sweepRun{rc: rc, point: Point{
					Series: method, Model: model, Mode: mode, CC: cc, Nodes: 1,
					PaperInterval: paper, PublishInterval: interval, PollInterval: poll, Messages: c.Messages,
				}})
			}
		}
	}
	return out
}

// scaling says in words what the time scale made of each interval.
func (c PushVsPullConfig) scaling() string {
	var iv []string
	for _, d := range c.Intervals {
		iv = append(iv, scaled(d, c.TimeScale).String())
	}
	if c.TimeScale == 1 {
		return fmt.Sprintf("1 (the paper's intervals: publish every %s, client pull every %s, long polls held %s)",
			strings.Join(iv, "/"), c.PullInterval, c.Hold)
	}
	return fmt.Sprintf("%g: every interval x %g; publish every %s (paper %s), client pull every %s (paper %s), long polls held %s (paper %s)",
		c.TimeScale, c.TimeScale, strings.Join(iv, "/"), durations(c.Intervals),
		scaled(c.PullInterval, c.TimeScale), c.PullInterval, scaled(c.Hold, c.TimeScale), c.Hold)
}

// RunPushVsPull runs the push-vs-pull grid and returns its report. A run
// that fails is a point with its error; only a configuration that cannot
// work, or a pushupd that cannot be had, fails the whole experiment.
func RunPushVsPull(ctx context.Context, cfg PushVsPullConfig) (Report, error) {
	rep := Report{Experiment: "push-vs-pull", Started: time.Now(), TimeScale: cfg.TimeScale}
	if err := cfg.Validate(); err != nil {
		return rep, err
	}
	if _, err := fileLimit("this load-test process", slices.Max(cfg.CCs)); err != nil {
		return rep, err
	}
	need := []string{"model"}
	if slices.Contains(cfg.Methods, MethodMLP) {
		need = append(need, "max-threads")
	}
	binary, cleanup, err := preparePushupd(ctx, "push-vs-pull", cfg.Pushupd, need...)
	defer cleanup()
	if err != nil {
		return rep, err
	}
	rep.runSweep(ctx, cfg.runs(binary), cfg.scaling(), cfg.Log)
	rep.Notes = []string{
		"NT is the subscribers' HTTP traffic (request and status lines, headers, bodies; not TCP/IP headers) " +
			"over the run's publish intervals, divided by their number: bytes per publish interval for all subscribers together. KB = 1,000 bytes.",
		"MPT is the mean of (receive time - publisher's timestamp) over every first receipt, as measured: it is not divided by the time scale. " +
			"Client pull's share of it, about half the pull period, shrinks with the scale; the time to handle a request does not.",
		fmt.Sprintf("CP polls with timeout=0 against -model=event; MLP and ELP long-poll against -model=thread and -model=event. "+
			"%d messages of %d bytes per run, one channel, one pushupd per run.", cfg.Messages, cfg.PayloadSize),
		"The load tester and the server share this machine's cores.",
	}
	rep.Tables, rep.Figures = pushVsPullOutputs(rep.Points, cfg)
	return rep, nil
}

// pushVsPullOutputs draws Tables 1 and 2 and Figures 7 and 8 from the
// points.
func pushVsPullOutputs(points []Point, cfg PushVsPullConfig) ([]Table, []Figure) {
	ccLabel := func(cc int) string { return fmt.Sprintf("cc=%d", cc) }
	ivLabel := func(d time.Duration) string { return fmt.Sprintf("%g s", d.Seconds()) }
	cc := func(p Point) int { return p.CC }
	iv := func(p Point) time.Duration { return p.PaperInterval }
	scale := ""
	if cfg.TimeScale != 1 {
		scale = fmt.Sprintf(" (intervals run x %g)", cfg.TimeScale)
	}
	nt := pivotTable(points, "Table 1: Network traffic per publish interval (KB), by publish interval"+scale,
		cfg.CCs, ccLabel, cfg.Methods, cfg.Intervals, ivLabel, cc, iv,
		func(p Point) string { return fmt.Sprintf("%.1f", p.NTPerInterval/1000) })
	mpt := pivotTable(points, "Table 2: Mean publish trip time (s), by publish interval"+scale,
		cfg.CCs, ccLabel, cfg.Methods, cfg.Intervals, ivLabel, cc, iv,
		func(p Point) string { return fmt.Sprintf("%.3f", p.TripTime.Mean.Seconds()) })

	top := slices.Max(cfg.CCs)
	atTop := func(p Point) bool { return p.CC == top }
	x := func(p Point) float64 { return p.PaperInterval.Seconds() }
	xLabel := "publish interval (s)"
	if cfg.TimeScale != 1 {
		xLabel = fmt.Sprintf("publish interval (s, paper scale; run x %g)", cfg.TimeScale)
	}
	figs := []Figure{{
		Name:   "fig7-nt",
		Title:  fmt.Sprintf("Network traffic of pull & push models, cc=%d", top),
		XLabel: xLabel, YLabel: "KB per publish interval",
		Series: figureSeries(points, cfg.Methods, atTop, x, func(p Point) float64 { return p.NTPerInterval / 1000 }),
	}, {
		Name:   "fig8-mpt",
		Title:  fmt.Sprintf("Mean publish trip time of pull & push models, cc=%d", top),
		XLabel: xLabel, YLabel: "mean publish trip time (s)",
		Series: figureSeries(points, cfg.Methods, atTop, x, func(p Point) float64 { return p.TripTime.Mean.Seconds() }),
	}}
	return []Table{nt, mpt}, figs
}

// durations formats a list of durations "10s/20s/30s".
func durations(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = d.String()
	}
	return strings.Join(s, "/")
}
