package broker

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPositionReadsExactlyWhatCameAfter(t *testing.T) {
	b := newTestBroker(t, nil)
	publish(t, b, pub("before", "a", "b"))
	pos, err := b.Position([]string{"a", "b"})
	require.NoError(t, err)
	publish(t, b, pub("after:a", "a"))
	publish(t, b, pub("after:b", "b"))

	res := poll(t, b, pos, "a", "b")
	assert.Equal(t, []string{`"after:a"`, `"after:b"`}, dataOf(res.Messages))

	// The encoded form round-trips, as a page carries it.
	back, err := ParseCursor(pos.String())
	require.NoError(t, err)
	assert.Equal(t, dataOf(res.Messages), dataOf(poll(t, b, back, "a", "b").Messages))
}

func TestPositionChecksNames(t *testing.T) {
	b := newTestBroker(t, func(c *Config) { c.ImplicitChannels = false })
	_, err := b.Position([]string{"missing"})
	require.ErrorIs(t, err, ErrChannelNotFound)
	_, err = b.Position(nil)
	require.ErrorIs(t, err, ErrNoChannels)
	_, err = b.Position([]string{"a", "a"})
	require.ErrorIs(t, err, ErrDuplicateChannel)
}

func TestCursorPastGivesEachMessageItsResumePoint(t *testing.T) {
	b := newTestBroker(t, nil)
	for i := range 5 {
		publish(t, b, pub(i, "a"))
	}
	res := poll(t, b, Cursor{}, "a")
	require.Len(t, res.Messages, 5)
	for i := range res.Messages {
		after := Cursor{}.Past(res.Messages[:i+1])
		assert.Equal(t, dataOf(res.Messages[i+1:]), dataOf(poll(t, b, after, "a").Messages),
			"resuming after message %d gives the rest, nothing twice", i)
	}
}
