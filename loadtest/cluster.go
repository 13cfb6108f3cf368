package loadtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pushuphq/pushup/internal/testbed"
)

// ReplicationModes are pushupd's -replication values.
var ReplicationModes = []string{"unicast", "gossip"}

// ClusterConfig configures the cluster experiment (issue 4): for each
// replication mode, start a cluster of local pushupd nodes and measure
//
//   - the publish trip time to subscribers on other nodes than the one
//     the publisher posts to (replication plus delivery), and, for
//     reference, to subscribers on the publisher's own node;
//   - replication throughput: publications per second posted as fast as
//     a bounded number of concurrent publishers can to one node, how far
//     behind the other nodes fall, and how long they take to hold all of
//     it once publishing stops.
type ClusterConfig struct {
	// Pushupd is the pushupd binary; empty builds ./cmd/pushupd.
	Pushupd string
	// Nodes is the cluster size, at least 2. Node 1 takes the
	// publications; the others serve the measured subscribers.
	Nodes int
	// Modes are the replication modes to measure, in order.
	Modes []string
	// ServerArgs are extra pushupd flags for every node.
	ServerArgs []string
	// Subscribers long-poll one channel, spread over the nodes other
	// than the publisher's (and, in the reference run, all on it).
	Subscribers int
	Hold        time.Duration
	// Messages, Interval and PayloadSize are the trip-time schedule.
	Messages    int
	Interval    time.Duration
	PayloadSize int
	// SameNode adds a reference run with the subscribers on the
	// publisher's node: the trip time without replication.
	SameNode bool
	// ThroughputPublishers publish concurrently, each one message at a
	// time as fast as answers come, ThroughputMessages each: at most
	// ThroughputPublishers publications are in flight.
	ThroughputPublishers int
	ThroughputMessages   int
	// SampleInterval is how often the other nodes' lag is sampled
	// (GET /v1/cluster) while publishing.
	SampleInterval time.Duration
	// SyncTimeout bounds the wait for every node to hold everything.
	SyncTimeout time.Duration
	// JoinTimeout is the nodes' -join-timeout: they all start at once,
	// so each waits this long for a ready peer before starting alone.
	JoinTimeout time.Duration
	// WarmUp, Settle, Drain and Timeout are as in RunConfig; Timeout
	// bounds each trip-time run.
	WarmUp  time.Duration
	Settle  SettleConfig
	Drain   time.Duration
	Timeout time.Duration
	// Progress, if not nil, gets status lines.
	Progress io.Writer
	// DaemonLog, if not nil, gets every node's log.
	DaemonLog io.Writer
}

// DefaultClusterConfig returns the benchmark of docs/BENCHMARKS.md:
// three nodes, 300 subscribers, 200 messages 20 ms apart, then 8
// publishers posting 2,500 messages each.
func DefaultClusterConfig() ClusterConfig {
	return ClusterConfig{
		Nodes:                3,
		Modes:                slices.Clone(ReplicationModes),
		Subscribers:          300,
		Hold:                 60 * time.Second,
		Messages:             200,
		Interval:             20 * time.Millisecond,
		PayloadSize:          256,
		SameNode:             true,
		ThroughputPublishers: 8,
		ThroughputMessages:   2500,
		SampleInterval:       50 * time.Millisecond,
		SyncTimeout:          60 * time.Second,
		JoinTimeout:          2 * time.Second,
		WarmUp:               200 * time.Millisecond,
		Settle:               SettleConfig{Window: 200 * time.Millisecond, Tolerance: 0.05, MinSpread: 1 << 20, Timeout: 2 * time.Second},
		Drain:                20 * time.Second,
		Timeout:              2 * time.Minute,
	}
}

// Validate reports a configuration that cannot work.
func (c ClusterConfig) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: cluster: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	for _, m := range c.Modes {
		if !slices.Contains(ReplicationModes, m) {
			return bad("mode %q: want %s", m, strings.Join(ReplicationModes, " or "))
		}
	}
	switch {
	case c.Nodes < 2:
		return bad("Nodes must be at least 2, got %d", c.Nodes)
	case len(c.Modes) == 0:
		return bad("no Modes")
	case c.Subscribers < 1 || c.Messages < 1:
		return bad("Subscribers and Messages must be at least 1")
	case c.ThroughputPublishers < 1 || c.ThroughputPublishers >= MaxPublishers:
		return bad("ThroughputPublishers must be 1 to %d, got %d", MaxPublishers-1, c.ThroughputPublishers)
	case c.ThroughputMessages < 1 || c.ThroughputMessages > MaxMessages:
		return bad("ThroughputMessages must be 1 to %d, got %d", MaxMessages, c.ThroughputMessages)
	case c.SampleInterval <= 0 || c.SyncTimeout <= 0 || c.JoinTimeout <= 0 || c.Timeout <= 0:
		return bad("SampleInterval, SyncTimeout, JoinTimeout and Timeout must be positive")
	}
	return nil
}

// ClusterReport is the outcome of the cluster experiment, one entry per
// mode.
type ClusterReport struct {
	Nodes int           `json:"nodes"`
	Modes []ClusterMode `json:"modes"`
}

// ClusterMode is what was measured in one replication mode.
type ClusterMode struct {
	Mode string `json:"mode"`
	// OtherNodes is the trip-time run with subscribers on the nodes the
	// publisher does not post to.
	OtherNodes RunResult `json:"other_nodes"`
	// SameNode is the reference run, subscribers on the publisher's node.
	SameNode   *RunResult `json:"same_node,omitempty"`
	Throughput Throughput `json:"throughput"`
}

// Throughput is the replication throughput phase of one mode.
type Throughput struct {
	Publishers int `json:"publishers"`
	// Published publications were accepted (201); Failed were not.
	Published int `json:"published"`
	Failed    int `json:"failed"`
	// PublishTime is from the first publish to the last answer;
	// PublishRate is Published over it.
	PublishTime time.Duration `json:"publish_ns"`
	PublishRate float64       `json:"publish_per_second"`
	// CatchUp is from the last answer until every other node had applied
	// every accepted publication; InSync says whether that happened
	// within SyncTimeout.
	CatchUp time.Duration `json:"catch_up_ns"`
	InSync  bool          `json:"in_sync"`
	// SyncedRate is Published over PublishTime + CatchUp: publications
	// per second the whole cluster took in and replicated everywhere.
	SyncedRate float64 `json:"synced_per_second"`
	// MaxBehind is the most publications of the publishing node that any
	// other node lacked at one sample (those in flight included), and
	// Samples how many samples were taken.
	MaxBehind int64 `json:"max_behind"`
	Samples   int   `json:"samples"`
	// ServerCPUSeconds sums the nodes' CPU time over PublishTime +
	// CatchUp; LoadTesterCPUSeconds is this process's.
	ServerCPUSeconds     float64 `json:"server_cpu_seconds"`
	LoadTesterCPUSeconds float64 `json:"load_tester_cpu_seconds"`
}

// RunCluster runs the cluster experiment.
func RunCluster(ctx context.Context, cfg ClusterConfig) (ClusterReport, error) {
	rep := ClusterReport{Nodes: cfg.Nodes}
	if err := cfg.Validate(); err != nil {
		return rep, err
	}
	if _, err := fileLimit("this load-test process", cfg.Subscribers); err != nil {
		return rep, err
	}
	binary := cfg.Pushupd
	if binary == "" {
		dir, err := os.MkdirTemp("", "pushup-loadtest-")
		if err != nil {
			return rep, err
		}
		defer os.RemoveAll(dir)
		if binary, err = testbed.BuildPushupd(ctx, dir); err != nil {
			return rep, err
		}
	}
	for _, mode := range cfg.Modes {
		m, err := runClusterMode(ctx, cfg, binary, mode)
		if err != nil {
			return rep, fmt.Errorf("%s: %w", mode, err)
		}
		rep.Modes = append(rep.Modes, m)
	}
	return rep, nil
}

// runClusterMode starts a cluster in one mode, measures it and stops it.
func runClusterMode(ctx context.Context, cfg ClusterConfig, binary, mode string) (res ClusterMode, err error) {
	res.Mode = mode
	logf(cfg.Progress, "%s: starting %d nodes", mode, cfg.Nodes)
	nodes, err := startCluster(ctx, cfg, binary, mode)
	defer func() {
		// One after the other: each leaves while the others still hear it.
		for _, d := range nodes {
			if serr := d.Stop(); serr != nil && err == nil {
				err = serr
			}
		}
	}()
	if err != nil {
		return res, err
	}
	urls := make([]string, len(nodes))
	pids := make([]int, len(nodes))
	for i, d := range nodes {
		urls[i], pids[i] = d.URL, d.PID
	}

	run := func(name string, subscribeTo []string) (RunResult, error) {
		logf(cfg.Progress, "%s: trip time, %s", mode, name)
		rc := cfg.tripTimeRun(mode+"/"+name, urls, pids, subscribeTo)
		r, err := Run(ctx, rc)
		if err != nil {
			return r, fmt.Errorf("%s: %w", name, err)
		}
		return r, nil
	}
	if res.OtherNodes, err = run("other nodes", urls[1:]); err != nil {
		return res, err
	}
	if cfg.SameNode {
		r, err := run("same node", urls[:1])
		if err != nil {
			return res, err
		}
		res.SameNode = &r
	}
	logf(cfg.Progress, "%s: throughput, %d publishers x %d messages", mode, cfg.ThroughputPublishers, cfg.ThroughputMessages)
	res.Throughput, err = measureThroughput(ctx, cfg, urls, pids)
	return res, err
}

// tripTimeRun is one trip-time run against the running cluster: the
// publisher posts to node 1, subscribers long-poll subscribeTo.
func (c ClusterConfig) tripTimeRun(name string, urls []string, pids []int, subscribeTo []string) RunConfig {
	rc := DefaultRunConfig()
	rc.Name = name
	rc.Server = ServerSetup{URLs: urls, PIDs: pids}
	// A channel per run: the reference run must not see the first's.
	ch := "trip-" + strings.NewReplacer("/", "-", " ", "-").Replace(name)
	rc.Subscribers.Subscribers = c.Subscribers
	rc.Subscribers.Channels = []string{ch}
	rc.Subscribers.Targets = subscribeTo
	rc.Subscribers.Mode = ModeLongPoll
	rc.Subscribers.PollInterval = c.Hold
	pc := DefaultPublisherConfig()
	pc.Targets = urls[:1]
	pc.Channels = []string{ch}
	pc.Messages, pc.Interval, pc.PayloadSize = c.Messages, c.Interval, c.PayloadSize
	rc.Publishers = []PublisherConfig{pc}
	rc.WarmUp, rc.Settle, rc.Drain, rc.Timeout = c.WarmUp, c.Settle, c.Drain, c.Timeout
	rc.ConnectTimeout = time.Minute
	rc.WaitParked = true
	rc.Progress = c.Progress
	return rc
}

// startCluster starts the nodes at once, each naming all of them in
// -join (as replicas of one compose service do), and waits until every
// one is ready and sees all the others. It returns the nodes started so
// far even on error, for the caller to stop.
func startCluster(ctx context.Context, cfg ClusterConfig, binary, mode string) ([]*testbed.Daemon, error) {
	key, err := newClusterKey()
	if err != nil {
		return nil, err
	}
	binds, err := freeClusterBinds(cfg.Nodes)
	if err != nil {
		return nil, err
	}
	var nodes []*testbed.Daemon
	urls := make([]string, 0, cfg.Nodes)
	for i := range cfg.Nodes {
		dc := testbed.DefaultDaemonConfig()
		dc.Binary, dc.Log = binary, cfg.DaemonLog
		dc.Args = append([]string{
			"-node-name", nodeName(i), "-cluster-bind", binds[i], "-join", strings.Join(binds, ","),
			"-replication", mode, "-cluster-key", key,
			"-join-timeout", cfg.JoinTimeout.String(),
		}, cfg.ServerArgs...)
		d, err := testbed.StartDaemon(dc)
		if err != nil {
			return nodes, err
		}
		nodes = append(nodes, d)
		urls = append(urls, d.URL)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	if err := waitClusterFormed(ctx, client, urls, cfg.JoinTimeout+30*time.Second); err != nil {
		return nodes, fmt.Errorf("%w%s", err, daemonLogs(nodes))
	}
	return nodes, nil
}

// daemonLogs returns the last lines each daemon logged, for an error
// message about them all.
func daemonLogs(ds []*testbed.Daemon) string {
	var b strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&b, "\n--- pushupd pid %d (%s):\n%s", d.PID, d.URL, d.Log())
	}
	return b.String()
}

// nodeName is the name of the i-th node (from 0) of a cluster the load
// tester starts, in -node-name and in HAProxy's backend: n1, n2, ...
func nodeName(i int) string { return fmt.Sprintf("n%d", i+1) }

// newClusterKey returns a random -cluster-key, one per cluster started.
func newClusterKey() (string, error) {
	key := make([]byte, 16)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	return hex.EncodeToString(key), nil
}

// freeClusterBinds returns n free loopback addresses, TCP and UDP, for
// the nodes' memberlist.
func freeClusterBinds(n int) ([]string, error) {
	binds := make([]string, n)
	for i := range binds {
		a, err := testbed.FreeLoopbackAddr(true)
		if err != nil {
			return nil, err
		}
		binds[i] = a
	}
	return binds, nil
}

// clusterDaemons returns dcs with setup's cluster flags put before each
// one's own: the first starts a new cluster, the others join it, waiting
// up to setup.FormTimeout for it to answer (past that a node would start
// alone, and the run would fail waiting for the cluster to form).
func clusterDaemons(dcs []testbed.DaemonConfig, setup ClusterSetup) ([]testbed.DaemonConfig, error) {
	key, err := newClusterKey()
	if err != nil {
		return nil, err
	}
	binds, err := freeClusterBinds(len(dcs))
	if err != nil {
		return nil, err
	}
	out := make([]testbed.DaemonConfig, len(dcs))
	for i, dc := range dcs {
		args := []string{"-node-name", nodeName(i), "-cluster-bind", binds[i], "-replication", setup.Replication, "-cluster-key", key}
		if i > 0 {
			args = append(args, "-join", binds[0], "-join-timeout", setup.FormTimeout.String())
		}
		dc.Args = append(args, dc.Args...)
		out[i] = dc
	}
	return out, nil
}

// clusterView is the part of GET /v1/cluster that says whether a node
// sees the whole cluster.
type clusterView struct {
	Node    string `json:"node"`
	Ready   bool   `json:"ready"`
	Members []struct {
		Name  string `json:"name"`
		State string `json:"state"`
		Ready bool   `json:"ready"`
	} `json:"members"`
}

// alive counts the members the node sees alive and ready, itself
// included.
func (v clusterView) alive() int {
	n := 0
	for _, m := range v.Members {
		if m.State == "alive" && m.Ready {
			n++
		}
	}
	return n
}

// waitClusterFormed waits until every node at urls is ready and sees all
// len(urls) alive and ready (GET /v1/cluster), or timeout passes.
func waitClusterFormed(ctx context.Context, client *http.Client, urls []string, timeout time.Duration) error {
	by := time.Now().Add(timeout)
	for {
		last := ""
		formed := true
		for _, u := range urls {
			v, err := getClusterView(ctx, client, u)
			switch {
			case err != nil:
				last = err.Error()
			case !v.Ready:
				last = fmt.Sprintf("%s (%s) is not ready", v.Node, u)
			case v.alive() < len(urls):
				last = fmt.Sprintf("%s (%s) sees %d of %d nodes alive and ready", v.Node, u, v.alive(), len(urls))
			default:
				continue
			}
			formed = false
			break
		}
		if formed {
			return nil
		}
		if time.Now().After(by) {
			return fmt.Errorf("%w: the cluster did not form within %s: %s", ErrDaemon, timeout, last)
		}
		if !sleep(ctx, 20*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// getClusterView asks the node at u how it sees the cluster.
func getClusterView(ctx context.Context, client *http.Client, u string) (clusterView, error) {
	var v clusterView
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u+"/v1/cluster", nil)
	if err != nil {
		return v, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return v, fmt.Errorf("%w: %s/v1/cluster: %s", ErrUnexpectedStatus, u, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return v, fmt.Errorf("%w: %s/v1/cluster: %v", ErrMalformedResponse, u, err)
	}
	return v, nil
}

// measureThroughput publishes to node 1 as fast as the publishers go
// and follows the other nodes' replication of it.
func measureThroughput(ctx context.Context, cfg ClusterConfig, urls []string, pids []int) (Throughput, error) {
	t := &throughputRun{ctx: ctx, cfg: cfg, urls: urls, pids: pids, tp: Throughput{Publishers: cfg.ThroughputPublishers},
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 10 * time.Second}}
	defer t.client.CloseIdleConnections()
	if err := t.agree(); err != nil {
		return t.tp, err
	}
	pubs, err := t.publishers()
	if err != nil {
		return t.tp, err
	}
	lag := t.startLagSampler(pubs)
	defer lag.stop()
	serverBefore, selfBefore := t.cpu()
	published, err := t.publish(pubs)
	if err != nil {
		return t.tp, err
	}
	if err := t.waitInSync(published); err != nil {
		return t.tp, err
	}
	serverAfter, selfAfter := t.cpu()
	t.tp.ServerCPUSeconds, t.tp.LoadTesterCPUSeconds = serverAfter-serverBefore, selfAfter-selfBefore
	if t.tp.InSync {
		t.tp.SyncedRate = float64(t.tp.Published) / (t.tp.PublishTime + t.tp.CatchUp).Seconds()
	}
	t.tp.MaxBehind, t.tp.Samples = lag.stop()
	return t.tp, nil
}

// throughputRun is measureThroughput in progress.
type throughputRun struct {
	ctx    context.Context
	cfg    ClusterConfig
	urls   []string
	pids   []int
	client *http.Client
	base   int64 // where the other nodes stand on node 1's events before
	tp     Throughput
}

// agree waits until the other nodes agree on node 1's events, as they do
// once the trip-time runs' publications have spread, and takes that as
// the base.
func (t *throughputRun) agree() error {
	syncedBy := time.Now().Add(t.cfg.SyncTimeout)
	for {
		applied, err := appliedFrom(t.ctx, t.client, t.urls)
		if err != nil {
			return err
		}
		if slices.Min(applied) == slices.Max(applied) {
			t.base = applied[0]
			return nil
		}
		if time.Now().After(syncedBy) {
			return fmt.Errorf("loadtest: nodes never agreed on node 1's events before the throughput phase: %v", applied)
		}
		if !sleep(t.ctx, 50*time.Millisecond) {
			return t.ctx.Err()
		}
	}
}

// publishers makes the publishers, each on a channel of its own,
// posting to node 1 without pause.
func (t *throughputRun) publishers() ([]*Publisher, error) {
	pubs := make([]*Publisher, t.cfg.ThroughputPublishers)
	for i := range pubs {
		pc := DefaultPublisherConfig()
		pc.Index, pc.Targets = i, t.urls[:1]
		pc.Channels = []string{fmt.Sprintf("throughput-%d", i)}
		pc.Messages, pc.Interval, pc.PayloadSize = t.cfg.ThroughputMessages, 0, t.cfg.PayloadSize
		p, err := NewPublisher(pc)
		if err != nil {
			return nil, err
		}
		pubs[i] = p
	}
	return pubs, nil
}

// cpu returns the nodes' CPU seconds, summed, and this process's.
func (t *throughputRun) cpu() (server, self float64) {
	for _, pid := range t.pids {
		if s, err := (ProcProbe{PID: pid}).Probe(t.ctx); err == nil {
			server += s.CPUSeconds
		}
	}
	if s, err := (ProcProbe{PID: os.Getpid()}).Probe(t.ctx); err == nil {
		self = s.CPUSeconds
	}
	return server, self
}

// publish runs the publishers to the end and counts what they got in.
func (t *throughputRun) publish(pubs []*Publisher) (published time.Time, err error) {
	start := time.Now()
	recs := runPublishers(t.ctx, pubs)
	published = time.Now()
	for _, r := range recs {
		if r.OK() {
			t.tp.Published++
		} else {
			t.tp.Failed++
		}
	}
	t.tp.PublishTime = published.Sub(start)
	t.tp.PublishRate = float64(t.tp.Published) / t.tp.PublishTime.Seconds()
	return published, t.ctx.Err()
}

// waitInSync waits up to SyncTimeout after published for every other
// node to apply all that node 1 took.
func (t *throughputRun) waitInSync(published time.Time) error {
	want := t.base + int64(t.tp.Published)
	for time.Since(published) < t.cfg.SyncTimeout {
		applied, err := appliedFrom(t.ctx, t.client, t.urls)
		if err == nil && slices.Min(applied) >= want {
			t.tp.InSync = true
			break
		}
		if !sleep(t.ctx, 10*time.Millisecond) {
			return t.ctx.Err()
		}
	}
	t.tp.CatchUp = time.Since(published)
	return nil
}

// lagSampler follows how far the other nodes fall behind node 1: what
// was sent minus what each has applied. Its goroutine owns maxBehind and
// samples until stop returns.
type lagSampler struct {
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	maxBehind int64
	samples   int
}

func (t *throughputRun) startLagSampler(pubs []*Publisher) *lagSampler {
	l := &lagSampler{}
	ctx, cancel := context.WithCancel(t.ctx)
	l.cancel = cancel
	l.wg.Go(func() {
		for sleep(ctx, t.cfg.SampleInterval) {
			var sent int64
			for _, p := range pubs {
				sent += p.Sent()
			}
			applied, err := appliedFrom(ctx, t.client, t.urls)
			if err != nil {
				continue
			}
			l.samples++
			for _, a := range applied {
				l.maxBehind = max(l.maxBehind, t.base+sent-a)
			}
		}
	})
	return l
}

// stop ends the sampling and returns the largest lag and the number of
// samples. It is safe to call more than once.
func (l *lagSampler) stop() (maxBehind int64, samples int) {
	l.cancel()
	l.wg.Wait()
	return l.maxBehind, l.samples
}

// appliedFrom returns, for each node but the first, the last of node
// 1's events it has applied (GET /v1/cluster, member "n1").
func appliedFrom(ctx context.Context, client *http.Client, urls []string) ([]int64, error) {
	out := make([]int64, 0, len(urls)-1)
	for _, u := range urls[1:] {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u+"/v1/cluster", nil)
		if err != nil {
			return nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		var st struct {
			Members []struct {
				Name        string `json:"name"`
				Replication *struct {
					AppliedSeq int64 `json:"applied_seq"`
				} `json:"replication"`
			} `json:"members"`
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("%w: %s/v1/cluster: %v", ErrMalformedResponse, u, err)
		}
		var applied int64
		for _, m := range st.Members {
			if m.Name == "n1" && m.Replication != nil {
				applied = m.Replication.AppliedSeq
			}
		}
		out = append(out, applied)
	}
	return out, nil
}

// logf writes one status line, if w is set.
func logf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
}

// WriteTable prints the report for people.
func (r ClusterReport) WriteTable(w io.Writer) error {
	var b strings.Builder
	row := func(k, format string, args ...any) {
		fmt.Fprintf(&b, "  %-24s %s\n", k, fmt.Sprintf(format, args...))
	}
	trip := func(label string, run RunResult) {
		t, d := run.TripTime, run.Delivery
		row(label, "p50 %s  p95 %s  p99 %s  max %s  (%d deliveries, RMP %.2f%%, %d duplicates)",
			ms(t.P50), ms(t.P95), ms(t.P99), ms(t.Max), t.Count, d.RMP, d.Duplicates)
	}
	fmt.Fprintf(&b, "PushUp cluster: %d local nodes, publisher posts to node 1\n", r.Nodes)
	for _, m := range r.Modes {
		o := m.OtherNodes
		fmt.Fprintf(&b, "%s\n", m.Mode)
		if len(o.Publishes) > 0 {
			row("trip-time schedule", "%d subscribers, %d messages of %d B, %s apart",
				o.Subscribers, len(o.Publishes), o.PayloadSize, publishInterval(o.Publishes))
		}
		trip("other nodes", o)
		if m.SameNode != nil {
			trip("same node (reference)", *m.SameNode)
		}
		t := m.Throughput
		row("throughput", "%d published (%d failed) by %d concurrent publishers in %s: %.0f/s",
			t.Published, t.Failed, t.Publishers, round(t.PublishTime), t.PublishRate)
		if t.InSync {
			row("all nodes in sync", "%s after the last publish: %.0f publications/s replicated everywhere",
				round(t.CatchUp), t.SyncedRate)
		} else {
			row("all nodes in sync", "NOT within %s", round(t.CatchUp))
		}
		row("most behind", "%d publications (sampled %d times)", t.MaxBehind, t.Samples)
		window := t.PublishTime + t.CatchUp
		row("CPU", "nodes %.2f s, load tester %.2f s over %s (%d cores: %.1f s available)", t.ServerCPUSeconds,
			t.LoadTesterCPUSeconds, round(window), runtime.NumCPU(), float64(runtime.NumCPU())*window.Seconds())
	}
	_, err := io.WriteString(w, b.String())
	return err
}
