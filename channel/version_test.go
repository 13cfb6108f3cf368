package channel

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestVersionChangesWithEveryChangeReadCanSee: what a reader may remember
// (broker.ReadMemo) stays valid exactly while Version stays.
func TestVersionChangesWithEveryChangeReadCanSee(t *testing.T) {
	c := newTestChannel(t, Config{MaxMessages: 2, MessageTTL: time.Minute})
	steps := []struct {
		name    string
		change  func()
		changes bool
	}{
		{"insert", func() { _, _ = c.Insert(msg(1, 1, 0, 0), t0) }, true},
		{"insert the same message again", func() { _, _ = c.Insert(msg(1, 1, 0, 0), t0) }, false},
		{"waiter", func() { _ = c.AddWaiter(waiterAt(time.Hour, 1), t0) }, false},
		{"touch", func() { c.Touch(t0.Add(time.Second)) }, false},
		{"insert past the count bound", func() {
			_, _ = c.Insert(msg(1, 2, 1, 0), t0)
			_, _ = c.Insert(msg(1, 3, 2, 0), t0)
		}, true},
		{"insert of an expired message", func() { _, _ = c.Insert(msg(2, 1, 0, 0), t0.Add(2*time.Minute)) }, true},
		{"evict", func() { c.Evict(msg(1, 3, 2, 0)) }, true},
		{"maintain that evicts", func() { c.Maintain(t0.Add(3 * time.Minute)) }, true},
		{"close", func() { c.Close() }, true},
	}
	for _, s := range steps {
		before := c.Version()
		s.change()
		assert.Equal(t, s.changes, c.Version() != before, s.name)
		assert.Equal(t, c.Version(), c.Read(all(), t0, nil).Version, s.name)
	}
}

func TestReadReportsHiddenAndStaleAt(t *testing.T) {
	c := newTestChannel(t, Config{MaxMessages: 10, MessageTTL: time.Minute})
	_, err := c.Insert(msg(1, 1, 5, 0), t0)
	require.NoError(t, err)
	_, err = c.Insert(msg(2, 1, 9, 0), t0)
	require.NoError(t, err)

	got := c.Read(Query{Visible: Vector{{1, ^Timestamp(0)}}, Limit: 10}, t0, nil)
	assert.Len(t, got.Messages, 1)
	assert.True(t, got.Hidden, "origin 2's message is not committed yet")
	assert.Equal(t, time.UnixMilli(t0.UnixMilli()+6).Add(time.Minute), got.StaleAt, "when the oldest message expires")

	got = c.Read(all(), t0, nil)
	assert.False(t, got.Hidden)

	never := newTestChannel(t, Config{MaxMessages: 10})
	_, err = never.Insert(msg(1, 1, 5, 0), t0)
	require.NoError(t, err)
	assert.True(t, never.Read(all(), t0, nil).StaleAt.IsZero(), "no age limit: never stale by time")
}
