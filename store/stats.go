package store

import (
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// statCounters are the writer's running totals.
type statCounters struct {
	commits, written, commitNanos atomic.Uint64
	pruned, pruneNanos            atomic.Uint64
}

func (c *statCounters) commit(n int, d time.Duration) {
	c.commits.Add(1)
	c.written.Add(uint64(n))
	c.commitNanos.Add(uint64(d))
}

func (c *statCounters) prune(n int, d time.Duration) {
	c.pruned.Add(uint64(n))
	c.pruneNanos.Add(uint64(d))
}

// Stats are the store's figures.
type Stats struct {
	// Events, Channels and Expiries are the records on disk now.
	Events, Channels, Expiries int
	// Commits counts group commits; Written the records they wrote.
	Commits, Written uint64
	// CommitTime is the total time spent in commits (fsync included).
	CommitTime time.Duration
	// Pruned counts events deleted because the broker no longer held them.
	Pruned uint64
}

// Stats counts the records on disk (a read transaction) and returns the
// running totals.
func (s *Store) Stats() (Stats, error) {
	st := Stats{
		Commits:    s.stats.commits.Load(),
		Written:    s.stats.written.Load(),
		CommitTime: time.Duration(s.stats.commitNanos.Load()),
		Pruned:     s.stats.pruned.Load(),
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		st.Events = tx.Bucket(bucketEvents).Stats().KeyN
		st.Channels = tx.Bucket(bucketChannels).Stats().KeyN
		st.Expiries = tx.Bucket(bucketExpired).Stats().KeyN
		return nil
	})
	return st, err
}
