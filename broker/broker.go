package broker

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushuphq/pushup/channel"
)

// chanRef is the broker's handle on a channel: the channel plus what the
// broker needs to schedule it.
type chanRef struct {
	*channel.Channel
	id uint64
	// due is when the channel is scheduled for maintenance, in Unix
	// nanoseconds (0: not scheduled). Written under schedule.mu.
	due atomic.Int64
	// ephemeral is set while the channel exists only because subscribers
	// wait on it: it was created by a subscribe and has had no publication
	// and no renewal since. It is dropped when its last waiter leaves, so
	// subscribers (who need no key) cannot leave channels behind. Set
	// under Broker.mu at creation; cleared under commitMu.
	ephemeral atomic.Bool
}

// makeDurable records that ref now holds content or was asked for by a
// publisher: it stays when its waiters leave. Caller holds commitMu.
func (b *Broker) makeDurable(ref *chanRef) {
	if ref.ephemeral.Load() && ref.ephemeral.CompareAndSwap(true, false) {
		b.ephemerals.Add(-1)
	}
}

// dropIfUnused closes ref and forgets it if it is still ephemeral and has
// no waiter and no message. It takes commitMu so that no publication can
// resolve the channel and then find it closed (see Publish).
func (b *Broker) dropIfUnused(ref *chanRef) {
	if !ref.ephemeral.Load() {
		return
	}
	b.commitMu.Lock()
	b.mu.Lock()
	dropped := false
	if !b.closed && b.chans[ref.Name()] == ref && ref.ephemeral.Load() && ref.CloseIfUnused() {
		delete(b.chans, ref.Name())
		b.makeDurable(ref) // only to keep the count right: it is gone
		dropped = true
	}
	b.mu.Unlock()
	b.commitMu.Unlock()
	if dropped {
		b.sched.remove(ref)
		b.dropped.Add(1)
	}
}

// Broker is the channel registry and the batch publish/subscribe engine.
// Create it with New and stop it with Close.
type Broker struct {
	cfg   Config
	now   func() time.Time
	clock *Clock

	origins origins
	local   *originState

	counters  channel.Counters
	published atomic.Uint64
	delivered atomic.Uint64
	answered  [4]atomic.Uint64 // by Reason
	cancelled atomic.Uint64
	expired   atomic.Uint64 // channels expired for idleness
	dropped   atomic.Uint64 // ephemeral channels dropped when their last waiter left
	// ephemerals counts channels with chanRef.ephemeral set; they do not
	// count against MaxChannels for publishers.
	ephemerals atomic.Int64
	// lossy is set once any origin's events had to be skipped, so
	// readers check their position against the losses (rare: only then).
	lossy atomic.Bool

	// commitMu serializes every change to channel contents: publishing,
	// closing and expiring channels, shutting down. Holding it while
	// committing a message and claiming its waiters is what makes the
	// first message committed after a waiter parked the one that answers
	// it (see Subscribe).
	commitMu sync.Mutex

	mu     sync.RWMutex // guards chans and closed
	chans  map[string]*chanRef
	closed bool
	// shut is closed, readable without mu: a ReadMemo answers nothing
	// once it is set.
	shut atomic.Bool

	sched  *schedule
	nextID atomic.Uint64
	idem   *idempotency // guarded by commitMu
	budget budget       // guarded by commitMu
	// budgetEvicted counts messages evicted to keep within MaxCacheBytes.
	budgetEvicted atomic.Uint64

	dur   durability // see journal.go
	drain drainState // see drain.go

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// New validates cfg and starts a broker, including its sweeper goroutine;
// call Close to stop it.
func New(cfg Config) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	if cfg.Origin == 0 {
		cfg.Origin = randomOrigin()
	}
	b := &Broker{
		cfg:    cfg,
		now:    now,
		clock:  NewClock(now),
		chans:  make(map[string]*chanRef),
		sched:  newSchedule(),
		idem:   newIdempotency(cfg.idempotencyTTL(), cfg.MaxIdempotencyKeys),
		budget: budget{max: cfg.MaxCacheBytes},
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	b.local = b.origins.get(cfg.Origin)
	go b.sweep()
	return b, nil
}

func randomOrigin() uint64 {
	var buf [8]byte
	for {
		rand.Read(buf[:]) // never fails on supported platforms
		if v := binary.BigEndian.Uint64(buf[:]); v != 0 {
			return v
		}
	}
}

// Config returns the broker's configuration.
func (b *Broker) Config() Config { return b.cfg }

// Origin returns this broker's origin id.
func (b *Broker) Origin() uint64 { return b.local.id }

// Clock returns the broker's hybrid logical clock.
func (b *Broker) Clock() *Clock { return b.clock }

// Close shuts the broker down: it stops taking publications and
// subscriptions, answers every waiting subscription with ReasonShutdown and
// its cursor, and stops the sweeper. It is safe to call more than once.
func (b *Broker) Close() {
	b.commitMu.Lock()
	b.mu.Lock()
	already := b.closed
	b.closed = true
	b.shut.Store(true)
	refs := make([]*chanRef, 0, len(b.chans))
	for _, r := range b.chans {
		refs = append(refs, r)
	}
	b.mu.Unlock()
	type answer struct {
		s   *Subscription
		ref *chanRef
		res Result
	}
	var answers []answer
	if !already {
		for _, ref := range refs {
			ref.TakeWaiters(func(w channel.Waiter) bool {
				s := w.(*Subscription)
				if res, ok := s.finish(ReasonShutdown); ok {
					answers = append(answers, answer{s, ref, res})
				}
				return true
			})
		}
	}
	b.commitMu.Unlock()
	for _, a := range answers {
		a.s.unpark(a.ref)
		b.deliver(a.s, a.res)
	}
	b.stopOnce.Do(func() { close(b.stop) })
	<-b.done
}

// Closed reports whether Close has been called.
func (b *Broker) Closed() bool { return b.isClosed() }

func (b *Broker) isClosed() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.closed
}

// newRef creates a channel handle. Caller holds b.mu for writing and has
// checked the limit.
func (b *Broker) newRef(name string, ttl time.Duration, now time.Time) *chanRef {
	ch, err := channel.New(name, b.cfg.Channel, ttl, now, &b.counters)
	if err != nil {
		// The channel config was validated in New.
		panic(fmt.Sprintf("broker: channel config rejected after validation: %v", err))
	}
	ref := &chanRef{Channel: ch, id: b.nextID.Add(1)}
	b.chans[name] = ref
	return ref
}

// resolve returns the channels named, creating missing ones when create is
// true, within Config.MaxChannels when limit is true. It creates all or
// none: a request that fails leaves no channel behind.
func (b *Broker) resolve(names []string, create, limit bool) ([]*chanRef, error) {
	return b.resolveAs(names, create, limit, false)
}

// existing returns the named channels that exist, skipping the others, and
// whether any was missing. It creates nothing.
func (b *Broker) existing(names []string) (refs []*chanRef, missing bool, err error) {
	refs = make([]*chanRef, 0, len(names))
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return nil, false, ErrShuttingDown
	}
	for _, n := range names {
		if r := b.chans[n]; r != nil {
			refs = append(refs, r)
		} else {
			missing = true
		}
	}
	return refs, missing, nil
}

// resolveAs is resolve; channels it creates are ephemeral when ephemeral
// is true (for subscribers), and then the limit counts every channel,
// whereas publishers' limit counts only durable ones: waiting subscribers
// cannot lock publishers out.
func (b *Broker) resolveAs(names []string, create, limit, ephemeral bool) ([]*chanRef, error) {
	refs := make([]*chanRef, len(names))
	missing := 0
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return nil, ErrShuttingDown
	}
	for i, n := range names {
		if refs[i] = b.chans[n]; refs[i] == nil {
			missing++
		}
	}
	b.mu.RUnlock()
	if missing == 0 {
		return refs, nil
	}
	if !create {
		for i, n := range names {
			if refs[i] == nil {
				return nil, fmt.Errorf("%w: %q", ErrChannelNotFound, n)
			}
		}
	}
	now := b.now()
	var created []*chanRef
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrShuttingDown
	}
	// Look again: another request may have created some meanwhile.
	missing = 0
	for i, n := range names {
		if refs[i] = b.chans[n]; refs[i] == nil {
			missing++
		}
	}
	counted := len(b.chans)
	if !ephemeral {
		counted -= int(b.ephemerals.Load())
	}
	if limit && b.cfg.MaxChannels > 0 && counted+missing > b.cfg.MaxChannels {
		b.mu.Unlock()
		return nil, fmt.Errorf("%w: %d channels exist, limit %d", ErrChannelLimit, counted, b.cfg.MaxChannels)
	}
	for i, n := range names {
		if refs[i] == nil {
			refs[i] = b.newRef(n, b.cfg.ChannelTTL, now)
			if ephemeral {
				refs[i].ephemeral.Store(true)
				b.ephemerals.Add(1)
			}
			created = append(created, refs[i])
		}
	}
	b.mu.Unlock()
	for _, r := range created {
		b.sched.ensure(r, r.NextDue())
	}
	return refs, nil
}

// ChannelInfo describes a channel.
type ChannelInfo struct {
	Name string
	// Messages is the number of cached messages.
	Messages int
	// Waiters is the number of subscriptions waiting on the channel.
	Waiters int
	// Oldest and Newest are the cached messages' time range; valid when
	// Messages > 0.
	Oldest, Newest channel.Timestamp
	// ExpiresAt is when the channel expires if idle from now on.
	ExpiresAt time.Time
	// TTL is the channel's idle lifetime.
	TTL time.Duration
}

func infoOf(r *chanRef) ChannelInfo {
	info := ChannelInfo{
		Name:      r.Name(),
		Messages:  r.Len(),
		Waiters:   r.Waiters(),
		ExpiresAt: r.ExpiresAt(),
		TTL:       r.TTL(),
	}
	info.Oldest, info.Newest, _ = r.Bounds()
	return info
}

// Info describes channel name.
func (b *Broker) Info(name string) (ChannelInfo, error) {
	if !ValidChannelName(name) {
		return ChannelInfo{}, fmt.Errorf("%w: %q", ErrInvalidChannel, name)
	}
	b.mu.RLock()
	r := b.chans[name]
	b.mu.RUnlock()
	if r == nil {
		return ChannelInfo{}, fmt.Errorf("%w: %q", ErrChannelNotFound, name)
	}
	return infoOf(r), nil
}

func (b *Broker) checkTTL(ttl time.Duration) (time.Duration, error) {
	if ttl == 0 {
		return b.cfg.ChannelTTL, nil
	}
	if ttl < time.Second || ttl > b.cfg.MaxChannelTTL {
		return 0, fmt.Errorf("%w: %s (must be between 1s and %s)", ErrInvalidTTL, ttl, b.cfg.MaxChannelTTL)
	}
	return ttl, nil
}

// channelIDAlphabet is lowercase base32 so server-picked names are valid
// channel names and easy to read aloud.
var channelIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Create creates a channel with a server-picked unique name and the given
// idle ttl (zero: the default).
func (b *Broker) Create(ttl time.Duration) (ChannelInfo, error) {
	ttl, err := b.checkTTL(ttl)
	if err != nil {
		return ChannelInfo{}, err
	}
	if err := b.errIfDraining(); err != nil {
		return ChannelInfo{}, err
	}
	var raw [10]byte
	b.commitMu.Lock()
	var name string
	for {
		rand.Read(raw[:])
		name = "ch-" + strings.ToLower(channelIDEncoding.EncodeToString(raw[:]))
		b.mu.RLock()
		taken := b.chans[name] != nil
		b.mu.RUnlock()
		if !taken {
			break
		}
	}
	r, _, err := b.renewLocked(b.local, name, ttl, b.now(), true)
	ticket := b.dur.ticket
	b.commitMu.Unlock()
	if err != nil {
		return ChannelInfo{}, err
	}
	b.sched.ensure(r, r.NextDue())
	return infoOf(r), b.waitJournal(ticket)
}

// Renew creates channel name or renews it, setting its idle ttl (zero: the
// default) and restarting its idle period. created reports which.
func (b *Broker) Renew(name string, ttl time.Duration) (info ChannelInfo, created bool, err error) {
	if !ValidChannelName(name) {
		return ChannelInfo{}, false, fmt.Errorf("%w: %q", ErrInvalidChannel, name)
	}
	ttl, err = b.checkTTL(ttl)
	if err != nil {
		return ChannelInfo{}, false, err
	}
	if err := b.errIfDraining(); err != nil {
		return ChannelInfo{}, false, err
	}
	b.commitMu.Lock()
	r, created, err := b.renewLocked(b.local, name, ttl, b.now(), true)
	ticket := b.dur.ticket
	b.commitMu.Unlock()
	if err != nil {
		return ChannelInfo{}, false, err
	}
	// A shorter ttl may make the channel due earlier than scheduled.
	b.sched.ensure(r, r.NextDue())
	return infoOf(r), created, b.waitJournal(ticket)
}

// renewLocked creates or renews a channel as an event of origin o: the
// next Seq of o, committed. A local renewal is checked against the channel
// limit; one replicated from o was checked there. Caller holds commitMu.
func (b *Broker) renewLocked(o *originState, name string, ttl time.Duration, now time.Time, limit bool) (*chanRef, bool, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, false, ErrShuttingDown
	}
	r := b.chans[name]
	created := r == nil
	if created {
		if limit && b.cfg.MaxChannels > 0 && len(b.chans)-int(b.ephemerals.Load()) >= b.cfg.MaxChannels {
			b.mu.Unlock()
			return nil, false, fmt.Errorf("%w: limit %d", ErrChannelLimit, b.cfg.MaxChannels)
		}
		r = b.newRef(name, ttl, now)
	} else {
		r.Renew(ttl, now)
	}
	b.mu.Unlock()
	b.makeDurable(r)
	if o == b.local {
		b.commitLocked(o, Event{Kind: EventRenew, Origin: o.id, Seq: o.seq + 1, TS: b.clock.Now(), Channel: name, TTL: ttl}, now)
	}
	return r, created, nil
}

// CloseChannel closes channel name: its cache is dropped, and waiting
// subscriptions with no other open channel are answered with ReasonClosed.
// It returns how many subscriptions were answered.
func (b *Broker) CloseChannel(name string) (int, error) {
	if !ValidChannelName(name) {
		return 0, fmt.Errorf("%w: %q", ErrInvalidChannel, name)
	}
	if err := b.errIfDraining(); err != nil {
		return 0, err
	}
	b.commitMu.Lock()
	if b.isClosed() {
		b.commitMu.Unlock()
		return 0, ErrShuttingDown
	}
	r, ws := b.closeLocked(name)
	if r == nil {
		b.commitMu.Unlock()
		return 0, fmt.Errorf("%w: %q", ErrChannelNotFound, name)
	}
	b.commitLocked(b.local, Event{Kind: EventClose, Origin: b.local.id, Seq: b.local.seq + 1, TS: b.clock.Now(), Channel: name}, b.now())
	ticket := b.dur.ticket
	b.commitMu.Unlock()
	b.sched.remove(r)
	return b.answerClosed(ws), b.waitJournal(ticket)
}

// closeLocked removes and closes channel name, returning it (nil if there
// was none) and its waiters. Caller holds commitMu.
func (b *Broker) closeLocked(name string) (*chanRef, []channel.Waiter) {
	b.mu.Lock()
	r := b.chans[name]
	if r != nil {
		delete(b.chans, name)
		b.makeDurable(r) // keeps the ephemeral count right
	}
	b.mu.Unlock()
	if r == nil {
		return nil, nil
	}
	return r, r.Close()
}

// answerClosed tells the waiters of a closed channel; those left with no
// open channel are answered. It returns how many were.
func (b *Broker) answerClosed(ws []channel.Waiter) int {
	n := 0
	for _, w := range ws {
		s := w.(*Subscription)
		if res, ok := s.channelClosed(); ok {
			s.unpark(nil)
			b.deliver(s, res)
			n++
		}
	}
	return n
}

// expire closes ref if it is still idle at now, for the sweeper.
func (b *Broker) expire(ref *chanRef, now time.Time) bool {
	b.commitMu.Lock()
	defer b.commitMu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.chans[ref.Name()] != ref || !ref.CloseIfIdle(now) {
		return false
	}
	delete(b.chans, ref.Name())
	b.makeDurable(ref) // keeps the ephemeral count right
	b.expired.Add(1)
	if b.cfg.Journal != nil {
		b.cfg.Journal.Forget(ref.Name())
	}
	return true
}

// sweep is the broker's one maintenance goroutine: it sleeps until the
// earliest scheduled channel is due, then expires its waiters, evicts its
// expired messages and closes it if idle. Close stops it.
func (b *Broker) sweep() {
	defer close(b.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		if next, ok := b.sched.next(); ok {
			timer.Reset(next.Sub(b.now()))
		}
		select {
		case <-b.stop:
			return
		case <-b.sched.kick:
			timer.Stop()
		case <-timer.C:
		}
		b.maintain(b.now())
	}
}

// maintain does the work of every channel due at now.
func (b *Broker) maintain(now time.Time) {
	for _, ref := range b.sched.popDue(now) {
		mt := ref.Maintain(now)
		for _, w := range mt.Expired {
			s := w.(*Subscription)
			if res, ok := s.finish(ReasonTimeout); ok {
				s.unpark(ref)
				b.deliver(s, res)
			}
		}
		if mt.Idle && b.expire(ref, now) {
			continue
		}
		next := ref.NextDue()
		if !next.After(now) {
			// Maintain just did everything due at now, so this is a
			// rounding slip between due times and eviction rules; never
			// let one turn into a busy loop.
			next = now.Add(time.Millisecond)
		}
		b.sched.ensure(ref, next)
	}
}

// deliver hands a parked subscription its answer.
func (b *Broker) deliver(s *Subscription, res Result) {
	b.delivered.Add(uint64(len(res.Messages)))
	b.answered[res.Reason].Add(1)
	if s.onEnd != nil {
		s.onEnd()
	}
	s.deliver(res)
	if s.recyclable {
		s.recycle()
	}
}

// Stats is a snapshot of the broker's gauges and counters.
type Stats struct {
	Channels  int
	Messages  int64 // cached, across channels (a message in two channels counts twice)
	Waiters   int64 // waiting subscriptions, across channels
	Published uint64
	Delivered uint64 // messages handed to subscribers
	// Answered counts subscribe answers by reason.
	Answered map[Reason]uint64
	// Cancelled counts waiting subscriptions withdrawn (client gone).
	Cancelled uint64
	// Expired counts channels closed for idleness.
	Expired uint64
	// CachedBytes is the size of the cached messages (see
	// channel.Counters.Bytes); BudgetEvicted counts messages evicted to
	// keep it within Config.MaxCacheBytes.
	CachedBytes   int64
	BudgetEvicted uint64
	// Ephemeral is the number of channels that exist only because
	// subscribers wait on them; Dropped counts those dropped when their
	// last waiter left.
	Ephemeral int64
	Dropped   uint64
	// Scheduled is the number of channels in the maintenance schedule.
	Scheduled int
}

// Stats returns current figures; cheap enough to call per scrape.
func (b *Broker) Stats() Stats {
	b.mu.RLock()
	n := len(b.chans)
	b.mu.RUnlock()
	st := Stats{
		Channels:      n,
		Messages:      b.counters.Messages.Load(),
		Waiters:       b.counters.Waiters.Load(),
		Published:     b.published.Load(),
		Delivered:     b.delivered.Load(),
		Answered:      make(map[Reason]uint64, len(b.answered)),
		Cancelled:     b.cancelled.Load(),
		Expired:       b.expired.Load(),
		Ephemeral:     b.ephemerals.Load(),
		CachedBytes:   b.counters.Bytes.Load(),
		BudgetEvicted: b.budgetEvicted.Load(),
		Dropped:       b.dropped.Load(),
		Scheduled:     b.sched.len(),
	}
	for r := range b.answered {
		st.Answered[Reason(r)] = b.answered[r].Load()
	}
	return st
}
