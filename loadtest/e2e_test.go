package loadtest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/internal/testbed"
)

// quick shortens the phases of a run for tests on loopback.
func quick(settle *SettleConfig, warmUp *time.Duration) {
	*settle = SettleConfig{Window: 200 * time.Millisecond, Tolerance: 0.05, MinSpread: 1 << 20, Timeout: 2 * time.Second}
	*warmUp = 100 * time.Millisecond
}

// gone reports whether no process has pid any more.
func gone(pid int) bool { return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) }

// TestE2EFanout runs a tiny fan-out against a real pushupd child process:
// every subscriber gets every message exactly once, and the daemon is
// gone afterwards.
func TestE2EFanout(t *testing.T) {
	cfg := DefaultFanoutConfig()
	cfg.Pushupd = pushupd.For(t)
	cfg.Subscribers = 50
	cfg.Messages = 2
	cfg.Interval = 200 * time.Millisecond
	cfg.Hold = 30 * time.Second
	cfg.Drain = 10 * time.Second
	cfg.Timeout = time.Minute
	quick(&cfg.Settle, &cfg.WarmUp)

	rep, err := RunFanout(context.Background(), cfg)
	require.NoError(t, err)
	run := rep.Run
	assert.Equal(t, Delivery{Published: 2, Expected: 100, Received: 100, RMP: 100}, run.Delivery)
	assert.Equal(t, 100, run.TripTime.Count)
	assert.Positive(t, run.TripTime.P50)
	assert.LessOrEqual(t, run.TripTime.P50, run.TripTime.Max)
	assert.Empty(t, run.Errors)
	assert.True(t, run.Timeline.Drained)
	assert.Positive(t, run.Memory.BaselineRSS)
	assert.Positive(t, run.Memory.ParkedRSS)
	assert.GreaterOrEqual(t, run.Memory.PeakRSS, run.Memory.FinalRSS)
	assert.Positive(t, run.Memory.PublishSamples)
	assert.InDelta(t, float64(run.Memory.ParkedRSS-run.Memory.BaselineRSS)/50, rep.RSSPerSubscriber, 1e-6)
	assert.Positive(t, rep.PeakToParked)
	assert.Equal(t, int64(50), run.Traffic.Connections, "keep-alive: one connection each")
	// A first answer each, then one per message (the hold outlasts the
	// run). The re-poll after the last message may or may not be written
	// when the drain ends, so requests are bounded, not exact.
	assert.Equal(t, int64(50*3), run.Traffic.Responses)
	assert.Equal(t, int64(50*2), run.PublishTraffic.Responses)
	assert.GreaterOrEqual(t, run.Traffic.Requests, int64(50*3))
	assert.LessOrEqual(t, run.Traffic.Requests, int64(50*4))
	require.Len(t, run.Servers, 1)
	assert.True(t, gone(run.Servers[0].PID), "pushupd stopped")

	var table testWriter
	require.NoError(t, rep.WriteTable(&table))
	assert.Contains(t, table.String(), "100.000% (100 of 100 expected)")
}

// TestE2EPull runs client pull against a real pushupd with the generic
// Run: no parking, polls with timeout=0 at the interval.
func TestE2EPull(t *testing.T) {
	rc := DefaultRunConfig()
	rc.Name = "pull"
	rc.Server.Daemons[0].Binary = pushupd.For(t)
	rc.Subscribers.Subscribers = 10
	rc.Subscribers.Mode = ModePull
	rc.Subscribers.PollInterval = 50 * time.Millisecond
	rc.Publishers[0].Messages = 3
	rc.Publishers[0].Interval = 100 * time.Millisecond
	rc.WaitParked = false
	rc.Drain = 10 * time.Second
	rc.Timeout = time.Minute
	quick(&rc.Settle, &rc.WarmUp)

	res, err := Experiment{Name: "e2e", Runs: []RunConfig{rc}}.Run(context.Background())
	require.NoError(t, err)
	require.Len(t, res, 1)
	r := res[0]
	assert.Equal(t, Delivery{Published: 3, Expected: 30, Received: 30, RMP: 100}, r.Delivery)
	assert.Empty(t, r.Errors)
	assert.Equal(t, int64(10), r.Traffic.Connections)
	assert.Zero(t, r.Timeline.Park)
	assert.True(t, gone(r.Servers[0].PID))
}

func TestE2EFanoutModeFlag(t *testing.T) {
	bin := pushupd.For(t)
	flags, err := testbed.PushupdFlags(context.Background(), bin)
	require.NoError(t, err)
	require.Contains(t, flags, "listen")

	cfg := DefaultFanoutConfig()
	cfg.Pushupd = bin
	cfg.Subscribers = 5
	cfg.Messages = 1
	cfg.Drain = 10 * time.Second
	cfg.Timeout = time.Minute
	quick(&cfg.Settle, &cfg.WarmUp)
	cfg.Model = "event"
	rep, err := RunFanout(context.Background(), cfg)
	if _, ok := flags["model"]; !ok {
		require.ErrorIs(t, err, ErrUnsupportedFlag, "no silent fallback to the model the binary has")
		assert.Contains(t, err.Error(), "-model")
		return
	}
	require.NoError(t, err)
	assert.Equal(t, "event", rep.Model)
	assert.Equal(t, []string{"-model", "event"}, rep.Run.Servers[0].Args)
}

func TestFanoutRefusesBadSettingsBeforeStarting(t *testing.T) {
	cfg := DefaultFanoutConfig()
	cfg.Pushupd = "/nonexistent/pushupd" // never reached
	cfg.Subscribers = 1 << 30
	_, err := RunFanout(context.Background(), cfg)
	require.ErrorIs(t, err, ErrTooManyConnections)

	cfg = DefaultFanoutConfig()
	cfg.Pushupd = "/nonexistent/pushupd"
	cfg.Model = "threads"
	_, err = RunFanout(context.Background(), cfg)
	require.ErrorIs(t, err, ErrInvalidConfig)
}

// TestRunFailsClearlyWhenSubscribersCannotPark: a hold above the
// server's -max-timeout gets 400 on every poll; the run says so instead of
// waiting for ever or measuring nothing.
func TestRunFailsClearlyWhenSubscribersCannotPark(t *testing.T) {
	rc := DefaultRunConfig()
	rc.Server.Daemons[0].Binary = pushupd.For(t)
	rc.Server.Daemons[0].Args = []string{"-max-timeout", "1s", "-default-timeout", "1s"}
	rc.Subscribers.Subscribers = 3
	rc.Subscribers.PollInterval = 5 * time.Second
	rc.ConnectTimeout = time.Second
	quick(&rc.Settle, &rc.WarmUp)
	_, err := Run(context.Background(), rc)
	require.ErrorIs(t, err, ErrNotParked)
	assert.Contains(t, err.Error(), "status_400", "the error says why")
}

// TestRunEndsWhenTheServerDies: a run does not wait out its phases when
// pushupd exits under it, and says so.
func TestRunEndsWhenTheServerDies(t *testing.T) {
	// A wrapper that kills its pushupd two seconds in, while the run
	// waits, in vain, for memory to settle.
	wrapper := filepath.Join(t.TempDir(), "dying-pushupd")
	script := "#!/bin/sh\n" + pushupd.For(t) + " \"$@\" & pid=$!\nsleep 2\nkill -9 $pid\nwait $pid\n"
	require.NoError(t, os.WriteFile(wrapper, []byte(script), 0o755))

	rc := DefaultRunConfig()
	rc.Server.Daemons[0].Binary = wrapper
	rc.Subscribers.Subscribers = 3
	quick(&rc.Settle, &rc.WarmUp)
	rc.Settle = SettleConfig{Window: time.Hour, Timeout: time.Minute} // never settles
	start := time.Now()
	res, err := Run(context.Background(), rc)
	require.ErrorIs(t, err, ErrDaemon)
	assert.Contains(t, err.Error(), "exited during the run")
	// Which phase notices first depends on the machine's speed: the
	// settle wait ("interrupted during settle") or, on a loaded machine,
	// the metrics read of an earlier phase. Either way the death is named.
	assert.Less(t, time.Since(start), 30*time.Second, "the run ended when the server died")
	assert.True(t, gone(res.Servers[0].PID))
}

// testWriter collects output.
type testWriter struct{ b []byte }

func (w *testWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }
func (w *testWriter) String() string              { return string(w.b) }

// TestE2EPushVsPull runs a tiny scaled push-vs-pull grid against real
// pushupd processes (client pull and long polling on the event model,
// long polling on the thread model): every message arrives once, client
// pull costs more traffic per interval the longer the interval, long
// polling about one round trip per subscriber and interval, and the
// outputs are written.
func TestE2EPushVsPull(t *testing.T) {
	cfg := DefaultPushVsPullConfig()
	cfg.Pushupd = pushupd.For(t)
	cfg.CCs = []int{6}
	cfg.Intervals = []time.Duration{10 * time.Second, 20 * time.Second}
	cfg.TimeScale = 0.01 // publish every 100 and 200 ms, pull every 10 ms, hold 500 ms
	cfg.Messages = 2
	cfg.Drain = 10 * time.Second
	quick(&cfg.Settle, &cfg.WarmUp)

	rep, err := RunPushVsPull(context.Background(), cfg)
	require.NoError(t, err)
	require.Len(t, rep.Points, 2*3)
	nt := map[string]float64{}
	for _, p := range rep.Points {
		name := p.Series + " " + p.PaperInterval.String()
		require.True(t, p.OK(), "%s: %s", name, p.Error)
		assert.Equal(t, 100.0, p.RMP, name)
		assert.Equal(t, int64(12), p.Received, name)
		assert.Zero(t, p.Duplicates, name)
		assert.Zero(t, p.Errors, name)
		assert.Positive(t, p.NTPerInterval, name)
		nt[name] = p.NTPerInterval
	}
	for _, iv := range []string{"10s", "20s"} {
		assert.Greater(t, nt["CP "+iv], 2*nt["ELP "+iv], "client pull polls ~10 times per interval, long polling about once")
	}
	assert.Greater(t, nt["CP 20s"], 1.5*nt["CP 10s"], "client pull traffic grows with the interval")
	assert.InDelta(t, nt["ELP 10s"], nt["ELP 20s"], 0.5*nt["ELP 10s"], "long polling traffic does not")
	assert.Contains(t, rep.Scaling, "client pull every 10ms (paper 1s)")

	dir := t.TempDir()
	files, err := rep.WriteFiles(dir, []string{"svg", "png"})
	require.NoError(t, err)
	assert.Len(t, files, 4+2*2)
	var table testWriter
	require.NoError(t, rep.WriteText(&table))
	assert.Contains(t, table.String(), "Table 1: Network traffic per publish interval (KB)")
	for _, r := range rep.Runs {
		assert.True(t, gone(r.Servers[0].PID), "pushupd stopped")
	}
}

// TestE2EEventVsThread runs a tiny scaled event-vs-thread sweep: every
// model delivers every message once, and the thread model really runs an
// OS thread per waiting subscriber, which the event model does not.
func TestE2EEventVsThread(t *testing.T) {
	const cc = 40
	cfg := DefaultEventVsThreadConfig()
	cfg.Pushupd = pushupd.For(t)
	cfg.CCs = []int{cc}
	cfg.TimeScale = 0.02 // hold 1 s, publish every 200 ms
	cfg.Messages = 2
	cfg.Drain = 10 * time.Second
	quick(&cfg.Settle, &cfg.WarmUp)

	rep, err := RunEventVsThread(context.Background(), cfg)
	require.NoError(t, err)
	require.Len(t, rep.Points, 3)
	threads := map[string]int64{}
	for _, p := range rep.Points {
		require.True(t, p.OK(), "%s: %s", p.Series, p.Error)
		assert.Equal(t, 100.0, p.RMP, p.Series)
		assert.Equal(t, int64(2*cc), p.Received, p.Series)
		assert.Zero(t, p.Duplicates, p.Series)
		assert.Positive(t, p.SMU, p.Series)
		assert.Positive(t, p.TripTime.Mean, p.Series)
		threads[p.Series] = p.PeakThreads
	}
	t.Logf("peak OS threads of pushupd with %d waiting subscribers: %v", cc, threads)
	assert.Greater(t, threads["thread"], threads["event"]+cc/2, "an OS thread per waiting subscriber: %v", threads)
	assert.Less(t, threads["event"], int64(cc), "the event model's threads do not follow the subscribers: %v", threads)
	require.Len(t, rep.Tables, 5)
	require.Len(t, rep.Figures, 3)
	assert.Equal(t, []float64{cc}, rep.Figures[0].Series[2].X)
	assert.Contains(t, rep.Notes[0], "cc up to 40")
}

// TestE2ECluster runs a tiny cluster experiment: three pushupd nodes,
// subscribers on the nodes the publisher does not post to get every
// message once, and after a burst every node holds every publication.
func TestE2ECluster(t *testing.T) {
	cfg := DefaultClusterConfig()
	cfg.Pushupd = pushupd.For(t)
	cfg.Modes = []string{"unicast"}
	cfg.Subscribers, cfg.Messages, cfg.Interval = 20, 5, 10*time.Millisecond
	cfg.ThroughputPublishers, cfg.ThroughputMessages = 2, 50
	cfg.JoinTimeout = time.Second
	quick(&cfg.Settle, &cfg.WarmUp)
	cfg.Drain, cfg.SyncTimeout = 10*time.Second, 10*time.Second

	rep, err := RunCluster(context.Background(), cfg)
	require.NoError(t, err)
	require.Len(t, rep.Modes, 1)
	m := rep.Modes[0]
	assert.Equal(t, "unicast", m.Mode)
	for _, run := range []RunResult{m.OtherNodes, *m.SameNode} {
		assert.Equal(t, Delivery{Published: 5, Expected: 100, Received: 100, RMP: 100}, run.Delivery, run.Name)
		assert.Equal(t, 100, run.TripTime.Count, run.Name)
	}
	for _, s := range m.OtherNodes.Servers {
		assert.True(t, gone(s.PID), "node %d stopped", s.PID)
	}
	tp := m.Throughput
	assert.Equal(t, 100, tp.Published)
	assert.Zero(t, tp.Failed)
	assert.True(t, tp.InSync)
	assert.Positive(t, tp.PublishRate)
	assert.Positive(t, tp.SyncedRate)

	var b strings.Builder
	require.NoError(t, rep.WriteTable(&b))
	assert.Contains(t, b.String(), "other nodes")
	assert.Contains(t, b.String(), "all nodes in sync")
}

func TestClusterConfigValidate(t *testing.T) {
	assert.NoError(t, DefaultClusterConfig().Validate())
	for _, mutate := range []func(*ClusterConfig){
		func(c *ClusterConfig) { c.Nodes = 1 },
		func(c *ClusterConfig) { c.Modes = []string{"carrier-pigeon"} },
		func(c *ClusterConfig) { c.Modes = nil },
		func(c *ClusterConfig) { c.ThroughputPublishers = 0 },
		func(c *ClusterConfig) { c.SyncTimeout = 0 },
	} {
		c := DefaultClusterConfig()
		mutate(&c)
		assert.ErrorIs(t, c.Validate(), ErrInvalidConfig)
	}
}
