package loadtest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/pushuphq/pushup/internal/testbed"
)

// ServerSetup says which servers a run measures.
type ServerSetup struct {
	// Daemons are pushupd processes the run starts, and stops at its end.
	Daemons []testbed.DaemonConfig
	// Cluster, if not nil, makes the Daemons one cluster (ClusterSetup).
	Cluster *ClusterSetup
	// HAProxy, if not nil, runs haproxy in front of the Daemons
	// (testbed.StartHAProxy), named n1, n2, ... in its backend, and starts
	// measuring once it reports every one UP. Subscribers without
	// Targets poll through it, and so do publishers without Targets
	// unless PublishToNodes. Its MaxConn must cover them all: clients
	// beyond it would wait unaccepted. It is measured apart from the
	// servers (RunResult.Balancer).
	HAProxy *testbed.HAProxyConfig
	// PublishToNodes sends publishers without Targets straight to the
	// Daemons, message k to daemon k mod N, instead of through HAProxy.
	PublishToNodes bool
	// URLs are servers already running, used when Daemons is empty.
	URLs []string
	// PIDs, one per URL, are the servers' local process ids, sampled
	// through /proc; a zero or missing pid is sampled through /metrics.
	PIDs []int
}

// ClusterSetup joins a run's daemons into one cluster with pushupd's
// cluster flags: daemon 1 starts a new cluster (-cluster-bind, no
// -join), the others -join it; each gets -node-name n1, n2, ..., a free
// loopback memberlist port, and the run's random -cluster-key. The run
// starts measuring once every node is ready and sees all of them alive
// and ready (GET /v1/cluster). The daemons' own Args must not set these
// flags.
type ClusterSetup struct {
	// Replication is -replication, one of ReplicationModes.
	Replication string
	// FormTimeout bounds the wait for every node to see every other.
	FormTimeout time.Duration
}

// clusterFlags are the pushupd flags a ClusterSetup sets for each daemon.
var clusterFlags = []string{"cluster-bind", "cluster-advertise", "join", "node-name", "replication", "cluster-key", "advertise-http"}

// RunConfig is one run: a server setup, a subscriber population, a
// publisher schedule, and how to take the metrics. The phases are:
//
//  1. start the servers (form their cluster and start the balancer in
//     front, if asked) and warm up; measure baseline RSS once settled;
//  2. connect the subscribers and take their positions; for long polling
//     (WaitParked) wait until the servers report every one waiting, then
//     measure parked RSS once settled;
//  3. publish on schedule, sampling the servers throughout;
//  4. drain: wait until every expected message arrived, or Drain passed;
//  5. disconnect everyone, stop the servers, compute the figures.
type RunConfig struct {
	// Name labels the run in reports.
	Name string
	// Server is the server setup.
	Server ServerSetup
	// Subscribers is the population; empty Targets means the servers.
	Subscribers PopulationConfig
	// Publishers run their schedules side by side; empty Targets means
	// the servers. Each needs its own Index.
	Publishers []PublisherConfig
	// WarmUp is how long servers run before the baseline is measured.
	WarmUp time.Duration
	// Settle says when RSS counts as settled, for baseline and parked.
	Settle SettleConfig
	// WaitParked waits, before publishing, until the servers'
	// pushup_waiting_subscribers reaches one per channel of each
	// subscriber. Only meaningful for long polling.
	WaitParked bool
	// ConnectTimeout bounds phase 2 (connecting, and parking if
	// WaitParked). Missing it fails the run with ErrNotParked.
	ConnectTimeout time.Duration
	// Drain bounds phase 4. A run that drains early ends early; one that
	// does not reports the missing messages.
	Drain time.Duration
	// TrafficWindow, if positive, also measures the subscribers' traffic
	// over exactly [first publish, first publish + TrafficWindow]
	// (RunResult.WindowTraffic), and the run lasts at least that long.
	// push-vs-pull sets it to the publish schedule's whole intervals, so
	// NT per interval counts every poll of every interval once.
	TrafficWindow time.Duration
	// SampleInterval is how often servers are sampled through /proc.
	// Servers sampled through /metrics are scraped every 250 ms at most
	// often: a scrape makes the server allocate.
	SampleInterval time.Duration
	// Timeout bounds the whole run.
	Timeout time.Duration
	// Progress, if not nil, gets a status line every ProgressInterval.
	Progress         io.Writer
	ProgressInterval time.Duration
}

// DefaultRunConfig returns a run of the default population and publisher
// against one local pushupd (whose Binary the caller must set).
func DefaultRunConfig() RunConfig {
	return RunConfig{
		Name:             "run",
		Server:           ServerSetup{Daemons: []testbed.DaemonConfig{testbed.DefaultDaemonConfig()}},
		Subscribers:      DefaultPopulationConfig(),
		Publishers:       []PublisherConfig{DefaultPublisherConfig()},
		WarmUp:           time.Second,
		Settle:           DefaultSettleConfig(),
		WaitParked:       true,
		ConnectTimeout:   2 * time.Minute,
		Drain:            30 * time.Second,
		SampleInterval:   10 * time.Millisecond,
		Timeout:          10 * time.Minute,
		ProgressInterval: time.Second,
	}
}

// Validate reports a configuration that cannot work.
func (c RunConfig) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: run %q: %s", ErrInvalidConfig, c.Name, fmt.Sprintf(format, args...))
	}
	if err := c.Subscribers.Validate(); err != nil {
		return err
	}
	seen := map[int]bool{}
	for _, p := range c.Publishers {
		if err := p.Validate(); err != nil {
			return err
		}
		if seen[p.Index] {
			return bad("two publishers with Index %d", p.Index)
		}
		seen[p.Index] = true
	}
	if err := c.Server.validate(c); err != nil {
		return bad("%v", err)
	}
	switch {
	case len(c.Server.Daemons) == 0 && len(c.Server.URLs) == 0:
		return bad("no servers: set Server.Daemons or Server.URLs")
	case len(c.Server.PIDs) > len(c.Server.URLs):
		return bad("more Server.PIDs than Server.URLs")
	case len(c.Publishers) == 0:
		return bad("no Publishers")
	case c.WarmUp < 0 || c.Drain < 0 || c.TrafficWindow < 0:
		return bad("WarmUp, Drain and TrafficWindow must not be negative")
	case c.ConnectTimeout <= 0 || c.SampleInterval <= 0 || c.Timeout <= 0:
		return bad("ConnectTimeout, SampleInterval and Timeout must be positive")
	case c.Settle.Window <= 0 || c.Settle.Timeout <= 0 || c.Settle.Tolerance < 0:
		return bad("Settle needs a positive Window and Timeout and a non-negative Tolerance")
	case c.Progress != nil && c.ProgressInterval <= 0:
		return bad("ProgressInterval must be positive")
	}
	return nil
}

// validate reports a cluster or balancer setup that cannot work for run
// c.
func (s ServerSetup) validate(c RunConfig) error {
	for i, d := range s.Daemons {
		if d.Binary == "" {
			return fmt.Errorf("daemon %d has no Binary", i+1)
		}
	}
	if (s.Cluster != nil || s.HAProxy != nil) && len(s.Daemons) == 0 {
		return fmt.Errorf("Server.Cluster and Server.HAProxy need Server.Daemons")
	}
	if s.PublishToNodes && s.HAProxy == nil {
		return fmt.Errorf("Server.PublishToNodes needs Server.HAProxy")
	}
	if s.Cluster != nil {
		if !slices.Contains(ReplicationModes, s.Cluster.Replication) {
			return fmt.Errorf("Cluster.Replication %q: want %s", s.Cluster.Replication, strings.Join(ReplicationModes, " or "))
		}
		if s.Cluster.FormTimeout <= 0 {
			return fmt.Errorf("Cluster.FormTimeout must be positive")
		}
		for i, d := range s.Daemons {
			if f := setsFlag(d.Args, clusterFlags...); f != "" {
				return fmt.Errorf("daemon %d sets -%s, which the cluster setup sets for each node", i+1, f)
			}
		}
	}
	if s.HAProxy != nil {
		clients := 0
		if len(c.Subscribers.Targets) == 0 {
			clients += c.Subscribers.Subscribers
		}
		for _, p := range c.Publishers {
			if len(p.Targets) == 0 && !s.PublishToNodes {
				clients++
			}
		}
		if s.HAProxy.MaxConn < clients {
			return fmt.Errorf("HAProxy.MaxConn %d is below the %d clients that go through it: the rest would wait unaccepted", s.HAProxy.MaxConn, clients)
		}
	}
	return nil
}

// setsFlag returns the first of names that args set as a flag ("-name",
// "--name", "-name=value"), or "".
func setsFlag(args []string, names ...string) string {
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if slices.Contains(names, name) {
			return name
		}
	}
	return ""
}

// ServerInfo describes one server of a run.
type ServerInfo struct {
	// Name is the node's name in its cluster and balancer (n1, n2, ...),
	// empty for a lone server.
	Name  string   `json:"name,omitempty"`
	URL   string   `json:"url"`
	PID   int      `json:"pid,omitempty"`
	Model string   `json:"model,omitempty"`
	Args  []string `json:"args,omitempty"`
}

// Memory is server memory usage (SMU), summed over a run's servers.
type Memory struct {
	// BaselineRSS is RSS after warm-up, before any subscriber connected.
	BaselineRSS int64 `json:"baseline_rss_bytes"`
	// ParkedRSS is RSS with every subscriber connected (and, with
	// WaitParked, waiting), once settled, before publishing.
	ParkedRSS int64 `json:"parked_rss_bytes"`
	// Settled reports whether both figures settled (SettleConfig); if
	// not, they are the latest means and less trustworthy.
	Settled bool `json:"settled"`
	// PeakRSS is the highest RSS sampled from the first publish to the
	// end of the drain.
	PeakRSS int64 `json:"peak_rss_bytes"`
	// FinalRSS is RSS at the end of the drain, before disconnecting.
	FinalRSS int64 `json:"final_rss_bytes"`
	// PublishSamples is how many samples the peak was taken from.
	PublishSamples int `json:"publish_samples"`
	// SampleInterval is the sampling period asked for.
	SampleInterval time.Duration `json:"sample_interval_ns"`
}

// CPU is server CPU time (user + system), summed over a run's servers.
type CPU struct {
	// ParkSeconds is from the baseline to the parked measurement:
	// accepting and parking the subscribers.
	ParkSeconds float64 `json:"park_seconds"`
	// PublishSeconds is from the first publish to the end of the drain.
	PublishSeconds float64 `json:"publish_seconds"`
	// LoadTesterPublishSeconds is the CPU time this load-test process
	// used over the same window. Client and server share the machine: if
	// the two together approach the number of cores times the window,
	// trip times measure the machine, not the server alone.
	LoadTesterPublishSeconds float64 `json:"load_tester_publish_seconds"`
}

// Threads is the servers' OS thread count, summed, from /proc; zero for
// servers sampled through /metrics. The thread model holds one per
// waiting request; the others a handful whatever the load.
type Threads struct {
	// Baseline is the count when the baseline RSS was taken.
	Baseline int64 `json:"baseline"`
	// Parked is the count when the parked RSS was taken.
	Parked int64 `json:"parked"`
	// Peak is the highest count sampled from the baseline to the end of
	// the drain.
	Peak int64 `json:"peak"`
}

// Timeline is how long each phase took.
type Timeline struct {
	Connect time.Duration `json:"connect_ns"` // until every subscriber started
	Park    time.Duration `json:"park_ns"`    // until the servers reported all waiting
	Publish time.Duration `json:"publish_ns"` // first publish to last answer
	Drain   time.Duration `json:"drain_ns"`   // last publish answer to last expected delivery
	// Drained reports whether every expected message arrived before
	// Drain passed.
	Drained bool `json:"drained"`
}

// Balancer is what a run measured of its HAProxy.
type Balancer struct {
	URL     string `json:"url"`
	PID     int    `json:"pid"`
	Balance string `json:"balance"`
	MaxConn int    `json:"maxconn"`
	// ParkedRSS is haproxy's RSS when the servers' parked RSS was taken:
	// every subscriber connected through it.
	ParkedRSS int64 `json:"parked_rss_bytes"`
	// ParkCPUSeconds and PublishCPUSeconds are its CPU time over the same
	// windows as the servers' (CPU).
	ParkCPUSeconds    float64 `json:"park_cpu_seconds"`
	PublishCPUSeconds float64 `json:"publish_cpu_seconds"`
}

// RunResult is everything measured in one run.
type RunResult struct {
	Name         string        `json:"name"`
	Servers      []ServerInfo  `json:"servers"`
	Mode         Mode          `json:"mode"`
	Subscribers  int           `json:"subscribers"`
	PollInterval time.Duration `json:"poll_interval_ns"`
	PayloadSize  int           `json:"payload_bytes"`
	Timeline     Timeline      `json:"timeline"`
	Memory       Memory        `json:"memory"`
	Threads      Threads       `json:"threads"`
	CPU          CPU           `json:"cpu"`
	// Traffic is NT over the whole run; PublishTraffic over the publish
	// window (first publish to end of drain) only.
	Traffic        Traffic `json:"traffic"`
	PublishTraffic Traffic `json:"publish_traffic"`
	// WindowTraffic is NT over RunConfig.TrafficWindow from the first
	// publish; zero without one.
	WindowTraffic Traffic `json:"window_traffic"`
	// TripTime is the publish trip time (MPT is its Mean).
	TripTime LatencySummary `json:"trip_time"`
	// PublishLatency is how long publish requests took to be answered.
	PublishLatency LatencySummary `json:"publish_latency"`
	Delivery       Delivery       `json:"delivery"`
	// Waiting is, per server, how many subscriptions it held waiting when
	// every subscriber was parked (WaitParked only): how evenly a
	// balancer spread them.
	Waiting []int64 `json:"waiting_per_server,omitempty"`
	// Balancer is set when the run had an HAProxy in front.
	Balancer *Balancer `json:"balancer,omitempty"`
	// Errors counts subscriber connection errors by kind.
	Errors map[string]int64 `json:"errors"`
	// MonitorErrors counts failed rounds of server sampling.
	MonitorErrors int             `json:"monitor_errors"`
	Publishes     []PublishRecord `json:"publishes"`
}

// perServer is how many subscribers each of n servers gets when the
// population is spread over them (the most any one gets).
func perServer(c PopulationConfig, n int, balanced bool) int {
	if len(c.Targets) > 0 || balanced {
		return c.Subscribers // through a balancer or elsewhere: assume the worst
	}
	return (c.Subscribers + n - 1) / n
}

// checkServerFiles fails if a local server cannot hold conns connections
// under its own open-file limit.
func checkServerFiles(pid, conns int) error {
	limit, err := testbed.ProcessFileLimit(pid)
	if err != nil {
		return err
	}
	return testbed.CheckFileBudget(fmt.Sprintf("pushupd (pid %d)", pid), conns, limit)
}

// serversWaiting sums pushup_waiting_subscribers over the servers, and
// returns each one's too.
func serversWaiting(ctx context.Context, client *http.Client, urls []string) (int64, []int64, error) {
	var n int64
	each := make([]int64, len(urls))
	for i, u := range urls {
		m, err := scrapeMetrics(ctx, client, u, metricWaiting)
		if err != nil {
			return 0, nil, fmt.Errorf("loadtest: reading %s from %s: %w", metricWaiting, u, err)
		}
		v, ok := m[metricWaiting]
		if !ok {
			return 0, nil, fmt.Errorf("%w: %s/metrics has no %s", ErrMalformedResponse, u, metricWaiting)
		}
		each[i] = int64(v)
		n += each[i]
	}
	return n, each, nil
}
