package loadtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pushuphq/pushup/internal/testbed"
)

// EventVsThreadConfig configures the event-vs-thread experiment (the
// paper's Figures 9-11): for each number of concurrent connections and
// each server model, park that many long-polling subscribers on one
// channel, take server memory (SMU), then publish a few messages and take
// the mean publish trip time (MPT) and the received message percentage
// (RMP). Every run starts its own pushupd.
type EventVsThreadConfig struct {
	SweepConfig
	// CCs are the numbers of concurrent connections. The largest must fit
	// in the open-file limit of this process and of pushupd
	// (testbed.CheckFileBudget); asking for more is refused, not capped.
	CCs []int
	// Models are the server models to compare (see Models).
	Models []string
	// Hold is the long polls' hold and Interval the time between two
	// publishes, at the paper's scale (multiplied by TimeScale).
	Hold     time.Duration
	Interval time.Duration
}

// DefaultEventVsThreadConfig returns the paper's range, 500 to 16,000
// concurrent connections doubling, for every model, with 50 s holds and
// 5 messages of 64 bytes 10 s apart.
func DefaultEventVsThreadConfig() EventVsThreadConfig {
	return EventVsThreadConfig{
		SweepConfig: defaultSweepConfig(),
		CCs:         []int{500, 1000, 2000, 4000, 8000, 16000},
		Models:      slices.Clone(Models),
		Hold:        50 * time.Second,
		Interval:    10 * time.Second,
	}
}

// Validate reports a configuration that cannot work.
func (c EventVsThreadConfig) Validate() error {
	bad := func(format string, args ...any) error { return invalid("event-vs-thread", format, args...) }
	if err := c.validate("event-vs-thread", c.CCs); err != nil {
		return err
	}
	switch {
	case len(c.Models) == 0:
		return bad("no models")
	case c.Hold <= 0 || c.Interval < 0:
		return bad("Hold must be positive and Interval not negative")
	}
	if m, ok := unknown(c.Models, Models); ok {
		return bad("model %q: want %s", m, strings.Join(Models, ", "))
	}
	return nil
}

// runs lays out the sweep: for each cc, each model, one run.
func (c EventVsThreadConfig) runs(binary string) []sweepRun {
	hold, interval := scaled(c.Hold, c.TimeScale), scaled(c.Interval, c.TimeScale)
	var out []sweepRun
	for _, cc := range c.CCs {
		for _, model := range c.Models {
			rc := c.run(binary, fmt.Sprintf("%s cc=%d", model, cc), "event-vs-thread", model, cc, ModeLongPoll, hold, interval)
			out = append(out, sweepRun{rc: rc, point: Point{
				Series: model, Model: model, Mode: ModeLongPoll, CC: cc, Nodes: 1,
				PaperInterval: c.Interval, PublishInterval: interval, PollInterval: hold, Messages: c.Messages,
			}})
		}
	}
	return out
}

// scaling says in words what the time scale made of each interval.
func (c EventVsThreadConfig) scaling() string {
	return holdScaling(c.TimeScale, c.Hold, c.Interval)
}

// RunEventVsThread runs the event-vs-thread sweep and returns its
// report. It refuses, before starting anything, a cc that the open-file
// limit cannot hold. A run that fails (a model that cannot hold cc
// subscribers) is a point with its error, and the sweep goes on.
func RunEventVsThread(ctx context.Context, cfg EventVsThreadConfig) (Report, error) {
	rep := Report{Experiment: "event-vs-thread", Started: time.Now(), TimeScale: cfg.TimeScale}
	if err := cfg.Validate(); err != nil {
		return rep, err
	}
	top := slices.Max(cfg.CCs)
	limit, err := fileLimit("this load-test process (and pushupd, which inherits its limit)", top)
	if err != nil {
		return rep, err
	}
	need := []string{"model"}
	if slices.Contains(cfg.Models, "thread") {
		need = append(need, "max-threads")
	}
	binary, cleanup, err := preparePushupd(ctx, "event-vs-thread", cfg.Pushupd, need...)
	defer cleanup()
	if err != nil {
		return rep, err
	}
	rep.runSweep(ctx, cfg.runs(binary), cfg.scaling(), cfg.Log)
	rep.Notes = []string{
		fmt.Sprintf("cc up to %d: the open-file limit here is %d per process, %d kept for the process's own files, "+
			"so at most %d subscribers fit in the load tester and in pushupd (one socket each).",
			top, limit, testbed.FileMargin, int64(limit)-testbed.FileMargin),
		"SMU is server RSS (/proc/<pid>/status VmRSS) with every subscriber waiting, once settled; " +
			"'per subscriber' subtracts the RSS before any connected.",
		fmt.Sprintf("MPT is the mean of (receive time - publisher's timestamp) over %d messages to every subscriber; "+
			"RMP is distinct expected messages received within the drain (%s after the last publish) over those expected.", cfg.Messages, cfg.Drain),
		"event: no goroutine or thread per waiting request; goroutine: a goroutine each; thread: a goroutine and an OS thread each " +
			"(pushupd gets -max-threads of cc + 1,024, at least 10,000). OS threads are sampled from /proc/<pid>/status.",
		"The load tester and the server share this machine's cores and memory.",
	}
	rep.Tables, rep.Figures = eventVsThreadOutputs(rep.Points, cfg)
	return rep, nil
}

// eventVsThreadOutputs draws the data of Figures 9-11 as tables (plus
// memory per subscriber and thread counts), and the figures.
func eventVsThreadOutputs(points []Point, cfg EventVsThreadConfig) ([]Table, []Figure) {
	// One group, labelled "cc" as the header's first cell, like the
	// paper's "cc=10 | 10 sec | ...".
	one := []int{0}
	label := func(int) string { return "cc" }
	ccLabel := func(cc int) string { return fmt.Sprint(cc) }
	zero := func(Point) int { return 0 }
	cc := func(p Point) int { return p.CC }
	table := func(title string, cell func(Point) string) Table {
		return pivotTable(points, title, one, label, cfg.Models, cfg.CCs, ccLabel, zero, cc, cell)
	}
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	tables := []Table{
		table("Figure 9 data: server memory with every subscriber waiting (MiB RSS), by concurrent connections",
			func(p Point) string { return fmt.Sprintf("%.1f", mib(p.SMU)) }),
		table("Server memory per waiting subscriber (KiB)",
			func(p Point) string { return fmt.Sprintf("%.2f", p.SMUPerSubscriber()/1024) }),
		table("Figure 10 data: mean publish trip time (s)",
			func(p Point) string { return fmt.Sprintf("%.3f", p.TripTime.Mean.Seconds()) }),
		table("Figure 11 data: received message percentage (%)",
			func(p Point) string { return fmt.Sprintf("%.2f", p.RMP) }),
		table("Server OS threads, peak",
			func(p Point) string { return fmt.Sprint(p.PeakThreads) }),
	}
	all := func(Point) bool { return true }
	x := func(p Point) float64 { return float64(p.CC) }
	fig := func(name, title, ylabel string, ymax float64, y func(Point) float64) Figure {
		return Figure{Name: name, Title: title, XLabel: "concurrent connections", YLabel: ylabel, LogX: true, YMax: ymax,
			Series: figureSeries(points, cfg.Models, all, x, y)}
	}
	figs := []Figure{
		fig("fig9-smu", "Server memory usage", "server RSS, all waiting (MiB)", 0, func(p Point) float64 { return mib(p.SMU) }),
		fig("fig10-mpt", "Mean publish trip time", "mean publish trip time (s)", 0, func(p Point) float64 { return p.TripTime.Mean.Seconds() }),
		fig("fig11-rmp", "Received message percentage", "received messages (%)", 100, func(p Point) float64 { return p.RMP }),
	}
	// RMP sits at the top: keep the legend off it.
	figs[2].LegendBottom = true
	return tables, figs
}
