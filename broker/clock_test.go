package broker

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/pushuphq/pushup/channel"
)

type fakeWall struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeWall) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeWall) set(t time.Time) {
	f.mu.Lock()
	f.t = t
	f.mu.Unlock()
}

func TestClock(t *testing.T) {
	base := time.UnixMilli(1_700_000_000_000)
	tests := []struct {
		name  string
		steps []time.Duration // wall offsets from base, one reading each
		want  []channel.Timestamp
	}{
		{"follows the wall clock", []time.Duration{0, time.Millisecond, 5 * time.Millisecond},
			[]channel.Timestamp{ts(base, 0, 0), ts(base, 1, 0), ts(base, 5, 0)}},
		{"same millisecond counts up", []time.Duration{0, 0, 0},
			[]channel.Timestamp{ts(base, 0, 0), ts(base, 0, 1), ts(base, 0, 2)}},
		{"wall clock going backwards", []time.Duration{10 * time.Millisecond, 0, -time.Hour, 11 * time.Millisecond},
			[]channel.Timestamp{ts(base, 10, 0), ts(base, 10, 1), ts(base, 10, 2), ts(base, 11, 0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &fakeWall{}
			c := NewClock(w.now)
			for i, d := range tt.steps {
				w.set(base.Add(d))
				assert.Equal(t, tt.want[i], c.Now(), "reading %d", i)
			}
		})
	}
}

func ts(base time.Time, ms int64, logical uint32) channel.Timestamp {
	return channel.NewTimestamp(base.UnixMilli()+ms, logical)
}

func TestClockLogicalOverflowCarries(t *testing.T) {
	base := time.UnixMilli(1_700_000_000_000)
	c := NewClock(func() time.Time { return base })
	c.Observe(ts(base, 0, channel.MaxLogical))
	assert.Equal(t, ts(base, 1, 0), c.Now())
}

func TestClockObserve(t *testing.T) {
	base := time.UnixMilli(1_700_000_000_000)
	c := NewClock(func() time.Time { return base })
	c.Observe(ts(base, 500, 3)) // a node ahead of us
	assert.Equal(t, ts(base, 500, 4), c.Now())
	c.Observe(ts(base, 1, 0)) // a node behind changes nothing
	assert.Equal(t, ts(base, 500, 5), c.Now())
	assert.Equal(t, ts(base, 500, 5), c.Last())
}

func TestClockStrictlyIncreasingConcurrently(t *testing.T) {
	c := NewClock(nil)
	const goroutines, each = 8, 2000
	out := make([][]channel.Timestamp, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for range each {
				out[g] = append(out[g], c.Now())
			}
		})
	}
	wg.Wait()
	seen := make(map[channel.Timestamp]bool, goroutines*each)
	for _, l := range out {
		for i, v := range l {
			assert.False(t, seen[v], "duplicate timestamp")
			seen[v] = true
			if i > 0 {
				assert.Greater(t, v, l[i-1])
			}
		}
	}
}

// TestPublishWhileWallClockGoesBackwards: a wall clock stepping back an
// hour (NTP correction, VM migration) does not reorder messages, repeat
// times or confuse cursors.
func TestPublishWhileWallClockGoesBackwards(t *testing.T) {
	w := &fakeWall{t: time.UnixMilli(1_700_000_000_000)}
	b := newTestBroker(t, func(c *Config) { c.Now = w.now })
	first := publish(t, b, pub(1, "a"))[0]
	cur := poll(t, b, Cursor{}, "a").Cursor

	w.set(w.now().Add(-time.Hour))
	second := publish(t, b, pub(2, "a"))[0]
	third := publish(t, b, pub(3, "a"))[0]
	assert.Greater(t, second.TS, first.TS)
	assert.Greater(t, third.TS, second.TS)
	assert.GreaterOrEqual(t, second.Time(), first.Time(), "client-visible time never goes back")

	res := poll(t, b, cur, "a")
	assert.Equal(t, []string{"2", "3"}, dataOf(res.Messages))
	assert.Equal(t, []string{"1", "2", "3"}, dataOf(poll(t, b, Cursor{}, "a").Messages))
}
