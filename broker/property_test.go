package broker

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/channel"
)

// TestConcurrentCursorExactlyOnce is the broker's central guarantee under
// load: publishers race on overlapping channel sets, subscribers loop on
// their cursors (some cancel their wait midway and resubscribe, like a
// client whose connection dropped), and each subscriber ends with every
// message of its channels exactly once, in time order.
func TestConcurrentCursorExactlyOnce(t *testing.T) {
	const (
		nChannels   = 8
		publishers  = 4
		perPub      = 400
		subscribers = 6
	)
	b := newTestBroker(t, func(c *Config) {
		c.MaxResponseMessages = 7 // exercise More
		c.Channel.MaxMessages = 100_000
	})
	all := names("c", nChannels)

	type sub struct {
		channels []string
		got      []*channel.Message
	}
	subs := make([]*sub, subscribers)
	for i := range subs {
		r := rand.New(rand.NewPCG(uint64(i), 1))
		n := 1 + r.IntN(4)
		perm := r.Perm(nChannels)[:n]
		s := &sub{}
		for _, p := range perm {
			s.channels = append(s.channels, all[p])
		}
		subs[i] = s
	}

	var subWG sync.WaitGroup
	for i, s := range subs {
		subWG.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 2))
			var cur Cursor
			for {
				w := newWaiter()
				res, parked, err := b.Subscribe(SubscribeRequest{Channels: s.channels, Cursor: cur, Timeout: 5 * time.Second}, w.deliver)
				if !assert.NoError(t, err) {
					return
				}
				if parked != nil {
					if r.IntN(4) == 0 && parked.Cancel() {
						continue // client went away; retry from the same cursor
					}
					res = w.wait(t)
				}
				assert.False(t, res.Truncated)
				s.got = append(s.got, res.Messages...)
				cur = res.Cursor
				for _, m := range res.Messages {
					if string(m.Data) == `"stop"` {
						return
					}
				}
			}
		})
	}

	var pubWG sync.WaitGroup
	for p := range publishers {
		pubWG.Go(func() {
			r := rand.New(rand.NewPCG(uint64(p), 3))
			for i := 0; i < perPub; {
				batch := 1 + r.IntN(3)
				var pubs []Publication
				for range batch {
					n := 1 + r.IntN(3)
					var chs []string
					for _, k := range r.Perm(nChannels)[:n] {
						chs = append(chs, all[k])
					}
					pubs = append(pubs, pub(fmt.Sprintf("p%d-%d", p, i), chs...))
					i++
				}
				_, err := b.Publish(pubs...)
				assert.NoError(t, err)
			}
		})
	}
	pubWG.Wait()
	publish(t, b, pub("stop", all...))
	subWG.Wait()

	// Expected: every message published to one of the subscriber's
	// channels, read back from the caches (nothing was evicted).
	for i, s := range subs {
		want := map[string]bool{}
		for _, ch := range s.channels {
			for _, m := range readAll(t, b, ch) {
				want[m.ID] = true
			}
		}
		seen := map[string]bool{}
		for j, m := range s.got {
			require.False(t, seen[m.ID], "subscriber %d got %s twice", i, m.ID)
			seen[m.ID] = true
			if j > 0 {
				require.True(t, s.got[j-1].Before(m), "subscriber %d: out of order at %d", i, j)
			}
		}
		assert.Equal(t, len(want), len(seen), "subscriber %d on %v", i, s.channels)
		for id := range want {
			assert.True(t, seen[id], "subscriber %d missed %s", i, id)
		}
	}
	assert.EqualValues(t, 0, b.Stats().Waiters)
}

// readAll pages through a channel from the start.
func readAll(t *testing.T, b *Broker, ch string) []*channel.Message {
	var out []*channel.Message
	var cur Cursor
	for {
		res := poll(t, b, cur, ch)
		out = append(out, res.Messages...)
		cur = res.Cursor
		if !res.More {
			return out
		}
	}
}

// TestConcurrentCloseAndSubscribe closes and re-creates channels while
// subscribers park on them and sometimes cancel: every parked subscription
// not cancelled gets exactly one answer, and nothing is left parked.
func TestConcurrentCloseAndSubscribe(t *testing.T) {
	b := newTestBroker(t, nil)
	chs := names("x", 4)
	var (
		wg                                 sync.WaitGroup
		parked, cancelled, answered, twice atomic.Int64
	)
	stop := make(chan struct{})
	for i := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 4))
			for {
				select {
				case <-stop:
					return
				default:
				}
				sel := slices.Clone(chs)
				r.Shuffle(len(sel), func(a, b int) { sel[a], sel[b] = sel[b], sel[a] })
				var calls atomic.Int32
				_, s, err := b.Subscribe(SubscribeRequest{Channels: sel[:1+r.IntN(2)], FromNow: true, Timeout: time.Second}, func(Result) {
					if calls.Add(1) > 1 {
						twice.Add(1)
					}
					answered.Add(1)
				})
				if !assert.NoError(t, err) {
					return
				}
				if s == nil {
					continue
				}
				parked.Add(1)
				if r.IntN(2) == 0 && s.Cancel() {
					cancelled.Add(1)
				}
			}
		})
	}
	// Keep closing and publishing until the subscribers have really been
	// through it, however the scheduler interleaves them.
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < 300 || parked.Load() < 200 || cancelled.Load() < 20; i++ {
		require.True(t, time.Now().Before(deadline), "subscribers made no progress")
		_, err := b.CloseChannel(chs[rand.IntN(len(chs))])
		if err != nil {
			assert.ErrorIs(t, err, ErrChannelNotFound)
		}
		_, err = b.Publish(pub(1, chs[rand.IntN(len(chs))]))
		require.NoError(t, err)
		runtime.Gosched()
	}
	close(stop)
	wg.Wait()
	b.Close() // answers whoever still waits
	assert.Positive(t, parked.Load())
	assert.Positive(t, cancelled.Load())
	assert.Equal(t, parked.Load()-cancelled.Load(), answered.Load())
	assert.Zero(t, twice.Load())
	assert.EqualValues(t, 0, b.Stats().Waiters)
}
