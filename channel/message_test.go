package channel

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTimestampPacking(t *testing.T) {
	ts := NewTimestamp(1_700_000_000_123, 7)
	assert.EqualValues(t, 1_700_000_000_123, ts.Millis())
	assert.EqualValues(t, 7, ts.Logical())
	assert.Less(t, ts, NewTimestamp(1_700_000_000_123, 8))
	assert.Less(t, NewTimestamp(1_700_000_000_123, MaxLogical), NewTimestamp(1_700_000_000_124, 0))
	assert.Equal(t, NewTimestamp(5, MaxLogical)+1, NewTimestamp(6, 0), "logical overflow carries into ms")
	assert.Equal(t, NewTimestamp(5, MaxLogical), EndOfMillis(5))
	assert.EqualValues(t, 0, NewTimestamp(-3, 0), "negative clamps to zero")
	assert.Equal(t, int64(MaxMillis), NewTimestamp(int64(MaxMillis)+10, 0).Millis())
	// Milliseconds exposed to clients fit a JavaScript number exactly.
	assert.Less(t, NewTimestamp(int64(MaxMillis), 0).Millis(), int64(1)<<53)
}

func TestNewMessageEncodesOnce(t *testing.T) {
	m := NewMessage(0xabc, 42, NewTimestamp(1234, 3), []string{"a", "tag:c++"}, json.RawMessage(`{"q":"why?"}`))
	assert.Equal(t, "0000000000000abc-42", m.ID)
	assert.EqualValues(t, 1234, m.Time())
	assert.Equal(t, `{"id":"0000000000000abc-42","time":1234,"channels":["a","tag:c++"],"data":{"q":"why?"}}`, string(m.JSON))
	assert.Equal(t, `{"q":"why?"}`, string(m.Data))
	var v map[string]any
	require.NoError(t, json.Unmarshal(m.JSON, &v))
	// Data aliases the encoding: no second copy of the payload.
	assert.Equal(t, &m.JSON[len(m.JSON)-1-len(m.Data)], &m.Data[0])
}

func TestMessageOrder(t *testing.T) {
	a := &Message{TS: 5, Origin: 1}
	b := &Message{TS: 5, Origin: 2}
	c := &Message{TS: 6, Origin: 0}
	assert.True(t, a.Before(b))
	assert.True(t, b.Before(c))
	assert.False(t, b.Before(a))
	assert.True(t, a.Same(&Message{TS: 5, Origin: 1}))
	assert.False(t, a.Same(b))
}

func TestVector(t *testing.T) {
	v := Vector{{1, 10}, {3, 30}}
	ts, ok := v.Get(3)
	assert.True(t, ok)
	assert.EqualValues(t, 30, ts)
	_, ok = v.Get(2)
	assert.False(t, ok)

	w := v.With(2, 20)
	assert.Equal(t, Vector{{1, 10}, {2, 20}, {3, 30}}, w)
	assert.Equal(t, Vector{{1, 10}, {3, 30}}, v, "With copies")
	assert.Equal(t, Vector{{1, 10}, {3, 30}}, v.With(3, 5), "With never moves back")
	assert.Equal(t, Vector{{0, 1}, {1, 10}, {3, 30}}, v.With(0, 1))

	assert.Equal(t, Vector{{1, 15}, {2, 5}, {3, 30}}, Max(v, Vector{{1, 15}, {2, 5}, {3, 1}}))
	assert.Equal(t, v, Max(v, nil))
	assert.Equal(t, v, Max(nil, v))

	assert.True(t, w.Covers(v))
	assert.False(t, v.Covers(w))
	assert.True(t, v.Covers(nil))
	assert.False(t, Vector{{1, 9}, {3, 30}}.Covers(v))

	assert.True(t, v.Valid())
	assert.False(t, Vector{{3, 1}, {1, 1}}.Valid())
	assert.False(t, Vector{{1, 1}, {1, 2}}.Valid())
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"plain", "tag:c++", "", `quo"te`, `back\slash`, "tab\t", "é", "<&>"} {
		var want string
		b, _ := json.Marshal(s)
		require.NoError(t, json.Unmarshal(b, &want))
		var got string
		require.NoError(t, json.Unmarshal(appendJSONString(nil, s), &got), s)
		assert.Equal(t, want, got)
	}
}
