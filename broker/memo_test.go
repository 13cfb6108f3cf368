package broker

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// memoPoll subscribes with timeout zero through memo.
func memoPoll(t *testing.T, b *Broker, memo *ReadMemo, cur Cursor, channels ...string) Result {
	t.Helper()
	res, sub, err := b.Subscribe(SubscribeRequest{Channels: channels, Cursor: cur, Memo: memo}, nil)
	require.NoError(t, err)
	require.Nil(t, sub)
	return res
}

func TestReadMemoRepeatsTheSameAnswerUntilTheChannelChanges(t *testing.T) {
	b := newTestBroker(t, nil)
	publish(t, b, pub("one", "a"))
	var memo ReadMemo

	first := memoPoll(t, b, &memo, Cursor{}, "a")
	require.NotNil(t, first.Share, "a complete read is remembered")
	again := memoPoll(t, b, &memo, Cursor{}, "a")
	assert.Same(t, first.Share, again.Share, "the same answer, not a new read")
	assert.Equal(t, dataOf(first.Messages), dataOf(again.Messages))

	// Another channel's publication leaves a's answer as it was...
	other := publish(t, b, pub("elsewhere", "b"))
	third := memoPoll(t, b, &memo, Cursor{}, "a")
	assert.Same(t, first.Share, third.Share)
	// ...and its cursor, older than b's message, still gets it on b.
	assert.Equal(t, []string{`"elsewhere"`}, dataOf(poll(t, b, third.Cursor, "a", "b").Messages))
	assert.Equal(t, other[0].ID, poll(t, b, third.Cursor, "b").Messages[0].ID)

	// A publication to a is seen at once.
	publish(t, b, pub("two", "a"))
	fourth := memoPoll(t, b, &memo, Cursor{}, "a")
	assert.NotSame(t, first.Share, fourth.Share)
	assert.Equal(t, []string{`"one"`, `"two"`}, dataOf(fourth.Messages))
	assert.Empty(t, poll(t, b, fourth.Cursor, "a").Messages, "its cursor covers what it returned")
}

func TestReadMemoForgetsEvictionsClosesAndExpiries(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	b := newTestBroker(t, func(c *Config) {
		c.Now = func() time.Time { return time.Unix(0, clock.Load()) }
		c.Channel.MaxMessages = 2
		c.Channel.MessageTTL = time.Minute
	})
	publish(t, b, pub(1, "a"), pub(2, "a"))
	var memo ReadMemo
	start := memoPoll(t, b, &memo, Cursor{}, "a")
	require.Len(t, start.Messages, 2)
	cur := start.Cursor

	// Evicted by the count bound: a reader at the start is truncated.
	publish(t, b, pub(3, "a"))
	res := memoPoll(t, b, &memo, Cursor{}, "a")
	assert.Equal(t, []string{"2", "3"}, dataOf(res.Messages))
	assert.True(t, res.Truncated)

	// Expired by age, before the sweeper has evicted anything.
	var after ReadMemo
	require.Empty(t, memoPoll(t, b, &after, cur, "a").Messages[1:])
	clock.Add(int64(2 * time.Minute))
	res = memoPoll(t, b, &memo, Cursor{}, "a")
	assert.Empty(t, res.Messages, "expired messages are not answered from memory")
	assert.True(t, res.Truncated)

	// Closed: its cache is gone (the name no longer exists, so nothing
	// is remembered either).
	_, err := b.CloseChannel("a")
	require.NoError(t, err)
	res, _, err = b.Subscribe(SubscribeRequest{Channels: []string{"a"}, Memo: &memo}, nil)
	if err == nil {
		assert.Empty(t, res.Messages)
		assert.Nil(t, res.Share)
	} else {
		assert.ErrorIs(t, err, ErrChannelNotFound)
	}
}

func TestReadMemoParksAtOnceAndIsAnsweredByPublish(t *testing.T) {
	b := newTestBroker(t, nil)
	publish(t, b, pub("old", "a"))
	var memo ReadMemo
	cur := memoPoll(t, b, &memo, Cursor{}, "a").Cursor

	var waitMemo ReadMemo
	for i := range 3 {
		w := newWaiter()
		res, sub, err := b.Subscribe(SubscribeRequest{Channels: []string{"a"}, Cursor: cur, Timeout: time.Minute, Memo: &waitMemo}, w.deliver)
		require.NoError(t, err)
		require.NotNil(t, sub, "nothing after the cursor: it waits (poll %d)", i)
		assert.Nil(t, res.Share)
		if i < 2 {
			require.True(t, sub.Cancel())
			continue
		}
		publish(t, b, pub("new", "a"))
		got := w.wait(t)
		assert.Equal(t, []string{`"new"`}, dataOf(got.Messages))
	}
	// Now the same request finds the message at once.
	res, sub, err := b.Subscribe(SubscribeRequest{Channels: []string{"a"}, Cursor: cur, Timeout: time.Minute, Memo: &waitMemo}, nil)
	require.NoError(t, err)
	require.Nil(t, sub)
	assert.Equal(t, []string{`"new"`}, dataOf(res.Messages))
	assert.Equal(t, int64(0), b.Stats().Waiters)
}

func TestReadMemoIsNotKeptForPartialOrLargeReads(t *testing.T) {
	b := newTestBroker(t, nil)
	publish(t, b, pub("x", "a"))
	big := make([]byte, memoMaxBytes)
	for i := range big {
		big[i] = 'y'
	}
	publish(t, b, pub(string(big), "big"))
	for name, req := range map[string]SubscribeRequest{
		"from now": {Channels: []string{"a"}, FromNow: true},
		"until":    {Channels: []string{"a"}, Until: time.Now().Add(time.Hour).UnixMilli()},
		"large":    {Channels: []string{"big"}},
		"missing":  {Channels: []string{"a", "nothing-here"}},
	} {
		t.Run(name, func(t *testing.T) {
			req.Memo = new(ReadMemo)
			res, sub, err := b.Subscribe(req, nil)
			if name == "missing" && err != nil {
				return // implicit channels off: an error, remembered nowhere
			}
			require.NoError(t, err)
			require.Nil(t, sub)
			assert.Nil(t, res.Share)
			assert.Nil(t, req.Memo.state.Load())
		})
	}
}

func TestReadMemoOfSeveralChannelsFollowsEachOfThem(t *testing.T) {
	b := newTestBroker(t, nil)
	publish(t, b, pub("a1", "a"), pub("b1", "b"))
	var memo ReadMemo
	first := memoPoll(t, b, &memo, Cursor{}, "a", "b")
	require.Equal(t, []string{`"a1"`, `"b1"`}, dataOf(first.Messages))
	assert.Same(t, first.Share, memoPoll(t, b, &memo, Cursor{}, "a", "b").Share)
	publish(t, b, pub("both", "a", "b"))
	publish(t, b, pub("b2", "b"))
	res := memoPoll(t, b, &memo, Cursor{}, "a", "b")
	assert.Equal(t, []string{`"a1"`, `"b1"`, `"both"`, `"b2"`}, dataOf(res.Messages), "merged, each message once")
	assert.Empty(t, poll(t, b, res.Cursor, "a", "b").Messages)
}
