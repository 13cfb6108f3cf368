package api

import (
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/broker"
	"github.com/pushuphq/pushup/internal/sse"
)

func TestSSEFramingMultiLineDataIDsAndComments(t *testing.T) {
	var b []byte
	b = appendEvent(b, "", "c1", []byte("{\n\"a\": 1,\r\n\"b\": 2\r}"))
	b = appendComment(b, "one\ntwo")
	b = appendEvent(b, "closed", "c2", []byte(`{}`))
	b = appendEvent(b, "", "", []byte(""))
	assert.Equal(t, "id: c1\ndata: {\ndata: \"a\": 1,\ndata: \"b\": 2\ndata: }\n\n"+
		": one\n: two\n\n"+
		"event: closed\nid: c2\ndata: {}\n\n"+
		"data: \n\n", string(b))

	p := sse.NewReader(strings.NewReader(string(b)))
	ev, err := p.Next()
	require.NoError(t, err)
	assert.Equal(t, sse.Event{ID: "c1", Data: "{\n\"a\": 1,\n\"b\": 2\n}"}, ev, "lines joined with \\n again")
	ev, err = p.Next()
	require.NoError(t, err)
	assert.Equal(t, sse.Event{Type: "closed", ID: "c2", Data: "{}", Comments: []string{"one", "two"}}, ev)
	ev, err = p.Next()
	require.NoError(t, err)
	assert.Equal(t, "c2", ev.ID, "an event without id keeps the last one")
	assert.Equal(t, "", ev.Data)
}

func TestCutLineEndings(t *testing.T) {
	for _, tc := range []struct{ in, line, rest string }{
		{"a\nb", "a", "b"}, {"a\r\nb", "a", "b"}, {"a\rb", "a", "b"}, {"a\r", "a", ""}, {"\n", "", ""},
	} {
		line, rest, found := cutLine([]byte(tc.in))
		assert.True(t, found, tc.in)
		assert.Equal(t, tc.line, string(line), tc.in)
		assert.Equal(t, tc.rest, string(rest), tc.in)
	}
	line, _, found := cutLine([]byte("abc"))
	assert.False(t, found)
	assert.Equal(t, "abc", string(line))
}

// TestStreamIDsResumeExactly checks the promise of every id: resuming
// after any message's id gives exactly the messages after it.
func TestStreamIDsResumeExactly(t *testing.T) {
	b, err := broker.New(broker.DefaultConfig())
	require.NoError(t, err)
	defer b.Close()
	for i := range 4 {
		_, err := b.Publish(broker.Publication{Channels: []string{"a"}, Data: []byte(`"a` + string(rune('0'+i)) + `"`)})
		require.NoError(t, err)
		_, err = b.Publish(broker.Publication{Channels: []string{"b"}, Data: []byte(`"b` + string(rune('0'+i)) + `"`)})
		require.NoError(t, err)
	}
	now := time.Now()
	st := newSSEStream(DefaultSSEConfig(), []string{"a", "b"}, broker.Cursor{}, now, 0)
	req, ok := st.request(now, DefaultSSEConfig().Heartbeat)
	require.True(t, ok)
	res, sub, err := b.Subscribe(req, nil)
	require.NoError(t, err)
	require.Nil(t, sub)
	out, next, _ := st.answer(nil, res, now, DefaultSSEConfig().Heartbeat)
	assert.Equal(t, sseContinue, next)

	var events []sse.Event
	p := sse.NewReader(strings.NewReader(string(out)))
	for {
		ev, err := p.Next()
		if err != nil {
			break
		}
		events = append(events, ev)
	}
	require.Len(t, events, 8)
	for i, ev := range events {
		c, err := broker.ParseCursor(ev.ID)
		require.NoError(t, err)
		rest, _, err := b.Subscribe(broker.SubscribeRequest{Channels: []string{"a", "b"}, Cursor: c}, nil)
		require.NoError(t, err)
		var want []string
		for _, later := range events[i+1:] {
			want = append(want, later.Data)
		}
		var got []string
		for _, m := range rest.Messages {
			got = append(got, string(m.JSON))
		}
		assert.Equal(t, want, got, "resuming after event %d", i)
	}
	assert.Equal(t, res.Cursor.String(), events[7].ID, "the last id is the answer's cursor")
}

func TestStreamEventsForTruncatedClosedAndShutdown(t *testing.T) {
	now := time.Now()
	st := newSSEStream(DefaultSSEConfig(), []string{"a"}, broker.Cursor{}, now, 0)
	out, next, _ := st.answer(nil, broker.Result{Truncated: true, Cursor: broker.SinceMillis(5)}, now, DefaultSSEConfig().Heartbeat)
	assert.Equal(t, sseContinue, next)
	assert.Contains(t, string(out), "event: truncated\ndata: {\"truncated\":true}\n\n")
	assert.Contains(t, string(out), "id: "+broker.SinceMillis(5).String(), "a gap with nothing after it still moves the id")

	out, next, why := st.answer(nil, broker.Result{Reason: broker.ReasonClosed, Cursor: broker.SinceMillis(7)}, now, DefaultSSEConfig().Heartbeat)
	assert.Equal(t, sseEnd, next)
	assert.Equal(t, sseEndClosed, why)
	ev, err := sse.NewReader(strings.NewReader(string(out))).Next()
	require.NoError(t, err)
	assert.Equal(t, "closed", ev.Type)
	assert.Equal(t, broker.SinceMillis(7).String(), ev.ID)
	assert.JSONEq(t, `{"error":"channel_closed","message":"every channel of this stream was closed","cursor":"`+ev.ID+`"}`, ev.Data)

	out, next, why = st.answer(nil, broker.Result{Reason: broker.ReasonShutdown}, now, DefaultSSEConfig().Heartbeat)
	assert.Empty(t, out)
	assert.Equal(t, sseEnd, next)
	assert.Equal(t, sseEndShutdown, why)
	out, _, _ = st.answer(nil, broker.Result{Reason: broker.ReasonShutdown, RetryAfter: 750 * time.Millisecond}, now, DefaultSSEConfig().Heartbeat)
	assert.Equal(t, "retry: 750\n\n", string(out), "a draining node's hint delays the browser's reconnection")
}

func TestStreamLifetimeHasJitterAndBoundsTheWait(t *testing.T) {
	cfg := SSEConfig{Heartbeat: 15 * time.Second, MaxLifetime: 100 * time.Second, Retry: time.Second}
	now := time.Unix(1000, 0)
	early := newSSEStream(cfg, []string{"a"}, broker.Cursor{}, now, 0.999)
	late := newSSEStream(cfg, []string{"a"}, broker.Cursor{}, now, 0)
	assert.Equal(t, now.Add(100*time.Second), time.Unix(0, late.endAt))
	assert.InDelta(t, 80, time.Unix(0, early.endAt).Sub(now).Seconds(), 0.1, "jitter takes up to 20% off")

	req, ok := late.request(now, cfg.Heartbeat)
	require.True(t, ok)
	assert.Equal(t, 15*time.Second, req.Timeout, "waits a heartbeat")
	req, ok = late.request(now.Add(95*time.Second), cfg.Heartbeat)
	require.True(t, ok)
	assert.Equal(t, 5*time.Second, req.Timeout, "but not past the lifetime")
	_, ok = late.request(now.Add(100*time.Second), cfg.Heartbeat)
	assert.False(t, ok)
	_, next, why := late.answer(nil, broker.Result{Reason: broker.ReasonTimeout}, now.Add(100*time.Second), cfg.Heartbeat)
	assert.Equal(t, sseEnd, next)
	assert.Equal(t, sseEndLifetime, why)
}

// An idle stream keeps its channel names, not the query they came in
// (where a token can be most of the bytes).
func TestStreamKeepsOnlyItsChannelNames(t *testing.T) {
	query := "channels=ab,c&token=" + strings.Repeat("t", 300)
	req, err := parseSubscribeQuery(query, time.Second, time.Minute)
	require.NoError(t, err)
	got := compactNames(req.Channels)
	require.Equal(t, []string{"ab", "c"}, got)
	q := unsafe.StringData(query)
	for _, c := range got {
		p := uintptr(unsafe.Pointer(unsafe.StringData(c)))
		assert.False(t, p >= uintptr(unsafe.Pointer(q)) && p < uintptr(unsafe.Pointer(q))+uintptr(len(query)),
			"%q points into the query", c)
	}
	assert.Equal(t, 2.0, testing.AllocsPerRun(10, func() { compactNames([]string{"only"}) }),
		"one string and one slice")
}
