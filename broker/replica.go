package broker

import (
	"errors"
	"fmt"
	"time"

	"github.com/pushuphq/pushup/channel"
)

// ErrEvicted is returned by Events when the events asked for are no longer
// kept (Config.LogEvents, message TTL).
var ErrEvicted = errors.New("broker: events no longer kept")

// ApplyStats says what Apply did with a batch of events.
type ApplyStats struct {
	// Applied events are committed here now (including ones that had
	// been waiting for a gap to fill).
	Applied int
	// Duplicates were already committed here.
	Duplicates int
	// Pending arrived after a gap and wait for it to be repaired.
	Pending int
	// Dropped arrived after a gap while the origin's pending buffer was
	// full; the repair fetches them again.
	Dropped int
	// Fresh lists, by index into the events given, those seen here for
	// the first time (applied or held): what gossip passes on.
	Fresh []int
}

// Apply commits events from other origins (other nodes), each origin's in
// Seq order: an event past a gap waits, invisible to readers, until the
// gap is filled, so this node exposes only the contiguous prefix of each
// origin and cursors stay gap-free across nodes. Events already applied
// (sent twice, gossiped back) are ignored, as are this node's own. Waiting
// subscriptions the events answer are answered before Apply returns,
// exactly as for a local publish.
//
// Channels a replicated publication names are created if missing,
// whatever Config.ImplicitChannels and Config.MaxChannels say: the origin
// accepted the publication, and replicas follow it.
func (b *Broker) Apply(events []Event) (ApplyStats, error) {
	var st ApplyStats
	var fx effects
	b.commitMu.Lock()
	if b.isClosed() {
		b.commitMu.Unlock()
		return st, ErrShuttingDown
	}
	now := b.now()
	for i, ev := range events {
		if ev.Origin == b.local.id || ev.Origin == 0 {
			continue
		}
		o := b.origins.get(ev.Origin)
		switch {
		case ev.Seq <= o.seq:
			st.Duplicates++
			continue
		case ev.Seq > o.seq+1:
			o.known = max(o.known, ev.Seq)
			if _, dup := o.pending[ev.Seq]; dup {
				st.Duplicates++
			} else if len(o.pending) >= b.cfg.PendingEvents {
				st.Dropped++
			} else {
				if o.pending == nil {
					o.pending = make(map[uint64]Event)
				}
				o.pending[ev.Seq] = ev
				st.Pending++
				st.Fresh = append(st.Fresh, i)
			}
			continue
		}
		st.Fresh = append(st.Fresh, i)
		// ev is next: apply it, then whatever it unblocks.
		fx.add(b.applyLocked(o, ev, now))
		st.Applied++
		k := b.drainLocked(o, now, &fx)
		st.Applied += k
		st.Pending -= k
	}
	b.commitMu.Unlock()
	b.finish(&fx)
	return st, nil
}

// effects collects what applying events leaves to do once the commit lock
// is released: answers to deliver, channel closes to announce, channels
// to schedule.
type effects struct {
	fans    []*fanout
	closed  [][]channel.Waiter
	touched []*chanRef
}

func (e *effects) add(f *fanout, ws []channel.Waiter, refs []*chanRef) {
	if f != nil {
		e.fans = append(e.fans, f)
	}
	if ws != nil {
		e.closed = append(e.closed, ws)
	}
	e.touched = append(e.touched, refs...)
}

// finish does the work effects collected. Caller does not hold commitMu.
func (b *Broker) finish(e *effects) {
	for _, r := range e.touched {
		b.sched.ensure(r, r.NextDue())
	}
	for _, ws := range e.closed {
		b.answerClosed(ws)
	}
	b.answerFanouts(e.fans)
}

// drainLocked applies origin o's held events that now follow its committed
// position, and returns how many. Caller holds commitMu.
func (b *Broker) drainLocked(o *originState, now time.Time, fx *effects) int {
	n := 0
	for {
		next, ok := o.pending[o.seq+1]
		if !ok {
			return n
		}
		delete(o.pending, o.seq+1)
		fx.add(b.applyLocked(o, next, now))
		n++
	}
}

// applyLocked applies and commits the next event of origin o. It returns
// what must be answered or scheduled once the lock is released. Caller
// holds commitMu.
func (b *Broker) applyLocked(o *originState, ev Event, now time.Time) (*fanout, []channel.Waiter, []*chanRef) {
	b.clock.Observe(ev.TS)
	switch ev.Kind {
	case EventPublish:
		m := ev.Message
		refs, err := b.resolve(m.Channels, true, false)
		if err != nil {
			// Only a shutting-down broker refuses; commit anyway so the
			// origin's sequence stays whole.
			b.commitLocked(o, ev, now)
			return nil, nil, nil
		}
		f := b.publishLocked(o, m, ev.IdempotencyKey, refs, now)
		b.published.Add(1)
		return f, nil, refs
	case EventRenew:
		r, _, err := b.renewLocked(o, ev.Channel, ev.TTL, now, false)
		b.commitLocked(o, ev, now)
		if err != nil {
			return nil, nil, nil
		}
		return nil, nil, []*chanRef{r}
	case EventClose:
		r, ws := b.closeLocked(ev.Channel)
		b.commitLocked(o, ev, now)
		if r != nil {
			b.sched.remove(r)
		}
		return nil, ws, nil
	}
	// An unknown kind from a newer node: keep the sequence whole.
	b.commitLocked(o, ev, now)
	return nil, nil, nil
}

// Events returns origin's committed events from Seq `from` on, at most
// limit, for a peer that missed them. It returns ErrEvicted when `from` is
// older than what is kept, and nothing when this node has nothing past
// `from` yet.
func (b *Broker) Events(origin, from uint64, limit int) ([]Event, error) {
	b.commitMu.Lock()
	defer b.commitMu.Unlock()
	o := b.origins.find(origin)
	if o == nil {
		return nil, nil
	}
	if b.cfg.Channel.MessageTTL > 0 {
		o.log.evictBefore(channel.NewTimestamp(b.now().Add(-b.cfg.Channel.MessageTTL).UnixMilli(), 0))
	}
	evs, ok := o.log.get(from, limit, nil)
	if !ok {
		return nil, fmt.Errorf("%w: origin %016x from seq %d (oldest kept %d)", ErrEvicted, origin, from, o.log.first)
	}
	return evs, nil
}

// Skip gives up on origin's events up to and including Seq `upTo`, which no
// node keeps any more: they are committed as lost, so the events after them
// can be applied. Readers whose position for origin is before the loss are
// told their answers are truncated. Call it once the first event after the
// loss is held (Apply it first): its time bounds what may be lost. It
// returns how many events were skipped.
func (b *Broker) Skip(origin, upTo uint64) int {
	var fx effects
	b.commitMu.Lock()
	o := b.origins.find(origin)
	if o == nil || origin == b.local.id || upTo <= o.seq {
		b.commitMu.Unlock()
		return 0
	}
	skipped := int(upTo - o.seq)
	b.lossy.Store(true)
	for s := o.seq + 1; s <= upTo; s++ {
		delete(o.pending, s)
	}
	o.seq = upTo
	o.known = max(o.known, upTo)
	now := b.now()
	if next, ok := o.pending[upTo+1]; ok {
		// Everything stamped before the next event held may be lost.
		o.lost = max(o.lost, next.TS-1)
		o.ts.Store(uint64(max(channel.Timestamp(o.ts.Load()), o.lost)))
	} else {
		// The next event's time is not known yet: readers not caught up
		// with the last committed one may have lost something.
		o.lost = max(o.lost, channel.Timestamp(o.ts.Load())+1)
	}
	b.drainLocked(o, now, &fx)
	b.commitMu.Unlock()
	b.finish(&fx)
	return skipped
}

// OriginPosition is what this node holds of one origin, for anti-entropy
// digests and replication-lag reports.
type OriginPosition struct {
	Origin uint64
	// Seq is the last event committed here: the contiguous prefix.
	Seq uint64
	// TS is that event's time.
	TS channel.Timestamp
	// Known is the highest Seq heard of; Known-Seq events are missing.
	Known uint64
	// Pending is how many events past a gap are held.
	Pending int
	// Oldest is the oldest Seq still kept for repairs (0: none kept).
	Oldest uint64
	// Applied is when the last event was committed here.
	Applied time.Time
	// Local is true for this node's own origin.
	Local bool
}

// Positions reports every origin this node knows.
func (b *Broker) Positions() []OriginPosition {
	b.commitMu.Lock()
	defer b.commitMu.Unlock()
	l := b.origins.all()
	out := make([]OriginPosition, 0, len(l))
	for _, o := range l {
		p := OriginPosition{
			Origin:  o.id,
			Seq:     o.seq,
			TS:      channel.Timestamp(o.ts.Load()),
			Known:   max(o.known, o.seq),
			Pending: len(o.pending),
			Applied: o.applied,
			Local:   o == b.local,
		}
		if o.log.size > 0 {
			p.Oldest = o.log.first
		}
		out = append(out, p)
	}
	return out
}

// Announce records that origin has committed events up to Seq known (heard
// from the origin itself or a peer), so a gap at the end of what this node
// holds shows as missing even when no later event has arrived yet.
func (b *Broker) Announce(origin, known uint64) {
	if origin == b.local.id || origin == 0 {
		return
	}
	b.commitMu.Lock()
	o := b.origins.get(origin)
	o.known = max(o.known, known)
	b.commitMu.Unlock()
}
