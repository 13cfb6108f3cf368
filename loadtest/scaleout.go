package loadtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	haproxycfg "github.com/pushuphq/pushup/deploy/haproxy"
	"github.com/pushuphq/pushup/internal/testbed"
)

// Where the scale-out publisher posts (ScaleOutConfig.PublishTo).
const (
	// PublishViaHAProxy posts through HAProxy, as a web application behind
	// the same balancer would: HAProxy picks the node that takes each
	// message.
	PublishViaHAProxy = "haproxy"
	// PublishToNodes posts to the nodes directly, message k to node
	// k mod N: every node takes publications in turn.
	PublishToNodes = "nodes"
)

// PublishTargets are the values of ScaleOutConfig.PublishTo.
var PublishTargets = []string{PublishViaHAProxy, PublishToNodes}

// MaxScaleOutNodes bounds the cluster sizes of a scale-out sweep: the
// compose setup's ten server slots, and far more processes than two
// cores should share.
const MaxScaleOutNodes = 10

// ScaleOutMaxConnMargin is what HAProxy's maxconn adds to a run's
// subscribers: room for the publisher's connection and a few spare, so
// that no client of the run ever waits unaccepted.
const ScaleOutMaxConnMargin = 64

// ScaleOutConfig configures the scale-out experiment (the paper's Figures
// 12 and 13): for each number of concurrent connections and each number
// of nodes, start that many pushupd nodes (-model=event) as one cluster
// with HAProxy in front, park cc long-polling subscribers on one channel
// through HAProxy, publish a few messages, and take the mean publish trip
// time (MPT) and the received message percentage (RMP). Every run starts
// its own cluster and HAProxy, and stops them.
//
// On one machine the nodes, HAProxy and the load tester share its cores:
// adding nodes adds processes, not CPU, unlike in the paper, where each
// node was a machine of its own. The report says so.
type ScaleOutConfig struct {
	SweepConfig
	// Nodes are the cluster sizes, each 1 to MaxScaleOutNodes. A
	// one-node cluster runs with the same flags and no peers.
	Nodes []int
	// CCs are the numbers of concurrent connections. Each subscriber
	// costs HAProxy two open files (client and server side): the largest
	// cc must fit (ScaleOutMaxCC); more is refused, not capped.
	CCs []int
	// Replication is the nodes' -replication (ReplicationModes).
	Replication string
	// Balance is HAProxy's algorithm (haproxycfg.Balances).
	Balance string
	// PublishTo is where the publisher posts (PublishTargets).
	PublishTo string
	// HAProxy is the haproxy binary; empty finds one (testbed.FindHAProxy).
	HAProxy string
	// Hold is the long polls' hold and Interval the time between two
	// publishes, at the paper's scale (multiplied by TimeScale).
	Hold     time.Duration
	Interval time.Duration
	// FormTimeout bounds, per run, the wait for every node to see every
	// other (ClusterSetup.FormTimeout).
	FormTimeout time.Duration
}

// DefaultScaleOutConfig returns the paper's 1 to 4 nodes, cc from 500 to
// 8,000 doubling (16,000, the top of event-vs-thread, does not fit
// through HAProxy under a 20,000 open-file limit), unicast replication
// (the paper's), HAProxy's leastconn (production's), publishing through
// HAProxy, and event-vs-thread's schedule: long polls held 50 s, 5
// messages of 64 bytes 10 s apart.
func DefaultScaleOutConfig() ScaleOutConfig {
	return ScaleOutConfig{
		SweepConfig: defaultSweepConfig(),
		Nodes:       []int{1, 2, 3, 4},
		CCs:         []int{500, 1000, 2000, 4000, 8000},
		Replication: "unicast",
		Balance:     "leastconn",
		PublishTo:   PublishViaHAProxy,
		Hold:        50 * time.Second,
		Interval:    10 * time.Second,
		FormTimeout: 30 * time.Second,
	}
}

// Validate reports a configuration that cannot work. The open-file limit
// is checked by RunScaleOut, which raises it first.
func (c ScaleOutConfig) Validate() error {
	bad := func(format string, args ...any) error { return invalid("scale-out", format, args...) }
	if err := c.validate("scale-out", c.CCs); err != nil {
		return err
	}
	if f := setsFlag(c.ServerArgs, clusterFlags...); f != "" {
		return bad("extra pushupd flags must not set -%s: each run sets the cluster flags of every node", f)
	}
	switch {
	case len(c.Nodes) == 0 || slices.Min(c.Nodes) < 1 || slices.Max(c.Nodes) > MaxScaleOutNodes:
		return bad("want at least one node count, each 1 to %d; got %v", MaxScaleOutNodes, c.Nodes)
	case !slices.Contains(ReplicationModes, c.Replication):
		return bad("replication %q: want %s", c.Replication, strings.Join(ReplicationModes, " or "))
	case !slices.Contains(haproxycfg.Balances, c.Balance):
		return bad("balance %q: want %s", c.Balance, strings.Join(haproxycfg.Balances, " or "))
	case !slices.Contains(PublishTargets, c.PublishTo):
		return bad("publish to %q: want %s", c.PublishTo, strings.Join(PublishTargets, " or "))
	case c.Hold <= 0 || c.Interval < 0:
		return bad("Hold must be positive and Interval not negative")
	case c.FormTimeout <= 0:
		return bad("FormTimeout must be positive")
	}
	return nil
}

// ScaleOutMaxCC is the most subscribers a scale-out run can put through
// HAProxy under an open-file limit: two files each (client and server
// side) for cc + ScaleOutMaxConnMargin connections, FileMargin kept for
// HAProxy's own.
func ScaleOutMaxCC(limit uint64) int {
	return max(0, (int(limit)-testbed.FileMargin)/2-ScaleOutMaxConnMargin)
}

// checkScaleOutFiles refuses a cc that does not fit through HAProxy, or
// in the load tester and each node, under limit, saying how many do.
func checkScaleOutFiles(top int, limit uint64) error {
	if err := testbed.CheckFileBudget("this load-test process (and each pushupd, which inherits its limit)", top, limit); err != nil {
		return err
	}
	if fit := ScaleOutMaxCC(limit); top > fit {
		return fmt.Errorf("%w: scale-out: cc %d through HAProxy needs %d open files (two per connection, client and server side, "+
			"for maxconn %d = cc + %d), but the OS allows %d per process and %d are kept for the process's own, "+
			"so at most cc %d fits (raise the hard limit, e.g. ulimit -Hn or limits.conf, or use fewer subscribers)",
			ErrTooManyConnections, top, testbed.HAProxyFiles(top+ScaleOutMaxConnMargin), top+ScaleOutMaxConnMargin, ScaleOutMaxConnMargin,
			limit, testbed.FileMargin, fit)
	}
	return nil
}

// nodesLabel names the series of a cluster size: "1 node", "2 nodes".
func nodesLabel(n int) string {
	if n == 1 {
		return "1 node"
	}
	return fmt.Sprintf("%d nodes", n)
}

// runs lays out the sweep: for each cc, each cluster size, one run, so
// that an interrupted sweep has every size for the smaller cc.
func (c ScaleOutConfig) runs(pushupd, haproxy string) []sweepRun {
	hold, interval := scaled(c.Hold, c.TimeScale), scaled(c.Interval, c.TimeScale)
	var out []sweepRun
	for _, cc := range c.CCs {
		for _, n := range c.Nodes {
			rc := c.run(pushupd, fmt.Sprintf("%s cc=%d", nodesLabel(n), cc), "scale-out", "event", cc, ModeLongPoll, hold, interval)
			dc := rc.Server.Daemons[0]
			rc.Server.Daemons = nil
			for range n {
				rc.Server.Daemons = append(rc.Server.Daemons, dc)
			}
			rc.Server.Cluster = &ClusterSetup{Replication: c.Replication, FormTimeout: c.FormTimeout}
			hc := testbed.DefaultHAProxyConfig()
			hc.Binary, hc.Balance, hc.MaxConn, hc.Log = haproxy, c.Balance, cc+ScaleOutMaxConnMargin, c.DaemonLog
			rc.Server.HAProxy = &hc
			rc.Server.PublishToNodes = c.PublishTo == PublishToNodes
			rc.Timeout += c.FormTimeout + hc.StartTimeout
			out = append(out, sweepRun{rc: rc, point: Point{
				Series: nodesLabel(n), Model: "event", Mode: ModeLongPoll, CC: cc, Nodes: n,
				PaperInterval: c.Interval, PublishInterval: interval, PollInterval: hold, Messages: c.Messages,
			}})
		}
	}
	return out
}

// series names the lines of the tables and figures, in node order.
func (c ScaleOutConfig) series() []string {
	nodes := slices.Clone(c.Nodes)
	slices.Sort(nodes)
	nodes = slices.Compact(nodes)
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = nodesLabel(n)
	}
	return out
}

// scaling says in words what the time scale made of each interval.
func (c ScaleOutConfig) scaling() string {
	return holdScaling(c.TimeScale, c.Hold, c.Interval)
}

// RunScaleOut runs the scale-out sweep and returns its report. It
// refuses, before starting anything, a cc that the open-file limit cannot
// hold through HAProxy, and fails at once without haproxy. A run that
// fails is a point with its error, and the sweep goes on.
func RunScaleOut(ctx context.Context, cfg ScaleOutConfig) (Report, error) {
	rep := Report{Experiment: "scale-out", Started: time.Now(), TimeScale: cfg.TimeScale}
	if err := cfg.Validate(); err != nil {
		return rep, err
	}
	limit, err := testbed.RaiseFileLimit()
	if err != nil {
		return rep, err
	}
	top := slices.Max(cfg.CCs)
	if err := checkScaleOutFiles(top, limit); err != nil {
		return rep, err
	}
	hapBin := cfg.HAProxy
	if hapBin == "" {
		if hapBin, err = testbed.FindHAProxy(); err != nil {
			return rep, err
		}
	}
	hapVersion, err := testbed.HAProxyVersion(ctx, hapBin)
	if err != nil {
		return rep, err
	}
	binary, cleanup, err := preparePushupd(ctx, "scale-out", cfg.Pushupd, "model", "cluster-bind", "join", "replication", "cluster-key", "node-name")
	defer cleanup()
	if err != nil {
		return rep, err
	}
	// Starting and stopping a cluster and HAProxy takes well under a
	// second here: the estimate of any sweep's run holds.
	rep.runSweep(ctx, cfg.runs(binary, hapBin), cfg.scaling(), cfg.Log)
	rep.Notes = scaleOutNotes(cfg, rep.Machine, hapVersion, top, limit)
	rep.Tables, rep.Figures = scaleOutOutputs(rep.Points, cfg)
	return rep, nil
}

// scaleOutNotes says how to read the scale-out report: first of all, that
// the nodes share one machine.
func scaleOutNotes(cfg ScaleOutConfig, m Machine, hapVersion string, top int, limit uint64) []string {
	balance := "balance leastconn, production's choice (deploy/haproxy/haproxy.cfg says why): each poll goes to the node " +
		"holding the fewest connections. The paper used roundrobin (-balance roundrobin runs it); here every subscriber " +
		"re-polls at once after each message and every poll waits as long, so both keep the waiting subscribers evenly spread"
	if cfg.Balance == "roundrobin" {
		balance = "balance roundrobin, the paper's choice: each poll goes to the next node in turn. Production uses leastconn " +
			"(deploy/haproxy/haproxy.cfg says why); here every subscriber re-polls at once after each message and every poll " +
			"waits as long, so both keep the waiting subscribers evenly spread"
	}
	publish := "The publisher posts through HAProxy, as a web application behind the same balancer would: HAProxy picks the " +
		"node that takes each message, which replicates it to the others, and trip times include a balancer hop each way."
	if cfg.PublishTo == PublishToNodes {
		publish = "The publisher posts to the nodes directly, message k to node k mod N (the paper publishes to any node); the " +
			"node that takes a message replicates it to the others. Subscribers still poll through HAProxy."
	}
	return []string{
		fmt.Sprintf("ONE MACHINE: the nodes, HAProxy and the load tester all share this machine's %d cores. In the paper each "+
			"node was a 4-core machine of its own, so adding nodes added CPU, and MPT halved from 1 to 2 nodes and again from 2 to 4. "+
			"Here adding nodes adds processes, not CPU: the same cores deliver every message to the same cc subscribers, now "+
			"spread over more processes, and also replicate every publication to the N-1 other nodes. Read Figure 12 as what "+
			"clustering costs on one machine (expect MPT flat or rising with the nodes, not halving), and Figure 13 as whether "+
			"spreading the subscribers over nodes loses anything (it should not: 100%%, no duplicates). The paper's speed-up "+
			"needs a machine per node.", m.Cores),
		fmt.Sprintf("Each run starts a fresh cluster of N pushupd -model=event nodes on loopback, %s replication, node 1 "+
			"starting the cluster and the others joining it, and HAProxy in front; it publishes once every node sees all N alive "+
			"and ready, HAProxy reports every node UP, and all cc subscribers wait. A 1-node point is a cluster of one: the same "+
			"flags, no peers.", cfg.Replication),
		fmt.Sprintf("HAProxy %s runs deploy/haproxy/local.cfg.tmpl (the production haproxy.cfg with static servers and fast "+
			"health checks), maxconn cc + %d, %s. It runs in HTTP mode and so balances each poll, not each connection: a "+
			"subscriber's successive polls may go to different nodes, which its cursor allows. The paper's HAProxy balanced TCP "+
			"connections. The table of subscribers waiting per node shows the spread.", hapVersion, ScaleOutMaxConnMargin, balance),
		publish,
		fmt.Sprintf("MPT is the mean of (receive time - publisher's timestamp) over %d messages to every subscriber, as measured: "+
			"long polling's trip time does not scale with -time-scale. RMP is distinct expected messages received within the drain "+
			"(%s after the last publish) over those expected; duplicates are counted apart.", cfg.Messages, cfg.Drain),
		"Server memory is the nodes' RSS summed (/proc/<pid>/status VmRSS) with every subscriber waiting, once settled; HAProxy's " +
			"RSS is in the CSV and JSON apart. The CPU table gives, over the publish window (first publish to last delivery), the " +
			"nodes', HAProxy's and the load tester's CPU seconds: when their sum nears cores x window, trip times measure " +
			"this machine's queueing.",
		fmt.Sprintf("cc up to %d: the open-file limit here is %d per process, %d kept for each process's own files. HAProxy "+
			"holds two per subscriber (client side and server side), so at most cc %d fits through it; the load tester and each "+
			"node hold one per subscriber (at most %d). More is refused before anything starts.",
			top, limit, testbed.FileMargin, ScaleOutMaxCC(limit), int64(limit)-testbed.FileMargin),
	}
}

// scaleOutOutputs draws the data of Figures 12 and 13 as tables (plus
// trip-time percentiles, memory, the spread over nodes and CPU), and the
// figures: a line per cluster size over cc.
func scaleOutOutputs(points []Point, cfg ScaleOutConfig) ([]Table, []Figure) {
	one := []int{0}
	label := func(int) string { return "cc" }
	ccLabel := func(cc int) string { return fmt.Sprint(cc) }
	zero := func(Point) int { return 0 }
	cc := func(p Point) int { return p.CC }
	series := cfg.series()
	table := func(title string, cell func(Point) string) Table {
		return pivotTable(points, title, one, label, series, cfg.CCs, ccLabel, zero, cc, cell)
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	tables := []Table{
		table("Figure 12 data: mean publish trip time (s), by concurrent connections",
			func(p Point) string { return fmt.Sprintf("%.3f", p.TripTime.Mean.Seconds()) }),
		table("Publish trip time p50 / p95 / p99 / max (ms)",
			func(p Point) string {
				t := p.TripTime
				return ms(t.P50) + " / " + ms(t.P95) + " / " + ms(t.P99) + " / " + ms(t.Max)
			}),
		table("Figure 13 data: received message percentage (%)",
			func(p Point) string {
				s := fmt.Sprintf("%.2f", p.RMP)
				if p.Duplicates > 0 {
					s += fmt.Sprintf(" (%d dup)", p.Duplicates)
				}
				return s
			}),
		table("Server memory with every subscriber waiting, summed over the nodes (MiB RSS)",
			func(p Point) string { return fmt.Sprintf("%.1f", mib(p.SMU)) }),
		table("Subscribers waiting per node when publishing began (fewest-most)",
			func(p Point) string { return fmt.Sprintf("%d-%d", p.WaitingMin, p.WaitingMax) }),
		table("CPU seconds while publishing: nodes / HAProxy / load tester",
			func(p Point) string {
				return fmt.Sprintf("%.2f / %.2f / %.2f", p.ServerCPUSeconds, p.BalancerCPUSeconds, p.LoadTesterCPUSeconds)
			}),
	}
	all := func(Point) bool { return true }
	x := func(p Point) float64 { return float64(p.CC) }
	fig := func(name, title, ylabel string, ymax float64, y func(Point) float64) Figure {
		return Figure{Name: name, Title: title, XLabel: "concurrent connections", YLabel: ylabel, LogX: true, YMax: ymax,
			Series: figureSeries(points, series, all, x, y)}
	}
	figs := []Figure{
		fig("fig12-mpt", "Mean publish trip time, nodes behind HAProxy (one machine)", "mean publish trip time (s)", 0,
			func(p Point) float64 { return p.TripTime.Mean.Seconds() }),
		fig("fig13-rmp", "Received message percentage, nodes behind HAProxy (one machine)", "received messages (%)", 100,
			func(p Point) float64 { return p.RMP }),
	}
	// RMP sits at the top: keep the legend off it.
	figs[1].LegendBottom = true
	return tables, figs
}
