package cluster

import (
	"math/rand/v2"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Healing after a partition.
//
// memberlist declares a member it cannot probe dead and then never probes
// it again; after GossipToTheDeadTime it stops gossiping to it too. Two
// sides of a partition that lasted longer than that stay apart for good,
// each seeing the other as dead. serf (hashicorp/serf, Serf.reconnect)
// fixes this on top of memberlist by periodically Joining a random failed
// member again, for up to a day. The rejoin loop below does the same, with
// three changes: it retries sooner (RejoinInterval, doubling up to
// RejoinMaxInterval, jittered, instead of serf's fixed 30 s), it tries every
// failed member each round rather than a random one (clusters here are a
// handful of nodes), and a node that sees itself alone or in a minority
// also tries the configured Join addresses, so a node that started alone,
// or whose peers all restarted under new addresses, finds them again.
//
// A Join is a push/pull: both sides exchange their full member lists. The
// side told it is dead refutes (a higher incarnation), and the next round's
// push/pull carries the refutation back: two rounds make both sides see
// each other alive. Then the repair loop pulls, in both directions, what
// each side committed during the partition, from the positions announced
// and exchanged as usual.

// failedMember is a member last seen failed (not left), still worth
// reconnecting to.
type failedMember struct {
	addr  string // memberlist host:port
	since time.Time
}

// noteFailed records a member's change of state for the rejoin loop. It
// runs under pmu.
func (n *Node) noteFailed(name, addr string, state memberlist.NodeStateType) {
	switch state {
	case memberlist.StateDead:
		if _, ok := n.failed[name]; !ok {
			n.failed[name] = failedMember{addr: addr, since: time.Now()}
			n.log.Warn("member unreachable; will keep trying to reach it", "peer", name, "addr", addr)
		}
	case memberlist.StateAlive:
		if f, ok := n.failed[name]; ok {
			delete(n.failed, name)
			n.rejoins.Add(1)
			n.log.Info("member reachable again", "peer", name, "addr", addr, "after", time.Since(f.since).Round(time.Millisecond))
		}
	default: // left: gone on purpose, not to be called back
		delete(n.failed, name)
	}
}

// rejoinTargets lists the addresses to Join this round, in memberlist's
// "name/host:port" form where the name is known, and forgets members that
// have been unreachable longer than ReconnectTimeout.
func (n *Node) rejoinTargets(now time.Time) []string {
	n.pmu.Lock()
	defer n.pmu.Unlock()
	var targets []string
	for name, f := range n.failed {
		if now.Sub(f.since) > n.cfg.ReconnectTimeout {
			delete(n.failed, name)
			n.log.Warn("giving up on an unreachable member", "peer", name, "addr", f.addr, "after", n.cfg.ReconnectTimeout)
			continue
		}
		targets = append(targets, name+"/"+f.addr)
	}
	alive, unreachable := n.countLocked()
	if len(n.cfg.Join) > 0 && (alive == 1 || minority(alive, unreachable)) {
		targets = append(targets, n.cfg.Join...)
	}
	sort.Strings(targets)
	return targets
}

// countLocked returns the members this node reaches (itself included) and
// those it tries to reach again. It runs under pmu.
func (n *Node) countLocked() (alive, unreachable int) {
	alive = 1
	for _, p := range n.peers {
		if p.state == memberlist.StateAlive {
			alive++
		}
	}
	return alive, len(n.failed)
}

// minority reports whether alive members are no majority of those known.
func minority(alive, unreachable int) bool {
	return unreachable > 0 && 2*alive <= alive+unreachable
}

// rejoinLoop is the goroutine that Joins failed members (and the seeds
// when alone or in a minority) until they answer. A round whose Joins all
// fail doubles the wait, up to RejoinMaxInterval; each wait is jittered by
// ±25% so that the nodes of a split cluster do not try in lockstep.
func (n *Node) rejoinLoop() {
	wait := n.cfg.RejoinInterval
	for {
		t := time.NewTimer(jitter(wait))
		select {
		case <-n.stop:
			t.Stop()
			return
		case <-t.C:
		}
		targets := n.rejoinTargets(time.Now())
		if len(targets) == 0 {
			wait = n.cfg.RejoinInterval
			continue
		}
		n.rejoinAttempts.Add(1)
		// Answered, and not only by itself (-join may name this node
		// too): try again soon, to carry the refutations across.
		if n.joinEach(targets) > 0 && n.numNodes() > 1 {
			wait = n.cfg.RejoinInterval
		} else {
			wait = min(2*wait, n.cfg.RejoinMaxInterval)
		}
	}
}

// joinEach Joins every target at once and returns how many answered. A
// Join to an unreachable address lasts until memberlist's TCP timeout
// (10 s), so Close may wait that long for a round in flight.
func (n *Node) joinEach(targets []string) int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for _, t := range targets {
		wg.Go(func() {
			k, err := n.ml.Join([]string{t})
			if err != nil || k == 0 {
				n.log.Debug("rejoin attempt failed", "target", t, "err", err)
				return
			}
			mu.Lock()
			ok++
			mu.Unlock()
		})
	}
	wg.Wait()
	return ok
}

// jitter spreads d uniformly over ±25%.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d*3/4 + rand.N(d/2+1)
}

// memberAddr formats a memberlist node's address.
func memberAddr(node *memberlist.Node) string {
	return net.JoinHostPort(node.Addr.String(), strconv.Itoa(int(node.Port)))
}
