package cluster

import (
	"encoding/json"
	"testing"

	"github.com/hashicorp/memberlist"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/broker"
	"github.com/pushuphq/pushup/channel"
)

// TestGossipQueueIsBounded: a burst bigger than gossip can carry does
// not grow memberlist's broadcast queue without bound; the broadcasts
// dropped are counted (anti-entropy repairs their events).
func TestGossipQueueIsBounded(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Mode = ModeGossip
	n := &Node{cfg: cfg, bq: &memberlist.TransmitLimitedQueue{NumNodes: func() int { return 3 }, RetransmitMult: 3}}
	data := json.RawMessage(`"a fairly ordinary message of a few dozen bytes"`)
	const events = 20 * maxGossipQueue
	for i := range events {
		seq := uint64(i + 1)
		ev := broker.Event{Kind: broker.EventPublish, Origin: 7, Seq: seq, TS: channel.Timestamp(seq),
			Message: &channel.Message{Origin: 7, Seq: seq, TS: channel.Timestamp(seq), Channels: []string{"news"}, Data: data}}
		n.broadcast([]broker.Event{ev}, false) // one at a time, as a busy replicator does
	}
	require.Equal(t, maxGossipQueue, n.bq.NumQueued())
	assert.Equal(t, uint64(events-maxGossipQueue), n.gossipDropped.Load())
	assert.Equal(t, n.gossipDropped.Load(), n.Status().GossipDropped)

	// What is left is the freshest: the last event is still queued.
	msgs := n.bq.GetBroadcasts(0, 1<<20)
	require.NotEmpty(t, msgs)
	seen := map[uint64]bool{}
	for _, m := range msgs {
		evs, err := decodeEvents(m)
		require.NoError(t, err)
		for _, ev := range evs {
			seen[ev.Seq] = true
		}
	}
	assert.True(t, seen[events], "the newest event is kept")
	assert.False(t, seen[1], "the oldest was dropped")
}
