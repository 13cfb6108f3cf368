package broker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/pushuphq/pushup/channel"
)

// drainStep is the shortest pause between two rounds of drain answers:
// finer steps would cost a timer wake-up per handful of subscribers for
// no visible smoothing.
const drainStep = 5 * time.Millisecond

// maxRetryHint caps the jitter a drain answer asks the client to add
// before it polls again.
const maxRetryHint = time.Second

// drainState is the broker's drain state.
type drainState struct {
	on     atomic.Bool
	spread atomic.Int64 // the spread in nanoseconds, for the hints
}

// Draining reports whether Drain has begun: the node takes no more
// publications and sends subscribers elsewhere.
func (b *Broker) Draining() bool { return b.drain.on.Load() }

// retryHint is a drain answer's jittered wait before the next poll:
// uniform below min(spread, 1s), so clients answered in the same instant
// do not all arrive at the other nodes in the same instant either.
func (b *Broker) retryHint() time.Duration {
	limit := min(time.Duration(b.drain.spread.Load()), maxRetryHint)
	if limit <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(limit))) + time.Millisecond
}

// Drain prepares a node's shutdown gently. It stops taking publications
// and channel changes at once (ErrShuttingDown: publishers go to another
// node first), answers new subscriptions at once with ReasonShutdown, and
// answers the subscriptions waiting now with ReasonShutdown spread evenly
// over spread, each with a jittered Result.RetryAfter, so the nodes that
// take them over see a ramp instead of every subscriber at once.
// Replicated events are still applied meanwhile, so a waiting subscriber
// still gets what is published elsewhere until its turn comes. If ctx
// ends first, the rest are answered at once. Drain does not Close the
// broker; call Close afterwards. It returns how many subscriptions it
// answered.
func (b *Broker) Drain(ctx context.Context, spread time.Duration) int {
	b.drain.spread.Store(int64(max(spread, 0)))
	// Under commitMu: no publication is half-way through when the
	// publisher side closes.
	b.commitMu.Lock()
	b.drain.on.Store(true)
	b.commitMu.Unlock()

	subs := b.waitingSubscriptions()
	answered := 0
	start := time.Now()
	var timer *time.Timer
	for i := 0; i < len(subs); {
		due := start
		if spread > 0 {
			due = start.Add(time.Duration(int64(spread) * int64(i) / int64(len(subs))))
		}
		if wait := time.Until(due); wait > 0 && ctx.Err() == nil {
			wait = max(wait, drainStep)
			if timer == nil {
				timer = time.NewTimer(wait)
				defer timer.Stop()
			} else {
				timer.Reset(wait)
			}
			select {
			case <-timer.C:
			case <-ctx.Done():
			}
		}
		// Answer everyone due by now (everyone left, if ctx ended).
		now := time.Now()
		for ; i < len(subs); i++ {
			if spread > 0 && ctx.Err() == nil && start.Add(time.Duration(int64(spread)*int64(i)/int64(len(subs)))).After(now) {
				break
			}
			if b.drainOne(subs[i]) {
				answered++
			}
		}
	}
	// Subscriptions that parked while the list was taken.
	for _, s := range b.waitingSubscriptions() {
		if b.drainOne(s) {
			answered++
		}
	}
	return answered
}

// drainOne answers s with ReasonShutdown if it is still waiting.
func (b *Broker) drainOne(s *Subscription) bool {
	res, ok := s.finish(ReasonShutdown)
	if !ok {
		return false // answered meanwhile, or withdrawn
	}
	res.RetryAfter = b.retryHint()
	s.unpark(nil)
	b.deliver(s, res)
	return true
}

// waitingSubscriptions lists the subscriptions waiting now, each once, in
// random order: no channel's subscribers are all sent away first.
func (b *Broker) waitingSubscriptions() []*Subscription {
	b.mu.RLock()
	refs := make([]*chanRef, 0, len(b.chans))
	for _, r := range b.chans {
		refs = append(refs, r)
	}
	b.mu.RUnlock()
	seen := make(map[*Subscription]bool)
	var subs []*Subscription
	for _, r := range refs {
		r.TakeWaiters(func(w channel.Waiter) bool {
			if s := w.(*Subscription); !seen[s] {
				seen[s] = true
				subs = append(subs, s)
			}
			return false // keep it parked until its turn
		})
	}
	rand.Shuffle(len(subs), func(i, j int) { subs[i], subs[j] = subs[j], subs[i] })
	return subs
}

// errIfDraining refuses this node's own publications and channel changes
// once Drain began.
func (b *Broker) errIfDraining() error {
	if b.drain.on.Load() {
		return fmt.Errorf("%w: draining", ErrShuttingDown)
	}
	return nil
}
