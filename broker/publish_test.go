package broker

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBatchPublishIsOneMessageInEachChannel(t *testing.T) {
	b := newTestBroker(t, nil)
	ms := publish(t, b, pub("q1", "author:john", "tag:c++", "tag:java"))
	require.Len(t, ms, 1)
	m := ms[0]
	assert.Equal(t, []string{"author:john", "tag:c++", "tag:java"}, m.Channels)
	for _, c := range m.Channels {
		res := poll(t, b, Cursor{}, c)
		require.Len(t, res.Messages, 1, c)
		assert.Same(t, m, res.Messages[0], "one message object shared by all channels")
	}
	st := b.Stats()
	assert.EqualValues(t, 1, st.Published)
	assert.EqualValues(t, 3, st.Messages)
	assert.Equal(t, 3, st.Channels)
}

func TestPublishBatchGetsDistinctIncreasingTimes(t *testing.T) {
	b := newTestBroker(t, nil)
	ms := publish(t, b, pub(1, "a"), pub(2, "a", "b"), pub(3, "b"))
	require.Len(t, ms, 3)
	for i := 1; i < len(ms); i++ {
		assert.Greater(t, ms[i].TS, ms[i-1].TS)
		assert.NotEqual(t, ms[i].ID, ms[i-1].ID)
		assert.Equal(t, ms[i-1].Seq+1, ms[i].Seq)
	}
}

func TestPublishRejectsBadInputAndChangesNothing(t *testing.T) {
	long := make([]byte, MaxChannelNameLen+1)
	for i := range long {
		long[i] = 'x'
	}
	tests := []struct {
		name string
		mod  func(*Config)
		pubs []Publication
		want error
	}{
		{"empty batch", nil, nil, ErrNoChannels},
		{"no channels", nil, []Publication{pub(1)}, ErrNoChannels},
		{"bad name", nil, []Publication{pub(1, "ok", "not ok")}, ErrInvalidChannel},
		{"slash in name", nil, []Publication{pub(1, "a/b")}, ErrInvalidChannel},
		{"comma in name", nil, []Publication{pub(1, "a,b")}, ErrInvalidChannel},
		{"name too long", nil, []Publication{pub(1, string(long))}, ErrInvalidChannel},
		{"duplicate", nil, []Publication{pub(1, "a", "b", "a")}, ErrDuplicateChannel},
		{"too many channels", func(c *Config) { c.MaxChannelsPerRequest = 2 }, []Publication{pub(1, "a", "b", "c")}, ErrTooManyChannels},
		{"too many publications", func(c *Config) { c.MaxBatch = 2 }, []Publication{pub(1, "a"), pub(2, "a"), pub(3, "a")}, ErrTooManyPublications},
		{"bad second publication", nil, []Publication{pub(1, "a"), pub(2, "")}, ErrInvalidChannel},
		{"missing channel, implicit off", func(c *Config) { c.ImplicitChannels = false }, []Publication{pub(1, "exists"), pub(2, "exists", "missing")}, ErrChannelNotFound},
		{"channel limit", func(c *Config) { c.MaxChannels = 2 }, []Publication{pub(1, "exists", "new1", "new2")}, ErrChannelLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newTestBroker(t, tt.mod)
			_, _, err := b.Renew("exists", 0)
			require.NoError(t, err)
			_, err = b.Publish(tt.pubs...)
			require.ErrorIs(t, err, tt.want)
			st := b.Stats()
			assert.EqualValues(t, 0, st.Published)
			assert.EqualValues(t, 0, st.Messages)
			assert.Equal(t, 1, st.Channels, "no channel created by a failed publish")
		})
	}
}

func TestValidChannelName(t *testing.T) {
	for _, ok := range []string{"a", "tag:c++", "author:john", "user@example.com", "A-Z_0.9~=", "ch-abc"} {
		assert.True(t, ValidChannelName(ok), ok)
	}
	for _, bad := range []string{"", "a b", "a/b", "a,b", "é", "a?b", "a#b", "a%20"} {
		assert.False(t, ValidChannelName(bad), bad)
	}
}
