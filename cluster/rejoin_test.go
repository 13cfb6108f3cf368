package cluster

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A partition long enough for both sides to declare each other dead, and
// for memberlist to stop gossiping to the dead (GossipToTheDeadTime), used
// to split the cluster for good: nobody ever probed a dead member again.
// The rejoin loop must merge the sides once the network returns, and each
// side must then hold what the other committed meanwhile.
func TestLongPartitionHealsWithRejoin(t *testing.T) {
	eachMode(t, func(t *testing.T, mode Mode) {
		c := newTestCluster(t, mode)
		c.config = func(cfg *Config) {
			cfg.RejoinInterval = 100 * time.Millisecond
			cfg.RejoinMaxInterval = 400 * time.Millisecond
		}
		c.tune = func(mc *memberlist.Config) { mc.GossipToTheDeadTime = 200 * time.Millisecond }
		c.start("n1")
		c.start("n2", "n1")
		c.start("n3", "n1")
		c.allAlive("n1", "n2", "n3")

		c.f.partition(map[string]int{"n3": 1})
		require.Eventually(t, func() bool {
			m1, m3 := c.members("n1"), c.members("n3")
			return m1["n3"] == "dead" && m3["n1"] == "dead" && m3["n2"] == "dead"
		}, 10*time.Second, 10*time.Millisecond, "the sides never declared each other dead")
		st3 := c.nodes["n3"].n.Status()
		assert.True(t, st3.Partitioned, "n3 alone reaches no majority")
		assert.Equal(t, []string{"n1", "n2"}, st3.Unreachable)
		st1 := c.nodes["n1"].n.Status()
		assert.False(t, st1.Partitioned, "n1 and n2 are a majority")
		assert.Equal(t, []string{"n3"}, st1.Unreachable)
		for i := range 10 {
			publishOn(t, c.nodes["n1"], fmt.Sprint("one-", i), "p")
			publishOn(t, c.nodes["n3"], fmt.Sprint("three-", i), "p")
		}
		c.converged("p", 10, "n1", "n2")
		// Past GossipToTheDeadTime: only a Join can bring them together.
		time.Sleep(300 * time.Millisecond)

		c.f.heal()
		c.allAlive("n1", "n2", "n3")
		c.converged("p", 20, "n1", "n2", "n3")
		// Stale suspicions from the partition may still make a member
		// flap once; the rejoin loop brings it back.
		require.Eventually(t, func() bool {
			for _, name := range []string{"n1", "n2", "n3"} {
				st := c.nodes[name].n.Status()
				if st.Partitioned || len(st.Unreachable) > 0 {
					return false
				}
			}
			return true
		}, 10*time.Second, 10*time.Millisecond, "a node still sees the cluster split")
		for _, name := range []string{"n1", "n3"} {
			assert.NotZero(t, c.nodes[name].n.Status().Rejoins, "%s counts the rejoin", name)
		}
	})
}

// A node that starts alone (its seeds unreachable for longer than
// JoinTimeout) keeps trying the seeds and joins once they answer.
func TestNodeStartedAloneJoinsLater(t *testing.T) {
	c := newTestCluster(t, ModeUnicast)
	c.config = func(cfg *Config) {
		cfg.JoinTimeout = 300 * time.Millisecond
		cfg.RejoinInterval = 100 * time.Millisecond
		cfg.RejoinMaxInterval = 400 * time.Millisecond
	}
	c.start("n1")
	c.f.partition(map[string]int{"n2": 1})
	c.start("n2", "n1")
	assert.Len(t, c.members("n2"), 1, "n2 started alone")
	publishOn(t, c.nodes["n2"], "early", "q")
	c.f.heal()
	c.allAlive("n1", "n2")
	c.converged("q", 1, "n1", "n2")
}

// After a kill -9 in gossip mode, a survivor that missed the dead node's
// last events learns that the other survivor holds them from its
// announcements, within seconds, not from memberlist's push/pull (set
// here to a minute, so only the announcements can tell it).
func TestGossipSurvivorsShareDeadNodesTail(t *testing.T) {
	c := newTestCluster(t, ModeGossip)
	c.config = func(cfg *Config) {
		cfg.PushPullInterval = time.Minute
		// Slower failure detection, so that a short cut is no death
		// (memberlist's goroutines still stop within a probe interval
		// of Shutdown, in time for the leak check).
		cfg.ProbeInterval = 500 * time.Millisecond
		cfg.ProbeTimeout = 250 * time.Millisecond
	}
	c.start("n1")
	c.start("n2", "n1")
	c.start("n3", "n1")
	c.allAlive("n1", "n2", "n3")
	for i := range 5 {
		publishOn(t, c.nodes["n1"], fmt.Sprint("before-", i), "t")
	}
	c.converged("t", 5, "n1", "n2", "n3")

	// n3 misses n1's tail: cut off while n1 publishes, long enough for
	// gossip's retransmissions to run out, then n1 dies.
	c.f.partition(map[string]int{"n3": 1})
	for i := range 5 {
		publishOn(t, c.nodes["n1"], fmt.Sprint("tail-", i), "t")
	}
	c.converged("t", 10, "n1", "n2")
	time.Sleep(300 * time.Millisecond)
	c.kill("n1")
	c.f.heal()
	require.Len(t, ids(c.nodes["n3"], "t"), 5, "n3 missed the tail (else the test proves nothing)")
	require.Eventually(t, func() bool {
		return slices.Equal(ids(c.nodes["n2"], "t"), ids(c.nodes["n3"], "t"))
	}, 15*time.Second, 20*time.Millisecond, "n3 never got the dead node's tail from n2")
}
