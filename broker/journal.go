package broker

import (
	"errors"
	"fmt"
	"slices"

	"github.com/pushuphq/pushup/channel"
)

// ErrNotDurable is returned by Publish when the publication was committed
// in memory (and replicated) but the journal failed to persist it: the
// node's disk is failing, and a restart may lose it.
var ErrNotDurable = errors.New("broker: publication not persisted")

// Journal persists what the broker commits, so a restarted node can
// Recover it (package store implements it on disk). The broker calls
// Record and Forget under its commit lock, in commit order: they must
// queue the work and return without blocking or calling the broker. Wait
// is called outside every lock.
type Journal interface {
	// Record queues ev, just committed (by this node's origin or applied
	// from another), and returns a ticket for Wait. An EventRenew with
	// Origin zero carries channel state only (a restored snapshot's
	// channels): it is not part of any origin's sequence.
	Record(ev Event) uint64
	// Forget queues the removal of channel name's state: it expired for
	// idleness (closes arrive as EventClose through Record). Recover gets
	// it back as an EventClose with Origin zero, in commit order.
	Forget(name string)
	// Wait returns once the record with ticket t is as durable as the
	// journal promises before a publication is acknowledged, or an error
	// if it cannot be persisted.
	Wait(t uint64) error
}

// durability is the broker's journal state, guarded by Broker.commitMu.
type durability struct {
	replaying bool   // Recover is applying the journal: do not write it again
	recovered bool   // Recover restored something
	ticket    uint64 // the journal's ticket for the last event recorded
}

// journalLocked hands ev to the journal, unless the broker is replaying
// the journal itself. Caller holds commitMu.
func (b *Broker) journalLocked(ev Event) {
	if b.cfg.Journal != nil && !b.dur.replaying {
		b.dur.ticket = b.cfg.Journal.Record(ev)
	}
}

// waitJournal waits until ticket t is persisted, outside locks.
func (b *Broker) waitJournal(t uint64) error {
	if b.cfg.Journal == nil || t == 0 {
		return nil
	}
	if err := b.cfg.Journal.Wait(t); err != nil {
		return fmt.Errorf("%w: %w", ErrNotDurable, err)
	}
	return nil
}

// RecoverStats says what Recover replayed.
type RecoverStats struct {
	Events   int // events applied
	Channels int // channel states restored
	Origins  int
	// Gaps counts places where an origin's events were not contiguous on
	// disk (messages pruned while older ones were still held, or a
	// snapshot's holes); replay continued after each.
	Gaps int
}

// Recover replays a journal into a broker that has committed nothing yet,
// before it serves: events in the order they were committed before the
// restart, where an EventClose with Origin zero is a channel's idle
// expiry, then the channels' last states (EventRenew with Origin zero),
// which create or renew them. Each
// origin's events may start at any Seq (older ones were pruned) and this
// node's previous boot is an origin like any other, so cursors that
// readers got before the restart go on where they were. The replayed
// events are kept for repairs, as if just applied; the journal is not
// written again. Every channel restored starts a fresh idle period.
func (b *Broker) Recover(events []Event) (RecoverStats, error) {
	var st RecoverStats
	var fx effects
	b.commitMu.Lock()
	b.mu.RLock()
	empty := len(b.chans) == 0 && b.local.seq == 0 && !b.closed
	b.mu.RUnlock()
	if !empty {
		b.commitMu.Unlock()
		return st, ErrNotEmpty
	}
	b.dur.replaying = true
	now := b.now()
	seen := map[uint64]bool{}
	for _, ev := range events {
		if ev.Origin == 0 {
			switch {
			case ev.Kind == EventRenew && ValidChannelName(ev.Channel) && ev.TTL > 0:
				if r, _, err := b.renewLocked(nil, ev.Channel, ev.TTL, now, false); err == nil {
					fx.add(nil, nil, []*chanRef{r})
					st.Channels++
				}
			case ev.Kind == EventClose:
				// The channel expired for idleness here, with what it held.
				if r, ws := b.closeLocked(ev.Channel); r != nil {
					b.sched.remove(r)
					fx.add(nil, ws, nil)
				}
			}
			continue
		}
		if ev.Origin == b.local.id || (ev.Kind == EventPublish && ev.Message == nil) {
			continue
		}
		o := b.origins.get(ev.Origin)
		if !seen[ev.Origin] {
			seen[ev.Origin] = true
			st.Origins++
		}
		if ev.Seq <= o.seq {
			continue
		}
		if ev.Seq > o.seq+1 {
			if o.seq != 0 {
				st.Gaps++
			}
			// What came before was pruned: start (again) here. The
			// event log starts afresh too, so peers asking for the
			// pruned events learn they are gone.
			o.seq = ev.Seq - 1
		}
		fx.add(b.applyLocked(o, ev, now))
		st.Events++
	}
	b.dur.replaying = false
	b.dur.recovered = st.Events > 0 || st.Channels > 0
	b.commitMu.Unlock()
	b.finish(&fx)
	return st, nil
}

// Recovered reports whether Recover restored anything: a cluster node
// that recovered its state repairs it from its peers instead of replacing
// it with a peer's snapshot.
func (b *Broker) Recovered() bool {
	b.commitMu.Lock()
	defer b.commitMu.Unlock()
	return b.dur.recovered
}

// Retained returns, for every origin, the lowest Seq this broker still
// holds in memory: kept for repairs or cached in some channel. A journal
// may drop everything of an origin below it. It applies the message TTL
// to the repair logs first, as Events does.
func (b *Broker) Retained() map[uint64]uint64 {
	b.commitMu.Lock()
	out := make(map[uint64]uint64)
	var cut channel.Timestamp
	if ttl := b.cfg.Channel.MessageTTL; ttl > 0 {
		cut = channel.NewTimestamp(b.now().Add(-ttl).UnixMilli(), 0)
	}
	for _, o := range b.origins.all() {
		if cut != 0 {
			o.log.evictBefore(cut)
		}
		if o.log.size > 0 {
			out[o.id] = o.log.first
		} else {
			out[o.id] = o.seq + 1
		}
	}
	b.commitMu.Unlock()
	// Outside the commit lock: messages only ever leave the caches of
	// existing channels, and new ones come after every Seq read above, so
	// a message missed here is not held by anyone any more.
	b.mu.RLock()
	refs := make([]*chanRef, 0, len(b.chans))
	for _, r := range b.chans {
		refs = append(refs, r)
	}
	b.mu.RUnlock()
	for _, r := range refs {
		msgs, _, _ := r.Snapshot()
		for _, m := range msgs {
			if cut != 0 && m.TS < cut {
				continue // expired; the sweeper has not got to it yet
			}
			if s, ok := out[m.Origin]; !ok || m.Seq < s {
				out[m.Origin] = m.Seq
			}
		}
	}
	return out
}

// journalSnapshot records a restored snapshot in the journal: its
// channels' state and each message once, in time order, so a node that
// joined by snapshot and is restarted later still holds what it copied.
// Caller holds commitMu.
func (b *Broker) journalSnapshot(s *Snapshot) {
	if b.cfg.Journal == nil {
		return
	}
	seen := make(map[[2]uint64]bool)
	var msgs []*channel.Message
	for _, c := range s.Channels {
		b.journalLocked(Event{Kind: EventRenew, Channel: c.Name, TTL: c.TTL})
		for _, m := range c.Messages {
			k := [2]uint64{m.Origin, m.Seq}
			if !seen[k] {
				seen[k] = true
				msgs = append(msgs, m)
			}
		}
	}
	slices.SortFunc(msgs, func(a, b *channel.Message) int {
		if a.Before(b) {
			return -1
		}
		if b.Before(a) {
			return 1
		}
		return 0
	})
	for _, m := range msgs {
		b.journalLocked(Event{Kind: EventPublish, Origin: m.Origin, Seq: m.Seq, TS: m.TS, Message: m})
	}
}
