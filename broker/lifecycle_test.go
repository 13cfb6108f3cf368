package broker

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// exact is the default config without timeout jitter, for tests that
// check deadlines to the nanosecond.
func exact() Config {
	c := DefaultConfig()
	c.TimeoutJitter = 0
	return c
}

func TestWaitTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := New(exact())
		require.NoError(t, err)
		defer b.Close()

		start := time.Now()
		first := poll(t, b, Cursor{}, "a")
		w := newWaiter()
		_, sub, err := b.Subscribe(SubscribeRequest{Channels: []string{"a"}, Cursor: first.Cursor, Timeout: 30 * time.Second}, w.deliver)
		require.NoError(t, err)
		require.NotNil(t, sub)
		assert.Equal(t, start.Add(30*time.Second), sub.Deadline())

		time.Sleep(29 * time.Second)
		synctest.Wait()
		assert.True(t, w.pending(), "not before the deadline")

		time.Sleep(time.Second)
		synctest.Wait()
		res := <-w.ch
		assert.Equal(t, ReasonTimeout, res.Reason)
		assert.Empty(t, res.Messages)
		assert.Equal(t, 30*time.Second, time.Since(start))
		assert.EqualValues(t, 0, b.Stats().Waiters)

		// The timeout cursor still resumes exactly.
		publish(t, b, pub("after", "a"))
		assert.Equal(t, []string{`"after"`}, dataOf(poll(t, b, res.Cursor, "a").Messages))
	})
}

func TestTimeoutJitterSpreadsDeadlinesButNeverLengthens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := New(DefaultConfig()) // jitter 0.1
		require.NoError(t, err)
		defer b.Close()
		start := time.Now()
		deadlines := map[time.Time]bool{}
		for range 100 {
			_, sub, err := b.Subscribe(SubscribeRequest{Channels: []string{"a"}, FromNow: true, Timeout: 30 * time.Second}, nil)
			require.NoError(t, err)
			require.NotNil(t, sub)
			d := sub.Deadline()
			assert.False(t, d.After(start.Add(30*time.Second)), "never longer than asked")
			assert.False(t, d.Before(start.Add(27*time.Second)), "at most 10%% shorter")
			deadlines[d] = true
		}
		assert.Greater(t, len(deadlines), 90, "a crowd gets spread-out deadlines")
	})
}

func TestManyWaitersExpireWithoutATimerEach(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := New(DefaultConfig())
		require.NoError(t, err)
		defer b.Close()
		cur := poll(t, b, Cursor{}, names("c", 50)...).Cursor
		var ws []*waiter
		for i := range 200 {
			w := newWaiter()
			ws = append(ws, w)
			ch := names("c", 50)[i%50]
			_, sub, err := b.Subscribe(SubscribeRequest{Channels: []string{ch}, Cursor: cur, Timeout: time.Duration(1+i%10) * time.Second}, w.deliver)
			require.NoError(t, err)
			require.NotNil(t, sub)
		}
		assert.EqualValues(t, 200, b.Stats().Waiters)
		assert.Equal(t, 50, b.Stats().Scheduled, "one schedule entry per channel, not per waiter")
		time.Sleep(10 * time.Second)
		synctest.Wait()
		for _, w := range ws {
			assert.Equal(t, ReasonTimeout, (<-w.ch).Reason)
		}
		assert.EqualValues(t, 0, b.Stats().Waiters)
	})
}

func TestUntilEndsTheWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := New(exact())
		require.NoError(t, err)
		defer b.Close()
		start := time.Now()
		w := newWaiter()
		_, sub, err := b.Subscribe(SubscribeRequest{Channels: []string{"a"}, Until: start.Add(5 * time.Second).UnixMilli(), Timeout: time.Minute}, w.deliver)
		require.NoError(t, err)
		require.NotNil(t, sub)
		res := w.wait(t)
		assert.Equal(t, ReasonTimeout, res.Reason)
		assert.Equal(t, 5*time.Second+time.Millisecond, time.Since(start))

		// until already past: answered at once even with a timeout.
		res, sub, err = b.Subscribe(SubscribeRequest{Channels: []string{"a"}, Until: start.UnixMilli(), Timeout: time.Minute}, nil)
		require.NoError(t, err)
		assert.Nil(t, sub)
	})
}

func TestIdleChannelExpiresAndFreesMemory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := New(exact()) // channel TTL 1h, message TTL 10m
		require.NoError(t, err)
		defer b.Close()

		publish(t, b, pub(1, "a"))
		_, _, err = b.Renew("b", 2*time.Hour)
		require.NoError(t, err)
		assert.EqualValues(t, 1, b.Stats().Messages)

		time.Sleep(10*time.Minute + time.Millisecond)
		synctest.Wait()
		assert.EqualValues(t, 0, b.Stats().Messages, "message TTL evicted it without any access")
		assert.Equal(t, 2, b.Stats().Channels)

		time.Sleep(50 * time.Minute)
		synctest.Wait()
		_, err = b.Info("a")
		assert.ErrorIs(t, err, ErrChannelNotFound, "idle for an hour: expired")
		_, err = b.Info("b")
		assert.NoError(t, err, "b has a 2h ttl")

		// Activity postpones expiry.
		time.Sleep(59 * time.Minute)
		_, sub, err := b.Subscribe(SubscribeRequest{Channels: []string{"b"}, Timeout: time.Second}, nil)
		require.NoError(t, err)
		require.NotNil(t, sub)
		time.Sleep(time.Hour + 2*time.Second)
		synctest.Wait()
		_, err = b.Info("b")
		assert.NoError(t, err, "the subscription an hour ago was activity")
		time.Sleep(time.Hour)
		synctest.Wait()
		_, err = b.Info("b")
		assert.ErrorIs(t, err, ErrChannelNotFound)
		st := b.Stats()
		assert.Equal(t, 0, st.Channels)
		assert.EqualValues(t, 2, st.Expired)
		assert.Equal(t, 0, st.Scheduled)
	})
}

func TestChannelWithWaiterDoesNotExpire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := New(DefaultConfig())
		require.NoError(t, err)
		defer b.Close()
		_, _, err = b.Renew("a", time.Second)
		require.NoError(t, err)
		w := newWaiter()
		_, sub, err := b.Subscribe(SubscribeRequest{Channels: []string{"a"}, Timeout: time.Minute}, w.deliver)
		require.NoError(t, err)
		require.NotNil(t, sub)
		time.Sleep(30 * time.Second)
		synctest.Wait()
		_, err = b.Info("a")
		require.NoError(t, err)
		assert.True(t, w.pending())
	})
}

func TestCloseChannelAnswersWaitersWithNoOtherChannel(t *testing.T) {
	b := newTestBroker(t, nil)
	cur := poll(t, b, Cursor{}, "a", "b").Cursor
	onlyA, both := newWaiter(), newWaiter()
	_, s1, err := b.Subscribe(SubscribeRequest{Channels: []string{"a"}, Cursor: cur, Timeout: time.Minute}, onlyA.deliver)
	require.NoError(t, err)
	require.NotNil(t, s1)
	_, s2, err := b.Subscribe(SubscribeRequest{Channels: []string{"a", "b"}, Cursor: cur, Timeout: time.Minute}, both.deliver)
	require.NoError(t, err)
	require.NotNil(t, s2)

	n, err := b.CloseChannel("a")
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, ReasonClosed, onlyA.wait(t).Reason)
	assert.True(t, both.pending(), "b is still open")

	publish(t, b, pub("on b", "b"))
	assert.Equal(t, []string{`"on b"`}, dataOf(both.wait(t).Messages))

	_, err = b.CloseChannel("a")
	assert.ErrorIs(t, err, ErrChannelNotFound)
}

func TestClosedChannelIsRecreatedOnlyWhenImplicit(t *testing.T) {
	for _, implicit := range []bool{true, false} {
		b := newTestBroker(t, func(c *Config) { c.ImplicitChannels = implicit })
		_, _, err := b.Renew("a", 0)
		require.NoError(t, err)
		_, err = b.Publish(pub("before", "a"))
		require.NoError(t, err)
		_, err = b.CloseChannel("a")
		require.NoError(t, err)
		_, err = b.Publish(pub("after", "a"))
		if !implicit {
			assert.ErrorIs(t, err, ErrChannelNotFound)
			_, _, err = b.Subscribe(SubscribeRequest{Channels: []string{"a"}}, nil)
			assert.ErrorIs(t, err, ErrChannelNotFound)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, []string{`"after"`}, dataOf(poll(t, b, Cursor{}, "a").Messages), "the re-created channel starts empty")
	}
}

func TestShutdownAnswersWaitersWithCursor(t *testing.T) {
	b, err := New(DefaultConfig())
	require.NoError(t, err)
	publish(t, b, pub("seen", "a"))
	first := poll(t, b, Cursor{}, "a")
	w := newWaiter()
	_, sub, err := b.Subscribe(SubscribeRequest{Channels: []string{"a"}, Cursor: first.Cursor, Timeout: time.Hour}, w.deliver)
	require.NoError(t, err)
	require.NotNil(t, sub)

	b.Close()
	res := w.wait(t)
	assert.Equal(t, ReasonShutdown, res.Reason)
	assert.Equal(t, first.Cursor.String(), res.Cursor.String())
	b.Close() // idempotent

	_, err = b.Publish(pub(1, "a"))
	assert.ErrorIs(t, err, ErrShuttingDown)
	_, _, err = b.Subscribe(SubscribeRequest{Channels: []string{"a"}}, nil)
	assert.ErrorIs(t, err, ErrShuttingDown)
	_, _, err = b.Renew("x", 0)
	assert.ErrorIs(t, err, ErrShuttingDown)
	_, err = b.Create(0)
	assert.ErrorIs(t, err, ErrShuttingDown)
}

func TestCreateRenewInfo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := New(DefaultConfig())
		require.NoError(t, err)
		defer b.Close()
		now := time.Now()

		info, err := b.Create(0)
		require.NoError(t, err)
		assert.True(t, ValidChannelName(info.Name), info.Name)
		assert.Equal(t, time.Hour, info.TTL)
		assert.Equal(t, now.Add(time.Hour), info.ExpiresAt)
		other, err := b.Create(time.Minute)
		require.NoError(t, err)
		assert.NotEqual(t, info.Name, other.Name)

		info, created, err := b.Renew("x", 10*time.Minute)
		require.NoError(t, err)
		assert.True(t, created)
		assert.Equal(t, now.Add(10*time.Minute), info.ExpiresAt)
		time.Sleep(time.Minute)
		info, created, err = b.Renew("x", 0)
		require.NoError(t, err)
		assert.False(t, created)
		assert.Equal(t, time.Hour, info.TTL)
		assert.Equal(t, now.Add(61*time.Minute), info.ExpiresAt)

		publish(t, b, pub(1, "x"))
		time.Sleep(time.Millisecond)
		publish(t, b, pub(2, "x"))
		info, err = b.Info("x")
		require.NoError(t, err)
		assert.Equal(t, 2, info.Messages)
		assert.Equal(t, info.Oldest.Millis()+1, info.Newest.Millis())

		for _, ttl := range []time.Duration{time.Millisecond, -time.Second, 8 * 24 * time.Hour} {
			_, _, err := b.Renew("y", ttl)
			assert.ErrorIs(t, err, ErrInvalidTTL, ttl)
			_, err = b.Create(ttl)
			assert.ErrorIs(t, err, ErrInvalidTTL, ttl)
		}
		_, err = b.Info("y")
		assert.ErrorIs(t, err, ErrChannelNotFound, "failed renew created nothing")
		_, err = b.Info("bad name")
		assert.ErrorIs(t, err, ErrInvalidChannel)
	})
}

func TestChannelLimit(t *testing.T) {
	b := newTestBroker(t, func(c *Config) { c.MaxChannels = 2 })
	_, err := b.Create(0)
	require.NoError(t, err)
	_, _, err = b.Renew("b", 0)
	require.NoError(t, err)
	_, err = b.Create(0)
	assert.ErrorIs(t, err, ErrChannelLimit)
	_, _, err = b.Renew("c", 0)
	assert.ErrorIs(t, err, ErrChannelLimit)
	_, _, err = b.Subscribe(SubscribeRequest{Channels: []string{"c"}}, nil)
	assert.NoError(t, err, "a subscribe answered at once creates nothing, so it needs no room")
	_, _, err = b.Subscribe(SubscribeRequest{Channels: []string{"c"}, Timeout: time.Minute}, nil)
	assert.ErrorIs(t, err, ErrChannelLimit, "a waiting subscribe needs a channel and there is no room")
	_, _, err = b.Renew("b", 0)
	assert.NoError(t, err, "renewing an existing channel is fine at the limit")
}

func TestConfigValidation(t *testing.T) {
	for name, mod := range map[string]func(*Config){
		"channel ttl":  func(c *Config) { c.ChannelTTL = 0 },
		"max ttl":      func(c *Config) { c.MaxChannelTTL = time.Minute },
		"max channels": func(c *Config) { c.MaxChannels = -1 },
		"per request":  func(c *Config) { c.MaxChannelsPerRequest = 0 },
		"batch":        func(c *Config) { c.MaxBatch = 0 },
		"response":     func(c *Config) { c.MaxResponseMessages = 0 },
		"cache":        func(c *Config) { c.Channel.MaxMessages = 0 },
	} {
		cfg := DefaultConfig()
		mod(&cfg)
		_, err := New(cfg)
		assert.Error(t, err, name)
	}
}
