package channel

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/btree"
)

// ErrClosed is returned when an operation needs an open channel and the
// channel has been closed.
var ErrClosed = errors.New("channel: closed")

// btreeDegree is the B-tree node fan-out. 32 keeps nodes within a few cache
// lines of pointers and makes trees of 10,000 messages three levels deep.
const btreeDegree = 32

// Config bounds one channel's cache.
type Config struct {
	// MessageTTL is how long a message stays cached after its time. Zero
	// keeps messages until MaxMessages pushes them out.
	MessageTTL time.Duration
	// MaxMessages caps the cached messages; publishing beyond it evicts the
	// oldest. Must be at least 1.
	MaxMessages int
}

// DefaultConfig returns the cache bounds pushupd uses unless told otherwise:
// ten minutes, enough for a reconnecting browser, and 1,000 messages, which
// bounds a busy channel to roughly 1,000 times the payload size.
func DefaultConfig() Config {
	return Config{MessageTTL: 10 * time.Minute, MaxMessages: 1000}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.MaxMessages < 1 {
		return fmt.Errorf("channel: MaxMessages must be at least 1, got %d", c.MaxMessages)
	}
	if c.MessageTTL < 0 {
		return fmt.Errorf("channel: MessageTTL must not be negative, got %s", c.MessageTTL)
	}
	return nil
}

// Counters are gauges shared by many channels (the broker's totals). Each
// channel adds its changes, so totals are exact without scanning channels.
type Counters struct {
	Messages atomic.Int64
	Waiters  atomic.Int64
	// Bytes is the size of the cached messages' encodings (Message.JSON),
	// a message cached in k channels counted k times: what a cache budget
	// is held to.
	Bytes atomic.Int64
}

// originStat is what a channel remembers about one origin's messages: how
// many it holds and the newest one it evicted, for truncation reports.
type originStat struct {
	origin  uint64
	count   int
	evicted Timestamp
}

// Channel is one message stream. Create channels with New.
type Channel struct {
	name     string
	cfg      Config
	counters *Counters

	// lastActive is the Unix-nanosecond time of the last publish,
	// subscribe or renew; read without the lock by the idle check.
	lastActive atomic.Int64
	// ttl is the idle time after which the channel expires, in
	// nanoseconds; changed by Renew.
	ttl atomic.Int64
	// version changes, under mu held for writing, with every change
	// that can change what Read returns: a message cached or evicted,
	// an eviction remembered, the channel closed. Readers that remember
	// an answer (the broker's ReadMemo) compare it without the lock.
	version atomic.Uint64

	mu      sync.RWMutex
	msgs    *btree.BTreeG[*Message]
	waiters *btree.BTreeG[Waiter]
	origins []originStat // few entries: one per origin seen here
	closed  bool
}

// New returns an open, empty channel. ttl is its idle lifetime; now is the
// creation time. counters may be nil.
func New(name string, cfg Config, ttl time.Duration, now time.Time, counters *Counters) (*Channel, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if counters == nil {
		counters = new(Counters)
	}
	c := &Channel{
		name:     name,
		cfg:      cfg,
		counters: counters,
		msgs:     btree.NewG(btreeDegree, (*Message).Before),
		waiters: btree.NewWithFreeListG(btreeDegree, func(a, b Waiter) bool {
			return a.WaitKey().Less(b.WaitKey())
		}, waiterNodes),
	}
	c.ttl.Store(int64(ttl))
	c.lastActive.Store(now.UnixNano())
	return c, nil
}

// Name returns the channel name.
func (c *Channel) Name() string { return c.name }

// Touch records activity at now, postponing idle expiry.
func (c *Channel) Touch(now time.Time) {
	n := now.UnixNano()
	for {
		old := c.lastActive.Load()
		if old >= n || c.lastActive.CompareAndSwap(old, n) {
			return
		}
	}
}

// Renew sets the idle TTL and records activity at now. It returns the new
// expiry time.
func (c *Channel) Renew(ttl time.Duration, now time.Time) time.Time {
	c.ttl.Store(int64(ttl))
	c.lastActive.Store(now.UnixNano())
	return now.Add(ttl)
}

// TTL returns the idle lifetime.
func (c *Channel) TTL() time.Duration { return time.Duration(c.ttl.Load()) }

// ExpiresAt returns when the channel expires if nothing happens on it.
// A channel with waiters does not expire; see Maintain.
func (c *Channel) ExpiresAt() time.Time {
	return time.Unix(0, c.lastActive.Load()+c.ttl.Load())
}

func (c *Channel) stat(origin uint64) *originStat {
	for i := range c.origins {
		if c.origins[i].origin == origin {
			return &c.origins[i]
		}
	}
	c.origins = append(c.origins, originStat{origin: origin})
	return &c.origins[len(c.origins)-1]
}

// cutoff returns the oldest message time still cached at now; messages
// before it have expired. Zero means no age limit.
func (c *Channel) cutoff(now time.Time) int64 {
	if c.cfg.MessageTTL <= 0 {
		return 0
	}
	return now.Add(-c.cfg.MessageTTL).UnixMilli()
}

// evictOldest removes the oldest message. Caller holds c.mu.
func (c *Channel) evictOldest() {
	m, ok := c.msgs.DeleteMin()
	if !ok {
		return
	}
	c.forget(m)
}

// forget does the accounting of m leaving the cache: readers before it
// learn they are truncated. Caller holds c.mu and removed m.
func (c *Channel) forget(m *Message) {
	c.version.Add(1)
	s := c.stat(m.Origin)
	s.count--
	s.evicted = max(s.evicted, m.TS)
	c.counters.Messages.Add(-1)
	c.counters.Bytes.Add(-int64(len(m.JSON)))
}

// Evict removes m from the cache, as if pushed out by the cache bounds
// (readers before it are told they are truncated), and reports whether it
// was cached here. For a memory budget shared by many channels.
func (c *Channel) Evict(m *Message) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.msgs.Delete(m); !ok {
		return false
	}
	c.forget(m)
	return true
}

// Holds reports whether m is cached here.
func (c *Channel) Holds(m *Message) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.msgs.Has(m)
}

// evictExpired removes messages older than the TTL. Caller holds c.mu.
func (c *Channel) evictExpired(now time.Time) int {
	cut := c.cutoff(now)
	n := 0
	for {
		m, ok := c.msgs.Min()
		if !ok || m.Time() >= cut {
			return n
		}
		c.evictOldest()
		n++
	}
}

// Insert caches m and returns how many messages were evicted to make room.
// A message older than the TTL is not cached (it counts as evicted, so
// readers past it learn they are truncated). Inserting a message already
// cached changes nothing.
func (c *Channel) Insert(m *Message, now time.Time) (evicted int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, ErrClosed
	}
	c.lastActive.Store(max(c.lastActive.Load(), now.UnixNano()))
	if cut := c.cutoff(now); cut > 0 && m.Time() < cut {
		s := c.stat(m.Origin)
		s.evicted = max(s.evicted, m.TS)
		c.version.Add(1)
		return 1, nil
	}
	if _, replaced := c.msgs.ReplaceOrInsert(m); replaced {
		return 0, nil
	}
	c.version.Add(1)
	c.stat(m.Origin).count++
	c.counters.Messages.Add(1)
	c.counters.Bytes.Add(int64(len(m.JSON)))
	evicted = c.evictExpired(now)
	for c.msgs.Len() > c.cfg.MaxMessages {
		c.evictOldest()
		evicted++
	}
	return evicted, nil
}

// Query selects messages for a reader. A message is selected when it is
// after the reader's position for its origin, visible, not after Until, and
// not expired.
type Query struct {
	// After is the reader's position per origin: messages at or before it
	// were already seen.
	After Vector
	// Default is the position for origins After does not list.
	Default Timestamp
	// Visible bounds each origin: messages after it are not yet committed
	// and must not be shown. Origins it does not list are not shown at all.
	Visible Vector
	// Until, when not zero, excludes messages after it.
	Until Timestamp
	// Limit caps the messages returned; must be at least 1.
	Limit int
}

func (q *Query) after(origin uint64) Timestamp {
	if ts, ok := q.After.Get(origin); ok {
		return ts
	}
	return q.Default
}

// pivots recycles the search keys of Read: a key must be a *Message, and
// allocating one per read is most of a read's garbage.
var pivots = sync.Pool{New: func() any { return new(Message) }}

// ReadResult is what Read found.
type ReadResult struct {
	// Messages are the selected messages in cache order, at most Limit.
	Messages []*Message
	// More is true when further messages matched beyond Limit.
	More bool
	// Truncated is true when messages after the reader's position were
	// evicted before it read them.
	Truncated bool
	// Hidden is true when a message after the reader's position was
	// passed over because Visible does not show it yet: committing it
	// changes the answer without changing Version.
	Hidden bool
	// Version is the channel's Version when it was read: while Version
	// stays the same, and until StaleAt, the same query gives the same
	// answer (unless Hidden).
	Version uint64
	// StaleAt is when the oldest cached message expires, which may change
	// the answer without changing Version; zero if no message can expire.
	StaleAt time.Time
}

// Version returns a number that changes whenever what Read returns may
// change, other than by time (see ReadResult.StaleAt). Lock-free.
func (c *Channel) Version() uint64 { return c.version.Load() }

// Read returns the messages that match q as of now. It appends to dst's
// backing array when dst has room, to spare an allocation on hot paths.
func (c *Channel) Read(q Query, now time.Time, dst []*Message) ReadResult {
	res := ReadResult{Messages: dst[:0]}
	limit := max(q.Limit, 1)
	cut := c.cutoff(now)

	c.mu.RLock()
	defer c.mu.RUnlock()
	res.Version = c.version.Load()
	if len(c.origins) == 0 {
		return res
	}
	if oldest, ok := c.msgs.Min(); ok && c.cfg.MessageTTL > 0 {
		res.StaleAt = c.expiryOf(oldest)
	}
	// Start at the earliest position of any origin present here: every
	// message after its origin's position is at or after that.
	start := Timestamp(^uint64(0))
	for _, s := range c.origins {
		a := q.after(s.origin)
		start = min(start, a)
		if s.evicted > a {
			res.Truncated = true
		}
	}
	pivot := pivots.Get().(*Message)
	pivot.TS = start
	defer pivots.Put(pivot)
	c.msgs.AscendGreaterOrEqual(pivot, func(m *Message) bool {
		if q.Until != 0 && m.TS > q.Until {
			return false
		}
		if m.TS <= q.after(m.Origin) {
			return true
		}
		if vis, ok := q.Visible.Get(m.Origin); !ok || m.TS > vis {
			res.Hidden = true
			return true
		}
		if m.Time() < cut {
			// Expired but not yet swept: gone as far as readers know.
			res.Truncated = true
			return true
		}
		if len(res.Messages) == limit {
			res.More = true
			return false
		}
		res.Messages = append(res.Messages, m)
		return true
	})
	return res
}

// Len returns the number of cached messages, including expired ones not
// yet swept.
func (c *Channel) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.msgs.Len()
}

// Bounds returns the oldest and newest cached message times; ok is false
// when the cache is empty.
func (c *Channel) Bounds() (oldest, newest Timestamp, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	lo, ok := c.msgs.Min()
	if !ok {
		return 0, 0, false
	}
	hi, _ := c.msgs.Max()
	return lo.TS, hi.TS, true
}

// AddWaiter parks w on the channel.
func (c *Channel) AddWaiter(w Waiter, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	c.lastActive.Store(max(c.lastActive.Load(), now.UnixNano()))
	if _, replaced := c.waiters.ReplaceOrInsert(w); !replaced {
		c.counters.Waiters.Add(1)
	}
	return nil
}

// RemoveWaiter unparks w; it reports whether w was parked here. Leaving
// counts as activity: an idle period starts when the last waiter goes.
func (c *Channel) RemoveWaiter(w Waiter, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.waiters.Delete(w)
	if ok {
		c.counters.Waiters.Add(-1)
		c.lastActive.Store(max(c.lastActive.Load(), now.UnixNano()))
	}
	return ok
}

// Waiters returns the number of parked waiters.
func (c *Channel) Waiters() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.waiters.Len()
}

// WaitersLocked returns the number of parked waiters; only for use inside
// a TakeWaiters callback, which runs with the lock held.
func (c *Channel) WaitersLocked() int { return c.waiters.Len() }

// TakeWaiters visits the parked waiters in deadline order and unparks those
// for which take returns true; it returns how many it unparked. take runs
// under the channel lock: it must be quick and must not touch other
// channels.
func (c *Channel) TakeWaiters(take func(Waiter) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.waiters.Len() == 0 {
		return 0
	}
	sp := scratch.Get().(*[]Waiter)
	// taken fills the scratch from the front, kept from the back: one
	// buffer, sized by the largest fan-out seen, for both.
	buf := *sp
	if n := c.waiters.Len(); cap(buf) < n {
		buf = make([]Waiter, n)
	}
	buf = buf[:cap(buf)]
	nt, nk := 0, 0
	c.waiters.Ascend(func(w Waiter) bool {
		if take(w) {
			buf[nt] = w
			nt++
		} else {
			nk++
			buf[len(buf)-nk] = w
		}
		return true
	})
	if nt > 0 {
		// A fan-out usually takes every waiter: dropping the whole
		// tree (its nodes go to waiterNodes for the re-polls) beats
		// deleting keys one by one, O(n log n).
		if nk <= nt {
			c.waiters.Clear(true)
			for _, w := range buf[len(buf)-nk:] {
				c.waiters.ReplaceOrInsert(w)
			}
		} else {
			for _, w := range buf[:nt] {
				c.waiters.Delete(w)
			}
		}
		c.counters.Waiters.Add(int64(-nt))
	}
	clear(buf[:nt])
	clear(buf[len(buf)-nk:])
	*sp = buf
	scratch.Put(sp)
	return nt
}

// scratch holds TakeWaiters' lists between calls, so a fan-out to
// thousands of waiters allocates none (16 bytes per waiter otherwise).
var scratch = sync.Pool{New: func() any { return new([]Waiter) }}

// waiterNodes recycles the nodes of every channel's waiter tree: a
// fan-out drops a whole tree and its re-polls build it again at once.
// Shared, so a channel costs no free list of its own; bounded, so what it
// holds (nodes of up to 2*btreeDegree-1 items) stays near 1.5 MiB.
var waiterNodes = btree.NewFreeListG[Waiter](1024)

// Maintenance is what Maintain did and found.
type Maintenance struct {
	// Expired are the waiters whose deadline passed; they are unparked.
	Expired []Waiter
	// Evicted counts messages dropped for age.
	Evicted int
	// Idle is true when the channel has outlived its TTL with no activity
	// and no waiters: the owner should close it.
	Idle bool
	// Next is when Maintain has work to do again; zero if never.
	Next time.Time
}

// Maintain unparks waiters whose deadline is at or before now, evicts
// expired messages and reports whether the channel is idle. The expired
// waiters leave in one range sweep of the deadline-ordered tree.
func (c *Channel) Maintain(now time.Time) Maintenance {
	c.mu.Lock()
	defer c.mu.Unlock()
	var mt Maintenance
	if c.closed {
		return mt
	}
	nowNS := now.UnixNano()
	for {
		w, ok := c.waiters.Min()
		if !ok || w.WaitKey().Deadline > nowNS {
			break
		}
		c.waiters.DeleteMin()
		mt.Expired = append(mt.Expired, w)
	}
	if len(mt.Expired) > 0 {
		c.counters.Waiters.Add(int64(-len(mt.Expired)))
		c.lastActive.Store(max(c.lastActive.Load(), nowNS))
	}
	mt.Evicted = c.evictExpired(now)
	mt.Idle = c.waiters.Len() == 0 && !c.ExpiresAt().After(now)
	mt.Next = c.nextDueLocked()
	return mt
}

// NextDue returns when Maintain next has work: the earliest waiter
// deadline, oldest message expiry or idle expiry.
func (c *Channel) NextDue() time.Time {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.nextDueLocked()
}

func (c *Channel) nextDueLocked() time.Time {
	if c.closed {
		return time.Time{}
	}
	next := c.ExpiresAt()
	if w, ok := c.waiters.Min(); ok {
		next = earlier(next, time.Unix(0, w.WaitKey().Deadline))
	}
	if m, ok := c.msgs.Min(); ok && c.cfg.MessageTTL > 0 {
		next = earlier(next, c.expiryOf(m))
	}
	return next
}

// expiryOf is when m expires. It goes once the cutoff passes its
// millisecond (see cutoff): from the start of the next millisecond plus
// the TTL.
func (c *Channel) expiryOf(m *Message) time.Time {
	return time.UnixMilli(m.Time() + 1).Add(c.cfg.MessageTTL)
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// Close closes the channel, drops its cache and unparks every waiter,
// returning them. Closing twice returns nothing the second time.
func (c *Channel) Close() []Waiter {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeLocked()
}

// CloseIfIdle closes the channel if, at now, it has outlived its idle TTL
// and has no waiters. Checking and closing under one lock means a
// subscriber arriving at that moment either keeps the channel open or finds
// it closed, never parks on a closed channel.
func (c *Channel) CloseIfIdle(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.waiters.Len() > 0 || c.ExpiresAt().After(now) {
		return false
	}
	c.closeLocked()
	return true
}

// CloseIfUnused closes the channel if it has no waiter and no cached
// message, checking and closing under one lock like CloseIfIdle.
func (c *Channel) CloseIfUnused() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.waiters.Len() > 0 || c.msgs.Len() > 0 {
		return false
	}
	c.closeLocked()
	return true
}

func (c *Channel) closeLocked() []Waiter {
	if c.closed {
		return nil
	}
	c.closed = true
	c.version.Add(1)
	var ws []Waiter
	c.waiters.Ascend(func(w Waiter) bool {
		ws = append(ws, w)
		return true
	})
	c.counters.Waiters.Add(int64(-c.waiters.Len()))
	c.counters.Messages.Add(int64(-c.msgs.Len()))
	var n int64
	c.msgs.Ascend(func(m *Message) bool {
		n += int64(len(m.JSON))
		return true
	})
	c.counters.Bytes.Add(-n)
	c.waiters.Clear(false)
	c.msgs.Clear(false)
	c.origins = nil
	return ws
}

// Closed reports whether the channel was closed.
func (c *Channel) Closed() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.closed
}

// Snapshot returns the cached messages in order, the time of the last
// activity and the idle TTL: what a new replica needs to reproduce the
// channel.
func (c *Channel) Snapshot() (msgs []*Message, lastActive time.Time, ttl time.Duration) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	msgs = make([]*Message, 0, c.msgs.Len())
	c.msgs.Ascend(func(m *Message) bool {
		msgs = append(msgs, m)
		return true
	})
	return msgs, time.Unix(0, c.lastActive.Load()), c.TTL()
}
