package cluster

import (
	"github.com/hashicorp/memberlist"

	"github.com/pushuphq/pushup/broker"
)

// replicate is the replicator goroutine: it takes this node's committed
// events from the outbox and hands them to the peers' streams (unicast)
// or to memberlist's broadcasts (gossip).
func (n *Node) replicate() {
	for {
		select {
		case <-n.stop:
			return
		case <-n.okick:
		}
		n.omu.Lock()
		evs := n.outbox
		n.outbox = nil
		n.omu.Unlock()
		if len(evs) == 0 {
			continue
		}
		if n.cfg.Mode == ModeUnicast {
			n.pmu.Lock()
			for _, p := range n.peers {
				if p.sender != nil {
					p.sender.push(evs)
				}
			}
			n.pmu.Unlock()
			continue
		}
		n.broadcast(evs, false)
	}
}

// broadcast gossips events: small ones packed into broadcasts up to
// GossipPayload bytes; each one larger than that is sent to every member
// reliably, unless it is being passed on (relay): the origin already sent
// it to everyone, and anti-entropy repairs a loss.
func (n *Node) broadcast(evs []broker.Event, relay bool) {
	var batch []broker.Event
	size := 0
	flush := func() {
		if len(batch) > 0 {
			n.bq.QueueBroadcast(&gossipBroadcast{msg: encodeEvents(batch)})
			batch, size = nil, 0
		}
	}
	for _, ev := range evs {
		one := appendEvent(nil, ev)
		if len(one)+8 > n.cfg.GossipPayload {
			if !relay {
				n.sendReliably(encodeEvents([]broker.Event{ev}))
			}
			continue
		}
		if size+len(one)+8 > n.cfg.GossipPayload {
			flush()
		}
		batch = append(batch, ev)
		size += len(one)
	}
	flush()
	// Gossip carries a few dozen batches a second per node; past that
	// the queue only grows (memory) while anti-entropy repairs what it
	// holds anyway. Keep the freshest, drop the most transmitted.
	if over := n.bq.NumQueued() - maxGossipQueue; over > 0 {
		n.bq.Prune(maxGossipQueue)
		n.gossipDropped.Add(uint64(over))
	}
}

// maxGossipQueue bounds memberlist's broadcast queue, in messages of at
// most GossipPayload bytes: 1 MiB with the default payload, a minute of
// what gossip can send, and a few milliseconds of a publisher's burst.
const maxGossipQueue = 1024

// sendReliably sends msg to every other member over memberlist's TCP.
func (n *Node) sendReliably(msg []byte) {
	for _, m := range n.ml.Members() {
		if m.Name == n.cfg.NodeName {
			continue
		}
		if err := n.ml.SendReliable(m, msg); err != nil {
			n.log.Debug("reliable send failed; anti-entropy will repair", "peer", m.Name, "err", err)
		}
	}
}

// gossiped handles events that came by gossip: applied, and those new here
// passed on (re-broadcast on first receipt, so the spread is epidemic).
func (n *Node) gossiped(evs []broker.Event) {
	fresh := n.receive(evs)
	if len(fresh) == 0 || n.closing.Load() {
		return
	}
	relay := make([]broker.Event, len(fresh))
	for i, k := range fresh {
		relay[i] = evs[k]
	}
	n.broadcast(relay, true)
}

// gossipBroadcast is one message in memberlist's broadcast queue.
type gossipBroadcast struct {
	msg []byte
}

func (b *gossipBroadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b *gossipBroadcast) Message() []byte                       { return b.msg }
func (b *gossipBroadcast) Finished()                             {}

// UniqueBroadcast marks gossip broadcasts as never invalidating each
// other: without it memberlist compares every new broadcast with every
// queued one (Invalidates), quadratic in a burst.
func (b *gossipBroadcast) UniqueBroadcast() {}
