package broker

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// parkRecycled parks a recycled wait on "a" from cur and returns its
// ticket and the channel its answer comes on.
func parkRecycled(t *testing.T, b *Broker, cur Cursor) (*Ticket, chan Result) {
	t.Helper()
	got := make(chan Result, 1)
	res, tk, err := b.SubscribeRecycled(SubscribeRequest{Channels: []string{"a"}, Cursor: cur, Timeout: time.Minute},
		func(r Result) { got <- r })
	require.NoError(t, err)
	require.NotNil(t, tk, "answered at once: %+v", res)
	return tk, got
}

// TestTicketCannotCancelARecycledWait: a late Cancel of an answered wait
// (a hang-up racing the answer) must not withdraw the next wait that got
// the same record: that one's client would never be answered.
func TestTicketCannotCancelARecycledWait(t *testing.T) {
	b := newTestBroker(t, nil)
	cur := poll(t, b, Cursor{}, "a").Cursor
	for range 100 { // the pool may hand out another record (always, under -race sometimes)
		old, got := parkRecycled(t, b, cur)
		publish(t, b, pub("x", "a"))
		res := <-got
		cur = res.Cursor
		next, got2 := parkRecycled(t, b, cur)
		if next.s != old.s {
			require.True(t, next.Cancel())
			continue
		}
		require.False(t, old.Cancel(), "the old ticket cancelled the record's next wait")
		publish(t, b, pub("y", "a"))
		res = <-got2
		require.Len(t, res.Messages, 1)
		require.Equal(t, `"y"`, string(res.Messages[0].Data))
		return
	}
	t.Skip("the pool never handed the same record back")
}

// TestMultiChannelWaitsAreNotRecycled: a wait on several channels may be
// finished late by a sweep that took it from one of them; its record is
// never reused.
func TestMultiChannelWaitsAreNotRecycled(t *testing.T) {
	b := newTestBroker(t, nil)
	got := make(chan Result, 1)
	_, tk, err := b.SubscribeRecycled(SubscribeRequest{Channels: []string{"a", "b"}, FromNow: true, Timeout: time.Minute},
		func(r Result) { got <- r })
	require.NoError(t, err)
	require.NotNil(t, tk)
	require.False(t, tk.s.recyclable)
	publish(t, b, pub("x", "b"))
	<-got
	tk.s.mu.Lock()
	defer tk.s.mu.Unlock()
	require.Equal(t, stDone, tk.s.state, "delivered, and left alone")
}

// TestRecycledWaitCancels: the ticket withdraws its own wait.
func TestRecycledWaitCancels(t *testing.T) {
	b := newTestBroker(t, nil)
	tk, got := parkRecycled(t, b, Cursor{Pos: b.origins.snapshot()})
	require.True(t, tk.Cancel())
	require.False(t, tk.Cancel())
	publish(t, b, pub("x", "a"))
	select {
	case r := <-got:
		t.Fatalf("a cancelled wait was answered: %+v", r)
	default:
	}
	require.Zero(t, b.Stats().Waiters)
}
