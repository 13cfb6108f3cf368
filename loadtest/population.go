package loadtest

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is how a subscriber polls.
type Mode string

// Subscriber modes, after the paper's section 4.
const (
	// ModeLongPoll re-polls at once after each answer, passing the
	// cursor; the server holds each request up to the poll interval (the
	// timeout parameter). The paper's MLP/ELP client.
	ModeLongPoll Mode = "longpoll"
	// ModePull polls with timeout=0 once every poll interval, passing the
	// cursor. The paper's client pull (CP).
	ModePull Mode = "pull"
)

// PopulationConfig configures a Population.
type PopulationConfig struct {
	// Subscribers is how many subscribers to simulate; each owns one TCP
	// connection. It must fit in the open-file limit (testbed.CheckFileBudget).
	Subscribers int
	// Channels are the channels subscribers listen to. Subscriber i
	// listens to ChannelsPerSubscriber consecutive ones starting at
	// Channels[i % len(Channels)], wrapping around.
	Channels []string
	// ChannelsPerSubscriber is how many channels each subscriber listens
	// to; 0 means all of Channels.
	ChannelsPerSubscriber int
	// Targets are server base URLs ("http://127.0.0.1:8080": a node or a
	// load balancer). Subscriber i uses Targets[i % len(Targets)]. Empty
	// means the servers the run started.
	Targets []string
	// Mode is ModeLongPoll or ModePull.
	Mode Mode
	// PollInterval is, for long polling, how long the server may hold a
	// request (the timeout parameter, at most the server's -max-timeout);
	// for client pull, the time between two polls. Pull subscribers spread
	// their polls evenly over the interval.
	PollInterval time.Duration
	// ReadSlack is how long past the hold (long poll) or past sending
	// (pull) an answer may take before the read counts as a timeout. 15 s
	// leaves room for a server busy answering everyone at once.
	ReadSlack time.Duration
	// WriteTimeout bounds writing one request.
	WriteTimeout time.Duration
	// DialTimeout bounds establishing one connection.
	DialTimeout time.Duration
	// DialConcurrency bounds connections being established at once per
	// target. 64 keeps the accept backlog of a busy server from
	// overflowing (a dropped SYN costs a 1 s retransmit) while still
	// connecting 15,000 subscribers in seconds.
	DialConcurrency int
	// SourceIPs overrides the source addresses connections are dialed
	// from, in turn. Nil means 127.0.0.1-254 for an IPv4 loopback target
	// (see dialer.go) and the kernel's choice otherwise.
	SourceIPs []netip.Addr
	// ReadBufferSize is each connection's read buffer. 4 KiB holds a
	// typical answer's headers and a few small messages in one read.
	ReadBufferSize int
	// MaxBodyBytes bounds one response body; larger is a protocol error.
	MaxBodyBytes int
	// MinBackoff and MaxBackoff bound the wait after an error before the
	// subscriber tries again; it doubles from one to the other while the
	// errors go on, so a failing server is not hammered.
	MinBackoff, MaxBackoff time.Duration
}

// DefaultPopulationConfig returns a configuration for 100 long-polling
// subscribers on one channel with a 30 s hold, the server's default.
func DefaultPopulationConfig() PopulationConfig {
	return PopulationConfig{
		Subscribers:     100,
		Channels:        []string{"loadtest"},
		Mode:            ModeLongPoll,
		PollInterval:    30 * time.Second,
		ReadSlack:       15 * time.Second,
		WriteTimeout:    10 * time.Second,
		DialTimeout:     10 * time.Second,
		DialConcurrency: 64,
		ReadBufferSize:  4096,
		MaxBodyBytes:    DefaultMaxBodyBytes,
		MinBackoff:      100 * time.Millisecond,
		MaxBackoff:      5 * time.Second,
	}
}

// Validate reports a configuration that cannot work.
func (c PopulationConfig) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: subscribers: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Subscribers < 1:
		return bad("Subscribers must be at least 1, got %d", c.Subscribers)
	case len(c.Channels) == 0:
		return bad("no Channels")
	case c.ChannelsPerSubscriber < 0 || c.ChannelsPerSubscriber > len(c.Channels):
		return bad("ChannelsPerSubscriber must be 0 to %d, got %d", len(c.Channels), c.ChannelsPerSubscriber)
	case c.Mode != ModeLongPoll && c.Mode != ModePull:
		return bad("Mode %q: want %q or %q", c.Mode, ModeLongPoll, ModePull)
	case c.PollInterval <= 0:
		return bad("PollInterval must be positive, got %s", c.PollInterval)
	case c.ReadSlack <= 0 || c.WriteTimeout <= 0 || c.DialTimeout <= 0:
		return bad("ReadSlack, WriteTimeout and DialTimeout must be positive")
	case c.DialConcurrency < 1:
		return bad("DialConcurrency must be at least 1, got %d", c.DialConcurrency)
	case c.ReadBufferSize < 16:
		return bad("ReadBufferSize must be at least 16, got %d", c.ReadBufferSize)
	case c.MaxBodyBytes < 1:
		return bad("MaxBodyBytes must be positive, got %d", c.MaxBodyBytes)
	case c.MinBackoff <= 0 || c.MaxBackoff < c.MinBackoff:
		return bad("want 0 < MinBackoff <= MaxBackoff, got %s and %s", c.MinBackoff, c.MaxBackoff)
	}
	return nil
}

// channelsOf returns the channels of subscriber i.
func (c PopulationConfig) channelsOf(i int) []string {
	k := c.ChannelsPerSubscriber
	if k == 0 || k == len(c.Channels) {
		return c.Channels
	}
	out := make([]string, k)
	for j := range out {
		out[j] = c.Channels[(i+j)%len(c.Channels)]
	}
	return out
}

// Population is a set of simulated subscribers. Create it with
// NewPopulation, run it with Start and end it with Stop. Its snapshot
// methods are safe to call at any time; Tally and TripTimes only after
// Stop.
type Population struct {
	cfg  PopulationConfig
	subs []*subscriber

	traffic trafficCounter
	errors  errorCounter
	// Live figures for the progress line and for waiting on phases.
	connected, started, inflight atomic.Int64
	received, fresh, duplicates  atomic.Int64

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewPopulation validates cfg and prepares its subscribers.
func NewPopulation(cfg PopulationConfig) (*Population, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(cfg.Targets) == 0 {
		return nil, fmt.Errorf("%w: subscribers: no Targets", ErrInvalidConfig)
	}
	cfg.Channels = append([]string(nil), cfg.Channels...)
	cfg.Targets = append([]string(nil), cfg.Targets...)
	return &Population{cfg: cfg}, nil
}

// Start checks the open-file budget, resolves the targets and starts the
// subscribers, which connect (at most DialConcurrency at a time per
// target), take their position with a first poll (since=now, timeout=0)
// and then poll until Stop or until ctx ends. Start returns once they are
// started, not connected: watch Stats. It may be called once.
func (p *Population) Start(ctx context.Context) error {
	if _, err := fileLimit("this load-test process", p.cfg.Subscribers); err != nil {
		return err
	}
	targets := make([]target, len(p.cfg.Targets))
	dialers := make([]*dialer, len(targets))
	for i, base := range p.cfg.Targets {
		var err error
		if targets[i], err = resolveTarget(ctx, base); err != nil {
			return err
		}
		dialers[i] = newDialer(targets[i].addr, p.cfg.SourceIPs, p.cfg.DialTimeout, p.cfg.DialConcurrency)
	}
	ctx, p.cancel = context.WithCancel(ctx)
	hold := p.cfg.PollInterval.Seconds()
	p.subs = make([]*subscriber, p.cfg.Subscribers)
	for i := range p.subs {
		t := i % len(targets)
		chs := p.cfg.channelsOf(i)
		s := &subscriber{
			id: i, p: p, target: targets[t], dialer: dialers[t], channels: chs,
			first: newSubscribeRequest(targets[t].host, chs, 0),
			poll:  newSubscribeRequest(targets[t].host, chs, hold),
			r:     &receipts{},
		}
		if p.cfg.Mode == ModePull {
			s.poll = s.first // timeout=0
			// Spread pulls evenly over the interval, as independent
			// browsers would, instead of every subscriber at once.
			s.phase = time.Duration(int64(p.cfg.PollInterval) * int64(i) / int64(p.cfg.Subscribers))
		}
		p.subs[i] = s
		p.wg.Go(func() { s.run(ctx) })
	}
	return nil
}

// Stop ends every subscriber, closes their connections and waits for
// their goroutines. It is safe to call more than once, and before Start.
func (p *Population) Stop() {
	if p.cancel != nil {
		p.cancel()
	}
	p.wg.Wait()
}

// PopulationStats is a live snapshot of a population.
type PopulationStats struct {
	// Connected is connections open now.
	Connected int64 `json:"connected"`
	// Started is subscribers that have their position (first answer).
	Started int64 `json:"started"`
	// InFlight is requests written and not yet answered: for long polling,
	// mostly requests parked on the server.
	InFlight int64 `json:"in_flight"`
	// Received is messages received, duplicates included.
	Received int64 `json:"received"`
	// Fresh is first receipts of messages sent after the subscriber
	// started: what RMP counts, before the final tally.
	Fresh int64 `json:"fresh"`
	// Duplicates is receipts of a message the subscriber already had.
	Duplicates int64 `json:"duplicates"`
	// Errors is errors of every kind so far.
	Errors int64 `json:"errors"`
}

// Stats returns a live snapshot.
func (p *Population) Stats() PopulationStats {
	return PopulationStats{
		Connected:  p.connected.Load(),
		Started:    p.started.Load(),
		InFlight:   p.inflight.Load(),
		Received:   p.received.Load(),
		Fresh:      p.fresh.Load(),
		Duplicates: p.duplicates.Load(),
		Errors:     p.errors.total(),
	}
}

// Traffic returns the subscribers' network traffic so far (NT).
func (p *Population) Traffic() Traffic { return p.traffic.snapshot() }

// Errors returns error counts by kind so far.
func (p *Population) Errors() map[string]int64 { return p.errors.snapshot() }

// Size is the number of subscribers.
func (p *Population) Size() int { return p.cfg.Subscribers }

// WaitingSubscriptions is what the server's pushup_waiting_subscribers
// sums to when every subscriber is parked: one per channel of each.
func (p *Population) WaitingSubscriptions() int64 {
	k := p.cfg.ChannelsPerSubscriber
	if k == 0 {
		k = len(p.cfg.Channels)
	}
	return int64(p.cfg.Subscribers) * int64(k)
}

// Expected counts the (subscriber, message) pairs that started
// subscribers should receive from sent (see Delivery).
func (p *Population) Expected(sent []PublishRecord) int64 {
	var n int64
	for _, s := range p.subs {
		start := s.r.startedAt.Load()
		if start == 0 {
			continue
		}
		for _, rec := range sent {
			if rec.OK() && rec.SentAt >= start && overlaps(rec.Channels, s.channels) {
				n++
			}
		}
	}
	return n
}

// Tally computes Delivery for sent. Call it after Stop.
func (p *Population) Tally(sent []PublishRecord) Delivery {
	subs := make([]subscriberTally, len(p.subs))
	for i, s := range p.subs {
		subs[i] = subscriberTally{channels: s.channels, r: s.r}
	}
	return tallyDelivery(sent, subs)
}

// TripTimes returns every publish trip time measured (first receipts of
// messages sent after the subscriber started). Call it after Stop.
func (p *Population) TripTimes() []time.Duration {
	var n int
	for _, s := range p.subs {
		n += len(s.r.trips)
	}
	out := make([]time.Duration, 0, n)
	for _, s := range p.subs {
		for _, t := range s.r.trips {
			out = append(out, time.Duration(t))
		}
	}
	return out
}
