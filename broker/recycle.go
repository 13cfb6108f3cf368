package broker

import (
	"sync"
	"time"

	"github.com/pushuphq/pushup/channel"
)

// subscriptions recycles the Subscription records of SubscribeRecycled:
// a fan-out's re-polls park one each, and allocating 160 bytes per
// delivery was most of the fan-out's garbage (docs/BENCHMARKS.md,
// "Parking re-poll without allocation").
//
// A record goes back as soon as deliver returns: its caller never holds
// it (it cancels through a Ticket, which checks the wait's id). Only
// waits on a single channel are recycled: a multi-channel wait may still
// be in the hands of a sweep or a close that took it from another channel
// while a publication answered it, and would find the next wait instead.
// A single-channel wait is finished by whoever takes it from its one
// channel, under that channel's lock, or by Cancel (then never
// delivered, never recycled). Drain's list may still name a recycled
// record: it then answers the new wait, draining too, with its own
// cursor and deliver.
var subscriptions = sync.Pool{New: func() any { return new(Subscription) }}

// newSubscription returns a record for a wait on refs and, when recycle
// is set (SubscribeRecycled), the wait's Ticket; the record is then
// recycled if the wait is on one channel. Fields are set under s.mu:
// a stale holder (see subscriptions) may lock a recycled record any time.
func (b *Broker) newSubscription(req *SubscribeRequest, refs []*chanRef, cur Cursor, until channel.Timestamp,
	deadline time.Time, deliver func(Result), recycle bool) (*Subscription, *Ticket) {
	pooled := recycle && len(refs) == 1
	var s *Subscription
	if pooled {
		s = subscriptions.Get().(*Subscription)
	} else {
		s = new(Subscription)
	}
	id := b.nextID.Add(1)
	s.mu.Lock()
	s.b = b
	s.key = channel.WaitKey{Deadline: deadline.UnixNano(), ID: id}
	s.refs = refs
	s.cursor = cur
	s.until = until
	s.deliver = deliver
	s.onEnd = req.OnEnd
	s.state = stRegistering
	s.recyclable = pooled
	s.open = len(refs)
	s.snap = nil
	s.final = nil
	s.mu.Unlock()
	if !recycle {
		return s, nil
	}
	return s, &Ticket{s: s, id: id}
}

// recycle puts s, answered and delivered, back in the pool.
func (s *Subscription) recycle() {
	s.mu.Lock()
	if s.state != stDone {
		s.mu.Unlock()
		return
	}
	s.state = stFree
	// Drop what the record points at: it may wait in the pool a while.
	s.refs, s.deliver, s.onEnd, s.cursor, s.snap, s.final = nil, nil, nil, Cursor{}, nil, nil
	s.mu.Unlock()
	subscriptions.Put(s)
}

// Ticket cancels one wait, and only that one: once its record is
// recycled for another wait, Cancel through the old ticket does nothing.
// It is what SubscribeRecycled's caller holds instead of the
// Subscription, and may hand to whoever may cancel late (after the answer
// came), like the event engine's hang-up path.
type Ticket struct {
	s  *Subscription
	id uint64
}

// Cancel is Subscription.Cancel for the ticket's wait; false if the wait
// was answered or cancelled already.
func (t *Ticket) Cancel() bool { return t.s.cancel(t.id) }
