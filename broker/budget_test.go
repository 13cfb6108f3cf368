package broker

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCacheBudgetEvictsOldestFirst(t *testing.T) {
	b := newTestBroker(t, func(c *Config) { c.MaxCacheBytes = 10_000 })
	big := json.RawMessage(`"` + strings.Repeat("x", 900) + `"`)
	var first Cursor
	for i := range 30 {
		_, err := b.Publish(Publication{Channels: []string{fmt.Sprintf("c%d", i%3)}, Data: big})
		require.NoError(t, err)
		st := b.Stats()
		require.LessOrEqual(t, st.CachedBytes, int64(10_000), "after publication %d", i)
	}
	st := b.Stats()
	assert.Positive(t, st.BudgetEvicted)
	assert.Greater(t, st.CachedBytes, int64(8_000), "evicts only what it must")
	res := poll(t, b, first, "c0", "c1", "c2")
	assert.True(t, res.Truncated, "readers of evicted messages learn it")
	assert.NotEmpty(t, res.Messages, "the newest stay")
	assert.EqualValues(t, 30, res.Messages[len(res.Messages)-1].Seq, "the newest message is still cached")

	_, err := b.Publish(Publication{Channels: []string{"a"}, Data: json.RawMessage(`"` + strings.Repeat("y", 20_000) + `"`)})
	assert.ErrorIs(t, err, ErrTooLarge)
	_, err = b.Publish(Publication{Channels: names("k", 20), Data: json.RawMessage(`"` + strings.Repeat("y", 600) + `"`)})
	assert.ErrorIs(t, err, ErrTooLarge, "its size over all its channels counts")
}

// TestCacheBudgetBoundsMemory publishes twice the budget and checks the
// live heap stays within the budget plus overhead (documented in
// docs/BENCHMARKS.md): the caches, the repair log and the budget's own
// queue must not keep evicted messages alive.
func TestCacheBudgetBoundsMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("publishes 32 MiB")
	}
	const budget = 16 << 20
	b := newTestBroker(t, func(c *Config) {
		c.MaxCacheBytes = budget
		c.Channel.MaxMessages = 1 << 20 // only the budget bounds the cache
	})
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	data := json.RawMessage(`"` + strings.Repeat("z", 16<<10) + `"`)
	for i := range 2 * budget / (16 << 10) {
		_, err := b.Publish(Publication{Channels: []string{fmt.Sprintf("ch%d", i%64)}, Data: data})
		require.NoError(t, err)
	}
	grown := int64(heap()) - int64(before)
	st := b.Stats()
	t.Logf("budget %d MiB, published %d MiB, cached %.1f MiB, heap grew %.1f MiB, evicted %d",
		budget>>20, 2*budget>>20, float64(st.CachedBytes)/(1<<20), float64(grown)/(1<<20), st.BudgetEvicted)
	assert.LessOrEqual(t, st.CachedBytes, int64(budget))
	assert.Less(t, grown, int64(budget+budget/4), "heap over budget + 25%%")
	runtime.KeepAlive(b)
}

func TestMaxAnswerBytesSplitsWithMore(t *testing.T) {
	b := newTestBroker(t, func(c *Config) { c.MaxAnswerBytes = 3000 })
	data := json.RawMessage(`"` + strings.Repeat("x", 900) + `"`)
	for range 10 {
		publish(t, b, Publication{Channels: []string{"a", "b"}, Data: data})
	}
	var cur Cursor
	got := 0
	for polls := 0; polls < 20; polls++ {
		res := poll(t, b, cur, "a", "b")
		require.NotEmpty(t, res.Messages)
		size := 0
		for _, m := range res.Messages {
			size += len(m.JSON)
		}
		assert.LessOrEqual(t, size, 3000)
		got += len(res.Messages)
		cur = res.Cursor
		if !res.More {
			break
		}
	}
	assert.Equal(t, 10, got, "every message once, over several answers")
	huge := json.RawMessage(`"` + strings.Repeat("h", 5000) + `"`)
	publish(t, b, Publication{Channels: []string{"h"}, Data: huge})
	res := poll(t, b, Cursor{}, "h")
	assert.Len(t, res.Messages, 1, "one message larger than the cap still goes out, alone")
}
