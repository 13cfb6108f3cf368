package broker

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushuphq/pushup/channel"
)

// originState is what this broker knows of one origin (a node's boot):
// its committed position, the last event of the contiguous prefix of its
// events applied here. Readers never see an origin's messages past it,
// which keeps cursors gap-free while a publication is still being inserted
// and while events from other nodes arrive out of order.
type originState struct {
	id uint64
	// ts is the timestamp of the last committed event; written under
	// Broker.commitMu, read by anyone.
	ts atomic.Uint64

	// The rest is guarded by Broker.commitMu.
	seq uint64 // Seq of the last committed event
	// known is the highest Seq heard of: committed, pending, or announced
	// by the origin.
	known uint64
	// pending holds events that arrived past a gap, by Seq, until the
	// gap is filled.
	pending map[uint64]Event
	// lost is set when events that could not be recovered were skipped:
	// readers whose position for this origin is before it were truncated.
	lost channel.Timestamp
	// log keeps recent committed events for repairs.
	log eventLog
	// applied is when the last event was committed.
	applied time.Time
}

// origins is the broker's table of origins, copy-on-write: reads are one
// atomic load, and origins are added rarely (a node boots).
type origins struct {
	mu   sync.Mutex // serializes adds
	list atomic.Pointer[[]*originState]
	// last is the most recent snapshot: every read of an unchanged
	// broker shares it instead of allocating its own (a vector is never
	// modified once built).
	last atomic.Pointer[channel.Vector]
}

// get returns origin id's state, adding it if new.
func (o *origins) get(id uint64) *originState {
	if s := o.find(id); s != nil {
		return s
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	var old []*originState
	if l := o.list.Load(); l != nil {
		old = *l
		for _, s := range old {
			if s.id == id {
				return s
			}
		}
	}
	s := &originState{id: id}
	next := append(slices.Clone(old), s)
	slices.SortFunc(next, func(a, b *originState) int { return cmp.Compare(a.id, b.id) })
	o.list.Store(&next)
	return s
}

// find returns origin id's state, or nil.
func (o *origins) find(id uint64) *originState {
	if l := o.list.Load(); l != nil {
		for _, s := range *l {
			if s.id == id {
				return s
			}
		}
	}
	return nil
}

// all returns the origins, sorted by id.
func (o *origins) all() []*originState {
	if l := o.list.Load(); l != nil {
		return *l
	}
	return nil
}

// snapshot returns every origin's committed position. An origin with
// nothing committed yet is left out, so its first message is never hidden
// behind a position of zero.
func (o *origins) snapshot() channel.Vector {
	l := o.all()
	if last := o.last.Load(); last != nil && sameSnapshot(l, *last) {
		return *last
	}
	v := make(channel.Vector, 0, len(l))
	for _, s := range l {
		if ts := s.ts.Load(); ts != 0 {
			v = append(v, channel.Pos{Origin: s.id, TS: channel.Timestamp(ts)})
		}
	}
	o.last.Store(&v)
	return v
}

// sameSnapshot reports whether v lists exactly the committed positions of
// l now. Positions only grow, so a concurrent commit makes it false, never
// a torn true.
func sameSnapshot(l []*originState, v channel.Vector) bool {
	i := 0
	for _, s := range l {
		ts := s.ts.Load()
		if ts == 0 {
			continue
		}
		if i == len(v) || v[i].Origin != s.id || uint64(v[i].TS) != ts {
			return false
		}
		i++
	}
	return i == len(v)
}
