package broker

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/pushuphq/pushup/channel"
)

// Publication is one message to publish to one or more channels.
type Publication struct {
	Channels []string
	// Data is the payload; it must be valid JSON (the HTTP layer checks).
	Data json.RawMessage
	// IdempotencyKey, if not empty, identifies the publication for
	// retries: publishing again with a key still remembered (for the
	// message TTL, on this node or any node the first publication was
	// replicated to) stores nothing and returns the first message.
	IdempotencyKey string
}

// fanout is one committed message and the subscriptions it claimed, to be
// answered once the commit lock is released. The message slice and the
// committed positions are shared by every answer.
type fanout struct {
	one   []*channel.Message // never modified: answers share it
	snap  channel.Vector     // committed positions right after the message
	share Share
	subs  *[]claimed // from claimedLists, given back once answered
}

// claimed is a subscription a publication answers and the channel it
// was taken from.
type claimed struct {
	s    *Subscription
	from *chanRef
}

// claimedLists recycles fan-outs' lists of claimed subscriptions: a
// fan-out to thousands would allocate 16 bytes per subscriber otherwise.
var claimedLists = sync.Pool{New: func() any { return new([]claimed) }}

// result builds s's answer. Answers whose cursor is the snapshot itself,
// the common case, are identical and marked with the shared Share.
func (f *fanout) result(s *Subscription) Result {
	res := Result{Messages: f.one, Reason: ReasonMessages}
	if s.until != 0 {
		res.Cursor = s.cursor.advancePast(f.one)
		return res
	}
	res.Cursor = s.cursor.advanceTo(f.snap)
	if res.Cursor.Default == 0 && sameVector(res.Cursor.Pos, f.snap) {
		res.Share = &f.share
	}
	return res
}

// sameVector reports whether a and b are the same slice (not just equal):
// advanceTo returns the snapshot itself when it can share it.
func sameVector(a, b channel.Vector) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// Publish publishes a batch: each publication becomes one message (one id,
// one time) stored in each of its channels. The batch is all or nothing:
// names are checked and channels resolved (or created, when implicit
// creation is on) before anything is stored. Waiting subscriptions that a
// message answers are answered before Publish returns.
func (b *Broker) Publish(pubs ...Publication) ([]*channel.Message, error) {
	msgs, _, err := b.PublishReplayed(pubs...)
	return msgs, err
}

// PublishReplayed is Publish that also tells, per publication, whether its
// idempotency key was known: that message is the one first published with
// the key, and nothing was stored for it now.
// replayed is nil when no key was known.
func (b *Broker) PublishReplayed(pubs ...Publication) ([]*channel.Message, []bool, error) {
	if len(pubs) == 0 {
		return nil, nil, fmt.Errorf("%w: empty batch", ErrNoChannels)
	}
	if len(pubs) > b.cfg.MaxBatch {
		return nil, nil, fmt.Errorf("%w: %d given, at most %d allowed", ErrTooManyPublications, len(pubs), b.cfg.MaxBatch)
	}
	for i, p := range pubs {
		if err := checkNames(p.Channels, b.cfg.MaxChannelsPerRequest); err != nil {
			if len(pubs) > 1 {
				return nil, nil, fmt.Errorf("publication %d: %w", i, err)
			}
			return nil, nil, err
		}
		if err := checkIdempotencyKey(p.IdempotencyKey); err != nil {
			return nil, nil, err
		}
		if b.cfg.MaxCacheBytes > 0 && p.cost() > b.cfg.MaxCacheBytes {
			err := fmt.Errorf("%w: %d bytes over its %d channels, the cache budget is %d", ErrTooLarge, p.cost(), len(p.Channels), b.cfg.MaxCacheBytes)
			if len(pubs) > 1 {
				return nil, nil, fmt.Errorf("publication %d: %w", i, err)
			}
			return nil, nil, err
		}
	}
	names := uniqueNames(pubs)

	b.commitMu.Lock()
	if err := b.errIfDraining(); err != nil {
		b.commitMu.Unlock()
		return nil, nil, err
	}
	// Resolving under commitMu means no channel can close between here
	// and the inserts below: channels close only under commitMu too.
	refs, err := b.resolve(names, b.cfg.ImplicitChannels, true)
	if err != nil {
		b.commitMu.Unlock()
		return nil, nil, err
	}
	byName := make(map[string]*chanRef, len(refs))
	for i, n := range names {
		byName[n] = refs[i]
	}
	now := b.now()
	msgs := make([]*channel.Message, len(pubs))
	var replayed []bool
	var fans []*fanout
	stored := 0
	for i, p := range pubs {
		if p.IdempotencyKey != "" {
			// Looked up as each is stored, so a key repeated within
			// the batch publishes once too.
			if m := b.idem.get(p.IdempotencyKey, now); m != nil {
				msgs[i] = m
				if replayed == nil {
					replayed = make([]bool, len(pubs))
				}
				replayed[i] = true
				continue
			}
		}
		ts := b.clock.Now()
		m := channel.NewMessage(b.local.id, b.local.seq+1, ts, slices.Clone(p.Channels), p.Data)
		msgs[i] = m
		stored++
		mrefs := make([]*chanRef, len(m.Channels))
		for j, n := range m.Channels {
			mrefs[j] = byName[n]
		}
		if f := b.publishLocked(b.local, m, p.IdempotencyKey, mrefs, now); f != nil {
			fans = append(fans, f)
		}
	}
	ticket := b.dur.ticket
	b.commitMu.Unlock()
	// Acknowledge, and show subscribers, only what the journal keeps.
	jerr := b.waitJournal(ticket)

	b.published.Add(uint64(stored))
	for _, r := range refs {
		// The first message in a channel may make it due for eviction
		// earlier than its idle expiry.
		b.sched.ensure(r, r.NextDue())
	}
	b.answerFanouts(fans)
	if jerr != nil {
		return msgs, replayed, jerr
	}
	return msgs, replayed, nil
}

// uniqueNames lists the channels a batch names, each once, in first-seen
// order, in time linear in the batch size. A single publication's names
// are already distinct (checkNames).
func uniqueNames(pubs []Publication) []string {
	if len(pubs) == 1 {
		return pubs[0].Channels
	}
	total := 0
	for _, p := range pubs {
		total += len(p.Channels)
	}
	seen := make(map[string]struct{}, total)
	names := make([]string, 0, total)
	for _, p := range pubs {
		for _, n := range p.Channels {
			if _, dup := seen[n]; !dup {
				seen[n] = struct{}{}
				names = append(names, n)
			}
		}
	}
	return names
}

// publishLocked stores m (an event of origin o) in its channels, remembers
// its idempotency key (if any), commits it and claims the subscriptions it
// answers. Caller holds commitMu; refs
// are m's channels, open.
func (b *Broker) publishLocked(o *originState, m *channel.Message, key string, refs []*chanRef, now time.Time) *fanout {
	for _, r := range refs {
		// Cannot fail: the channel is open and stays so under commitMu.
		_, _ = r.Insert(m, now)
		b.makeDurable(r)
		b.budget.cached(m, r)
	}
	if n := b.budget.enforce(&b.counters); n > 0 {
		b.budgetEvicted.Add(uint64(n))
	}
	if key != "" {
		b.idem.put(key, m, now)
	}
	b.commitLocked(o, Event{Kind: EventPublish, Origin: m.Origin, Seq: m.Seq, TS: m.TS, Message: m, IdempotencyKey: key}, now)
	return b.claim(m, refs)
}

// commitLocked makes ev, already applied to the channels, visible: it
// moves its origin's committed position, keeps ev for repairs, and hands
// this node's own events to OnCommit. Caller holds commitMu.
func (b *Broker) commitLocked(o *originState, ev Event, now time.Time) {
	o.seq = ev.Seq
	o.known = max(o.known, ev.Seq)
	o.ts.Store(uint64(ev.TS))
	o.log.append(ev, b.cfg.LogEvents, b.cfg.MaxCacheBytes)
	o.applied = now
	b.journalLocked(ev)
	if o == b.local && b.cfg.OnCommit != nil {
		b.cfg.OnCommit(ev)
	}
}

// answerFanouts hands claimed subscriptions their answers, outside locks.
func (b *Broker) answerFanouts(fans []*fanout) {
	for _, f := range fans {
		list := *f.subs
		for _, c := range list {
			c.s.unpark(c.from)
			b.deliver(c.s, f.result(c.s))
		}
		clear(list)
		*f.subs = list[:0]
		claimedLists.Put(f.subs)
		f.subs = nil
	}
}

// claim claims the waiting subscriptions m answers, in the order m was
// committed, and returns them (nil if none). Caller holds commitMu, so every
// subscription is claimed by the first committed message it wants, and the
// positions committed at that moment are a sound cursor for all of them:
// any earlier message it wanted would have claimed it first.
func (b *Broker) claim(m *channel.Message, refs []*chanRef) *fanout {
	var f *fanout
	for _, ref := range refs {
		if ref == nil {
			continue
		}
		ref.TakeWaiters(func(w channel.Waiter) bool {
			s := w.(*Subscription)
			remove, won := s.claim(m)
			if won {
				if f == nil {
					f = &fanout{
						one:  []*channel.Message{m},
						snap: b.origins.snapshot(),
						subs: claimedLists.Get().(*[]claimed),
					}
					// Sized for the common fan-out: every waiter of
					// this channel.
					if n := ref.WaitersLocked(); cap(*f.subs) < n {
						*f.subs = make([]claimed, 0, n)
					}
				}
				*f.subs = append(*f.subs, claimed{s, ref})
			}
			return remove
		})
	}
	return f
}
