package channel

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var t0 = time.UnixMilli(1_700_000_000_000)

// msg builds a message stamped ms milliseconds after t0.
func msg(origin, seq uint64, ms int64, logical uint32) *Message {
	return NewMessage(origin, seq, NewTimestamp(t0.UnixMilli()+ms, logical), []string{"c"}, json.RawMessage(`{"n":1}`))
}

func newTestChannel(t *testing.T, cfg Config) *Channel {
	t.Helper()
	c, err := New("c", cfg, time.Hour, t0, nil)
	require.NoError(t, err)
	return c
}

func ids(ms []*Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// all is a query that sees everything of origins 1-3.
func all() Query {
	return Query{Visible: Vector{{1, ^Timestamp(0)}, {2, ^Timestamp(0)}, {3, ^Timestamp(0)}}, Limit: 100}
}

func TestReadOrdersByTimeThenOrigin(t *testing.T) {
	c := newTestChannel(t, Config{MaxMessages: 100})
	// Inserted out of order; two origins tie on the same timestamp.
	in := []*Message{msg(2, 1, 5, 0), msg(1, 2, 5, 0), msg(1, 1, 1, 0), msg(1, 3, 5, 1), msg(3, 1, 2, 0)}
	for _, m := range in {
		_, err := c.Insert(m, t0)
		require.NoError(t, err)
	}
	got := c.Read(all(), t0, nil)
	assert.Equal(t, []string{
		MessageID(1, 1), MessageID(3, 1), MessageID(1, 2), MessageID(2, 1), MessageID(1, 3),
	}, ids(got.Messages))
	assert.False(t, got.More)
	assert.False(t, got.Truncated)
}

func TestReadRange(t *testing.T) {
	c := newTestChannel(t, Config{MaxMessages: 100})
	for i := int64(1); i <= 5; i++ {
		_, err := c.Insert(msg(1, uint64(i), i*10, 0), t0)
		require.NoError(t, err)
	}
	ms := func(d int64) Timestamp { return EndOfMillis(t0.UnixMilli() + d) }
	tests := []struct {
		name  string
		q     func(q *Query)
		want  []uint64
		more  bool
		trunc bool
	}{
		{"everything", func(q *Query) {}, []uint64{1, 2, 3, 4, 5}, false, false},
		{"since is exclusive", func(q *Query) { q.Default = ms(20) }, []uint64{3, 4, 5}, false, false},
		{"until is inclusive", func(q *Query) { q.Until = ms(30) }, []uint64{1, 2, 3}, false, false},
		{"since and until", func(q *Query) { q.Default = ms(10); q.Until = ms(40) }, []uint64{2, 3, 4}, false, false},
		{"empty range", func(q *Query) { q.Default = ms(50) }, nil, false, false},
		{"per-origin position beats default", func(q *Query) {
			q.Default = ms(50)
			q.After = Vector{{1, ms(30)}}
		}, []uint64{4, 5}, false, false},
		{"limit sets more", func(q *Query) { q.Limit = 2 }, []uint64{1, 2}, true, false},
		{"limit exactly reached is not more", func(q *Query) { q.Limit = 5 }, []uint64{1, 2, 3, 4, 5}, false, false},
		{"invisible past commit point", func(q *Query) { q.Visible = Vector{{1, NewTimestamp(t0.UnixMilli()+30, 0)}} }, []uint64{1, 2, 3}, false, false},
		{"unknown origin invisible", func(q *Query) { q.Visible = Vector{{2, ^Timestamp(0)}} }, nil, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := all()
			tt.q(&q)
			got := c.Read(q, t0, nil)
			var want []string
			for _, s := range tt.want {
				want = append(want, MessageID(1, s))
			}
			assert.Equal(t, want, nilIfEmpty(ids(got.Messages)))
			assert.Equal(t, tt.more, got.More, "more")
			assert.Equal(t, tt.trunc, got.Truncated, "truncated")
		})
	}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestEvictionByCountReportsTruncation(t *testing.T) {
	var ctr Counters
	c, err := New("c", Config{MaxMessages: 3}, time.Hour, t0, &ctr)
	require.NoError(t, err)
	evictedTotal := 0
	for i := int64(1); i <= 5; i++ {
		n, err := c.Insert(msg(1, uint64(i), i, 0), t0)
		require.NoError(t, err)
		evictedTotal += n
	}
	assert.Equal(t, 2, evictedTotal)
	assert.Equal(t, 3, c.Len())
	assert.EqualValues(t, 3, ctr.Messages.Load())

	got := c.Read(all(), t0, nil)
	assert.Equal(t, []string{MessageID(1, 3), MessageID(1, 4), MessageID(1, 5)}, ids(got.Messages))
	assert.True(t, got.Truncated, "reader from the start lost messages 1 and 2")

	q := all()
	q.After = Vector{{1, NewTimestamp(t0.UnixMilli()+2, 0)}}
	got = c.Read(q, t0, nil)
	assert.False(t, got.Truncated, "reader past message 2 lost nothing")
	assert.Len(t, got.Messages, 3)

	q.After = Vector{{1, NewTimestamp(t0.UnixMilli()+1, 0)}}
	assert.True(t, c.Read(q, t0, nil).Truncated, "reader past message 1 lost message 2")
}

func TestEvictionByAge(t *testing.T) {
	var ctr Counters
	c, err := New("c", Config{MaxMessages: 100, MessageTTL: time.Minute}, time.Hour, t0, &ctr)
	require.NoError(t, err)
	for i := int64(0); i < 3; i++ {
		_, err := c.Insert(msg(1, uint64(i+1), i*20_000, 0), t0.Add(time.Duration(i)*20*time.Second))
		require.NoError(t, err)
	}
	// At t0+70s the first message (t0) is 70s old: expired, but not yet
	// swept. Readers must not get it and must learn they lost it.
	later := t0.Add(70 * time.Second)
	got := c.Read(all(), later, nil)
	assert.Equal(t, []string{MessageID(1, 2), MessageID(1, 3)}, ids(got.Messages))
	assert.True(t, got.Truncated)
	assert.Equal(t, 3, c.Len())

	mt := c.Maintain(later)
	assert.Equal(t, 1, mt.Evicted)
	assert.Equal(t, 2, c.Len())
	assert.EqualValues(t, 2, ctr.Messages.Load())
	assert.Equal(t, time.UnixMilli(t0.UnixMilli()+20_001).Add(time.Minute), mt.Next, "next due is when message 2 expires")
	assert.Equal(t, 0, c.Maintain(mt.Next.Add(-time.Nanosecond)).Evicted, "not a nanosecond early")
	assert.Equal(t, 1, c.Maintain(mt.Next).Evicted, "due means evictable")

	// A message already older than the TTL is not cached at all.
	n, err := c.Insert(msg(2, 1, 0, 0), later)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, 1, c.Len())
}

func TestInsertSameMessageTwiceKeepsOne(t *testing.T) {
	c := newTestChannel(t, Config{MaxMessages: 10})
	m := msg(1, 1, 0, 0)
	_, err := c.Insert(m, t0)
	require.NoError(t, err)
	_, err = c.Insert(m, t0)
	require.NoError(t, err)
	assert.Equal(t, 1, c.Len())
}

type testWaiter struct{ key WaitKey }

func (w *testWaiter) WaitKey() WaitKey { return w.key }

func waiterAt(d time.Duration, id uint64) *testWaiter {
	return &testWaiter{WaitKey{Deadline: t0.Add(d).UnixNano(), ID: id}}
}

func TestWaitersExpireInOneRangeSweep(t *testing.T) {
	var ctr Counters
	c, err := New("c", Config{MaxMessages: 10}, time.Hour, t0, &ctr)
	require.NoError(t, err)
	ws := []*testWaiter{waiterAt(3*time.Second, 1), waiterAt(time.Second, 2), waiterAt(2*time.Second, 3), waiterAt(time.Second, 4)}
	for _, w := range ws {
		require.NoError(t, c.AddWaiter(w, t0))
	}
	assert.Equal(t, 4, c.Waiters())
	assert.Equal(t, t0.Add(time.Second), c.NextDue())

	mt := c.Maintain(t0.Add(2 * time.Second))
	require.Len(t, mt.Expired, 3)
	assert.Equal(t, []Waiter{ws[1], ws[3], ws[2]}, mt.Expired, "deadline order, ties by id")
	assert.Equal(t, 1, c.Waiters())
	assert.EqualValues(t, 1, ctr.Waiters.Load())
	assert.Equal(t, t0.Add(3*time.Second), mt.Next)
	assert.False(t, mt.Idle)
}

func TestTakeWaiters(t *testing.T) {
	for _, tc := range []struct {
		name string
		take func(w Waiter) bool
		left int
	}{
		{"all", func(Waiter) bool { return true }, 0},
		{"none", func(Waiter) bool { return false }, 10},
		{"few", func(w Waiter) bool { return w.WaitKey().ID%5 == 0 }, 8},
		{"most", func(w Waiter) bool { return w.WaitKey().ID%5 != 0 }, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ctr Counters
			c, err := New("c", Config{MaxMessages: 10}, time.Hour, t0, &ctr)
			require.NoError(t, err)
			for i := 1; i <= 10; i++ {
				require.NoError(t, c.AddWaiter(waiterAt(time.Duration(i)*time.Second, uint64(i)), t0))
			}
			n := c.TakeWaiters(tc.take)
			assert.Equal(t, 10-tc.left, n)
			assert.Equal(t, tc.left, c.Waiters())
			assert.EqualValues(t, tc.left, ctr.Waiters.Load())
			// Whatever is left is still removable by key.
			left := 0
			for i := 1; i <= 10; i++ {
				if c.RemoveWaiter(waiterAt(time.Duration(i)*time.Second, uint64(i)), t0) {
					left++
				}
			}
			assert.Equal(t, tc.left, left)
			assert.EqualValues(t, 0, ctr.Waiters.Load())
		})
	}
}

func TestCloseDropsEverything(t *testing.T) {
	var ctr Counters
	c, err := New("c", Config{MaxMessages: 10}, time.Hour, t0, &ctr)
	require.NoError(t, err)
	_, err = c.Insert(msg(1, 1, 0, 0), t0)
	require.NoError(t, err)
	w := waiterAt(time.Second, 1)
	require.NoError(t, c.AddWaiter(w, t0))

	assert.Equal(t, []Waiter{w}, c.Close())
	assert.True(t, c.Closed())
	assert.Nil(t, c.Close(), "second close returns nothing")
	assert.EqualValues(t, 0, ctr.Messages.Load())
	assert.EqualValues(t, 0, ctr.Waiters.Load())
	_, err = c.Insert(msg(1, 2, 1, 0), t0)
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, c.AddWaiter(w, t0), ErrClosed)
	assert.Empty(t, c.Read(all(), t0, nil).Messages)
}

func TestIdleExpiry(t *testing.T) {
	c, err := New("c", Config{MaxMessages: 10}, time.Minute, t0, nil)
	require.NoError(t, err)
	assert.Equal(t, t0.Add(time.Minute), c.ExpiresAt())

	c.Touch(t0.Add(30 * time.Second))
	assert.Equal(t, t0.Add(90*time.Second), c.ExpiresAt(), "activity postpones expiry")
	c.Touch(t0) // an older touch does not move it back
	assert.Equal(t, t0.Add(90*time.Second), c.ExpiresAt())

	w := waiterAt(time.Hour, 1)
	require.NoError(t, c.AddWaiter(w, t0))
	assert.False(t, c.CloseIfIdle(t0.Add(2*time.Minute)), "a channel with waiters is not idle")
	assert.False(t, c.Maintain(t0.Add(2*time.Minute)).Idle)
	c.RemoveWaiter(w, t0.Add(2*time.Minute))
	assert.False(t, c.CloseIfIdle(t0.Add(2*time.Minute)), "the waiter leaving was activity")
	assert.True(t, c.Maintain(t0.Add(4*time.Minute)).Idle)
	assert.True(t, c.CloseIfIdle(t0.Add(4*time.Minute)))

	exp := c.Renew(10*time.Minute, t0)
	assert.Equal(t, t0.Add(10*time.Minute), exp)
	assert.Equal(t, 10*time.Minute, c.TTL())
}

func TestConfigValidate(t *testing.T) {
	assert.NoError(t, DefaultConfig().Validate())
	assert.Error(t, Config{MaxMessages: 0}.Validate())
	assert.Error(t, Config{MaxMessages: 1, MessageTTL: -1}.Validate())
	_, err := New("c", Config{}, time.Hour, t0, nil)
	assert.Error(t, err)
}

func TestBounds(t *testing.T) {
	c := newTestChannel(t, Config{MaxMessages: 10})
	_, _, ok := c.Bounds()
	assert.False(t, ok)
	for _, m := range []*Message{msg(1, 1, 5, 0), msg(1, 2, 9, 0)} {
		_, err := c.Insert(m, t0)
		require.NoError(t, err)
	}
	lo, hi, ok := c.Bounds()
	require.True(t, ok)
	assert.Equal(t, t0.UnixMilli()+5, lo.Millis())
	assert.Equal(t, t0.UnixMilli()+9, hi.Millis())
}
