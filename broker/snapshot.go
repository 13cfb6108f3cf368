package broker

import (
	"errors"
	"fmt"
	"time"

	"github.com/pushuphq/pushup/channel"
)

// ErrNotEmpty is returned by Restore on a broker that already holds state.
var ErrNotEmpty = errors.New("broker: restore needs an empty broker")

// Snapshot is a consistent copy of a broker's state: every channel with
// its cached messages, and what it holds of every origin. A node that
// joins a cluster, or restarts, restores a peer's snapshot before it
// serves, then applies the events committed after it.
type Snapshot struct {
	// Taken is when the snapshot was taken, by the giver's clock.
	Taken time.Time
	// Clock is the giver's latest clock reading; the receiver's clock
	// moves past it.
	Clock channel.Timestamp
	// Origins are the positions the snapshot covers: every event of an
	// origin up to Seq is in it, none after.
	Origins []SnapshotOrigin
	// Channels are the open channels.
	Channels []SnapshotChannel
}

// SnapshotOrigin is one origin's position in a snapshot.
type SnapshotOrigin struct {
	Origin uint64
	Seq    uint64
	TS     channel.Timestamp
	// Lost is set when the giver had skipped this origin's events up to
	// this time (see Broker.Skip).
	Lost channel.Timestamp
}

// SnapshotChannel is one channel in a snapshot. A message in several
// channels is the same *channel.Message in each.
type SnapshotChannel struct {
	Name       string
	TTL        time.Duration
	LastActive time.Time
	Messages   []*channel.Message
}

// Snapshot copies the broker's state under the commit lock, so it is one
// cut: no publication is half in it. Copying costs a slice of pointers
// per channel; the messages themselves are shared, and immutable.
func (b *Broker) Snapshot() *Snapshot {
	b.commitMu.Lock()
	defer b.commitMu.Unlock()
	s := &Snapshot{Taken: b.now(), Clock: b.clock.Last()}
	for _, o := range b.origins.all() {
		if o.seq == 0 {
			continue
		}
		s.Origins = append(s.Origins, SnapshotOrigin{Origin: o.id, Seq: o.seq, TS: channel.Timestamp(o.ts.Load()), Lost: o.lost})
	}
	b.mu.RLock()
	refs := make([]*chanRef, 0, len(b.chans))
	for _, r := range b.chans {
		refs = append(refs, r)
	}
	b.mu.RUnlock()
	for _, r := range refs {
		if r.ephemeral.Load() {
			continue // exists only for this node's own waiters
		}
		msgs, active, ttl := r.Snapshot()
		s.Channels = append(s.Channels, SnapshotChannel{Name: r.Name(), TTL: ttl, LastActive: active, Messages: msgs})
	}
	return s
}

// Restore loads a peer's snapshot into this broker, which must not have
// committed anything yet or hold channels. Messages already older than the
// message TTL are dropped as on insert. Afterwards the broker applies the
// origins' events past the snapshot's positions (Apply) like any others.
func (b *Broker) Restore(s *Snapshot) error {
	b.commitMu.Lock()
	b.mu.Lock()
	empty := len(b.chans) == 0 && b.local.seq == 0
	for _, o := range b.origins.all() {
		empty = empty && (o == b.local || o.seq == 0)
	}
	b.mu.Unlock()
	if !empty {
		b.commitMu.Unlock()
		return ErrNotEmpty
	}
	b.clock.Observe(s.Clock)
	now := b.now()
	for _, so := range s.Origins {
		if so.Origin == b.local.id {
			b.commitMu.Unlock()
			return fmt.Errorf("broker: snapshot holds this node's own origin %016x", so.Origin)
		}
		o := b.origins.get(so.Origin)
		o.seq, o.known, o.lost = so.Seq, so.Seq, so.Lost
		o.ts.Store(uint64(so.TS))
		o.applied = now
		// The log starts after the snapshot: events up to Seq were not
		// kept here, so a peer asking for them is told they are evicted.
		o.log.first = so.Seq + 1
		if so.Lost != 0 {
			b.lossy.Store(true)
		}
	}
	var refs []*chanRef
	b.mu.Lock()
	for _, c := range s.Channels {
		if !ValidChannelName(c.Name) || b.chans[c.Name] != nil {
			continue
		}
		r := b.newRef(c.Name, c.TTL, c.LastActive)
		refs = append(refs, r)
	}
	b.mu.Unlock()
	byName := make(map[string]*chanRef, len(refs))
	for _, r := range refs {
		byName[r.Name()] = r
	}
	for _, c := range s.Channels {
		r := byName[c.Name]
		if r == nil {
			continue
		}
		for _, m := range c.Messages {
			_, _ = r.Insert(m, now)
		}
	}
	b.journalSnapshot(s)
	b.commitMu.Unlock()
	for _, r := range refs {
		b.sched.ensure(r, r.NextDue())
	}
	return nil
}
