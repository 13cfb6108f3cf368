package cluster

import (
	"encoding/json"

	"github.com/hashicorp/memberlist"
)

// delegate is memberlist's hook into the node: metadata, gossip messages,
// broadcasts and push/pull state.
type delegate struct{ n *Node }

// NodeMeta is this node's metadata (at most limit bytes).
func (d *delegate) NodeMeta(limit int) []byte {
	b, _ := json.Marshal(d.n.localMeta())
	if len(b) > limit {
		return nil
	}
	return b
}

// NotifyMsg handles a gossip message or a reliably sent one. memberlist
// reuses buf afterwards; decoding copies what it keeps.
func (d *delegate) NotifyMsg(buf []byte) {
	if len(buf) == 0 {
		return
	}
	switch buf[0] {
	case msgEvents:
		evs, err := decodeEvents(buf)
		if err != nil {
			d.n.log.Warn("dropping a malformed event message", "err", err)
			return
		}
		d.n.gossiped(evs)
	case msgAnnounce, msgDigest:
		_, from, ps, err := decodePositions(buf)
		if err != nil {
			d.n.log.Warn("dropping a malformed position message", "err", err)
			return
		}
		d.n.heard(from, ps)
	}
}

// GetBroadcasts hands memberlist what to piggyback on its gossip.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.n.bq.GetBroadcasts(overhead, limit)
}

// LocalState is this node's push/pull state: every position it holds.
func (d *delegate) LocalState(join bool) []byte {
	return encodePositions(msgDigest, d.n.cfg.NodeName, d.n.positions())
}

// MergeRemoteState takes a peer's push/pull state.
func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	_, from, ps, err := decodePositions(buf)
	if err != nil {
		d.n.log.Warn("dropping malformed push/pull state", "err", err)
		return
	}
	d.n.heard(from, ps)
}

// events is memberlist's membership hook.
type events struct{ n *Node }

// memberlist passes its Node record, whose State field it never sets (it
// keeps a member's state in its private nodeState): node.State is always
// StateAlive, even in NotifyLeave. Which callback runs is the state.
func (e *events) NotifyJoin(node *memberlist.Node)   { e.n.memberChanged(node, memberlist.StateAlive) }
func (e *events) NotifyUpdate(node *memberlist.Node) { e.n.memberChanged(node, memberlist.StateAlive) }
func (e *events) NotifyLeave(node *memberlist.Node)  { e.n.memberChanged(node, memberlist.StateDead) }

// memberChanged records a member's state and metadata, and in unicast mode
// starts or stops the stream to it. A member that is gone (state dead)
// had left if it said it was leaving, and died otherwise.
func (n *Node) memberChanged(node *memberlist.Node, state memberlist.NodeStateType) {
	if node.Name == n.cfg.NodeName {
		return
	}
	m := metaOf(node.Meta)
	if state == memberlist.StateDead && m.Leaving {
		state = memberlist.StateLeft
	}
	n.pmu.Lock()
	defer n.pmu.Unlock()
	p := n.peers[node.Name]
	if p == nil {
		p = &peer{name: node.Name, has: map[uint64]uint64{}}
		n.peers[node.Name] = p
	}
	p.addr = memberAddr(node)
	n.noteFailed(node.Name, p.addr, state)
	if m.Origin != p.meta.Origin {
		p.has = map[uint64]uint64{} // a new boot of the node
	}
	// A copy: memberlist updates its Node in place later (under its own
	// lock, which it holds during this callback), and handOver reads it.
	cp := *node
	p.meta, p.state, p.node = m, state, &cp
	alive := state == memberlist.StateAlive
	if n.cfg.Mode != ModeUnicast || n.closing.Load() {
		return
	}
	switch {
	case alive && m.HTTP != "" && (p.sender == nil || p.sender.url != m.HTTP):
		if p.sender != nil {
			p.sender.close()
		}
		p.sender = newSender(n, node.Name, m.HTTP)
		n.log.Debug("streaming to peer", "peer", node.Name, "url", m.HTTP)
	case !alive && p.sender != nil:
		// A dead or departed peer: stop sending. What it missed it
		// repairs if it comes back; a restart is a new origin anyway.
		p.sender.close()
		p.sender = nil
		n.log.Info("peer gone; stopped streaming to it", "peer", node.Name, "state", stateName(state))
	}
}
