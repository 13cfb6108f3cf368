package cluster

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pushuphq/pushup/broker"
	"github.com/pushuphq/pushup/channel"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var modes = []Mode{ModeUnicast, ModeGossip}

func eachMode(t *testing.T, fn func(t *testing.T, mode Mode)) {
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) { fn(t, m) })
	}
}

func publishOn(t *testing.T, n *testNode, data string, channels ...string) *channel.Message {
	t.Helper()
	ms, err := n.b.Publish(broker.Publication{Channels: channels, Data: []byte(`"` + data + `"`)})
	require.NoError(t, err)
	return ms[0]
}

// ids lists the ids of every message cached on a channel of a node.
func ids(n *testNode, ch string) []string {
	var out []string
	var cur broker.Cursor
	for {
		res, _, err := n.b.Subscribe(broker.SubscribeRequest{Channels: []string{ch}, Cursor: cur}, nil)
		if err != nil {
			return out
		}
		for _, m := range res.Messages {
			out = append(out, m.ID)
		}
		cur = res.Cursor
		if !res.More {
			slices.Sort(out)
			return out
		}
	}
}

// converged waits until every node holds want messages on ch, the same
// ones.
func (c *testCluster) converged(ch string, want int, nodes ...string) {
	c.t.Helper()
	require.NotEmpty(c.t, nodes, "converged needs the nodes to check")
	require.Eventually(c.t, func() bool {
		var first []string
		for i, name := range nodes {
			got := ids(c.nodes[name], ch)
			if len(got) != want {
				return false
			}
			if i == 0 {
				first = got
			} else if !slices.Equal(first, got) {
				return false
			}
		}
		return true
	}, 20*time.Second, 20*time.Millisecond, "nodes %v never held the same %d messages on %q", nodes, want, ch)
}

func (c *testCluster) members(name string) map[string]string {
	out := map[string]string{}
	for _, m := range c.nodes[name].n.Status().Members {
		out[m.Name] = m.State
	}
	return out
}

func (c *testCluster) allAlive(names ...string) {
	c.t.Helper()
	require.Eventually(c.t, func() bool {
		for _, n := range names {
			ms := c.members(n)
			for _, m := range names {
				if ms[m] != "alive" {
					return false
				}
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond)
}

func TestReplicatesEverywhere(t *testing.T) {
	eachMode(t, func(t *testing.T, mode Mode) {
		c := newTestCluster(t, mode)
		c.start("n1")
		c.start("n2", "n1")
		c.start("n3", "n1")
		c.allAlive("n1", "n2", "n3")
		for _, name := range []string{"n1", "n2", "n3"} {
			for i := range 10 {
				publishOn(t, c.nodes[name], fmt.Sprintf("%s-%d", name, i), "news")
			}
		}
		c.converged("news", 30, "n1", "n2", "n3")

		// Channel changes replicate too.
		_, _, err := c.nodes["n2"].b.Renew("room", 5*time.Minute)
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			info, err := c.nodes["n3"].b.Info("room")
			return err == nil && info.TTL == 5*time.Minute
		}, 10*time.Second, 10*time.Millisecond)
		_, err = c.nodes["n3"].b.CloseChannel("news")
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			_, err := c.nodes["n1"].b.Info("news")
			return err != nil
		}, 10*time.Second, 10*time.Millisecond)
	})
}

func TestStatusShowsMembersAndLag(t *testing.T) {
	c := newTestCluster(t, ModeUnicast)
	c.start("n1")
	c.start("n2", "n1")
	c.allAlive("n1", "n2")
	publishOn(t, c.nodes["n2"], "x", "a")
	c.converged("a", 1, "n1", "n2")
	require.Eventually(t, func() bool {
		st := c.nodes["n1"].n.Status()
		if len(st.Members) != 2 || !st.Ready || st.Mode != ModeUnicast || !st.Members[0].Self {
			return false
		}
		r := st.Members[1].Replication
		return r != nil && r.AppliedSeq == 1 && r.Behind == 0 && r.Stream != nil && r.Stream.Connected
	}, 10*time.Second, 10*time.Millisecond)
}

func TestGossipLossIsRepaired(t *testing.T) {
	c := newTestCluster(t, ModeGossip)
	c.start("n1")
	c.start("n2", "n1")
	c.start("n3", "n1")
	c.allAlive("n1", "n2", "n3")
	c.f.setLoss(0.5)
	// Enough events that gossip alone, at this loss, all but surely
	// misses one somewhere (it missed one in 3 runs of 5 at 60): the
	// nodes converge only if anti-entropy pulls what was lost.
	const events = 600
	for i := range events {
		publishOn(t, c.nodes["n1"], fmt.Sprint(i), "lossy")
	}
	c.converged("lossy", events, "n1", "n2", "n3")
	c.f.setLoss(0)
	var repaired uint64
	for _, n := range c.nodes {
		repaired += n.n.Status().Repaired
	}
	require.Positive(t, repaired, "anti-entropy pulled what gossip lost")
	t.Logf("events pulled by anti-entropy: %d", repaired)
}

func TestPartitionHeals(t *testing.T) {
	eachMode(t, func(t *testing.T, mode Mode) {
		c := newTestCluster(t, mode)
		c.start("n1")
		c.start("n2", "n1")
		c.start("n3", "n1")
		c.allAlive("n1", "n2", "n3")

		c.f.partition(map[string]int{"n1": 1})
		for i := range 10 {
			publishOn(t, c.nodes["n1"], fmt.Sprint("alone-", i), "p")
			publishOn(t, c.nodes["n2"], fmt.Sprint("pair-", i), "p")
		}
		c.converged("p", 10, "n2", "n3")
		assert.Len(t, ids(c.nodes["n1"], "p"), 10, "n1 sees only its own side")

		c.f.heal()
		c.converged("p", 20, "n1", "n2", "n3")
	})
}

func TestFailureIsDetectedAndStreamsStop(t *testing.T) {
	c := newTestCluster(t, ModeUnicast)
	c.start("n1")
	c.start("n2", "n1")
	c.start("n3", "n1")
	c.allAlive("n1", "n2", "n3")
	c.kill("n3")
	require.Eventually(t, func() bool {
		st := c.nodes["n1"].n.Status()
		for _, m := range st.Members {
			if m.Name == "n3" {
				return m.State == "dead" && m.Replication.Stream == nil
			}
		}
		return true // forgotten entirely is fine too
	}, 10*time.Second, 10*time.Millisecond)
	// The survivors carry on.
	publishOn(t, c.nodes["n1"], "after", "s")
	c.converged("s", 1, "n1", "n2")
}

func TestJoiningNodeCopiesStateBeforeReady(t *testing.T) {
	c := newTestCluster(t, ModeUnicast)
	c.start("n1")
	c.start("n2", "n1")
	c.allAlive("n1", "n2")
	for i := range 20 {
		publishOn(t, c.nodes["n1"], fmt.Sprint(i), "old", "all")
		publishOn(t, c.nodes["n2"], fmt.Sprint(i), "all")
	}
	c.converged("all", 40, "n1", "n2")
	n3 := c.start("n3", "n1") // Start returns once ready
	assert.True(t, n3.n.Ready())
	assert.Len(t, ids(n3, "all"), 40, "everything there the moment it is ready")
	assert.Len(t, ids(n3, "old"), 20)
	publishOn(t, n3, "new", "all")
	c.converged("all", 41, "n1", "n2", "n3")
}

func TestRestartedNodeServesWhatItMissed(t *testing.T) {
	eachMode(t, func(t *testing.T, mode Mode) {
		c := newTestCluster(t, mode)
		c.start("n1")
		c.start("n2", "n1")
		c.start("n3", "n1")
		c.allAlive("n1", "n2", "n3")
		publishOn(t, c.nodes["n3"], "before", "r")
		c.converged("r", 1, "n1", "n2", "n3")
		c.kill("n3")
		for i := range 5 {
			publishOn(t, c.nodes["n1"], fmt.Sprint("while-down-", i), "r")
		}
		n3 := c.start("n3", "n1") // a new boot: a new origin
		assert.Len(t, ids(n3, "r"), 6)
		c.converged("r", 6, "n1", "n2", "n3")
	})
}

func TestUnicastQueueOverflowIsRepaired(t *testing.T) {
	c := newTestCluster(t, ModeUnicast)
	c.config = func(cfg *Config) { cfg.QueueSize = 3 }
	c.start("n1")
	c.start("n2", "n1")
	c.allAlive("n1", "n2")
	c.f.partition(map[string]int{"n2": 1})
	for i := range 20 {
		publishOn(t, c.nodes["n1"], fmt.Sprint(i), "o")
	}
	require.Eventually(t, func() bool {
		for _, m := range c.nodes["n1"].n.Status().Members {
			if m.Name == "n2" && m.Replication.Stream != nil {
				return m.Replication.Stream.Dropped > 0
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond, "a stream queue of 3 overflowed")
	c.f.heal()
	c.converged("o", 20, "n1", "n2")
}

// TestRoundRobinSubscriberExactlyOnce: three publishers post to three
// nodes at once; a subscriber polls a different node each time, passing
// its cursor along, and gets every message exactly once.
func TestRoundRobinSubscriberExactlyOnce(t *testing.T) {
	eachMode(t, func(t *testing.T, mode Mode) {
		c := newTestCluster(t, mode)
		names := []string{"n1", "n2", "n3"}
		c.start("n1")
		c.start("n2", "n1")
		c.start("n3", "n1")
		c.allAlive(names...)
		const each = 40
		var wg sync.WaitGroup
		for _, name := range names {
			wg.Go(func() {
				for i := range each {
					publishOn(t, c.nodes[name], fmt.Sprintf("%s-%d", name, i), "rr")
				}
			})
		}
		got := map[string]int{}
		var cur broker.Cursor
		deadline := time.Now().Add(20 * time.Second)
		for poll := 0; len(got) < 3*each; poll++ {
			require.True(t, time.Now().Before(deadline), "got %d of %d", len(got), 3*each)
			n := c.nodes[names[poll%3]]
			res, _, err := n.b.Subscribe(broker.SubscribeRequest{Channels: []string{"rr"}, Cursor: cur}, nil)
			require.NoError(t, err)
			require.False(t, res.Truncated)
			for _, m := range res.Messages {
				got[m.ID]++
			}
			cur = res.Cursor
			time.Sleep(time.Millisecond) // a client between two polls
		}
		wg.Wait()
		for id, k := range got {
			require.Equal(t, 1, k, "%s delivered %d times", id, k)
		}
	})
}

// TestGossipNodeLeavingHandsOverItsEvents: a gossip node that leaves right
// after a burst, with its broadcasts not all gossiped, still gets every
// event to its peers (its HTTP log is gone with it, so they could not pull
// them later).
func TestGossipNodeLeavingHandsOverItsEvents(t *testing.T) {
	c := newTestCluster(t, ModeGossip)
	c.start("n1")
	c.start("n2", "n1")
	c.allAlive("n1", "n2")
	// Nothing gossiped gets through, and n2 cannot pull from n1: only
	// memberlist's reliable channel, which the hand-over uses, works.
	c.f.setLoss(1)
	c.f.blockHTTP(true)
	for i := range 200 {
		publishOn(t, c.nodes["n1"], fmt.Sprint(i), "tail")
	}
	c.nodes["n1"].stop()
	require.Eventually(t, func() bool { return len(ids(c.nodes["n2"], "tail")) == 200 }, 10*time.Second, 10*time.Millisecond)
}
