package broker

import (
	"time"

	"github.com/pushuphq/pushup/channel"
)

// EventKind says what an Event changes.
type EventKind uint8

const (
	// EventPublish publishes Message.
	EventPublish EventKind = iota + 1
	// EventRenew creates or renews Channel with TTL.
	EventRenew
	// EventClose closes Channel.
	EventClose
)

// String names the kind for logs and errors.
func (k EventKind) String() string {
	switch k {
	case EventPublish:
		return "publish"
	case EventRenew:
		return "renew"
	case EventClose:
		return "close"
	}
	return "unknown"
}

// Event is one change to the broker's state that other nodes must see: a
// publication, or a channel created, renewed or closed. Each origin numbers
// its events 1, 2, 3, ... without gaps (Seq), publications and channel
// changes in one sequence, so applying an origin's events in Seq order
// reproduces its changes in the order it made them.
type Event struct {
	Kind   EventKind
	Origin uint64
	Seq    uint64
	TS     channel.Timestamp
	// Message is the publication (EventPublish). Its Origin, Seq and TS
	// are the event's.
	Message *channel.Message
	// IdempotencyKey is the publisher's key of the publication
	// (EventPublish), if it gave one: replicas remember it too, so a retry
	// sent to another node is recognised there.
	IdempotencyKey string
	// Channel is the channel renewed or closed.
	Channel string
	// TTL is the channel's idle lifetime (EventRenew).
	TTL time.Duration
}

// eventLog keeps an origin's most recent committed events, so this node
// can give a peer the ones it missed (repair). It is a ring over a
// contiguous Seq range [first, first+size). Not safe for concurrent use:
// Broker.commitMu guards it.
type eventLog struct {
	buf   []Event
	head  int    // index of the oldest event
	size  int    // events held
	first uint64 // Seq of the oldest event held, or the next one when empty
	bytes int64  // encoded size of the messages held
}

// append adds ev. An ev that does not follow the last event held (the
// origin's events were skipped after a loss) starts the log afresh, so
// the range held stays contiguous.
//
// maxBytes, when positive, also bounds the messages the log keeps alive
// (see Config.MaxCacheBytes): older events go first.
func (l *eventLog) append(ev Event, capacity int, maxBytes int64) {
	if capacity <= 0 {
		return
	}
	if l.size == 0 || ev.Seq != l.first+uint64(l.size) {
		l.clear()
		l.first = ev.Seq
	}
	if l.size == capacity {
		l.evictOldest()
	}
	if l.size == len(l.buf) {
		grown := make([]Event, min(capacity, max(64, 2*len(l.buf))))
		n := copy(grown, l.buf[l.head:])
		copy(grown[n:], l.buf[:l.head])
		l.buf, l.head = grown, 0
	}
	l.buf[(l.head+l.size)%len(l.buf)] = ev
	l.size++
	l.bytes += ev.size()
	for maxBytes > 0 && l.bytes > maxBytes && l.size > 1 {
		l.evictOldest()
	}
}

// size is what the event keeps alive beyond its slot.
func (ev *Event) size() int64 {
	if ev.Message == nil {
		return 0
	}
	return int64(len(ev.Message.JSON))
}

func (l *eventLog) clear() {
	clear(l.buf)
	l.head, l.size, l.bytes = 0, 0, 0
}

func (l *eventLog) evictOldest() {
	l.bytes -= l.buf[l.head].size()
	l.buf[l.head] = Event{}
	l.head = (l.head + 1) % len(l.buf)
	l.size--
	l.first++
}

// evictBefore drops events stamped before cut: their messages have
// expired from every cache.
func (l *eventLog) evictBefore(cut channel.Timestamp) {
	for l.size > 0 && l.buf[l.head].TS < cut {
		l.evictOldest()
	}
}

// get appends to dst the events from Seq `from` on, at most limit. ok is
// false when `from` was already evicted.
func (l *eventLog) get(from uint64, limit int, dst []Event) ([]Event, bool) {
	if from < l.first {
		return dst, false
	}
	for s := from; s < l.first+uint64(l.size) && limit > 0; s++ {
		dst = append(dst, l.buf[(l.head+int(s-l.first))%len(l.buf)])
		limit--
	}
	return dst, true
}
