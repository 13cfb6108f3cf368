package broker

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/channel"
)

func TestBatchSubscribeMergesInTimeOrderOnce(t *testing.T) {
	b := newTestBroker(t, nil)
	publish(t, b, pub("1:a", "a"))
	publish(t, b, pub("2:ab", "a", "b"))
	publish(t, b, pub("3:c", "c"))
	publish(t, b, pub("4:b", "b"))
	publish(t, b, pub("5:abc", "a", "b", "c"))

	res := poll(t, b, Cursor{}, "b", "a")
	assert.Equal(t, []string{`"1:a"`, `"2:ab"`, `"4:b"`, `"5:abc"`}, dataOf(res.Messages))
	assert.False(t, res.More)
	assert.False(t, res.Truncated)

	res = poll(t, b, res.Cursor, "b", "a")
	assert.Empty(t, res.Messages, "cursor never repeats")
}

func TestCursorNeverRepeatsNeverSkips(t *testing.T) {
	b := newTestBroker(t, nil)
	var cur Cursor
	var got []string
	for i := range 20 {
		publish(t, b, pub(i, "a"))
		if i%3 == 0 {
			res := poll(t, b, cur, "a")
			got = append(got, dataOf(res.Messages)...)
			cur = res.Cursor
		}
	}
	res := poll(t, b, cur, "a")
	got = append(got, dataOf(res.Messages)...)
	want := make([]string, 20)
	for i := range want {
		want[i] = dataOf([]*channel.Message{{Data: mustJSON(i)}})[0]
	}
	assert.Equal(t, want, got)
}

func mustJSON(v any) []byte { return pub(v, "x").Data }

func TestResponseLimitSetsMoreAndResumes(t *testing.T) {
	b := newTestBroker(t, func(c *Config) { c.MaxResponseMessages = 3 })
	for i := range 5 {
		publish(t, b, pub(i, "a"), pub(i+100, "a", "b"))
	}
	var cur Cursor
	var got []string
	polls := 0
	for {
		res := poll(t, b, cur, "a", "b")
		polls++
		assert.LessOrEqual(t, len(res.Messages), 3)
		got = append(got, dataOf(res.Messages)...)
		cur = res.Cursor
		if !res.More {
			break
		}
	}
	assert.Equal(t, 4, polls)
	assert.Equal(t, []string{"0", "100", "1", "101", "2", "102", "3", "103", "4", "104"}, got)
}

func TestTruncatedWhenEvictedBeforeRead(t *testing.T) {
	b := newTestBroker(t, func(c *Config) { c.Channel.MaxMessages = 2 })
	first := poll(t, b, Cursor{}, "a") // channel now exists; cursor at start
	for i := range 5 {
		publish(t, b, pub(i, "a"))
	}
	res := poll(t, b, first.Cursor, "a")
	assert.True(t, res.Truncated)
	assert.Equal(t, []string{"3", "4"}, dataOf(res.Messages))
	res = poll(t, b, res.Cursor, "a")
	assert.False(t, res.Truncated, "once caught up, no longer truncated")
}

func TestSinceTimeAndUntil(t *testing.T) {
	w := &fakeWall{t: time.UnixMilli(1_700_000_000_000)}
	b := newTestBroker(t, func(c *Config) { c.Now = w.now })
	for i := range 5 {
		w.set(time.UnixMilli(1_700_000_000_000 + int64(i)*10))
		publish(t, b, pub(i, "a"))
	}
	base := int64(1_700_000_000_000)
	res := poll(t, b, SinceMillis(base+10), "a")
	assert.Equal(t, []string{"2", "3", "4"}, dataOf(res.Messages), "since is exclusive")

	r, _, err := b.Subscribe(SubscribeRequest{Channels: []string{"a"}, Cursor: SinceMillis(base), Until: base + 30}, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"1", "2", "3"}, dataOf(r.Messages), "until is inclusive")
	// The cursor of an until-bounded read stops at what it returned.
	assert.Equal(t, []string{"4"}, dataOf(poll(t, b, r.Cursor, "a").Messages))

	_, _, err = b.Subscribe(SubscribeRequest{Channels: []string{"a"}, Cursor: SinceMillis(base + 40), Until: base + 30}, nil)
	assert.ErrorIs(t, err, ErrInvalidRange)
}

func TestFromNowSkipsCached(t *testing.T) {
	b := newTestBroker(t, nil)
	publish(t, b, pub("old", "a"))
	res, _, err := b.Subscribe(SubscribeRequest{Channels: []string{"a"}, FromNow: true}, nil)
	require.NoError(t, err)
	assert.Empty(t, res.Messages)
	publish(t, b, pub("new", "a"))
	assert.Equal(t, []string{`"new"`}, dataOf(poll(t, b, res.Cursor, "a").Messages))
}

func TestWaitingSubscriberIsWokenByPublish(t *testing.T) {
	b := newTestBroker(t, nil)
	first := poll(t, b, Cursor{}, "a", "b")
	w := newWaiter()
	res, sub, err := b.Subscribe(SubscribeRequest{Channels: []string{"a", "b"}, Cursor: first.Cursor, Timeout: time.Minute}, w.deliver)
	require.NoError(t, err)
	require.NotNil(t, sub, "nothing cached: it waits")
	assert.Empty(t, res.Messages)
	assert.EqualValues(t, 2, b.Stats().Waiters)

	publish(t, b, pub("x", "c"))
	assert.True(t, w.pending(), "a publication elsewhere does not wake it")

	publish(t, b, pub("hello", "b", "a"))
	got := w.wait(t)
	assert.Equal(t, ReasonMessages, got.Reason)
	assert.Equal(t, []string{`"hello"`}, dataOf(got.Messages), "once, though in both channels")
	assert.EqualValues(t, 0, b.Stats().Waiters, "removed from both channels")
	assert.False(t, sub.Cancel(), "already answered")

	assert.Empty(t, poll(t, b, got.Cursor, "a", "b").Messages, "cursor is past it")
	publish(t, b, pub("next", "a"))
	assert.Equal(t, []string{`"next"`}, dataOf(poll(t, b, got.Cursor, "a", "b").Messages))
}

func TestCancelRemovesSubscription(t *testing.T) {
	b := newTestBroker(t, nil)
	w := newWaiter()
	_, sub, err := b.Subscribe(SubscribeRequest{Channels: []string{"a", "b", "c"}, Cursor: poll(t, b, Cursor{}, "a", "b", "c").Cursor, Timeout: time.Minute}, w.deliver)
	require.NoError(t, err)
	require.NotNil(t, sub)
	assert.EqualValues(t, 3, b.Stats().Waiters)
	assert.True(t, sub.Cancel())
	assert.False(t, sub.Cancel())
	assert.EqualValues(t, 0, b.Stats().Waiters)
	publish(t, b, pub(1, "a"))
	assert.True(t, w.pending(), "a cancelled subscription is never answered")
	assert.EqualValues(t, 1, b.Stats().Cancelled)
}

func TestSubscribeImplicitCreationOff(t *testing.T) {
	b := newTestBroker(t, func(c *Config) { c.ImplicitChannels = false })
	_, _, err := b.Subscribe(SubscribeRequest{Channels: []string{"nope"}}, nil)
	assert.ErrorIs(t, err, ErrChannelNotFound)
	assert.Equal(t, 0, b.Stats().Channels)
}

func TestSubscribeValidation(t *testing.T) {
	b := newTestBroker(t, func(c *Config) { c.MaxChannelsPerRequest = 3 })
	for _, tc := range []struct {
		channels []string
		want     error
	}{
		{nil, ErrNoChannels},
		{[]string{"a", "b", "c", "d"}, ErrTooManyChannels},
		{[]string{"a", "a"}, ErrDuplicateChannel},
		{[]string{"a b"}, ErrInvalidChannel},
	} {
		_, _, err := b.Subscribe(SubscribeRequest{Channels: tc.channels}, nil)
		assert.ErrorIs(t, err, tc.want, "%v", tc.channels)
	}
	assert.Equal(t, 0, b.Stats().Channels)
}

func TestIdenticalAnswersShareOneMemo(t *testing.T) {
	b := newTestBroker(t, nil)
	cur := poll(t, b, Cursor{}, "a").Cursor
	ws := []*waiter{newWaiter(), newWaiter(), newWaiter(), newWaiter()}
	reqs := []SubscribeRequest{
		{Channels: []string{"a"}, Cursor: cur, Timeout: time.Minute},
		{Channels: []string{"a"}, FromNow: true, Timeout: time.Minute},
		{Channels: []string{"a", "b"}, Cursor: cur, Timeout: time.Minute},
		// A time-based start keeps its Default in the cursor: not shareable.
		{Channels: []string{"a"}, Cursor: SinceMillis(1), Timeout: time.Minute},
	}
	for i, r := range reqs {
		if i == 3 {
			publish(t, b, pub("old", "z")) // make SinceMillis(1) find nothing on a
		}
		_, s, err := b.Subscribe(r, ws[i].deliver)
		require.NoError(t, err)
		require.NotNil(t, s, "request %d parks", i)
	}
	publish(t, b, pub("x", "a"))
	res := make([]Result, len(ws))
	for i, w := range ws {
		res[i] = w.wait(t)
	}
	require.NotNil(t, res[0].Share)
	assert.Same(t, res[0].Share, res[1].Share)
	assert.Same(t, res[0].Share, res[2].Share)
	assert.Equal(t, res[0].Cursor.String(), res[2].Cursor.String())
	assert.Nil(t, res[3].Share)

	calls := 0
	build := func() []byte { calls++; return []byte("encoded") }
	for _, r := range res[:3] {
		assert.Equal(t, "encoded", string(r.Share.Memo("v1", build)))
	}
	assert.Equal(t, 1, calls, "built once for everyone")
	r := res[0].Share.Memo("v2", func() []byte { return []byte("other") })
	assert.Equal(t, "other", string(r))
}
