package cluster

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/pushuphq/pushup/broker"
)

// positions returns what this node holds of each origin.
func (n *Node) positions() []position {
	if n.b == nil {
		return nil
	}
	var ps []position
	for _, p := range n.b.Positions() {
		if p.Seq > 0 {
			ps = append(ps, position{Origin: p.Origin, Seq: p.Seq})
		}
	}
	return ps
}

// heard records positions a peer announced or sent in its push/pull state:
// what it holds, so this node knows whom to ask, and that the events
// exist, so a gap at the end shows as missing.
func (n *Node) heard(from string, ps []position) {
	n.pmu.Lock()
	if p := n.peers[from]; p != nil {
		for _, x := range ps {
			p.has[x.Origin] = max(p.has[x.Origin], x.Seq)
		}
	}
	n.pmu.Unlock()
	if n.b == nil {
		return
	}
	for _, x := range ps {
		n.b.Announce(x.Origin, x.Seq)
	}
}

// recentWindow is how long after an origin's last event arrived a node
// keeps announcing what it holds of it.
const recentWindow = time.Minute

// maxRecent caps the other origins in one announcement (a gossip packet
// holds about a hundred positions).
const maxRecent = 32

// announced is what this node announces: its own position, and what it
// holds of other origins active in the last minute. Without the latter,
// after a kill -9 in gossip mode the survivors learnt who holds the dead
// node's last events only from memberlist's push/pull (every
// PushPullInterval, 10 s, with one random peer): a node that missed some
// of them waited up to a minute. Announced every AnnounceInterval, they
// are repaired within seconds, even before the death is detected (the
// pull from the dead origin fails, the one from the holder works).
func (n *Node) announced(now time.Time) []position {
	if n.b == nil {
		return nil
	}
	var own, others []broker.OriginPosition
	for _, p := range n.b.Positions() {
		switch {
		case p.Seq == 0:
		case p.Local:
			own = append(own, p)
		case now.Sub(p.Applied) < recentWindow:
			others = append(others, p)
		}
	}
	if len(others) > maxRecent {
		sort.Slice(others, func(i, j int) bool { return others[i].Applied.After(others[j].Applied) })
		others = others[:maxRecent]
	}
	var ps []position
	for _, p := range append(own, others...) {
		ps = append(ps, position{Origin: p.Origin, Seq: p.Seq})
	}
	return ps
}

// announceLoop gossips what announced returns every AnnounceInterval: a
// node that missed some events, this node's or another's, learns they
// exist and who holds them.
func (n *Node) announceLoop() {
	t := time.NewTicker(n.cfg.AnnounceInterval)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		if ps := n.announced(time.Now()); len(ps) > 0 {
			n.bq.QueueBroadcast(&gossipBroadcast{msg: encodePositions(msgAnnounce, n.cfg.NodeName, ps)})
		}
	}
}

// behind is how long an origin's position has been stuck behind what is
// known to exist.
type behind struct {
	seq   uint64
	since time.Time
}

// repairLoop pulls what this node lacks: an origin whose position stays
// behind what some peer holds for RepairAfter without moving.
func (n *Node) repairLoop() {
	t := time.NewTicker(max(n.cfg.RepairAfter/4, 50*time.Millisecond))
	defer t.Stop()
	stuck := map[uint64]behind{}
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		n.bmu.Lock()
		applying := n.applying
		n.bmu.Unlock()
		if !applying {
			continue
		}
		now := time.Now()
		for _, p := range n.b.Positions() {
			if p.Local || p.Known <= p.Seq {
				delete(stuck, p.Origin)
				continue
			}
			s, ok := stuck[p.Origin]
			if !ok || s.seq != p.Seq {
				stuck[p.Origin] = behind{seq: p.Seq, since: now}
				continue
			}
			if now.Sub(s.since) < n.cfg.RepairAfter {
				continue
			}
			n.repair(p)
			stuck[p.Origin] = behind{seq: p.Seq, since: time.Now()}
		}
	}
}

// repair pulls origin p's missing events from the peers that have them,
// the origin's own node first.
func (n *Node) repair(p broker.OriginPosition) {
	n.repairs.Add(1)
	for _, src := range n.sources(p) {
		err := n.pull(p.Origin, p.Seq+1, src)
		if err == nil {
			return
		}
		n.log.Debug("repair from peer failed", "peer", src.name, "origin", fmt.Sprintf("%016x", p.Origin), "err", err)
	}
	n.repairFailures.Add(1)
}

type source struct{ name, http string }

// sources lists the live peers that hold origin p beyond this node.
func (n *Node) sources(p broker.OriginPosition) []source {
	n.pmu.Lock()
	defer n.pmu.Unlock()
	var first, rest []source
	for _, pr := range n.peers {
		if pr.meta.HTTP == "" || pr.state != memberlist.StateAlive {
			continue
		}
		s := source{pr.name, pr.meta.HTTP}
		switch {
		case parseOrigin(pr.meta.Origin) == p.Origin:
			first = append(first, s)
		case pr.has[p.Origin] > p.Seq:
			rest = append(rest, s)
		}
	}
	return append(first, rest...)
}

// pull fetches an origin's events from Seq `from` on from one peer and
// applies them, page by page. If the peer no longer keeps them, the events
// no node keeps are skipped (broker.Skip): readers behind them are told
// they were truncated.
func (n *Node) pull(origin, from uint64, src source) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		u := src.http + "/internal/v1/events?origin=" + fmt.Sprintf("%016x", origin) + "&from=" + strconv.FormatUint(from, 10)
		body, code, err := n.getStatus(ctx, u)
		var se *statusError
		if errors.As(err, &se) && code == 410 {
			oldest, _ := strconv.ParseUint(se.header.Get("X-Pushup-Oldest"), 10, 64)
			if oldest <= from {
				return fmt.Errorf("cluster: %s keeps nothing of origin %016x", src.name, origin)
			}
			// Hold the first event after the loss, then give up on the
			// ones before it.
			if err := n.pull(origin, oldest, src); err != nil {
				return err
			}
			k := n.b.Skip(origin, oldest-1)
			n.skipped.Add(uint64(k))
			n.log.Warn("events lost: no peer keeps them; readers behind them will see truncated answers",
				"origin", fmt.Sprintf("%016x", origin), "from", from, "to", oldest-1, "skipped", k)
			return nil
		}
		if err != nil {
			return err
		}
		evs, err := decodeEvents(body)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return nil
		}
		n.receive(evs)
		n.repaired.Add(uint64(len(evs)))
		if len(evs) < eventsPerPull {
			return nil
		}
		from = evs[len(evs)-1].Seq + 1
	}
}
