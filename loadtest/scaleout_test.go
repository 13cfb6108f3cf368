package loadtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/internal/testbed"
)

func TestScaleOutConfigValidate(t *testing.T) {
	require.NoError(t, DefaultScaleOutConfig().Validate())
	for name, mutate := range map[string]func(*ScaleOutConfig){
		"no nodes":            func(c *ScaleOutConfig) { c.Nodes = nil },
		"zero nodes":          func(c *ScaleOutConfig) { c.Nodes = []int{0, 2} },
		"too many nodes":      func(c *ScaleOutConfig) { c.Nodes = []int{MaxScaleOutNodes + 1} },
		"no cc":               func(c *ScaleOutConfig) { c.CCs = nil },
		"zero cc":             func(c *ScaleOutConfig) { c.CCs = []int{0} },
		"unknown replication": func(c *ScaleOutConfig) { c.Replication = "multicast" },
		"unknown balance":     func(c *ScaleOutConfig) { c.Balance = "source" },
		"unknown publish to":  func(c *ScaleOutConfig) { c.PublishTo = "node1" },
		"zero hold":           func(c *ScaleOutConfig) { c.Hold = 0 },
		"zero form timeout":   func(c *ScaleOutConfig) { c.FormTimeout = 0 },
		"time scale":          func(c *ScaleOutConfig) { c.TimeScale = 2 },
		"sets -model":         func(c *ScaleOutConfig) { c.ServerArgs = []string{"-model", "thread"} },
		"sets -join":          func(c *ScaleOutConfig) { c.ServerArgs = []string{"-join=127.0.0.1:7946"} },
		"sets -replication":   func(c *ScaleOutConfig) { c.ServerArgs = []string{"--replication", "gossip"} },
	} {
		c := DefaultScaleOutConfig()
		mutate(&c)
		assert.ErrorIs(t, c.Validate(), ErrInvalidConfig, name)
	}
	c := DefaultScaleOutConfig()
	c.ServerArgs = []string{"-gc-percent", "100"}
	assert.NoError(t, c.Validate(), "other pushupd flags are the user's")
}

func TestScaleOutMaxCC(t *testing.T) {
	assert.Equal(t, 9872, ScaleOutMaxCC(20_000), "(20,000 - 128) / 2 - 64")
	assert.Equal(t, 0, ScaleOutMaxCC(100))
	require.NoError(t, checkScaleOutFiles(9872, 20_000))
	err := checkScaleOutFiles(9873, 20_000)
	require.ErrorIs(t, err, ErrTooManyConnections)
	for _, want := range []string{"through HAProxy", "two per connection", "at most cc 9872", "20000"} {
		assert.Contains(t, err.Error(), want)
	}
	err = checkScaleOutFiles(30_000, 20_000)
	require.ErrorIs(t, err, ErrTooManyConnections)
	assert.Contains(t, err.Error(), "load-test process", "the load tester's own limit first")
}

func TestScaleOutRuns(t *testing.T) {
	cfg := DefaultScaleOutConfig()
	cfg.TimeScale = 0.2
	cfg.ServerArgs = []string{"-gc-percent", "100"}
	runs := cfg.runs("/bin/pushupd", "/usr/sbin/haproxy")
	require.Len(t, runs, 5*4, "cc x nodes")
	assert.Equal(t, "1 node cc=500", runs[0].rc.Name)
	assert.Equal(t, "4 nodes cc=500", runs[3].rc.Name, "every cluster size for one cc, then the next cc")
	assert.Equal(t, "4 nodes cc=8000", runs[len(runs)-1].rc.Name)
	for _, r := range runs {
		require.NoError(t, r.rc.Validate(), r.rc.Name)
	}
	r := runs[len(runs)-2] // 3 nodes cc=8000
	s := r.rc.Server
	require.Len(t, s.Daemons, 3)
	for _, d := range s.Daemons {
		assert.Equal(t, []string{"-model", "event", "-gc-percent", "100"}, d.Args)
		assert.Equal(t, "/bin/pushupd", d.Binary)
	}
	require.NotNil(t, s.Cluster)
	assert.Equal(t, "unicast", s.Cluster.Replication)
	require.NotNil(t, s.HAProxy)
	assert.Equal(t, "/usr/sbin/haproxy", s.HAProxy.Binary)
	assert.Equal(t, "leastconn", s.HAProxy.Balance)
	assert.Equal(t, 8000+ScaleOutMaxConnMargin, s.HAProxy.MaxConn)
	assert.False(t, s.PublishToNodes, "through HAProxy by default")
	assert.Empty(t, r.rc.Subscribers.Targets, "subscribers go through HAProxy")
	assert.Equal(t, 10*time.Second, r.rc.Subscribers.PollInterval, "50 s x 0.2")
	assert.Equal(t, 2*time.Second, r.rc.Publishers[0].Interval, "10 s x 0.2")
	assert.True(t, r.rc.WaitParked)
	assert.Equal(t, Point{Series: "3 nodes", Model: "event", Mode: ModeLongPoll, CC: 8000, Nodes: 3, PaperInterval: 10 * time.Second,
		PublishInterval: 2 * time.Second, PollInterval: 10 * time.Second, Messages: 5}, r.point)

	cfg.PublishTo, cfg.Balance, cfg.Replication = PublishToNodes, "roundrobin", "gossip"
	r = cfg.runs("/bin/pushupd", "/usr/sbin/haproxy")[1]
	assert.True(t, r.rc.Server.PublishToNodes)
	assert.Equal(t, "roundrobin", r.rc.Server.HAProxy.Balance)
	assert.Equal(t, "gossip", r.rc.Server.Cluster.Replication)
	assert.Contains(t, cfg.scaling(), "long polls held 10s (paper scale 50s)")
}

func TestScaleOutRefusesBeforeStarting(t *testing.T) {
	ctx := context.Background()
	cfg := DefaultScaleOutConfig()
	cfg.Pushupd, cfg.HAProxy = "/nonexistent/pushupd", "/nonexistent/haproxy" // never reached
	cfg.CCs = []int{500, 1 << 20}
	_, err := RunScaleOut(ctx, cfg)
	require.ErrorIs(t, err, ErrTooManyConnections)
	assert.Contains(t, err.Error(), "at most", "says how many fit")

	cfg.CCs = []int{500}
	_, err = RunScaleOut(ctx, cfg)
	require.ErrorIs(t, err, ErrHAProxy, "no haproxy: fails before building or starting anything")

	cfg.Nodes = []int{1, 11}
	_, err = RunScaleOut(ctx, cfg)
	require.ErrorIs(t, err, ErrInvalidConfig)
}

// scaleOutPoints is a small scale-out sweep: 1 and 2 nodes at two cc, the
// last run failed.
func scaleOutPoints() []Point {
	var out []Point
	for _, cc := range []int{500, 1000} {
		for _, n := range []int{1, 2} {
			p := Point{Series: nodesLabel(n), Model: "event", Mode: ModeLongPoll, CC: cc, Nodes: n, Messages: 5,
				RMP: 100, Expected: int64(5 * cc), Received: int64(5 * cc), Drained: true,
				SMU: int64(n) * 20 << 20, ServerCPUSeconds: 0.5, BalancerCPUSeconds: 0.25, LoadTesterCPUSeconds: 0.75,
				WaitingMin: int64(cc / n), WaitingMax: int64(cc / n)}
			p.TripTime = LatencySummary{Count: 5 * cc, Mean: time.Duration(cc*n) * 10 * time.Microsecond,
				P50: 4 * time.Millisecond, P95: 8 * time.Millisecond, P99: 9500 * time.Microsecond, Max: 12 * time.Millisecond}
			out = append(out, p)
		}
	}
	out[1].Duplicates = 3
	out[len(out)-1].Error = "loadtest: haproxy: pid 1 exited during the run"
	return out
}

func TestScaleOutOutputs(t *testing.T) {
	cfg := DefaultScaleOutConfig()
	cfg.Nodes, cfg.CCs = []int{2, 1}, []int{500, 1000}
	tables, figs := scaleOutOutputs(scaleOutPoints(), cfg)
	require.Len(t, tables, 6)
	mpt := tables[0]
	assert.Contains(t, mpt.Title, "Figure 12")
	assert.Equal(t, []string{"500", "1000"}, mpt.Columns)
	require.Len(t, mpt.Groups, 1)
	assert.Equal(t, "cc", mpt.Groups[0].Label)
	assert.Equal(t, []TableRow{
		{Name: "1 node", Cells: []string{"0.005", "0.010"}},
		{Name: "2 nodes", Cells: []string{"0.010", "failed"}},
	}, mpt.Groups[0].Rows, "rows in node order, whatever the flag's order")
	assert.Equal(t, "4.0 / 8.0 / 9.5 / 12.0", tables[1].Groups[0].Rows[0].Cells[0])
	assert.Contains(t, tables[2].Title, "Figure 13")
	assert.Equal(t, []string{"100.00", "100.00"}, tables[2].Groups[0].Rows[0].Cells)
	assert.Equal(t, "100.00 (3 dup)", tables[2].Groups[0].Rows[1].Cells[0], "duplicates shown")
	assert.Equal(t, "40.0", tables[3].Groups[0].Rows[1].Cells[0], "memory summed over 2 nodes")
	assert.Equal(t, "250-250", tables[4].Groups[0].Rows[1].Cells[0])
	assert.Equal(t, "0.50 / 0.25 / 0.75", tables[5].Groups[0].Rows[0].Cells[0])

	require.Len(t, figs, 2)
	assert.Equal(t, "fig12-mpt", figs[0].Name)
	assert.Equal(t, "fig13-rmp", figs[1].Name)
	assert.True(t, figs[0].LogX)
	assert.True(t, figs[1].LegendBottom)
	assert.Equal(t, 100.0, figs[1].YMax)
	require.Len(t, figs[0].Series, 2)
	assert.Equal(t, "1 node", figs[0].Series[0].Name)
	assert.Equal(t, []float64{500, 1000}, figs[0].Series[0].X)
	assert.Equal(t, []float64{500}, figs[0].Series[1].X, "the failed run is a gap")

	var text strings.Builder
	rep := Report{Experiment: "scale-out", Points: scaleOutPoints(), Tables: tables,
		Notes: scaleOutNotes(cfg, Machine{Cores: 2}, "2.6.12", 1000, 20_000)}
	require.NoError(t, rep.WriteText(&text))
	out := text.String()
	assert.Contains(t, out, "ONE MACHINE: the nodes, HAProxy and the load tester all share this machine's 2 cores")
	assert.Contains(t, out, "balance leastconn")
	assert.Contains(t, out, "at most cc 9872 fits through it")
	assert.Contains(t, out, "FAILED 2 nodes cc=1000: loadtest: haproxy")
	assert.Contains(t, out, "  2 nodes")

	cfg.Balance, cfg.PublishTo = "roundrobin", PublishToNodes
	notes := strings.Join(scaleOutNotes(cfg, Machine{Cores: 2}, "2.6.12", 1000, 20_000), "\n")
	assert.Contains(t, notes, "balance roundrobin, the paper's choice")
	assert.Contains(t, notes, "message k to node k mod N")
}

// TestE2EScaleOut runs a tiny scaled scale-out sweep against child pushupd
// clusters of one and two nodes behind haproxy: every subscriber gets
// every message once, HAProxy spread the two-node run's subscribers over
// both nodes, the outputs are written, and no process is left behind.
func TestE2EScaleOut(t *testing.T) {
	const cc = 20
	cfg := DefaultScaleOutConfig()
	cfg.HAProxy = testbed.HAProxyOrSkip(t)
	cfg.Pushupd = pushupd.For(t)
	cfg.Nodes = []int{1, 2}
	cfg.CCs = []int{cc}
	cfg.TimeScale = 0.02 // hold 1 s, publish every 200 ms
	cfg.Messages = 2
	cfg.Drain = 10 * time.Second
	quick(&cfg.Settle, &cfg.WarmUp)

	rep, err := RunScaleOut(context.Background(), cfg)
	require.NoError(t, err)
	require.Len(t, rep.Points, 2)
	for _, p := range rep.Points {
		require.True(t, p.OK(), "%s: %s", p.Series, p.Error)
		assert.Equal(t, 100.0, p.RMP, p.Series)
		assert.Equal(t, int64(2*cc), p.Received, p.Series)
		assert.Zero(t, p.Duplicates, p.Series)
		assert.Zero(t, p.Errors, p.Series)
		assert.Positive(t, p.TripTime.Mean, p.Series)
		assert.Positive(t, p.SMU, p.Series)
		assert.Positive(t, p.BalancerRSS, p.Series)
	}
	two := rep.Points[1]
	assert.Equal(t, 2, two.Nodes)
	assert.Positive(t, two.WaitingMin, "both nodes held subscribers")
	for _, r := range rep.Runs {
		require.NotNil(t, r.Balancer, r.Name)
		assert.True(t, gone(r.Balancer.PID), "haproxy stopped")
		for _, s := range r.Servers {
			assert.True(t, gone(s.PID), "%s: pushupd %s stopped", r.Name, s.Name)
		}
	}
	require.Len(t, rep.Runs[1].Servers, 2)

	dir := t.TempDir()
	files, err := rep.WriteFiles(dir, []string{"svg", "png"})
	require.NoError(t, err)
	assert.Len(t, files, 4+2*2)
	var text strings.Builder
	require.NoError(t, rep.WriteText(&text))
	assert.Contains(t, text.String(), "Figure 12 data")
	assert.Contains(t, text.String(), "ONE MACHINE")
	assert.Contains(t, text.String(), "HAProxy 2.", "names haproxy's version")
}
