package broker

import (
	"sync"
	"time"

	"github.com/pushuphq/pushup/channel"
)

// Reason says why a subscription was answered.
type Reason int

const (
	// ReasonMessages: the response carries messages (or a truncation).
	ReasonMessages Reason = iota
	// ReasonTimeout: the wait ended with nothing new.
	ReasonTimeout
	// ReasonClosed: every channel the subscription waited on was closed.
	ReasonClosed
	// ReasonShutdown: the broker is shutting down; reconnect elsewhere
	// with the cursor.
	ReasonShutdown
)

// String names the reason for logs and metrics.
func (r Reason) String() string {
	switch r {
	case ReasonMessages:
		return "messages"
	case ReasonTimeout:
		return "timeout"
	case ReasonClosed:
		return "closed"
	case ReasonShutdown:
		return "shutdown"
	}
	return "unknown"
}

// Result is the answer to a subscription.
type Result struct {
	// Messages are in time order, each at most once.
	Messages []*channel.Message
	// Cursor is where the next poll resumes.
	Cursor Cursor
	// More is true when the response limit cut the answer short: poll
	// again at once with Cursor for the rest.
	More bool
	// Truncated is true when messages after the request's position were
	// evicted from the cache before this read.
	Truncated bool
	// Reason says why the answer came.
	Reason Reason
	// RetryAfter, when positive, asks the client to wait this long before
	// it polls again (a draining node spreads its subscribers' returns).
	RetryAfter time.Duration
	// Share, when not nil, is shared by every Result that is identical to
	// this one (same messages, cursor and flags): all subscribers one
	// publication answered whose cursors end at the same place. Layers
	// above cache their encoding of the answer there, so a fan-out to
	// 10,000 subscribers encodes one response, not 10,000.
	Share *Share
}

// Share is a memo attached to identical Results; see Result.Share. It is
// safe for concurrent use.
type Share struct {
	mu   sync.Mutex
	memo []shareEntry // one per encoding variant; a handful at most
}

type shareEntry struct {
	key string
	val []byte
}

// Memo returns the value stored under key, building and storing it on the
// first call. build runs at most once per key. Keys name encoding
// variants (e.g. with or without a CORS header); the returned bytes must
// not be modified.
func (s *Share) Memo(key string, build func() []byte) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.memo {
		if e.key == key {
			return e.val
		}
	}
	v := build()
	s.memo = append(s.memo, shareEntry{key, v})
	return v
}

// subState is a subscription's life cycle:
//
//	registering --(rescan found nothing)--> waiting --(claim/timeout/close/cancel/shutdown)--> done
//	registering --(a publication committed meanwhile)--> missed --(rescan)--> registering
//	registering/missed --(close/shutdown)--> done (the Subscribe call returns the result)
type subState uint8

const (
	stRegistering subState = iota
	stMissed
	stWaiting
	stDone
	stFree // recycled: in the pool, or reused under a new id
)

// Subscription is a request parked until a message arrives, its deadline
// passes, its channels close or the broker shuts down. Its deliver function
// is called exactly once with the answer, outside every broker lock, unless
// Cancel returns true first.
type Subscription struct {
	b       *Broker
	key     channel.WaitKey
	refs    []*chanRef
	cursor  Cursor
	until   channel.Timestamp
	deliver func(Result)
	onEnd   func() // see SubscribeRequest.OnEnd

	mu         sync.Mutex // guards the fields below; taken inside channel locks
	state      subState
	recyclable bool           // see SubscribeRecycled
	open       int            // channels not closed yet
	snap       channel.Vector // committed positions when it started waiting
	final      *Result        // answer given while still registering
}

// WaitKey orders the subscription in channel waiter trees.
func (s *Subscription) WaitKey() channel.WaitKey { return s.key }

// Deadline returns when the subscription times out.
func (s *Subscription) Deadline() time.Time { return time.Unix(0, s.key.Deadline) }

// Cancel withdraws a waiting subscription, for a client that went away. It
// returns true if the subscription was still waiting: deliver will not be
// called. False means an answer was already given or is on its way.
func (s *Subscription) Cancel() bool { return s.cancel(0) }

// cancel is Cancel, of the wait with key id only when id is not zero.
func (s *Subscription) cancel(id uint64) bool {
	s.mu.Lock()
	if s.state != stWaiting || (id != 0 && s.key.ID != id) {
		s.mu.Unlock()
		return false
	}
	s.state = stDone
	s.mu.Unlock()
	s.unpark(nil)
	s.b.cancelled.Add(1)
	if s.onEnd != nil {
		s.onEnd()
	}
	return true
}

// wants reports whether m answers the subscription.
func (s *Subscription) wants(m *channel.Message) bool {
	if s.until != 0 && m.TS > s.until {
		return false
	}
	return m.TS > s.cursor.after(m.Origin)
}

// claim tries to answer the subscription with m, just committed, while the
// channel lock is held. It returns whether the channel should drop the
// subscription (it is answered, by m or earlier) and whether m claimed it.
func (s *Subscription) claim(m *channel.Message) (remove, claimed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case stDone:
		return true, false
	case stRegistering:
		if s.wants(m) {
			// Its rescan may have run before m was visible: make it
			// scan again instead of going to sleep.
			s.state = stMissed
		}
		return false, false
	case stWaiting:
		if !s.wants(m) {
			return false, false
		}
		s.state = stDone
		return true, true
	}
	return false, false
}

// finish ends the subscription for a reason other than a message. It
// returns the answer and true when the caller must deliver it. A
// subscription still registering keeps the answer for its Subscribe call to
// return instead.
func (s *Subscription) finish(reason Reason) (Result, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case stWaiting:
		s.state = stDone
		return s.stopResult(reason, s.snap), true
	case stRegistering, stMissed:
		res := s.stopResult(reason, nil)
		s.final = &res
		s.state = stDone
	}
	return Result{}, false
}

// channelClosed records that one of the subscription's channels closed. When
// none is left open it finishes the subscription like finish does.
func (s *Subscription) channelClosed() (Result, bool) {
	s.mu.Lock()
	s.open--
	last := s.open == 0
	s.mu.Unlock()
	if !last {
		return Result{}, false
	}
	return s.finish(ReasonClosed)
}

// stopResult is the answer for a subscription that ends without a message:
// it resumes from where it started waiting. Any message committed after
// that either claimed it (so this is not called) or was not wanted. With
// until set, unwanted messages past until may follow, so the cursor stays.
func (s *Subscription) stopResult(reason Reason, snap channel.Vector) Result {
	c := s.cursor
	if s.until == 0 && snap != nil {
		c = c.advanceTo(snap)
	}
	return Result{Cursor: c, Reason: reason}
}

// unpark removes the subscription from every channel except skip (which
// already removed it), then drops the channels that existed only for their
// waiters and have none left. Callers hold no broker lock.
func (s *Subscription) unpark(skip *chanRef) {
	var now time.Time // read the clock only if there is work
	for _, r := range s.refs {
		if r != skip {
			if now.IsZero() {
				now = s.b.now()
			}
			r.RemoveWaiter(s, now)
		}
		s.b.dropIfUnused(r)
	}
}
