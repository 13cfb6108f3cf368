package broker

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/channel"
)

// A subscriber needs no key, so nothing it does may outlive its own
// connections: the flood made 99,999 channels with timeout=0 polls
// and locked keyed publishers out with 503 channel_limit for an hour.
func TestSubscribeFloodLeavesNoChannels(t *testing.T) {
	b := newTestBroker(t, func(c *Config) { c.MaxChannels = 100 })
	for i := range 50 {
		_, sub, err := b.Subscribe(SubscribeRequest{Channels: names("flood"+string(rune('a'+i%26))+"-", 64)}, nil)
		require.NoError(t, err)
		require.Nil(t, sub)
	}
	assert.Zero(t, b.Stats().Channels, "timeout=0 subscribes created channels")
	_, err := b.Publish(pub("still works", "fresh"))
	require.NoError(t, err, "a keyed publisher must still be able to create channels")
}

func TestWaitingSubscriberChannelGoesWithItsLastWaiter(t *testing.T) {
	for name, end := range map[string]func(t *testing.T, b *Broker, s *Subscription){
		"cancel": func(t *testing.T, b *Broker, s *Subscription) { require.True(t, s.Cancel()) },
		"timeout": func(t *testing.T, b *Broker, s *Subscription) {
			b.maintain(time.Now().Add(time.Hour))
		},
	} {
		t.Run(name, func(t *testing.T) {
			b := newTestBroker(t, nil)
			w1, w2 := newWaiter(), newWaiter()
			_, s1, err := b.Subscribe(SubscribeRequest{Channels: []string{"e"}, Timeout: time.Minute}, w1.deliver)
			require.NoError(t, err)
			require.NotNil(t, s1)
			_, s2, err := b.Subscribe(SubscribeRequest{Channels: []string{"e"}, Timeout: time.Minute}, w2.deliver)
			require.NoError(t, err)
			require.NotNil(t, s2)
			st := b.Stats()
			assert.Equal(t, 1, st.Channels)
			assert.EqualValues(t, 1, st.Ephemeral)
			require.True(t, s1.Cancel())
			assert.Equal(t, 1, b.Stats().Channels, "a waiter is left: the channel stays")
			end(t, b, s2)
			st = b.Stats()
			assert.Zero(t, st.Channels, "the last waiter left: the channel must go")
			assert.Zero(t, st.Ephemeral)
			assert.EqualValues(t, 1, st.Dropped)
		})
	}
}

func TestPublishMakesASubscribersChannelStay(t *testing.T) {
	b := newTestBroker(t, nil)
	w := newWaiter()
	_, s, err := b.Subscribe(SubscribeRequest{Channels: []string{"e"}, Timeout: time.Minute}, w.deliver)
	require.NoError(t, err)
	require.NotNil(t, s)
	publish(t, b, pub(1, "e"))
	res := w.wait(t)
	require.Len(t, res.Messages, 1)
	st := b.Stats()
	assert.Equal(t, 1, st.Channels, "the channel holds a message now")
	assert.Zero(t, st.Ephemeral)
	res = poll(t, b, Cursor{}, "e")
	assert.Len(t, res.Messages, 1)
}

// Channels that only waiting subscribers made do not count against the
// limit for publishers: subscribers cannot lock publishers out.
func TestWaitingSubscribersDoNotLockPublishersOut(t *testing.T) {
	b := newTestBroker(t, func(c *Config) { c.MaxChannels = 4 })
	for i := range 4 {
		_, s, err := b.Subscribe(SubscribeRequest{Channels: []string{names("w", 4)[i]}, Timeout: time.Minute}, nil)
		require.NoError(t, err)
		require.NotNil(t, s)
	}
	_, _, err := b.Subscribe(SubscribeRequest{Channels: []string{"w9"}, Timeout: time.Minute}, nil)
	require.ErrorIs(t, err, ErrChannelLimit, "the total stays bounded")
	_, err = b.Publish(pub("x", "p1"), pub("y", "p2"))
	require.NoError(t, err)
	_, _, err = b.Renew("p3", 0)
	require.NoError(t, err)
}

func TestIdempotentPublish(t *testing.T) {
	b := newTestBroker(t, nil)
	p := pub("once", "a")
	p.IdempotencyKey = "order-17"
	first, rep, err := b.PublishReplayed(p)
	require.NoError(t, err)
	assert.Nil(t, rep)
	again, rep, err := b.PublishReplayed(p)
	require.NoError(t, err)
	assert.Equal(t, []bool{true}, rep)
	assert.Same(t, first[0], again[0], "the original message: same id and time")
	assert.Len(t, poll(t, b, Cursor{}, "a").Messages, 1, "nothing new stored")
	assert.EqualValues(t, 1, b.Stats().Published)

	// Within a batch, and mixed with new publications.
	q := pub("twice", "a")
	q.IdempotencyKey = "k2"
	ms, rep, err := b.PublishReplayed(p, q, q)
	require.NoError(t, err)
	assert.Equal(t, []bool{true, false, true}, rep)
	assert.Same(t, ms[1], ms[2])
	assert.Len(t, poll(t, b, Cursor{}, "a").Messages, 2)

	bad := pub("x", "a")
	bad.IdempotencyKey = "has space"
	_, err = b.Publish(bad)
	assert.ErrorIs(t, err, ErrInvalidIdempotencyKey)
}

func TestIdempotencyKeysExpireAndAreBounded(t *testing.T) {
	s := newIdempotency(time.Minute, 3)
	now := time.Now()
	m := &channel.Message{}
	for i, k := range []string{"a", "b", "c", "d"} {
		s.put(k, m, now.Add(time.Duration(i)*time.Second))
	}
	assert.Equal(t, 3, s.len(), "the oldest goes beyond the count")
	assert.Nil(t, s.get("a", now.Add(4*time.Second)))
	assert.NotNil(t, s.get("d", now.Add(4*time.Second)))
	assert.Nil(t, s.get("d", now.Add(2*time.Minute)), "forgotten after the TTL")
	assert.Zero(t, s.len())
}

func FuzzIdempotencyKey(f *testing.F) {
	f.Add("order-17")
	f.Add("")
	f.Add("a b")
	f.Add("\x00\xff")
	f.Fuzz(func(t *testing.T, k string) {
		ok := ValidIdempotencyKey(k)
		b := newTestBroker(t, nil)
		p := pub(1, "a")
		p.IdempotencyKey = k
		_, err := b.Publish(p)
		if k == "" || ok {
			require.NoError(t, err)
		} else {
			require.ErrorIs(t, err, ErrInvalidIdempotencyKey)
			assert.Zero(t, b.Stats().Channels, "a refused publication stores nothing")
			return
		}
		_, rep, err := b.PublishReplayed(p)
		require.NoError(t, err)
		assert.Equal(t, k != "", rep != nil && rep[0])
	})
}
