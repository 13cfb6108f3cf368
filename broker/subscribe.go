package broker

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/pushuphq/pushup/channel"
)

// SubscribeRequest is a batch subscription.
type SubscribeRequest struct {
	// Channels to read, at most Config.MaxChannelsPerRequest.
	Channels []string
	// Cursor is the position to read after; the zero Cursor reads every
	// cached message.
	Cursor Cursor
	// FromNow ignores Cursor and starts at the current position: only
	// messages published from now on.
	FromNow bool
	// Until, when positive, is the last Unix millisecond wanted. A request
	// with Until in the past never waits.
	Until int64
	// Timeout is how long to wait when nothing is available; zero answers
	// at once (client pull).
	Timeout time.Duration
	// OnEnd, if set, is called once when a subscription that parked ends,
	// however it ends (answered, cancelled, its channels closed, shutdown):
	// just before deliver, or when Cancel returns true. It is not called
	// when Subscribe returns without parking. It must not block. The HTTP
	// layer gives back per-client waiting slots with it.
	OnEnd func()
	// Memo, if set, remembers this request's read between calls (see
	// ReadMemo): a repeated request then costs no read and no
	// allocation while its channels are unchanged.
	Memo *ReadMemo
}

// maxResolveAttempts bounds how often Subscribe retries when a channel
// closes while it registers. Each retry means a channel closed in a window
// of microseconds; more than a handful in a row means channels are being
// closed as fast as they are created.
const maxResolveAttempts = 16

// Subscribe reads the requested channels. When messages are available (or
// the position was truncated, or Timeout is zero) it returns the answer at
// once with a nil Subscription. Otherwise it parks the request and returns
// the Subscription; deliver is later called exactly once with the answer,
// outside broker locks, unless Subscription.Cancel returns true first.
// deliver must not block: it is called from publishers and the sweeper. A
// nil deliver discards the answer.
//
// The answer merges the channels in time order, each message once, at most
// Config.MaxResponseMessages (then More is set). Its Cursor resumes exactly
// after what was returned: passing it back never repeats and never skips a
// message.
func (b *Broker) Subscribe(req SubscribeRequest, deliver func(Result)) (Result, *Subscription, error) {
	res, s, _, err := b.subscribe(req, deliver, false)
	return res, s, err
}

// SubscribeRecycled is Subscribe for a caller that never touches the
// Subscription: a parked request is cancelled through the returned
// Ticket, and its record is recycled for another request as soon as
// deliver returns. A fan-out's re-polls then park without allocating a
// record each (see subscriptions).
func (b *Broker) SubscribeRecycled(req SubscribeRequest, deliver func(Result)) (Result, *Ticket, error) {
	res, _, t, err := b.subscribe(req, deliver, true)
	return res, t, err
}

// subscribe is Subscribe, with the ticket of a parked request when
// recycle is set.
func (b *Broker) subscribe(req SubscribeRequest, deliver func(Result), recycle bool) (Result, *Subscription, *Ticket, error) {
	if err := checkNames(req.Channels, b.cfg.MaxChannelsPerRequest); err != nil {
		return Result{}, nil, nil, err
	}
	var until channel.Timestamp
	if req.Until > 0 {
		until = channel.EndOfMillis(req.Until)
		if !req.FromNow && req.Cursor.Pos == nil && req.Cursor.Default > until {
			return Result{}, nil, nil, fmt.Errorf("%w: until %d is before since %d", ErrInvalidRange, req.Until, req.Cursor.Default.Millis())
		}
	}
	if deliver == nil {
		deliver = func(Result) {}
	}
	cur := req.Cursor
	if req.FromNow {
		cur = Cursor{Pos: b.origins.snapshot()}
	}
	for attempt := 0; attempt < maxResolveAttempts; attempt++ {
		now := b.now()
		var refs []*chanRef
		var missing bool
		var res Result
		if st := b.recall(&req, now); st != nil {
			// Nothing changed since the same request last read these
			// channels: the same answer, or the same nothing to wait for.
			for _, r := range st.refs {
				r.Touch(now)
			}
			if st.found || req.Timeout <= 0 {
				b.answerNow(st.res)
				return st.res, nil, nil, nil
			}
			refs, res = st.refs, st.res
			res.Share = nil
		} else {
			// Read what exists first: a subscribe that is answered at
			// once creates nothing, whatever it names.
			var err error
			refs, missing, err = b.existing(req.Channels)
			if err != nil {
				return Result{}, nil, nil, err
			}
			if missing && !b.cfg.ImplicitChannels {
				_, err := b.resolve(req.Channels, false, false)
				return Result{}, nil, nil, err
			}
			var in *readInfo
			if req.Memo != nil && !missing {
				in = &readInfo{vers: make([]uint64, 0, len(refs))}
			}
			res = b.read(refs, cur, b.origins.snapshot(), until, now, in)
			for _, r := range refs {
				r.Touch(now)
			}
			if in != nil && !(until != 0 && until.Millis() < now.UnixMilli()) {
				res = b.remember(&req, refs, res, in)
			}
			if found(res) || req.Timeout <= 0 || (until != 0 && until.Millis() < now.UnixMilli()) {
				b.answerNow(res)
				return res, nil, nil, nil
			}
			res.Share = nil
		}
		if b.Draining() {
			// Waiting here would only end in a drain answer: send the
			// client elsewhere now, with the same hint.
			res.Reason, res.RetryAfter = ReasonShutdown, b.retryHint()
			b.answerNow(res)
			return res, nil, nil, nil
		}
		if missing {
			// To wait on a channel it must exist; one made here is
			// ephemeral and goes with its last waiter. park reads every
			// channel again after registering, so nothing published
			// meanwhile is missed.
			var err error
			if refs, err = b.resolveAs(req.Channels, true, true, true); err != nil {
				return Result{}, nil, nil, err
			}
		}
		deadline := now.Add(b.jittered(req.Timeout))
		if until != 0 {
			// Nothing can match after until: stop waiting then.
			deadline = earliest(deadline, time.UnixMilli(until.Millis()+1))
		}
		s, t := b.newSubscription(&req, refs, cur, until, deadline, deliver, recycle)
		res, parked, retry := b.park(s, now)
		if retry {
			continue
		}
		if parked {
			return Result{}, s, t, nil
		}
		b.answerNow(res)
		return res, nil, nil, nil
	}
	return Result{}, nil, nil, fmt.Errorf("%w: channels kept closing while subscribing", ErrChannelNotFound)
}

// jittered shortens a timeout by a random part of up to TimeoutJitter.
func (b *Broker) jittered(d time.Duration) time.Duration {
	if b.cfg.TimeoutJitter == 0 {
		return d
	}
	return d - time.Duration(rand.Float64()*b.cfg.TimeoutJitter*float64(d))
}

func found(r Result) bool { return len(r.Messages) > 0 || r.Truncated }

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func (b *Broker) answerNow(res Result) {
	b.delivered.Add(uint64(len(res.Messages)))
	b.answered[res.Reason].Add(1)
}

// park registers s on its channels and then reads them again. The order
// matters: a message committed before the second read is seen by it; one
// committed after finds s registered and claims it (or, while s is still
// registering, marks it missed so it reads once more). Either way no
// message falls between the read and the wait.
//
// It returns the answer if one was found meanwhile, parked=true if s now
// waits, or retry=true if a channel closed under it and the caller must
// resolve the names again.
func (b *Broker) park(s *Subscription, now time.Time) (res Result, parked, retry bool) {
	for i, ref := range s.refs {
		if err := ref.AddWaiter(s, now); err != nil {
			for _, r := range s.refs[:i] {
				r.RemoveWaiter(s, now)
			}
			return Result{}, false, true
		}
	}
	if b.isClosed() {
		// Close may have swept the channels before s was added.
		s.finish(ReasonShutdown)
	}
	for {
		snap := b.origins.snapshot()
		res := b.read(s.refs, s.cursor, snap, s.until, b.now(), nil)
		s.mu.Lock()
		switch {
		case s.state == stDone:
			final := *s.final
			s.mu.Unlock()
			s.unpark(nil)
			return final, false, false
		case found(res):
			s.state = stDone
			s.mu.Unlock()
			s.unpark(nil)
			return res, false, false
		case s.state == stMissed:
			s.state = stRegistering
			s.mu.Unlock()
			continue
		}
		s.state = stWaiting
		if equalVectors(snap, s.cursor.Pos) {
			// Usual for "since=now" and caught-up cursors: keep one copy.
			snap = s.cursor.Pos
		}
		s.snap = snap
		// Once s waits it may be answered, and recycled, at any time:
		// read what the schedule needs first.
		refs, deadline := s.refs, s.Deadline()
		s.mu.Unlock()
		for _, ref := range refs {
			b.sched.ensure(ref, deadline)
		}
		return Result{}, true, false
	}
}

// read reads refs after cur, seeing only what snap says is committed, and
// merges the channels: time order, each message once, at most the response
// limit. The cursor it returns advances to snap when the read was complete,
// or just past the returned messages when the limit or until cut it.
//
// in, when not nil, collects what a ReadMemo needs to know of the read.
func (b *Broker) read(refs []*chanRef, cur Cursor, snap channel.Vector, until channel.Timestamp, now time.Time, in *readInfo) Result {
	q := channel.Query{
		After:   cur.Pos,
		Default: cur.Default,
		Visible: snap,
		Until:   until,
		Limit:   b.cfg.MaxResponseMessages,
	}
	var res Result
	if len(refs) == 1 {
		rr := refs[0].Read(q, now, nil)
		res = Result{Messages: rr.Messages, More: rr.More, Truncated: rr.Truncated}
		if in != nil {
			in.add(rr.Version, rr.Hidden, rr.StaleAt)
		}
	} else {
		res = b.readMerged(refs, q, now, in)
	}
	if b.lossy.Load() {
		res.Truncated = res.Truncated || b.behindLoss(cur)
	}
	if b.cfg.MaxAnswerBytes > 0 {
		res.Messages, res.More = cutAnswer(res.Messages, b.cfg.MaxAnswerBytes, res.More)
	}
	if !res.More && until == 0 {
		res.Cursor = cur.advanceTo(snap)
	} else {
		res.Cursor = cur.advancePast(res.Messages)
	}
	return res
}

// behindLoss reports whether cur is before events of some origin that this
// node had to skip (Skip): the reader may have missed some.
func (b *Broker) behindLoss(cur Cursor) bool {
	b.commitMu.Lock()
	defer b.commitMu.Unlock()
	for _, o := range b.origins.all() {
		if o.lost != 0 && cur.after(o.id) < o.lost {
			return true
		}
	}
	return false
}

// readMerged reads several channels and merges them. Each channel returns
// at most Limit messages; the first Limit of the merge are among them, since
// each of those is within its own channel's first Limit.
func (b *Broker) readMerged(refs []*chanRef, q channel.Query, now time.Time, in *readInfo) Result {
	var res Result
	lists := make([][]*channel.Message, 0, len(refs))
	total := 0
	for _, r := range refs {
		rr := r.Read(q, now, nil)
		if in != nil {
			in.add(rr.Version, rr.Hidden, rr.StaleAt)
		}
		res.More = res.More || rr.More
		res.Truncated = res.Truncated || rr.Truncated
		if len(rr.Messages) > 0 {
			lists = append(lists, rr.Messages)
			total += len(rr.Messages)
		}
	}
	if len(lists) == 1 {
		res.Messages = lists[0]
		return res
	}
	out := make([]*channel.Message, 0, min(total, q.Limit))
	// k-way merge by repeated minimum over the list heads: k is at most
	// the per-request channel limit (64 by default) and usually a few,
	// where a linear scan beats a heap.
	for {
		best := -1
		for i, l := range lists {
			if len(l) > 0 && (best < 0 || l[0].Before(lists[best][0])) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		m := lists[best][0]
		// A message published to several of these channels heads each
		// of their lists at once: take it once, drop every copy.
		for i, l := range lists {
			if len(l) > 0 && l[0].Same(m) {
				lists[i] = l[1:]
			}
		}
		if len(out) == q.Limit {
			res.More = true
			break
		}
		out = append(out, m)
	}
	res.Messages = out
	return res
}

func equalVectors(a, b channel.Vector) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// cutAnswer keeps the first messages whose encodings fit in max bytes (at
// least one, or no answer could ever carry a large message) and says More
// when it dropped some: the client polls again at once from the cursor.
func cutAnswer(msgs []*channel.Message, max int64, more bool) ([]*channel.Message, bool) {
	var n int64
	for i, m := range msgs {
		n += int64(len(m.JSON)) + 1
		if n > max && i > 0 {
			return msgs[:i], true
		}
	}
	return msgs, more
}
