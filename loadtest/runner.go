package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"
)

// Run runs one run and returns its figures: the phases RunConfig lists,
// one method of a run each, in order. Whatever it started is stopped on
// every path out.
func Run(ctx context.Context, cfg RunConfig) (res RunResult, err error) {
	if err := cfg.Validate(); err != nil {
		return res, err
	}
	ctx, cancelTimeout := context.WithTimeout(ctx, cfg.Timeout)
	defer cancelTimeout()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r := newRun(ctx, cancel, cfg)
	// Report why the run ended early, not just "context canceled".
	defer func() {
		if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(err, cause) {
			err = fmt.Errorf("%w (%w)", err, cause)
		}
	}()
	defer r.close(&err)
	if err := inOrder(r.servers.start, r.startClients, r.warmUp, r.connect, r.park, r.settle, r.publish, r.drain); err != nil {
		return r.res, err
	}
	r.figures()
	return r.res, nil
}

// inOrder runs phases one after the other, up to the first that fails.
func inOrder(phases ...func() error) error {
	for _, phase := range phases {
		if err := phase(); err != nil {
			return err
		}
	}
	return nil
}

// run is one Run in progress: what each phase leaves for the next. Its
// methods run one after the other on Run's goroutine.
type run struct {
	ctx     context.Context
	cfg     RunConfig
	res     RunResult
	scraper *http.Client // /metrics scrapes; its connections close with the run
	servers *fleet

	mon   *Monitor
	pop   *Population
	pubs  []*Publisher
	prog  *progress
	phase string

	// Marks the phases leave for the figures.
	t0, connectBy                                   time.Time
	baselineAt, parkedAt, publishStart, published   time.Time
	end                                             time.Time
	baselineSettled                                 bool
	balancerBaseline, balancerParked, balancerStart ServerSample
	trafficBefore                                   Traffic
	selfBefore                                      ServerSample
	selfErr                                         error
}

func newRun(ctx context.Context, cancel context.CancelCauseFunc, cfg RunConfig) *run {
	r := &run{
		ctx: ctx, cfg: cfg, phase: "start",
		res: RunResult{
			Name: cfg.Name, Mode: cfg.Subscribers.Mode, Subscribers: cfg.Subscribers.Subscribers,
			PollInterval: cfg.Subscribers.PollInterval, PayloadSize: cfg.Publishers[0].PayloadSize,
		},
		scraper: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 10 * time.Second},
	}
	r.servers = &fleet{ctx: ctx, cancel: cancel, setup: cfg.Server, subscribers: cfg.Subscribers,
		scraper: r.scraper, res: &r.res, stopWatching: make(chan struct{})}
	return r
}

// close stops, in order, the progress line, the subscribers, the
// monitor, the servers (the balancer first) and the scraper's
// connections, whichever were started. A server that did not stop
// cleanly is the run's error if it had none.
func (r *run) close(err *error) {
	if r.prog != nil {
		r.prog.end()
	}
	if r.pop != nil {
		r.pop.Stop()
	}
	if r.mon != nil {
		r.mon.Stop()
	}
	if serr := r.servers.stop(); serr != nil && *err == nil {
		*err = serr
	}
	r.scraper.CloseIdleConnections()
}

func (r *run) setPhase(p string) {
	r.phase = p
	if r.prog != nil {
		r.prog.setPhase(p)
	}
}

func (r *run) interrupted() error {
	return fmt.Errorf("loadtest: run interrupted during %s: %w", r.phase, r.ctx.Err())
}

// startClients starts the monitor and the progress line and makes the
// subscribers and publishers, pointed at the servers' entry unless
// their configuration names targets.
func (r *run) startClients() (err error) {
	interval := r.cfg.SampleInterval
	for _, p := range r.servers.probes {
		if _, ok := p.(MetricsProbe); ok {
			interval = max(interval, 250*time.Millisecond)
		}
	}
	if r.mon, err = NewMonitor(interval, r.servers.probes...); err != nil {
		return err
	}
	if err := r.mon.Start(r.ctx); err != nil {
		return err
	}
	r.res.Memory.SampleInterval = interval

	popCfg := r.cfg.Subscribers
	if len(popCfg.Targets) == 0 {
		popCfg.Targets = r.servers.entry()
	}
	if r.pop, err = NewPopulation(popCfg); err != nil {
		return err
	}
	r.pubs = make([]*Publisher, len(r.cfg.Publishers))
	for i, pc := range r.cfg.Publishers {
		if len(pc.Targets) == 0 {
			pc.Targets = r.servers.publishTo()
		}
		if r.pubs[i], err = NewPublisher(pc); err != nil {
			return err
		}
	}
	r.prog = startProgress(r.cfg.Progress, r.cfg.ProgressInterval, r.pop, r.pubs, r.mon)
	return nil
}

// warmUp waits the warm-up, then takes the baseline: the servers' memory
// once settled, before any subscriber.
func (r *run) warmUp() error {
	r.setPhase("warm-up")
	if !sleep(r.ctx, r.cfg.WarmUp) {
		return r.interrupted()
	}
	if r.cfg.WaitParked {
		// Scrape once now, so the cost of the first scrape (the registry
		// warming up) is in the baseline, not in the parked figure.
		if _, _, err := serversWaiting(r.ctx, r.scraper, r.servers.urls); err != nil {
			return err
		}
	}
	r.setPhase("baseline")
	r.res.Memory.BaselineRSS, r.baselineSettled = r.mon.WaitSettled(r.ctx, r.cfg.Settle)
	r.baselineAt = time.Now()
	r.balancerBaseline = r.servers.balancer()
	return nil
}

// connect starts the subscribers and waits until each has had its first
// answer (its position).
func (r *run) connect() error {
	r.setPhase("connect")
	r.t0 = time.Now()
	if err := r.pop.Start(r.ctx); err != nil {
		return err
	}
	r.connectBy = time.Now().Add(r.cfg.ConnectTimeout)
	for r.pop.Stats().Started < int64(r.pop.Size()) {
		if time.Now().After(r.connectBy) {
			return r.notParked("not every subscriber had its first answer")
		}
		if !sleep(r.ctx, 10*time.Millisecond) {
			return r.interrupted()
		}
	}
	r.res.Timeline.Connect = time.Since(r.t0)
	return nil
}

func (r *run) notParked(what string) error {
	st := r.pop.Stats()
	return fmt.Errorf("%w: %s after %s (connected %d, started %d of %d; errors %v)", ErrNotParked, what,
		r.cfg.ConnectTimeout, st.Connected, st.Started, r.pop.Size(), r.pop.Errors())
}

// park, for long polling (WaitParked), waits until the servers report
// every subscription waiting.
func (r *run) park() error {
	if !r.cfg.WaitParked {
		return nil
	}
	r.setPhase("park")
	want := r.pop.WaitingSubscriptions()
	for {
		n, each, err := serversWaiting(r.ctx, r.scraper, r.servers.urls)
		if err != nil {
			return err
		}
		r.prog.waiting.Store(n)
		if n >= want {
			r.res.Waiting = each
			break
		}
		if time.Now().After(r.connectBy) {
			return r.notParked(fmt.Sprintf("servers report %d of %d subscriptions waiting", n, want))
		}
		if !sleep(r.ctx, 200*time.Millisecond) {
			return r.interrupted()
		}
	}
	r.res.Timeline.Park = time.Since(r.t0)
	r.prog.waiting.Store(-1) // no longer scraped: do not show a stale figure
	return nil
}

// settle takes the parked memory, once settled.
func (r *run) settle() error {
	r.setPhase("settle")
	var settled bool
	r.res.Memory.ParkedRSS, settled = r.mon.WaitSettled(r.ctx, r.cfg.Settle)
	r.res.Memory.Settled = r.baselineSettled && settled
	r.parkedAt = time.Now()
	r.balancerParked = r.servers.balancer()
	return nil
}

// publish runs the publishers to the end of their schedules.
func (r *run) publish() error {
	r.setPhase("publish")
	r.trafficBefore = r.pop.Traffic()
	r.selfBefore, r.selfErr = ProcProbe{PID: os.Getpid()}.Probe(r.ctx)
	r.publishStart = time.Now()
	r.balancerStart = r.servers.balancer()
	r.res.Publishes = runPublishers(r.ctx, r.pubs)
	r.published = time.Now()
	if r.ctx.Err() != nil {
		return r.interrupted()
	}
	return nil
}

// drain waits until every expected message arrived or Drain passed,
// taking the traffic window on its way, then the CPU and traffic spent
// publishing.
func (r *run) drain() error {
	r.setPhase("drain")
	expected := r.pop.Expected(r.res.Publishes)
	drainBy := r.published.Add(r.cfg.Drain)
	windowEnd := r.publishStart.Add(r.cfg.TrafficWindow)
	windowTaken := r.cfg.TrafficWindow <= 0
	for {
		now := time.Now()
		if !windowTaken && !now.Before(windowEnd) {
			r.res.WindowTraffic = r.pop.Traffic().Sub(r.trafficBefore)
			windowTaken = true
		}
		drained := r.pop.Stats().Fresh >= expected || !now.Before(drainBy)
		if drained && windowTaken {
			break
		}
		step := 5 * time.Millisecond
		if !windowTaken {
			step = min(step, windowEnd.Sub(now)) // take the window on time
		}
		if !sleep(r.ctx, step) {
			return r.interrupted()
		}
	}
	r.end = time.Now()
	if b := r.res.Balancer; b != nil {
		b.ParkedRSS = r.balancerParked.RSS
		b.ParkCPUSeconds = r.balancerParked.CPUSeconds - r.balancerBaseline.CPUSeconds
		b.PublishCPUSeconds = r.servers.balancer().CPUSeconds - r.balancerStart.CPUSeconds
	}
	if selfAfter, err := (ProcProbe{PID: os.Getpid()}).Probe(r.ctx); err == nil && r.selfErr == nil {
		r.res.CPU.LoadTesterPublishSeconds = selfAfter.CPUSeconds - r.selfBefore.CPUSeconds
	}
	r.res.Timeline.Drained = r.pop.Stats().Fresh >= expected
	r.res.Timeline.Publish = r.published.Sub(r.publishStart)
	r.res.Timeline.Drain = r.end.Sub(r.published)
	r.res.PublishTraffic = r.pop.Traffic().Sub(r.trafficBefore)
	return nil
}

// figures stops sampling before disconnecting, so that the final figures
// are those of the loaded server, then stops the subscribers and sums
// up.
func (r *run) figures() {
	end := r.end
	r.mon.Stop()
	ticks := r.mon.Ticks()
	pw := window(ticks, r.publishStart, end)
	r.res.Memory.PeakRSS = pw.PeakRSS
	r.res.Memory.FinalRSS = pw.Last.RSS
	r.res.Memory.PublishSamples = pw.Samples
	r.res.CPU.PublishSeconds = pw.CPUSeconds()
	r.res.CPU.ParkSeconds = window(ticks, r.baselineAt, r.parkedAt).CPUSeconds()
	r.res.Threads = Threads{
		Baseline: window(ticks, time.Time{}, r.baselineAt).Last.Threads,
		Parked:   window(ticks, time.Time{}, r.parkedAt).Last.Threads,
		Peak:     window(ticks, r.baselineAt, end).PeakThreads,
	}
	r.res.MonitorErrors, _ = r.mon.Errors()
	r.setPhase("stop")
	r.pop.Stop()
	r.res.Traffic = r.pop.Traffic()
	r.res.TripTime = Summarize(r.pop.TripTimes())
	r.res.Delivery = r.pop.Tally(r.res.Publishes)
	r.res.Errors = r.pop.Errors()
	lat := make([]time.Duration, 0, len(r.res.Publishes))
	for _, p := range r.res.Publishes {
		if p.OK() {
			lat = append(lat, p.Latency)
		}
	}
	r.res.PublishLatency = Summarize(lat)
}
