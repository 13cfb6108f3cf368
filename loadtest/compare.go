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
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushuphq/pushup/internal/testbed"
)

// Brokers are the servers Compare can run side by side. Centrifugo is
// measured on server-sent events only (its unidirectional SSE).
var Brokers = []string{"pushup", "nchan", "centrifugo"}

// CompareConfig configures a side-by-side run: the same subscribers, the
// same publisher and the same measurements against each broker in turn,
// each started fresh on this machine. Every broker is measured through
// one small client (a goroutine and a bufio.Reader per subscriber, over
// raw HTTP/1.1), so what differs between the rows is the server.
type CompareConfig struct {
	// Brokers to run, in order (see Brokers).
	Brokers []string
	// Transport is what the subscribers do: TransportLongPoll (long
	// polls; the default) or TransportSSE (one server-sent event stream
	// each: PushUp's /v1/events, Nchan's EventSource, Centrifugo's uni
	// SSE; see streams.go).
	Transport string
	// Centrifugo is the centrifugo binary (empty: testbed.FindCentrifugo).
	Centrifugo string
	// Subscribers long-poll one channel, one connection each.
	Subscribers int
	// Messages are published Interval apart, PayloadSize bytes each (the
	// publisher's timestamp inside).
	Messages    int
	Interval    time.Duration
	PayloadSize int
	// Hold is the long poll's wait before an empty answer, on every
	// broker.
	Hold time.Duration
	// Pushupd is the pushupd binary (run with -model=event); Nginx and
	// NchanModule Nchan's (empty: Debian's, see testbed.FindNchan).
	Pushupd            string
	Nginx, NchanModule string
	// Workers is nginx's worker_processes. pushupd uses every core
	// (GOMAXPROCS), but Debian's Nchan 1.3.6 with 2 workers crashed a
	// worker (SIGSEGV, or glibc's "double free detected") in 3 of 8 small
	// runs here as subscribers connected, and never with 1 in 10: so 1 by
	// default.
	Workers int
	// ConnectTimeout bounds connecting and parking every subscriber;
	// Drain the wait for deliveries after the last publish; Settle the
	// pause before each memory reading.
	ConnectTimeout, Drain, Settle time.Duration
	// Log receives a line per phase; nil for none.
	Log io.Writer
}

// DefaultCompareConfig returns issue 3's fan-out shape: 15,000
// subscribers on one channel, 5 messages of 64 bytes 2 s apart, holds of
// 60 s, pushupd and Nchan.
func DefaultCompareConfig() CompareConfig {
	return CompareConfig{
		Brokers: []string{"pushup", "nchan"}, Transport: TransportLongPoll, Subscribers: 15_000, Messages: 5, Interval: 2 * time.Second, PayloadSize: 64,
		Hold: time.Minute, Workers: 1, ConnectTimeout: time.Minute, Drain: 30 * time.Second, Settle: 2 * time.Second,
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
	if err := checkNames("broker", c.Brokers, Brokers); err != nil {
		return err
	}
	switch {
	case c.Transport != TransportLongPoll && c.Transport != TransportSSE:
		return fmt.Errorf("%w: transport %q: want %q or %q", ErrInvalidConfig, c.Transport, TransportLongPoll, TransportSSE)
	case c.Transport != TransportSSE && slices.Contains(c.Brokers, "centrifugo"):
		return fmt.Errorf("%w: centrifugo is compared on -transport=sse only", ErrInvalidConfig)
	case c.Subscribers < 1:
		return fmt.Errorf("%w: %d subscribers", ErrInvalidConfig, c.Subscribers)
	case c.Messages < 1 || c.Messages > MaxMessages:
		return fmt.Errorf("%w: %d messages", ErrInvalidConfig, c.Messages)
	case c.Interval <= 0, c.Hold < time.Second, c.ConnectTimeout <= 0, c.Drain <= 0, c.Settle < 0:
		return fmt.Errorf("%w: intervals must be positive and the hold at least 1s", ErrInvalidConfig)
	case c.PayloadSize < MinPayloadSize:
		return fmt.Errorf("%w: payload of %d bytes is below the minimum, %d", ErrInvalidConfig, c.PayloadSize, MinPayloadSize)
	}
	return nil
}

// CompareResult is one broker's row.
type CompareResult struct {
	Broker  string `json:"broker"`
	Version string `json:"version"`
	// Memory is summed over the broker's processes (nginx's master and
	// workers): RSS counts shared memory once per process, PSS shares it
	// out, so PSS is the fair sum; for one process they are equal but for
	// rounding.
	BaselinePSS int64 `json:"baseline_pss_bytes"`
	ParkedPSS   int64 `json:"parked_pss_bytes"`
	PeakPSS     int64 `json:"peak_pss_bytes"`
	ParkedRSS   int64 `json:"parked_rss_bytes"`
	Processes   int   `json:"processes"`
	// PerSubscriber is (ParkedPSS - BaselinePSS) / subscribers.
	PerSubscriber float64 `json:"pss_per_subscriber_bytes"`
	// TripTime is from the publisher's timestamp to a subscriber reading
	// the message, over every first receipt.
	TripTime LatencySummary `json:"trip_time"`
	// Expected is subscribers x messages; Received counts first receipts,
	// Duplicates the rest; RMP is Received / Expected in percent.
	Expected   int64   `json:"expected"`
	Received   int64   `json:"received"`
	Duplicates int64   `json:"duplicates"`
	RMP        float64 `json:"rmp_percent"`
	// PublishLatencyMax is the slowest publish request's answer time.
	PublishLatencyMax time.Duration `json:"publish_latency_max_ns"`
	// CPUSeconds is the broker's CPU time from the first publish to the
	// last delivery, summed over its processes.
	CPUSeconds float64 `json:"cpu_seconds"`
	// ClientCPUSeconds is the load tester's CPU time over the same
	// window: it shares the cores, and decoding differs by protocol.
	ClientCPUSeconds float64 `json:"client_cpu_seconds"`
	// Errors counts subscriber errors by kind.
	Errors map[string]int64 `json:"errors"`
	// Error says why the run failed; empty if it did not.
	Error string `json:"error,omitempty"`
}

// CompareReport is a side-by-side run.
type CompareReport struct {
	Started time.Time       `json:"started"`
	Machine Machine         `json:"machine"`
	Config  CompareConfig   `json:"config"`
	Results []CompareResult `json:"results"`
}

// compareChannel is the channel every subscriber long-polls.
const compareChannel = "compare"

// Compare runs each broker of cfg in turn. A broker that fails gets a row
// with its Error; the others still run.
func Compare(ctx context.Context, cfg CompareConfig) (CompareReport, error) {
	rep := CompareReport{Started: time.Now(), Config: cfg}
	if err := cfg.Validate(); err != nil {
		return rep, err
	}
	if _, err := fileLimit("the load tester", cfg.Subscribers+8); err != nil {
		return rep, err
	}
	rep.Machine = DescribeMachine()
	var err error
	rep.Results, err = inTurn(ctx, cfg.Brokers, func(b string) (CompareResult, error) { return compareOne(ctx, cfg, b) })
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

func (r *CompareResult) done(broker string, err error) {
	r.Broker = broker
	if err != nil {
		r.Error = err.Error()
	}
}

// brokerUnderTest is a running broker, as a comparison sees it.
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

// compareOne runs one broker's turn: start it, then the phases of a
// comparison in order. The result so far is returned with an error.
func compareOne(ctx context.Context, cfg CompareConfig, broker string) (res CompareResult, err error) {
	scraper := &http.Client{Timeout: 10 * time.Second}
	defer scraper.CloseIdleConnections()
	b, err := startBroker(ctx, cfg, broker, scraper)
	if err != nil {
		return res, err
	}
	defer b.release(&err)
	ctx, cancel := b.watch(ctx)
	defer cancel()
	c := &comparison{ctx: ctx, cfg: cfg, name: broker, b: b, res: CompareResult{Version: b.version}}
	defer c.stopSubscribers()
	if err := inOrder(c.baseline, c.park, c.publish, c.drain); err != nil {
		return c.res, err
	}
	c.figures()
	return c.res, nil
}

// comparison is one broker's turn in Compare, in progress: what each
// phase leaves for the next. Its methods run one after the other on
// compareOne's goroutine.
type comparison struct {
	ctx  context.Context
	cfg  CompareConfig
	name string
	b    *brokerUnderTest
	res  CompareResult

	base, parked, cpuFrom processMemory
	subs                  *compareSubscribers
	peak                  *peakSampler
	selfFrom              ServerSample
	selfErr               error
}

func (c *comparison) logf(format string, args ...any) {
	if c.cfg.Log != nil {
		fmt.Fprintf(c.cfg.Log, "[%s] "+format+"\n", append([]any{c.name}, args...)...)
	}
}

func (c *comparison) stopSubscribers() {
	if c.peak != nil {
		c.peak.stop()
	}
	if c.subs != nil {
		c.subs.stop()
	}
}

// baseline takes the broker's memory once settled, before any
// subscriber.
func (c *comparison) baseline() (err error) {
	if !sleep(c.ctx, c.cfg.Settle) {
		return c.ctx.Err()
	}
	if c.base, err = treeMemory(c.b.pid); err != nil {
		return err
	}
	c.res.BaselinePSS = c.base.PSS
	c.logf("baseline %s PSS in %d processes", mib(c.base.PSS), c.base.Processes)
	return nil
}

// park starts the subscribers, waits until the broker reports every one
// waiting, and takes its memory once settled.
func (c *comparison) park() error {
	tgt, err := resolveTarget(c.ctx, c.b.url)
	if err != nil {
		return err
	}
	c.subs = newCompareSubscribers(c.cfg, tgt, c.b.proto)
	if c.cfg.Transport == TransportSSE {
		c.subs.stream = c.b.stream
	}
	c.subs.start(c.ctx)
	if err := waitParked(c.ctx, c.b, c.cfg.Subscribers, c.cfg.ConnectTimeout, c.subs); err != nil {
		return err
	}
	if !sleep(c.ctx, c.cfg.Settle) {
		return c.ctx.Err()
	}
	if c.parked, err = treeMemory(c.b.pid); err != nil {
		return err
	}
	c.res.ParkedPSS, c.res.ParkedRSS, c.res.Processes = c.parked.PSS, c.parked.RSS, c.parked.Processes
	c.res.PerSubscriber = float64(c.parked.PSS-c.base.PSS) / float64(c.cfg.Subscribers)
	c.logf("%d waiting: %s PSS, %.0f B per subscriber", c.cfg.Subscribers, mib(c.parked.PSS), c.res.PerSubscriber)
	return nil
}

// publish sends the messages on schedule, sampling the broker's memory
// for its peak until every delivery is in (see drain).
func (c *comparison) publish() (err error) {
	c.peak = startPeakSampler(c.ctx, c.b.pid, c.parked.PSS)
	pub := &http.Client{Timeout: time.Minute}
	defer pub.CloseIdleConnections()
	c.res.Expected = int64(c.cfg.Subscribers) * int64(c.cfg.Messages)
	if c.cpuFrom, err = treeMemory(c.b.pid); err != nil {
		return err
	}
	c.selfFrom, c.selfErr = ProcProbe{PID: os.Getpid()}.Probe(c.ctx)
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

// drain waits until every delivery is in or Drain passed, then takes the
// CPU time spent publishing.
func (c *comparison) drain() error {
	drainBy := time.Now().Add(c.cfg.Drain)
	for c.subs.fresh.Load() < c.res.Expected && time.Now().Before(drainBy) {
		if !sleep(c.ctx, 10*time.Millisecond) {
			return c.ctx.Err()
		}
	}
	c.res.PeakPSS = c.peak.stop()
	if end, err := treeMemory(c.b.pid); err == nil {
		c.res.CPUSeconds = end.CPUSeconds - c.cpuFrom.CPUSeconds
	}
	if selfEnd, err := (ProcProbe{PID: os.Getpid()}).Probe(c.ctx); err == nil && c.selfErr == nil {
		c.res.ClientCPUSeconds = selfEnd.CPUSeconds - c.selfFrom.CPUSeconds
	}
	return nil
}

// figures stops the subscribers and sums up what they received.
func (c *comparison) figures() {
	c.subs.stop()
	c.res.Received, c.res.Duplicates = c.subs.fresh.Load(), c.subs.duplicates.Load()
	c.res.RMP = 100 * float64(c.res.Received) / float64(c.res.Expected)
	c.res.TripTime = Summarize(c.subs.trips())
	c.res.Errors = c.subs.errors.snapshot()
	c.logf("received %d of %d (%d duplicates), trip time p50 %s p99 %s",
		c.res.Received, c.res.Expected, c.res.Duplicates, c.res.TripTime.P50, c.res.TripTime.P99)
}

// peakSampler samples a process tree's PSS every 50 ms, keeping the
// highest. Its goroutine ends on stop.
type peakSampler struct {
	peak   atomic.Int64
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startPeakSampler(ctx context.Context, pid int, from int64) *peakSampler {
	p := &peakSampler{}
	p.peak.Store(from)
	ctx, p.cancel = context.WithCancel(ctx)
	p.wg.Go(func() {
		for sleep(ctx, 50*time.Millisecond) {
			if m, err := treeMemory(pid); err == nil && m.PSS > p.peak.Load() {
				p.peak.Store(m.PSS)
			}
		}
	})
	return p
}

// stop ends the sampling and returns the peak. It is safe to call more
// than once.
func (p *peakSampler) stop() int64 {
	p.cancel()
	p.wg.Wait()
	return p.peak.Load()
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

	cancel context.CancelFunc
	wg     sync.WaitGroup

	fresh, duplicates atomic.Int64
	errors            errorCounter

	mu       sync.Mutex
	tripsAll []time.Duration
}

func newCompareSubscribers(cfg CompareConfig, tgt target, proto longPollProtocol) *compareSubscribers {
	return &compareSubscribers{cfg: cfg, target: tgt, proto: proto, dialer: newDialer(tgt.addr, nil, 10*time.Second, 64)}
}

func (s *compareSubscribers) start(ctx context.Context) {
	ctx, s.cancel = context.WithCancel(ctx)
	run := s.run
	if s.stream != nil {
		run = s.runStream
	}
	for range s.cfg.Subscribers {
		s.wg.Go(func() { run(ctx) })
	}
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

// WriteText writes the report as a table, a column per broker.
func (r CompareReport) WriteText(w io.Writer) error {
	var b strings.Builder
	c := r.Config
	fmt.Fprintf(&b, "PushUp compare, %s\nmachine: %s\n", r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Machine)
	if c.Transport == TransportSSE {
		fmt.Fprintf(&b, "%d server-sent event streams on one channel, %d messages of %d B %s apart; one client for every broker\n\n",
			c.Subscribers, c.Messages, c.PayloadSize, c.Interval)
	} else {
		fmt.Fprintf(&b, "%d long-poll subscribers on one channel, %d messages of %d B %s apart, holds of %s; one client for every broker\n\n",
			c.Subscribers, c.Messages, c.PayloadSize, c.Interval, c.Hold)
	}
	rows := [][]string{{""}}
	add := func(name string, cell func(CompareResult) string) {
		rows = append(rows, tableRow(name, r.Results, cell))
	}
	for _, res := range r.Results {
		rows[0] = append(rows[0], res.Broker)
	}
	add("version", func(x CompareResult) string { return x.Version })
	add("processes", func(x CompareResult) string { return strconv.Itoa(x.Processes) })
	add("baseline -> waiting PSS", func(x CompareResult) string { return mib(x.BaselinePSS) + " -> " + mib(x.ParkedPSS) })
	add("PSS per waiting subscriber", func(x CompareResult) string { return fmt.Sprintf("%.0f B", x.PerSubscriber) })
	add("peak PSS in fan-out / waiting", func(x CompareResult) string {
		return fmt.Sprintf("%s = %.2fx", mib(x.PeakPSS), float64(x.PeakPSS)/float64(max(x.ParkedPSS, 1)))
	})
	add("trip time p50/p95/p99/max", func(x CompareResult) string {
		t := x.TripTime
		return fmt.Sprintf("%s / %s / %s / %s", ms(t.P50), ms(t.P95), ms(t.P99), ms(t.Max))
	})
	add("mean trip time (MPT)", func(x CompareResult) string { return ms(x.TripTime.Mean) })
	add("received (RMP), duplicates", func(x CompareResult) string {
		return fmt.Sprintf("%.2f%% (%d/%d), %d", x.RMP, x.Received, x.Expected, x.Duplicates)
	})
	add("slowest publish answer", func(x CompareResult) string { return ms(x.PublishLatencyMax) })
	add("CPU, first publish to drained", func(x CompareResult) string { return fmt.Sprintf("%.2f s", x.CPUSeconds) })
	add("CPU per delivery", func(x CompareResult) string {
		return fmt.Sprintf("%.1f µs", 1e6*x.CPUSeconds/float64(max(x.Received, 1)))
	})
	add("load tester CPU, same window", func(x CompareResult) string { return fmt.Sprintf("%.2f s", x.ClientCPUSeconds) })
	add("subscriber errors", func(x CompareResult) string { return fmt.Sprint(x.Errors) })
	widths := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, cell := range row {
			widths[i] = max(widths[i], len(cell))
		}
	}
	for _, row := range rows {
		for i, cell := range row {
			fmt.Fprintf(&b, "%-*s  ", widths[i], cell)
		}
		b.WriteString("\n")
	}
	for _, res := range r.Results {
		if res.Error != "" {
			fmt.Fprintf(&b, "FAILED %s: %s\n", res.Broker, res.Error)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
