package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushuphq/pushup/internal/testbed"
)

// CompareTargets are the servers Compare can run side by side: the floor
// server (only what the kernel must do per delivery, see
// floorserver_linux.go), pushupd, Nginx + Nchan, and Centrifugo (measured
// on server-sent events only, its unidirectional SSE).
var CompareTargets = []string{"floor", "pushup", "nchan", "centrifugo"}

// CompareConfig configures a side-by-side run: the same subscribers, the
// same publisher and the same measurements against each target in turn,
// each started fresh on this machine. Every target is measured through
// one small client (a goroutine and a bufio.Reader per subscriber, over
// raw HTTP/1.1), so what differs between the rows is the server.
type CompareConfig struct {
	// Targets to run, in order (see CompareTargets).
	Targets []string `json:"targets"`
	// Transport is what the subscribers do: TransportLongPoll (long
	// polls; the default) or TransportSSE (one server-sent event stream
	// each: PushUp's /v1/events, Nchan's EventSource, Centrifugo's uni
	// SSE; see streams.go). The floor serves long polls only.
	Transport string `json:"transport"`
	// Centrifugo is the centrifugo binary (empty: testbed.FindCentrifugo).
	Centrifugo string `json:"centrifugo,omitempty"`
	// Subscribers long-poll one channel, one connection each.
	Subscribers int `json:"subscribers"`
	// Messages are published Interval apart, PayloadSize bytes each (the
	// publisher's timestamp inside).
	Messages    int           `json:"messages"`
	Interval    time.Duration `json:"interval_ns"`
	PayloadSize int           `json:"payload_bytes"`
	// Hold is the long poll's wait before an empty answer, on every
	// broker (the floor holds a poll until the next publish).
	Hold time.Duration `json:"hold_ns"`
	// Pushupd is the pushupd binary (run with -model=event); Nginx and
	// NchanModule Nchan's (empty: Debian's, see testbed.FindNchan).
	Pushupd     string `json:"pushupd,omitempty"`
	Nginx       string `json:"nginx,omitempty"`
	NchanModule string `json:"nchan_module,omitempty"`
	// Workers is nginx's worker_processes. pushupd uses every core
	// (GOMAXPROCS), but Debian's Nchan 1.3.6 with 2 workers crashed a
	// worker (SIGSEGV, or glibc's "double free detected") in 3 of 8 small
	// runs here as subscribers connected, and never with 1 in 10: so 1 by
	// default.
	Workers int `json:"nginx_workers"`
	// ConnectTimeout bounds connecting and parking every subscriber;
	// Drain the wait for deliveries after the last publish.
	ConnectTimeout time.Duration `json:"connect_timeout_ns"`
	Drain          time.Duration `json:"drain_ns"`
	// Settle says when memory counts as settled, for the baseline and
	// for the parked figure (see settledMemory): RSS steady for its
	// Window, at most its Timeout.
	Settle SettleConfig `json:"settle"`
	// ParkedWait is how long every subscriber has waited before the
	// parked memory is read: longer than the servers' per-connection
	// timers (pushupd's 10 s head and write deadlines), because RSS read
	// before they fire misses what they cost. With pushupd of 2026-12-01
	// RSS rose by ~370 B per subscriber 10 s after each parked, while
	// nothing was sent: a 1-second steady window right after parking (as
	// fanout's) does not see it.
	ParkedWait time.Duration `json:"parked_wait_ns"`
	// Syscalls counts every target's system calls during the fan-out
	// with perf stat (tracepoints: counting costs a little CPU per call,
	// the same for every target).
	Syscalls bool `json:"syscalls"`
	// ProfileDir, if not empty, receives perf record -g samples of each
	// target during the fan-out, <target>.perf.data (user and kernel
	// stacks; read with perf report -i). Sampling costs CPU: the run's
	// CPU figures are then not comparable with a run without it.
	ProfileDir string `json:"profile_dir,omitempty"`
	// Cached is the cached-subscribe phase (wrk), after the fan-out, on
	// the brokers that have one (pushup, nchan).
	Cached CachedConfig `json:"cached"`
	// Log receives a line per phase; nil for none.
	Log io.Writer `json:"-"`
}

// DefaultCompareConfig returns issue 12's run: the floor, pushupd and
// Nginx + Nchan, each with 15,000 long-poll subscribers on one channel, 5
// messages of 64 bytes 2 s apart, holds of 60 s, system calls counted,
// then wrk's cached-subscribe rate.
func DefaultCompareConfig() CompareConfig {
	return CompareConfig{
		Targets: []string{"floor", "pushup", "nchan"}, Transport: TransportLongPoll, Subscribers: 15_000, Messages: 5, Interval: 2 * time.Second, PayloadSize: 64,
		Hold: time.Minute, Workers: 1, ConnectTimeout: time.Minute, Drain: 30 * time.Second, Settle: DefaultSettleConfig(),
		ParkedWait: 15 * time.Second,
		Syscalls:   true, Cached: DefaultCachedConfig(),
	}
}

// checkNames reports an empty list of servers to run (what they are:
// "broker", "target") or one not among known.
func checkNames(what string, names, known []string) error {
	if len(names) == 0 {
		return fmt.Errorf("%w: no %s to run", ErrInvalidConfig, what)
	}
	for _, n := range names {
		if !slices.Contains(known, n) {
			return fmt.Errorf("%w: %s %q: want one of %v", ErrInvalidConfig, what, n, known)
		}
	}
	return nil
}

// Validate reports a configuration that cannot work.
func (c CompareConfig) Validate() error {
	if err := checkNames("target", c.Targets, CompareTargets); err != nil {
		return err
	}
	switch {
	case c.Transport != TransportLongPoll && c.Transport != TransportSSE:
		return fmt.Errorf("%w: transport %q: want %q or %q", ErrInvalidConfig, c.Transport, TransportLongPoll, TransportSSE)
	case c.Transport != TransportSSE && slices.Contains(c.Targets, "centrifugo"):
		return fmt.Errorf("%w: centrifugo is compared on -transport=sse only", ErrInvalidConfig)
	case c.Transport == TransportSSE && slices.Contains(c.Targets, "floor"):
		return fmt.Errorf("%w: the floor serves long polls only", ErrInvalidConfig)
	case c.Subscribers < 1:
		return fmt.Errorf("%w: %d subscribers", ErrInvalidConfig, c.Subscribers)
	case c.Messages < 1 || c.Messages > MaxMessages:
		return fmt.Errorf("%w: %d messages", ErrInvalidConfig, c.Messages)
	case c.Interval <= 0, c.Hold < time.Second, c.ConnectTimeout <= 0, c.Drain <= 0, c.ParkedWait < 0:
		return fmt.Errorf("%w: intervals must be positive and the hold at least 1s", ErrInvalidConfig)
	case c.Settle.Window < 0 || c.Settle.Timeout < 0 || c.Settle.Tolerance < 0:
		return fmt.Errorf("%w: the settle window, timeout and tolerance must not be negative", ErrInvalidConfig)
	case c.PayloadSize < MinPayloadSize:
		return fmt.Errorf("%w: payload of %d bytes is below the minimum, %d", ErrInvalidConfig, c.PayloadSize, MinPayloadSize)
	}
	return c.Cached.Validate()
}

// CompareResult is one target's row: its costs over the fan-out, from
// just before the first publish until every long-poll subscriber has its
// last message and is parked again (or the drain's end), and its memory
// before and after parking.
type CompareResult struct {
	Target  string `json:"target"`
	Version string `json:"version"`
	// Subscribers is how many were parked (the configuration's).
	Subscribers int `json:"subscribers"`
	// LoadAverage is the machine's 1-minute load average as the fan-out
	// started (/proc/loadavg): the cores are shared with whatever else
	// runs.
	LoadAverage float64 `json:"load_average"`
	// Processes and Threads are the target's, once parked and at the end.
	Processes int `json:"processes"`
	Threads   int `json:"threads"`
	// Memory is summed over the target's processes (nginx's master and
	// workers): RSS counts shared memory once per process, PSS shares it
	// out, so PSS is the fair sum; for one process they are equal but for
	// rounding. Baseline is before the subscribers connect, Parked once
	// they all wait (each settled, see settledMemory), Peak the highest
	// sample during the fan-out.
	BaselineRSS int64 `json:"baseline_rss_bytes"`
	ParkedRSS   int64 `json:"parked_rss_bytes"`
	PeakRSS     int64 `json:"peak_rss_bytes"`
	BaselinePSS int64 `json:"baseline_pss_bytes"`
	ParkedPSS   int64 `json:"parked_pss_bytes"`
	PeakPSS     int64 `json:"peak_pss_bytes"`
	// HalfRSS and HalfPSS are the same once half the subscribers wait
	// (Subscribers / 2, rounded down), read the same way as the parked
	// figures.
	HalfRSS int64 `json:"half_parked_rss_bytes"`
	HalfPSS int64 `json:"half_parked_pss_bytes"`
	// Settled reports whether every memory figure settled within the
	// configured timeout (if not they are the last window's mean).
	Settled bool `json:"settled"`
	// KernelBefore and KernelParked are the kernel's memory, machine
	// wide, at the same moments as BaselineRSS and ParkedRSS.
	KernelBefore KernelMemory `json:"kernel_before"`
	KernelParked KernelMemory `json:"kernel_parked"`
	// Expected is subscribers x messages; Received counts first receipts,
	// Duplicates the rest; RMP is Received / Expected in percent.
	Expected   int64   `json:"expected"`
	Received   int64   `json:"received"`
	Duplicates int64   `json:"duplicates"`
	RMP        float64 `json:"rmp_percent"`
	// TripTime is from the publisher's timestamp to a subscriber reading
	// the message, over every first receipt.
	TripTime LatencySummary `json:"trip_time"`
	// PublishLatencyMax is the slowest publish request's answer time.
	PublishLatencyMax time.Duration `json:"publish_latency_max_ns"`
	// UserSeconds and SysSeconds are the target's CPU time over the
	// fan-out, summed over its processes.
	UserSeconds float64 `json:"user_cpu_seconds"`
	SysSeconds  float64 `json:"sys_cpu_seconds"`
	// ClientCPUSeconds is the load tester's CPU time over the same
	// window: it shares the cores, and decoding differs by protocol.
	ClientCPUSeconds float64 `json:"client_cpu_seconds"`
	// BytesWritten and BytesRead are what its read- and write-type system
	// calls moved (wchar and rchar of /proc/<pid>/io): the answers and
	// the re-polls, plus the few publish requests.
	BytesWritten int64 `json:"bytes_written"`
	BytesRead    int64 `json:"bytes_read"`
	// Syscalls counts system calls by name, every one under "all"; empty
	// without CompareConfig.Syscalls.
	Syscalls map[string]int64 `json:"syscalls,omitempty"`
	// Cached is the cached-subscribe phase's result; nil where there is
	// none (the floor, SSE, or Cached off).
	Cached *CachedResult `json:"cached,omitempty"`
	// Errors counts subscriber errors by kind.
	Errors map[string]int64 `json:"errors"`
	// Profile is the perf record file, if one was asked for.
	Profile string `json:"profile,omitempty"`
	// Error says why the run failed; empty if it did not.
	Error string `json:"error,omitempty"`
}

// CPUPerDelivery is the target's CPU time per first receipt.
func (r CompareResult) CPUPerDelivery() time.Duration {
	return time.Duration((r.UserSeconds + r.SysSeconds) * 1e9 / float64(max(r.Received, 1)))
}

// perDelivery divides n by the deliveries.
func (r CompareResult) perDelivery(n int64) float64 { return float64(n) / float64(max(r.Received, 1)) }

// perSubscriber divides the growth from a to b by the subscribers.
func (r CompareResult) perSubscriber(a, b int64) float64 {
	return float64(b-a) / float64(max(r.Subscribers, 1))
}

// RSSPerSubscriber is (ParkedRSS - BaselineRSS) / Subscribers, in bytes:
// what the subscribers added to the server as it was before them,
// including whatever its first requests cost once.
func (r CompareResult) RSSPerSubscriber() float64 { return r.perSubscriber(r.BaselineRSS, r.ParkedRSS) }

// MarginalRSSPerSubscriber is what the second half of the subscribers
// added, per subscriber: (ParkedRSS - HalfRSS) / (Subscribers -
// Subscribers/2). Costs paid once (heap the first requests grew,
// runtime structures) are in both readings and cancel out, and so does
// the baseline's timing; what is left is what one more parked subscriber
// costs. 0 when no half was read.
func (r CompareResult) MarginalRSSPerSubscriber() float64 {
	if r.HalfRSS == 0 {
		return 0
	}
	return float64(r.ParkedRSS-r.HalfRSS) / float64(max(r.Subscribers-r.Subscribers/2, 1))
}

// PeakToParked is the peak RSS during the fan-out over the parked RSS.
func (r CompareResult) PeakToParked() float64 {
	return float64(r.PeakRSS) / float64(max(r.ParkedRSS, 1))
}

// CompareReport is a side-by-side run.
type CompareReport struct {
	Started time.Time       `json:"started"`
	Machine Machine         `json:"machine"`
	Config  CompareConfig   `json:"config"`
	Results []CompareResult `json:"results"`
	// Verdicts are issue 12's targets checked on Results (see Verdicts).
	Verdicts []Verdict `json:"verdicts"`
}

// compareChannel is the channel every subscriber long-polls.
const compareChannel = "compare"

// Compare runs each target of cfg in turn. A target that fails gets a
// row with its Error; the others still run.
func Compare(ctx context.Context, cfg CompareConfig) (CompareReport, error) {
	rep := CompareReport{Started: time.Now(), Config: cfg}
	if err := cfg.Validate(); err != nil {
		return rep, err
	}
	if _, err := fileLimit("the load tester", cfg.Subscribers+8); err != nil {
		return rep, err
	}
	if cfg.ProfileDir != "" {
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			return rep, err
		}
	}
	rep.Machine = DescribeMachine()
	var err error
	rep.Results, err = inTurn(ctx, cfg.Targets, func(t string) (CompareResult, error) { return compareOne(ctx, cfg, t) })
	if cfg.Transport != TransportSSE {
		// Issue 12's targets are long-poll figures (a parked poll's
		// memory, a poll's trip): a stream's would be judged against
		// the wrong bar.
		rep.Verdicts = Verdicts(rep.Results)
	}
	return rep, err
}

// turn is a pointer to one row of a side-by-side run: one server's
// result.
type turn[R any] interface {
	*R
	// done names the row and keeps the turn's error, if any.
	done(name string, err error)
}

// inTurn runs one for each name in order. A turn that fails keeps its
// row, with its error, and the others still run; only ctx's end stops
// early.
func inTurn[R any, P turn[R]](ctx context.Context, names []string, one func(name string) (R, error)) ([]R, error) {
	var rows []R
	for _, name := range names {
		res, err := one(name)
		P(&res).done(name, err)
		rows = append(rows, res)
		if ctx.Err() != nil {
			return rows, ctx.Err()
		}
	}
	return rows, nil
}

// rowResult is a turn's result as a report's table shows it.
type rowResult interface {
	// failed reports a turn that ended in an error: no figures.
	failed() bool
}

// tableRow is a report's row: name, then cell of each result, or
// "failed" for a turn that failed.
func tableRow[R rowResult](name string, results []R, cell func(R) string) []string {
	row := []string{name}
	for _, res := range results {
		if res.failed() {
			row = append(row, "failed")
			continue
		}
		row = append(row, cell(res))
	}
	return row
}

func (r CompareResult) failed() bool { return r.Error != "" }

func (r *CompareResult) done(target string, err error) {
	r.Target = target
	if err != nil {
		r.Error = err.Error()
	}
}

// brokerUnderTest is a running target, as a comparison sees it.
type brokerUnderTest struct {
	url     string
	pid     int // the process whose tree is measured
	version string
	proto   longPollProtocol
	stream  streamProtocol // with TransportSSE
	waiting func(context.Context) (int64, error)
	stop    func() error
	exited  <-chan struct{}
	log     func() string // the server's last log lines
}

// release stops b, keeping its error in *err unless *err holds one
// already.
func (b *brokerUnderTest) release(err *error) {
	if serr := b.stop(); serr != nil && *err == nil {
		*err = serr
	}
}

// watch returns ctx, ended also when b exits: the server exiting ends the
// run. cancel ends the watching goroutine; the caller must call it.
func (b *brokerUnderTest) watch(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-b.exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// compareOne runs one target's turn: start it, then the phases of a
// comparison in order. The result so far is returned with an error.
func compareOne(ctx context.Context, cfg CompareConfig, name string) (res CompareResult, err error) {
	scraper := &http.Client{Timeout: 10 * time.Second}
	defer scraper.CloseIdleConnections()
	b, err := startTarget(ctx, cfg, name, scraper)
	if err != nil {
		return res, err
	}
	defer b.release(&err)
	ctx, cancel := b.watch(ctx)
	defer cancel()
	c := &comparison{ctx: ctx, cfg: cfg, name: name, b: b, res: CompareResult{Version: b.version, Subscribers: cfg.Subscribers}}
	defer c.stopMeasuring()
	if err := inOrder(c.baseline, c.park, c.startCounting, c.publish, c.drain, c.stopCounting); err != nil {
		return c.res, err
	}
	c.figures()
	if err := c.cached(); err != nil {
		return c.res, err
	}
	return c.res, nil
}

// startTarget starts one target as a child process.
func startTarget(ctx context.Context, cfg CompareConfig, name string, scraper *http.Client) (*brokerUnderTest, error) {
	if name == "floor" {
		return startFloor(scraper)
	}
	return startBroker(ctx, cfg, name, scraper)
}

// comparison is one target's turn in Compare, in progress: what each
// phase leaves for the next. Its methods run one after the other on
// compareOne's goroutine.
type comparison struct {
	ctx  context.Context
	cfg  CompareConfig
	name string
	b    *brokerUnderTest
	res  CompareResult

	subs              *compareSubscribers
	peak              *peakSampler
	counter, recorder *perfProcess
	costFrom          procCost
	selfFrom          ServerSample
	selfErr           error
}

func (c *comparison) logf(format string, args ...any) {
	if c.cfg.Log != nil {
		fmt.Fprintf(c.cfg.Log, "[%s] "+format+"\n", append([]any{c.name}, args...)...)
	}
}

// stopMeasuring ends whatever still runs when a turn ends early: the
// peak sampler, perf and the subscribers. It is safe to call more than
// once.
func (c *comparison) stopMeasuring() {
	if c.peak != nil {
		c.peak.stop()
	}
	for _, p := range []**perfProcess{&c.counter, &c.recorder} {
		if *p != nil {
			_, _ = (*p).stop()
			*p = nil
		}
	}
	if c.subs != nil {
		c.subs.stop()
	}
}

// warmUps is how many times baseline asks the target how many wait
// before taking its memory: the same request park repeats every 100 ms,
// so that what answering it first costs (a registry warming up, buffers
// the first requests grow) is in the baseline rather than charged to the
// subscribers.
const warmUps = 10

// baseline asks the target how many wait warmUps times, then takes its
// memory and the kernel's once settled, before any subscriber.
func (c *comparison) baseline() (err error) {
	for range warmUps {
		if _, err := c.b.waiting(c.ctx); err != nil {
			return fmt.Errorf("asking how many wait: %w; server log:\n%s", err, c.b.log())
		}
		if !sleep(c.ctx, 100*time.Millisecond) {
			return c.ctx.Err()
		}
	}
	base, settled, err := settledMemory(c.ctx, c.b.pid, c.cfg.Settle)
	if err != nil {
		return err
	}
	c.res.BaselineRSS, c.res.BaselinePSS, c.res.Settled = base.RSS, base.PSS, settled
	if c.res.KernelBefore, err = readKernelMemory(); err != nil {
		return err
	}
	c.logf("baseline RSS %s, PSS %s in %d processes", mib(base.RSS), mib(base.PSS), base.Processes)
	return nil
}

// park starts half the subscribers, waits until the target reports
// every one waiting and then ParkedWait, and takes its memory once
// settled; then the same for the other half, with the kernel's memory.
// The second half's growth is the marginal cost of a subscriber, free of
// whatever the server's first requests cost once (see
// CompareResult.MarginalRSSPerSubscriber).
func (c *comparison) park() error {
	tgt, err := resolveTarget(c.ctx, c.b.url)
	if err != nil {
		return err
	}
	c.subs = newCompareSubscribers(c.cfg, tgt, c.b.proto)
	if c.cfg.Transport == TransportSSE {
		c.subs.stream = c.b.stream
	}
	half := c.cfg.Subscribers / 2
	var m processMemory
	for _, n := range []int{half, c.cfg.Subscribers - half} {
		c.subs.start(c.ctx, n)
		if m, err = c.parkedMemory(c.subs.started); err != nil {
			return err
		}
		if c.res.HalfRSS == 0 {
			c.res.HalfRSS, c.res.HalfPSS = m.RSS, m.PSS
			c.logf("%d waiting: RSS %s", half, mib(m.RSS))
		}
	}
	c.res.ParkedRSS, c.res.ParkedPSS, c.res.Processes = m.RSS, m.PSS, m.Processes
	if c.res.KernelParked, err = readKernelMemory(); err != nil {
		return err
	}
	kb, kp := c.res.KernelBefore, c.res.KernelParked
	c.logf("%d waiting: RSS %s -> %s (%.0f B each from the baseline, %.0f B each in the second half); kernel: TCP sockets %d -> %d, TCP buffers %s -> %s, slab %s -> %s, socket slab caches %s -> %s",
		c.cfg.Subscribers, mib(c.res.BaselineRSS), mib(c.res.ParkedRSS), c.res.RSSPerSubscriber(), c.res.MarginalRSSPerSubscriber(),
		kb.TCPSockets, kp.TCPSockets, mib(kb.TCPBuffers), mib(kp.TCPBuffers), mib(kb.Slab), mib(kp.Slab), mib(kb.SocketSlab), mib(kp.SocketSlab))
	return nil
}

// parkedMemory waits until the target reports n subscribers waiting,
// then ParkedWait, and returns its memory once settled.
func (c *comparison) parkedMemory(n int) (processMemory, error) {
	if err := waitParked(c.ctx, c.b, n, c.cfg.ConnectTimeout, c.subs); err != nil {
		return processMemory{}, err
	}
	if !sleep(c.ctx, c.cfg.ParkedWait) {
		return processMemory{}, c.ctx.Err()
	}
	m, settled, err := settledMemory(c.ctx, c.b.pid, c.cfg.Settle)
	c.res.Settled = c.res.Settled && settled
	return m, err
}

// startCounting starts what measures the fan-out: the peak sampler, perf
// (system calls, stacks) if asked, and the CPU and byte counters.
func (c *comparison) startCounting() (err error) {
	c.res.LoadAverage = loadAverage()
	c.peak = startPeakSampler(c.ctx, c.b.pid, processMemory{RSS: c.res.ParkedRSS, PSS: c.res.ParkedPSS})
	pids := treePIDs(c.b.pid)
	if c.cfg.Syscalls {
		if c.counter, err = startSyscallCount(pids); err != nil {
			return err
		}
	}
	if c.cfg.ProfileDir != "" {
		c.res.Profile = filepath.Join(c.cfg.ProfileDir, c.name+".perf.data")
		if c.recorder, err = startPerf([]string{"record", "-F", "999", "-g", "-o", c.res.Profile}, pids); err != nil {
			return err
		}
	}
	if c.costFrom, err = readTreeCost(c.b.pid); err != nil {
		return err
	}
	c.selfFrom, c.selfErr = ProcProbe{PID: os.Getpid()}.Probe(c.ctx)
	return nil
}

// publish sends the messages on schedule.
func (c *comparison) publish() (err error) {
	pub := &http.Client{Timeout: time.Minute}
	defer pub.CloseIdleConnections()
	c.res.Expected = int64(c.cfg.Subscribers) * int64(c.cfg.Messages)
	var payload []byte
	for k := range c.cfg.Messages {
		if k > 0 && !sleep(c.ctx, c.cfg.Interval) {
			return c.ctx.Err()
		}
		sent := time.Now()
		payload, err = AppendPayload(payload[:0], Payload{Seq: int64(k), SentAt: sent.UnixNano()}, c.cfg.PayloadSize)
		if err != nil {
			return err
		}
		if err := c.b.proto.publish(c.ctx, pub, c.b.url, payload); err != nil {
			return fmt.Errorf("publish %d: %w", k, err)
		}
		c.res.PublishLatencyMax = max(c.res.PublishLatencyMax, time.Since(sent))
		c.logf("published %d of %d", k+1, c.cfg.Messages)
	}
	return nil
}

// drain waits until every delivery is in or Drain passed, then, if every
// one is in, until every subscriber waits again: each delivery's cost
// includes reading its re-poll.
func (c *comparison) drain() error {
	drainBy := time.Now().Add(c.cfg.Drain)
	for c.subs.fresh.Load() < c.res.Expected && time.Now().Before(drainBy) {
		if !sleep(c.ctx, 10*time.Millisecond) {
			return c.ctx.Err()
		}
	}
	if c.subs.fresh.Load() >= c.res.Expected {
		if err := waitParked(c.ctx, c.b, c.cfg.Subscribers, c.cfg.Drain, c.subs); err != nil {
			return fmt.Errorf("after the fan-out: %w", err)
		}
	}
	return nil
}

// stopCounting reads the counters started by startCounting.
func (c *comparison) stopCounting() error {
	to, err := readTreeCost(c.b.pid)
	if err != nil {
		return err
	}
	peak := c.peak.stop()
	c.res.PeakRSS, c.res.PeakPSS = peak.RSS, peak.PSS
	if selfEnd, err := (ProcProbe{PID: os.Getpid()}).Probe(c.ctx); err == nil && c.selfErr == nil {
		c.res.ClientCPUSeconds = selfEnd.CPUSeconds - c.selfFrom.CPUSeconds
	}
	if c.counter != nil {
		out, _ := c.counter.stop()
		c.counter = nil
		if c.res.Syscalls, err = parsePerfStatCSV(out); err != nil {
			return err
		}
	}
	if c.recorder != nil {
		out, err := c.recorder.stop()
		c.recorder = nil
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
	}
	cost := to.sub(c.costFrom)
	c.res.UserSeconds, c.res.SysSeconds, c.res.BytesWritten, c.res.BytesRead, c.res.Threads = cost.User, cost.Sys, cost.WChar, cost.RChar, to.Threads
	return nil
}

// figures stops the subscribers and sums up what they received.
func (c *comparison) figures() {
	c.subs.stop()
	c.res.Received, c.res.Duplicates = c.subs.fresh.Load(), c.subs.duplicates.Load()
	c.res.RMP = 100 * float64(c.res.Received) / float64(max(c.res.Expected, 1))
	c.res.TripTime = Summarize(c.subs.trips())
	c.res.Errors = c.subs.errors.snapshot()
	c.logf("received %d of %d (%d duplicates): CPU %s per delivery, %.2f syscalls, %.0f B written, trip time p50 %s p99 %s",
		c.res.Received, c.res.Expected, c.res.Duplicates, c.res.CPUPerDelivery(), c.res.perDelivery(c.res.Syscalls[syscallTotal]),
		c.res.perDelivery(c.res.BytesWritten), c.res.TripTime.P50, c.res.TripTime.P99)
}

// cached runs the cached-subscribe phase on the brokers that have one.
func (c *comparison) cached() error {
	if c.cfg.Cached.Duration <= 0 || c.cfg.Transport != TransportLongPoll || !slices.Contains(cachedTargets, c.name) {
		return nil
	}
	res, err := runCached(c.ctx, c.cfg.Cached, c.name, c.b.url, c.b.pid)
	if err != nil {
		return fmt.Errorf("cached subscribe: %w", err)
	}
	c.res.Cached = &res
	if res.Skipped != "" {
		c.logf("cached subscribe skipped: %s", res.Skipped)
	} else {
		c.logf("cached subscribe: %.0f requests/s (%d requests, %d not 200, %d socket errors)", res.RequestsPerSecond, res.Requests, res.Non2xx, res.SocketErrors)
	}
	return nil
}

// waitParked waits until b says n subscribers wait.
func waitParked(ctx context.Context, b *brokerUnderTest, n int, timeout time.Duration, subs *compareSubscribers) error {
	by := time.Now().Add(timeout)
	for {
		waiting, err := b.waiting(ctx)
		if err != nil {
			return fmt.Errorf("asking how many wait: %w; server log:\n%s", err, b.log())
		}
		if waiting >= int64(n) {
			return nil
		}
		if time.Now().After(by) {
			return fmt.Errorf("%w: %d of %d waiting after %s (errors %v); server log:\n%s",
				ErrNotParked, waiting, n, timeout, subs.errors.snapshot(), b.log())
		}
		if !sleep(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// settledMemory samples pid's tree every 100 ms until its RSS has held
// steady for cfg.Window (spread within cfg.Tolerance, or cfg.MinSpread),
// and returns the means over that window; settled is false if
// cfg.Timeout passed first, and the figures are then the last window's.
// One reading right after parking catches whatever garbage the Go
// collector has not yet collected, or the scavenger not yet returned,
// at that moment: steady is what a parked server holds.
func settledMemory(ctx context.Context, pid int, cfg SettleConfig) (m processMemory, settled bool, err error) {
	const every = 100 * time.Millisecond
	by := time.Now().Add(cfg.Timeout)
	var window []processMemory
	keep := max(int(cfg.Window/every), 1)
	for {
		s, err := treeMemory(pid)
		if err != nil {
			return m, false, err
		}
		window = append(window, s)
		if len(window) > keep {
			window = window[1:]
		}
		m, settled = steadyMemory(window, keep, cfg)
		if settled || time.Now().After(by) {
			return m, settled, nil
		}
		if !sleep(ctx, every) {
			return m, false, ctx.Err()
		}
	}
}

// steadyMemory returns the mean of samples and whether they are want
// samples whose RSS spread is within cfg's tolerance.
func steadyMemory(samples []processMemory, want int, cfg SettleConfig) (mean processMemory, ok bool) {
	if len(samples) == 0 {
		return mean, false
	}
	lo, hi := samples[0].RSS, samples[0].RSS
	for _, s := range samples {
		lo, hi = min(lo, s.RSS), max(hi, s.RSS)
		mean.RSS += s.RSS
		mean.PSS += s.PSS
	}
	n := int64(len(samples))
	mean.RSS, mean.PSS = mean.RSS/n, mean.PSS/n
	last := samples[len(samples)-1]
	mean.Processes, mean.CPUSeconds = last.Processes, last.CPUSeconds
	return mean, len(samples) >= want && hi-lo <= max(cfg.MinSpread, int64(cfg.Tolerance*float64(hi)))
}

// loadAverage reads the machine's 1-minute load average; 0 if it cannot.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// peakSampler samples a process tree's memory every 50 ms, keeping the
// highest RSS and PSS. Its goroutine ends on stop.
type peakSampler struct {
	mu     sync.Mutex
	peak   processMemory
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startPeakSampler(ctx context.Context, pid int, from processMemory) *peakSampler {
	p := &peakSampler{peak: from}
	ctx, p.cancel = context.WithCancel(ctx)
	p.wg.Go(func() {
		for sleep(ctx, 50*time.Millisecond) {
			if m, err := treeMemory(pid); err == nil {
				p.mu.Lock()
				p.peak.RSS, p.peak.PSS = max(p.peak.RSS, m.RSS), max(p.peak.PSS, m.PSS)
				p.mu.Unlock()
			}
		}
	})
	return p
}

// stop ends the sampling and returns the peaks. It is safe to call more
// than once.
func (p *peakSampler) stop() processMemory {
	p.cancel()
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peak
}

// startBroker starts one broker as a child process.
func startBroker(ctx context.Context, cfg CompareConfig, broker string, scraper *http.Client) (*brokerUnderTest, error) {
	switch broker {
	case "pushup":
		if cfg.Pushupd == "" {
			return nil, fmt.Errorf("%w: no pushupd binary", ErrInvalidConfig)
		}
		maxTimeout := strconv.Itoa(int(cfg.Hold.Seconds())+60) + "s"
		// Streams live longer than the run, as on the other brokers.
		d, err := testbed.StartDaemon(testbed.DaemonConfig{Binary: cfg.Pushupd, Args: []string{"-model", "event", "-max-timeout", maxTimeout, "-sse-max-lifetime", "1h"}})
		if err != nil {
			return nil, err
		}
		return &brokerUnderTest{
			url: d.URL, pid: d.PID, version: "pushupd -model=" + d.Model, proto: pushupProtocol{hold: cfg.Hold}, stream: pushupStream{},
			waiting: func(ctx context.Context) (int64, error) {
				n, _, err := serversWaiting(ctx, scraper, []string{d.URL})
				return n, err
			},
			stop: d.Stop, exited: d.Exited(), log: d.Log,
		}, nil
	case "nchan":
		n, err := testbed.StartNchan(ctx, testbed.NchanConfig{
			Nginx: cfg.Nginx, Module: cfg.NchanModule, Workers: cfg.Workers, Hold: cfg.Hold,
		})
		if err != nil {
			return nil, err
		}
		return &brokerUnderTest{
			url: n.URL, pid: n.PID, version: n.Version + " + nchan", proto: nchanProtocol{}, stream: nchanStream{},
			waiting: func(ctx context.Context) (int64, error) { return n.Subscribers(ctx, scraper, compareChannel) },
			stop:    n.Stop, exited: n.Exited(), log: n.Log,
		}, nil
	case "centrifugo":
		c, err := testbed.StartCentrifugo(ctx, testbed.CentrifugoConfig{Binary: cfg.Centrifugo})
		if err != nil {
			return nil, err
		}
		return &brokerUnderTest{
			url: c.URL, pid: c.PID, version: c.Version, proto: centrifugoProtocol{c}, stream: centrifugoStream{token: c.Token(compareChannel)},
			waiting: func(ctx context.Context) (int64, error) { return c.Clients(ctx, scraper) },
			stop:    c.Stop, exited: c.Exited(), log: c.Log,
		}, nil
	}
	return nil, fmt.Errorf("%w: broker %q", ErrInvalidConfig, broker)
}

// longPollProtocol is how one broker is long-polled and published to.
// position is opaque to the client: what the last answer said to send
// next ("" before the first).
type longPollProtocol interface {
	// request appends the next long-poll request for position.
	request(b []byte, host, position string) []byte
	// answer reads a response: the messages' data and the next position.
	// A timeout is no message and a position.
	answer(resp *http.Response, body []byte, position string) (msgs [][]byte, next string, err error)
	publish(ctx context.Context, client *http.Client, base string, payload []byte) error
}

// pushupProtocol is PushUp's API v1: the cursor is the position.
type pushupProtocol struct{ hold time.Duration }

func (p pushupProtocol) request(b []byte, host, position string) []byte {
	if position == "" {
		position = "now"
	}
	b = append(b, "GET /v1/subscribe?channels="+compareChannel+"&timeout="...)
	b = strconv.AppendInt(b, int64(p.hold.Seconds()), 10)
	b = append(b, "&since="...)
	b = append(b, position...)
	return append(b, " HTTP/1.1\r\nHost: "+host+"\r\n\r\n"...)
}

func (pushupProtocol) answer(resp *http.Response, body []byte, _ string) ([][]byte, string, error) {
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("%w: %s", ErrUnexpectedStatus, resp.Status)
	}
	a, err := parseAnswer(body)
	if err != nil {
		return nil, "", err
	}
	msgs := make([][]byte, len(a.Messages))
	for i, m := range a.Messages {
		msgs[i] = m.Data
	}
	return msgs, a.Cursor, nil
}

func (pushupProtocol) publish(ctx context.Context, client *http.Client, base string, payload []byte) error {
	body := append([]byte(`{"channels":["`+compareChannel+`"],"data":`), payload...)
	body = append(body, '}')
	return post(ctx, client, base+"/v1/publish", "application/json", body, http.StatusCreated)
}

// nchanProtocol is Nchan's long polling: a message per answer, the
// position in its Last-Modified and Etag headers, sent back as
// If-Modified-Since and If-None-Match; 408 when the hold ends.
type nchanProtocol struct{}

func (nchanProtocol) request(b []byte, host, position string) []byte {
	b = append(b, "GET /sub/"+compareChannel+" HTTP/1.1\r\nHost: "+host+"\r\n"...)
	if lm, etag, ok := strings.Cut(position, "\n"); ok {
		b = append(b, "If-Modified-Since: "+lm+"\r\nIf-None-Match: "+etag+"\r\n"...)
	}
	return append(b, "\r\n"...)
}

func (nchanProtocol) answer(resp *http.Response, body []byte, position string) ([][]byte, string, error) {
	switch resp.StatusCode {
	case http.StatusOK:
		lm, etag := resp.Header.Get("Last-Modified"), resp.Header.Get("Etag")
		if lm == "" || etag == "" {
			return nil, "", fmt.Errorf("%w: nchan answer without Last-Modified and Etag", ErrMalformedResponse)
		}
		return [][]byte{bytes.Clone(body)}, lm + "\n" + etag, nil
	case http.StatusRequestTimeout, http.StatusNotModified:
		return nil, position, nil
	}
	return nil, "", fmt.Errorf("%w: %s", ErrUnexpectedStatus, resp.Status)
}

func (nchanProtocol) publish(ctx context.Context, client *http.Client, base string, payload []byte) error {
	return post(ctx, client, base+"/pub/"+compareChannel, "application/json", payload, http.StatusCreated, http.StatusAccepted)
}

// post sends body and wants one of the statuses.
func post(ctx context.Context, client *http.Client, url, contentType string, body []byte, want ...int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if !slices.Contains(want, resp.StatusCode) {
		return fmt.Errorf("%w: POST %s: %s: %s", ErrUnexpectedStatus, url, resp.Status, truncate(answer))
	}
	return nil
}

// compareSubscribers are the long-polling clients of one comparison.
type compareSubscribers struct {
	cfg    CompareConfig
	target target
	proto  longPollProtocol
	stream streamProtocol // set: each subscriber reads a stream instead
	dialer *dialer

	ctx     context.Context // the subscribers', set by the first start
	cancel  context.CancelFunc
	started int // subscribers started so far; only start's caller touches it
	wg      sync.WaitGroup

	fresh, duplicates atomic.Int64
	errors            errorCounter

	mu       sync.Mutex
	tripsAll []time.Duration
}

func newCompareSubscribers(cfg CompareConfig, tgt target, proto longPollProtocol) *compareSubscribers {
	return &compareSubscribers{cfg: cfg, target: tgt, proto: proto, dialer: newDialer(tgt.addr, nil, 10*time.Second, 64)}
}

// start starts n more subscribers, until stop or ctx's end (the first
// call's ctx).
func (s *compareSubscribers) start(ctx context.Context, n int) {
	if s.cancel == nil {
		s.ctx, s.cancel = context.WithCancel(ctx)
	}
	run := s.run
	if s.stream != nil {
		run = s.runStream
	}
	for range n {
		s.wg.Go(func() { run(s.ctx) })
	}
	s.started += n
}

// stop ends every subscriber and waits for them. It is safe to call more
// than once.
func (s *compareSubscribers) stop() {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
}

func (s *compareSubscribers) trips() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.tripsAll)
}

// received is one subscriber's record: the sequence numbers it has had
// and their trip times, kept apart from the others' until it ends.
type received struct {
	seen  map[int64]bool
	trips []time.Duration
}

func (s *compareSubscribers) newReceived() *received {
	return &received{seen: make(map[int64]bool, s.cfg.Messages)}
}

// take counts one message that reached r's subscriber at now (Unix
// nanoseconds): fresh, duplicate or unreadable.
func (s *compareSubscribers) take(r *received, m []byte, now int64) {
	p, ok := parsePayload(m)
	switch {
	case !ok:
		s.errors.add(KindProtocol)
	case r.seen[p.Seq]:
		s.duplicates.Add(1)
	default:
		r.seen[p.Seq] = true
		s.fresh.Add(1)
		r.trips = append(r.trips, time.Duration(now-p.SentAt))
	}
}

// keep adds r's trip times to the run's, when its subscriber ends.
func (s *compareSubscribers) keep(r *received) {
	s.mu.Lock()
	s.tripsAll = append(s.tripsAll, r.trips...)
	s.mu.Unlock()
}

// connect dials the broker for one subscriber and arranges for ctx's end
// to unblock the connection. After a failed dial it counts the error and
// waits a second (unless ctx ended); conn is then nil.
func (s *compareSubscribers) connect(ctx context.Context) (conn net.Conn, stop func() bool) {
	conn, err := s.dialer.dial(ctx, s.target.addr)
	if err != nil {
		if ctx.Err() == nil {
			s.errors.add(classify(KindDial, err))
			sleep(ctx, time.Second)
		}
		return nil, nil
	}
	return conn, context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
}

// run is one subscriber: connect, then long-poll until ctx ends,
// reconnecting after an error.
func (s *compareSubscribers) run(ctx context.Context) {
	got := s.newReceived()
	defer s.keep(got)
	position := ""
	var req []byte
	for ctx.Err() == nil {
		conn, stop := s.connect(ctx)
		if conn == nil {
			continue
		}
		var err error
		br := bufio.NewReaderSize(conn, 4096)
		for ctx.Err() == nil {
			req = s.proto.request(req[:0], s.target.host, position)
			_ = conn.SetDeadline(time.Now().Add(s.cfg.Hold + 30*time.Second))
			if _, err = conn.Write(req); err != nil {
				break
			}
			var resp *http.Response
			if resp, err = http.ReadResponse(br, nil); err != nil {
				break
			}
			var body []byte
			body, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			now := time.Now().UnixNano()
			if err != nil {
				break
			}
			var msgs [][]byte
			if msgs, position, err = s.proto.answer(resp, body, position); err != nil {
				if errors.Is(err, ErrUnexpectedStatus) {
					s.errors.status(resp.StatusCode)
				} else {
					s.errors.add(KindProtocol)
				}
				err = nil // counted
				sleep(ctx, time.Second)
				break
			}
			for _, m := range msgs {
				s.take(got, m, now)
			}
			if resp.Close {
				break
			}
		}
		stop()
		conn.Close()
		if err != nil && ctx.Err() == nil {
			s.errors.add(classify(KindRead, err))
		}
	}
}

// processMemory is a process tree's memory and CPU time.
type processMemory struct {
	RSS, PSS   int64
	CPUSeconds float64
	Processes  int
}

// treeMemory sums Rss and Pss (/proc/<pid>/smaps_rollup) and CPU time over
// pid and its children: nginx's master and workers, or pushupd alone.
func treeMemory(pid int) (processMemory, error) {
	pids := treePIDs(pid)
	var m processMemory
	for _, p := range pids {
		dir := "/proc/" + strconv.Itoa(p)
		rollup, err := os.ReadFile(dir + "/smaps_rollup")
		if err != nil {
			if p == pid {
				return m, err
			}
			continue // a worker that just exited
		}
		rss, err1 := parseKBLine(rollup, "Rss:")
		pss, err2 := parseKBLine(rollup, "Pss:")
		if err1 != nil || err2 != nil {
			return m, fmt.Errorf("%s/smaps_rollup: %v %v", dir, err1, err2)
		}
		m.RSS += rss
		m.PSS += pss
		m.Processes++
		if stat, err := os.ReadFile(dir + "/stat"); err == nil {
			if cpu, err := parseProcStatCPU(stat); err == nil {
				m.CPUSeconds += cpu
			}
		}
	}
	return m, nil
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
