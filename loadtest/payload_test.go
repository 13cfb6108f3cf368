package loadtest

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAppendPayload(t *testing.T) {
	p := Payload{Publisher: 3, Seq: 42, SentAt: 1_795_346_167_683_000_123}
	for _, size := range []int{MinPayloadSize, 64, 256, 4096} {
		b, err := AppendPayload([]byte("prefix"), p, size)
		require.NoError(t, err, size)
		data := b[len("prefix"):]
		assert.Len(t, data, size, "exactly the configured size")
		assert.True(t, json.Valid(data))
		got, ok := parsePayload(data)
		require.True(t, ok)
		assert.Equal(t, p, got)
	}
	_, err := AppendPayload(nil, p, 20)
	assert.ErrorIs(t, err, ErrInvalidConfig)

	worst := Payload{Publisher: MaxPublishers - 1, Seq: MaxMessages - 1, SentAt: math.MaxInt64}
	_, err = AppendPayload(nil, worst, MinPayloadSize)
	assert.NoError(t, err, "MinPayloadSize holds the largest payload")
}

func TestParsePayloadForeign(t *testing.T) {
	for _, data := range []string{
		`"hello world"`, `null`, `{"q":"How do I long-poll?"}`, `{"p":0,"seq":1}`, `{"p":-1,"seq":1,"t":5}`,
		`{"p":1000,"seq":1,"t":5}`, `{"p":0,"seq":16777216,"t":5}`, `[1,2]`, `{"p":"0","seq":1,"t":5}`,
	} {
		_, ok := parsePayload([]byte(data))
		assert.False(t, ok, data)
	}
	p, ok := parsePayload([]byte(`{"t":7,"seq":2,"p":1,"extra":true}`))
	assert.True(t, ok)
	assert.Equal(t, Payload{Publisher: 1, Seq: 2, SentAt: 7}, p)
}
