package broker

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/pushuphq/pushup/channel"
)

// originState is one origin's committed position: the last message of the
// contiguous prefix of its publications this broker holds. Readers never
// see an origin's messages past it, which is what keeps cursors gap-free
// while a publication is still being inserted into its channels.
type originState struct {
	id uint64
	// seq is the sequence number of the last committed message; written
	// under Broker.commitMu.
	seq uint64
	// ts is the timestamp of that message; written under commitMu, read
	// by anyone.
	ts atomic.Uint64
}

// origins is the broker's table of origins, copy-on-write: reads are one
// atomic load, and origins are added rarely (a node boots).
type origins struct {
	mu   sync.Mutex // serializes adds
	list atomic.Pointer[[]*originState]
}

// get returns origin id's state, adding it if new.
func (o *origins) get(id uint64) *originState {
	if l := o.list.Load(); l != nil {
		for _, s := range *l {
			if s.id == id {
				return s
			}
		}
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

// snapshot returns every origin's committed position. An origin with
// nothing committed yet is left out, so its first message is never hidden
// behind a position of zero.
func (o *origins) snapshot() channel.Vector {
	l := o.list.Load()
	if l == nil {
		return nil
	}
	v := make(channel.Vector, 0, len(*l))
	for _, s := range *l {
		if ts := s.ts.Load(); ts != 0 {
			v = append(v, channel.Pos{Origin: s.id, TS: channel.Timestamp(ts)})
		}
	}
	return v
}
