package broker

import (
	"sync"
	"time"

	"github.com/google/btree"
)

// schedEntry is a channel due for maintenance at due (Unix nanoseconds).
type schedEntry struct {
	due int64
	ref *chanRef
}

func (a schedEntry) less(b schedEntry) bool {
	if a.due != b.due {
		return a.due < b.due
	}
	return a.ref.id < b.ref.id
}

// schedule orders channels by when they next need maintenance: a waiter's
// deadline, a message's expiry or the channel's idle expiry. One goroutine
// sweeps it (Broker.sweep), so no waiter, message or channel costs a
// runtime timer. An entry is only ever moved earlier by ensure; when work
// turns out to be later than scheduled, the sweep visits the channel, finds
// nothing to do and schedules it again. So entries may be early, never late.
//
// mu is a leaf lock: held for a B-tree operation, never while taking
// another lock.
type schedule struct {
	mu   sync.Mutex
	tree *btree.BTreeG[schedEntry]
	// kick wakes the sweeper when the earliest entry moved earlier.
	// Capacity 1: one pending wake-up is enough.
	kick chan struct{}
}

func newSchedule() *schedule {
	return &schedule{
		tree: btree.NewG(32, schedEntry.less),
		kick: make(chan struct{}, 1),
	}
}

// ensure makes sure ref is visited no later than due.
func (s *schedule) ensure(ref *chanRef, due time.Time) {
	if due.IsZero() {
		return
	}
	d := due.UnixNano()
	// Fast path, no lock: already scheduled early enough. Most calls
	// (every parked subscriber after the first) end here.
	if cur := ref.due.Load(); cur != 0 && cur <= d {
		return
	}
	s.mu.Lock()
	cur := ref.due.Load()
	if cur != 0 && cur <= d {
		s.mu.Unlock()
		return
	}
	if cur != 0 {
		s.tree.Delete(schedEntry{due: cur, ref: ref})
	}
	s.tree.ReplaceOrInsert(schedEntry{due: d, ref: ref})
	ref.due.Store(d)
	first, _ := s.tree.Min()
	s.mu.Unlock()
	if first.ref == ref {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// remove unschedules ref (it was closed).
func (s *schedule) remove(ref *chanRef) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := ref.due.Load(); cur != 0 {
		s.tree.Delete(schedEntry{due: cur, ref: ref})
		ref.due.Store(0)
	}
}

// popDue unschedules and returns the channels due at or before now.
func (s *schedule) popDue(now time.Time) []*chanRef {
	n := now.UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	var refs []*chanRef
	for {
		e, ok := s.tree.Min()
		if !ok || e.due > n {
			return refs
		}
		s.tree.DeleteMin()
		e.ref.due.Store(0)
		refs = append(refs, e.ref)
	}
}

// next returns the earliest scheduled time.
func (s *schedule) next() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.tree.Min()
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(0, e.due), true
}

// len returns the number of scheduled channels.
func (s *schedule) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tree.Len()
}
