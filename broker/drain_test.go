package broker

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/channel"
)

// answerLog records when each drained subscription was answered.
type answerLog struct {
	mu    sync.Mutex
	start time.Time
	at    []time.Duration
	res   []Result
}

func (l *answerLog) deliver(r Result) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.at = append(l.at, time.Since(l.start))
	l.res = append(l.res, r)
}

func TestDrainSpreadsAnswersOverTheWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newTestBroker(t, nil)
		const n, spread = 200, 2 * time.Second
		log := &answerLog{}
		for i := range n {
			_, sub, err := b.Subscribe(SubscribeRequest{Channels: []string{names("c", 4)[i%4]}, FromNow: true, Timeout: time.Minute}, log.deliver)
			require.NoError(t, err)
			require.NotNil(t, sub)
		}
		log.start = time.Now()
		answered := b.Drain(context.Background(), spread)
		require.Equal(t, n, answered)
		require.Len(t, log.at, n)

		// Evenly over the window: each tenth of it answers a tenth of them.
		var tenths [10]int
		for i, at := range log.at {
			require.LessOrEqual(t, at, spread)
			tenths[min(int(at*10/spread), 9)]++
			r := log.res[i]
			assert.Equal(t, ReasonShutdown, r.Reason)
			assert.Greater(t, r.RetryAfter, time.Duration(0))
			assert.LessOrEqual(t, r.RetryAfter, time.Second+time.Millisecond)
		}
		for i, k := range tenths {
			assert.InDelta(t, n/10, k, 2, "tenth %d of the window answered %d", i, k)
		}
		assert.Greater(t, log.at[n-1], spread*9/10, "the last answers come at the end of the window")
	})
}

func TestDrainRefusesPublishersFirstButStillApplies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newTestBroker(t, nil)
		log := &answerLog{start: time.Now()}
		const n = 10
		for range n {
			_, sub, err := b.Subscribe(SubscribeRequest{Channels: []string{"a"}, FromNow: true, Timeout: time.Minute}, log.deliver)
			require.NoError(t, err)
			require.NotNil(t, sub)
		}

		done := make(chan int)
		go func() { done <- b.Drain(context.Background(), time.Second) }()
		synctest.Wait()
		require.True(t, b.Draining())

		_, err := b.Publish(pub("x", "a"))
		assert.ErrorIs(t, err, ErrShuttingDown, "publishers are refused as soon as the drain starts")
		_, _, err = b.Renew("a", time.Hour)
		assert.ErrorIs(t, err, ErrShuttingDown)

		// A new subscriber is sent away at once, with a hint.
		res, sub3, err := b.Subscribe(SubscribeRequest{Channels: []string{"a"}, FromNow: true, Timeout: time.Minute}, nil)
		require.NoError(t, err)
		assert.Nil(t, sub3)
		assert.Equal(t, ReasonShutdown, res.Reason)
		assert.Greater(t, res.RetryAfter, time.Duration(0))

		// Events from other nodes still reach whoever still waits: all
		// but the first, which the drain answered at once.
		m := channel.NewMessage(77, 1, b.Clock().Now(), []string{"a"}, []byte(`"from a peer"`))
		_, err = b.Apply([]Event{{Kind: EventPublish, Origin: 77, Seq: 1, TS: m.TS, Message: m}})
		require.NoError(t, err)
		assert.Equal(t, 1, <-done, "the others were answered by the peer's message, not the drain")
		log.mu.Lock()
		defer log.mu.Unlock()
		require.Len(t, log.res, n)
		reasons := map[Reason]int{}
		for _, r := range log.res {
			reasons[r.Reason]++
		}
		assert.Equal(t, map[Reason]int{ReasonShutdown: 1, ReasonMessages: n - 1}, reasons)
	})
}

func TestDrainAnswersTheRestAtOnceWhenCtxEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newTestBroker(t, nil)
		log := &answerLog{start: time.Now()}
		for range 50 {
			_, _, err := b.Subscribe(SubscribeRequest{Channels: []string{"a"}, FromNow: true, Timeout: time.Minute}, log.deliver)
			require.NoError(t, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		require.Equal(t, 50, b.Drain(ctx, 10*time.Second))
		for _, at := range log.at {
			assert.LessOrEqual(t, at, 100*time.Millisecond)
		}
	})
}

func TestDrainWithoutSpreadAnswersAtOnceWithoutHint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newTestBroker(t, nil)
		log := &answerLog{start: time.Now()}
		for range 10 {
			_, _, err := b.Subscribe(SubscribeRequest{Channels: []string{"a"}, FromNow: true, Timeout: time.Minute}, log.deliver)
			require.NoError(t, err)
		}
		require.Equal(t, 10, b.Drain(context.Background(), 0))
		for i, at := range log.at {
			assert.Zero(t, at)
			assert.Zero(t, log.res[i].RetryAfter)
		}
	})
}
