package broker

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/channel"
)

// outbox collects a broker's own committed events, as the cluster's
// OnCommit hook would.
type outbox struct {
	mu  sync.Mutex
	evs []Event
}

func (o *outbox) add(ev Event) {
	o.mu.Lock()
	o.evs = append(o.evs, ev)
	o.mu.Unlock()
}

func (o *outbox) take() []Event {
	o.mu.Lock()
	defer o.mu.Unlock()
	evs := o.evs
	o.evs = nil
	return evs
}

// replicaPair returns a broker whose events are captured, and an empty
// replica.
func newOrigin(t *testing.T, mod func(*Config)) (*Broker, *outbox) {
	t.Helper()
	out := &outbox{}
	b := newTestBroker(t, func(c *Config) {
		c.OnCommit = out.add
		if mod != nil {
			mod(c)
		}
	})
	return b, out
}

func TestApplyReplicatesPublicationsAndWakesWaiters(t *testing.T) {
	a, out := newOrigin(t, nil)
	r := newTestBroker(t, nil)
	w := newWaiter()
	_, sub, err := r.Subscribe(SubscribeRequest{Channels: []string{"x"}, FromNow: true, Timeout: time.Minute}, w.deliver)
	require.NoError(t, err)
	require.NotNil(t, sub)

	ms := publish(t, a, pub("one", "x", "y"), pub("two", "y"))
	evs := out.take()
	require.Len(t, evs, 2)
	assert.Equal(t, EventPublish, evs[0].Kind)
	assert.Equal(t, a.Origin(), evs[0].Origin)
	assert.EqualValues(t, 1, evs[0].Seq)
	assert.Same(t, ms[0], evs[0].Message)

	st, err := r.Apply(evs)
	require.NoError(t, err)
	assert.Equal(t, 2, st.Applied)
	got := w.wait(t)
	assert.Equal(t, []string{`"one"`}, dataOf(got.Messages))
	assert.Equal(t, ms[0].ID, got.Messages[0].ID, "the same message, the same id, on every node")
	assert.Equal(t, []string{`"one"`, `"two"`}, dataOf(poll(t, r, Cursor{}, "y").Messages))

	st, err = r.Apply(evs)
	require.NoError(t, err)
	assert.Equal(t, 2, st.Duplicates, "applying twice changes nothing")
	assert.Len(t, poll(t, r, Cursor{}, "y").Messages, 2)
}

func TestApplyHoldsEventsPastAGap(t *testing.T) {
	a, out := newOrigin(t, nil)
	r := newTestBroker(t, nil)
	for i := range 4 {
		publish(t, a, pub(i, "x"))
	}
	evs := out.take()
	st, err := r.Apply([]Event{evs[3], evs[1]})
	require.NoError(t, err)
	assert.Equal(t, 2, st.Pending)
	assert.Empty(t, poll(t, r, Cursor{}, "x").Messages, "nothing past the gap is visible")
	pos := positionOf(r, a.Origin())
	assert.EqualValues(t, 0, pos.Seq)
	assert.EqualValues(t, 4, pos.Known)
	assert.Equal(t, 2, pos.Pending)

	st, err = r.Apply(evs[:1])
	require.NoError(t, err)
	assert.Equal(t, 2, st.Applied, "event 1 and the held event 2")
	assert.Equal(t, []string{"0", "1"}, dataOf(poll(t, r, Cursor{}, "x").Messages), "3 still waits for 2")
	_, err = r.Apply(evs[2:3])
	require.NoError(t, err)
	assert.Equal(t, []string{"0", "1", "2", "3"}, dataOf(poll(t, r, Cursor{}, "x").Messages))
}

func positionOf(b *Broker, origin uint64) OriginPosition {
	for _, p := range b.Positions() {
		if p.Origin == origin {
			return p
		}
	}
	return OriginPosition{}
}

func TestApplyChannelRenewAndClose(t *testing.T) {
	a, out := newOrigin(t, nil)
	r := newTestBroker(t, func(c *Config) { c.ImplicitChannels = false })
	_, _, err := a.Renew("room", 10*time.Minute)
	require.NoError(t, err)
	_, err = r.Apply(out.take())
	require.NoError(t, err)
	info, err := r.Info("room")
	require.NoError(t, err)
	assert.Equal(t, 10*time.Minute, info.TTL)

	w := newWaiter()
	_, sub, err := r.Subscribe(SubscribeRequest{Channels: []string{"room"}, FromNow: true, Timeout: time.Minute}, w.deliver)
	require.NoError(t, err)
	require.NotNil(t, sub)
	_, err = a.CloseChannel("room")
	require.NoError(t, err)
	evs := out.take()
	require.Len(t, evs, 1)
	assert.Equal(t, EventClose, evs[0].Kind)
	_, err = r.Apply(evs)
	require.NoError(t, err)
	assert.Equal(t, ReasonClosed, w.wait(t).Reason)
	_, err = r.Info("room")
	assert.ErrorIs(t, err, ErrChannelNotFound)
}

func TestApplyCreatesChannelsBeyondLocalRules(t *testing.T) {
	a, out := newOrigin(t, nil)
	r := newTestBroker(t, func(c *Config) { c.ImplicitChannels = false; c.MaxChannels = 1 })
	publish(t, a, pub(1, "p", "q"))
	_, err := r.Apply(out.take())
	require.NoError(t, err)
	assert.Equal(t, 2, r.Stats().Channels, "the origin accepted it; replicas follow")
}

func TestEventsForRepairAndEviction(t *testing.T) {
	a, _ := newOrigin(t, func(c *Config) { c.LogEvents = 5 })
	for i := range 8 {
		publish(t, a, pub(i, "x"))
	}
	evs, err := a.Events(a.Origin(), 4, 100)
	require.NoError(t, err)
	require.Len(t, evs, 5)
	assert.EqualValues(t, 4, evs[0].Seq)
	assert.EqualValues(t, 8, evs[4].Seq)
	evs, err = a.Events(a.Origin(), 6, 2)
	require.NoError(t, err)
	assert.Len(t, evs, 2)
	evs, err = a.Events(a.Origin(), 9, 10)
	require.NoError(t, err)
	assert.Empty(t, evs, "nothing newer yet")
	_, err = a.Events(a.Origin(), 3, 10)
	assert.ErrorIs(t, err, ErrEvicted)
	evs, err = a.Events(12345, 1, 10)
	require.NoError(t, err)
	assert.Empty(t, evs, "an unknown origin")
}

func TestSkipLostEventsTruncatesReadersBehind(t *testing.T) {
	a, out := newOrigin(t, nil)
	r := newTestBroker(t, nil)
	publish(t, a, pub("kept", "x"))
	_, err := r.Apply(out.take())
	require.NoError(t, err)
	cur := poll(t, r, Cursor{}, "x").Cursor

	publish(t, a, pub("lost", "x"))
	publish(t, a, pub("after", "x"))
	evs := out.take()
	_, err = r.Apply(evs[1:]) // event 2 never arrives: held is event 3
	require.NoError(t, err)
	assert.Empty(t, poll(t, r, cur, "x").Messages, "held past the gap")

	assert.Equal(t, 1, r.Skip(a.Origin(), 2))
	res := poll(t, r, cur, "x")
	assert.Equal(t, []string{`"after"`}, dataOf(res.Messages))
	assert.True(t, res.Truncated, "a reader from before the loss is told")
	res = poll(t, r, res.Cursor, "x")
	assert.False(t, res.Truncated, "once past it, no longer")
	assert.Zero(t, r.Skip(a.Origin(), 2), "nothing left to skip")
}

func TestSnapshotRestore(t *testing.T) {
	a, out := newOrigin(t, nil)
	b := newTestBroker(t, nil)
	// b replicates a, and publishes itself.
	publish(t, a, pub("a1", "x", "y"))
	_, _, err := a.Renew("quiet", 20*time.Minute)
	require.NoError(t, err)
	_, err = b.Apply(out.take())
	require.NoError(t, err)
	publish(t, b, pub("b1", "x"))

	snap := b.Snapshot()
	r := newTestBroker(t, nil)
	require.NoError(t, r.Restore(snap))
	assert.Equal(t, []string{`"a1"`, `"b1"`}, dataOf(poll(t, r, Cursor{}, "x").Messages))
	info, err := r.Info("quiet")
	require.NoError(t, err)
	assert.Equal(t, 20*time.Minute, info.TTL)
	x := poll(t, r, Cursor{}, "x").Messages
	y := poll(t, r, Cursor{}, "y").Messages
	assert.Same(t, x[0], y[0], "a message in two channels stays one message")

	// Events after the snapshot apply on top; ones before are duplicates.
	publish(t, a, pub("a2", "x"))
	st, err := r.Apply(out.take())
	require.NoError(t, err)
	assert.Equal(t, 1, st.Applied)
	// a2 and b1 were published concurrently on two nodes that had not
	// heard of each other's: their clock order is arbitrary.
	assert.ElementsMatch(t, []string{`"a1"`, `"b1"`, `"a2"`}, dataOf(poll(t, r, Cursor{}, "x").Messages))
	_, err = r.Events(a.Origin(), 1, 10)
	assert.ErrorIs(t, err, ErrEvicted, "the restored node never held a's first events")

	assert.ErrorIs(t, r.Restore(snap), ErrNotEmpty)
}

// simNet carries events between brokers as a lossy, reordering network,
// and repairs like the cluster's anti-entropy: a node that is behind on an
// origin pulls the missing events from a peer's log.
type simNet struct {
	nodes []*Broker
	outs  []*outbox
	rng   *rand.Rand
	loss  float64
}

// deliver moves every captured event to every other node, in shuffled
// batches, dropping some.
func (n *simNet) deliver(t *testing.T) {
	for i, o := range n.outs {
		evs := o.take()
		for j, dst := range n.nodes {
			if j == i {
				continue
			}
			var batch []Event
			for _, ev := range evs {
				if n.rng.Float64() >= n.loss {
					batch = append(batch, ev)
				}
			}
			n.rng.Shuffle(len(batch), func(a, b int) { batch[a], batch[b] = batch[b], batch[a] })
			_, err := dst.Apply(batch)
			require.NoError(t, err)
		}
	}
}

// repair pulls, for every node and origin, what a peer has beyond it.
func (n *simNet) repair(t *testing.T) {
	for _, dst := range n.nodes {
		for _, src := range n.nodes {
			if src == dst {
				continue
			}
			for _, p := range src.Positions() {
				mine := positionOf(dst, p.Origin)
				if p.Seq <= mine.Seq {
					continue
				}
				evs, err := src.Events(p.Origin, mine.Seq+1, 1000)
				require.NoError(t, err)
				_, err = dst.Apply(evs)
				require.NoError(t, err)
			}
		}
	}
}

// TestRoundRobinSubscriberAcrossNodesGetsEachMessageOnce is the cluster's
// guarantee in miniature: three nodes publish concurrently, replicate
// through a network that loses and reorders, and repair; a subscriber that
// polls a different node each time receives every message exactly once,
// and every node ends up with every message.
func TestRoundRobinSubscriberAcrossNodesGetsEachMessageOnce(t *testing.T) {
	const perNode = 300
	n := &simNet{rng: rand.New(rand.NewPCG(7, 7)), loss: 0.2}
	for range 3 {
		b, o := newOrigin(t, func(c *Config) { c.MaxResponseMessages = 17; c.Channel.MaxMessages = 10_000 })
		n.nodes = append(n.nodes, b)
		n.outs = append(n.outs, o)
	}
	chs := []string{"a", "b", "c"}
	var pubWG sync.WaitGroup
	for i, b := range n.nodes {
		pubWG.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 1))
			for k := range perNode {
				ch := chs[r.IntN(len(chs))]
				_, err := b.Publish(pub(fmt.Sprintf("n%d-%d", i, k), ch, "all"))
				assert.NoError(t, err)
			}
		})
	}

	got := map[string]int{}
	var order []*channel.Message
	var cur Cursor
	poll := func(node int) {
		res, _, err := n.nodes[node].Subscribe(SubscribeRequest{Channels: []string{"all"}, Cursor: cur}, nil)
		require.NoError(t, err)
		require.False(t, res.Truncated)
		for _, m := range res.Messages {
			got[m.ID]++
			order = append(order, m)
		}
		cur = res.Cursor
	}
	done := make(chan struct{})
	go func() { pubWG.Wait(); close(done) }()
	for round := 0; ; round++ {
		n.deliver(t)
		if round%3 == 2 {
			n.repair(t)
		}
		poll(round % 3)
		select {
		case <-done:
		default:
			continue
		}
		if len(got) == 3*perNode {
			break
		}
		require.Less(t, round, 10_000, "never converged")
	}
	for id, c := range got {
		require.Equal(t, 1, c, "message %s delivered %d times", id, c)
	}
	// Per origin, messages came in the origin's order.
	last := map[uint64]uint64{}
	for _, m := range order {
		require.Greater(t, m.Seq, last[m.Origin], "origin order")
		last[m.Origin] = m.Seq
	}
	// Every node holds every message.
	n.deliver(t)
	n.repair(t)
	for i, b := range n.nodes {
		all := readAll(t, b, "all")
		assert.Len(t, all, 3*perNode, "node %d", i)
	}
}
