package broker

import (
	"weak"

	"github.com/pushuphq/pushup/channel"
)

// budget holds the cached message bytes of every channel to
// Config.MaxCacheBytes: when a publication takes the total over, the
// oldest cached messages (in the order they were cached, over all
// channels) are evicted until it fits, and their readers are told they
// are truncated, as with a channel's own bounds.
//
// The queue holds weak pointers: a message that left every cache (by a
// channel's own bounds, its TTL, its channel closing) is not kept alive by
// the queue, whose stale entries are skipped when reached and swept when
// they outnumber the live ones. Not safe for concurrent use:
// Broker.commitMu guards it.
type budget struct {
	max   int64
	queue []budgetEntry // a FIFO over queue[head:]
	head  int
}

type budgetEntry struct {
	m   weak.Pointer[channel.Message]
	ref *chanRef
}

// cached records that m was cached in ref.
func (q *budget) cached(m *channel.Message, ref *chanRef) {
	if q.max <= 0 {
		return
	}
	q.queue = append(q.queue, budgetEntry{weak.Make(m), ref})
}

// enforce evicts the oldest cached messages until the total is within the
// budget. live is the number of messages cached over all channels.
func (q *budget) enforce(counters *channel.Counters) (evicted int) {
	if q.max <= 0 {
		return 0
	}
	for counters.Bytes.Load() > q.max && q.head < len(q.queue) {
		e := q.queue[q.head]
		q.queue[q.head] = budgetEntry{}
		q.head++
		if m := e.m.Value(); m != nil && e.ref.Evict(m) {
			evicted++
		}
	}
	q.compact(counters.Messages.Load())
	return evicted
}

// compact drops the consumed prefix and, when stale entries outnumber the
// live messages, the stale ones: the queue stays within a small multiple
// of the messages cached, however they left.
func (q *budget) compact(live int64) {
	if q.head > 0 && q.head >= len(q.queue)/2 {
		n := copy(q.queue, q.queue[q.head:])
		clear(q.queue[n:])
		q.queue, q.head = q.queue[:n], 0
	}
	if int64(len(q.queue)-q.head) <= 2*live+1024 {
		return
	}
	kept := q.queue[:0]
	for _, e := range q.queue[q.head:] {
		if m := e.m.Value(); m != nil && e.ref.Holds(m) {
			kept = append(kept, e)
		}
	}
	clear(q.queue[len(kept):])
	q.queue, q.head = kept, 0
}

// cost is what caching a publication takes from the budget: its encoding
// in each of its channels (estimated before encoding: the fields around
// the data, the channel list, the id).
func (p Publication) cost() int64 {
	names := 0
	for _, c := range p.Channels {
		names += len(c) + 3
	}
	return int64(len(p.Data)+names+64) * int64(len(p.Channels))
}
