package api

import (
	"bufio"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/broker"
)

// sseEvent is one dispatched event, as EventSource sees it, plus the
// comments read since the previous one.
type sseEvent struct {
	name, id, data string
	comments       []string
	retry          string
}

// sseParser reads an event stream by the HTML standard's rules: fields,
// comments, CRLF/LF/CR line ends, dispatch on a blank line. Events with no
// data are not dispatched, but their id still moves lastID, as in a
// browser.
type sseParser struct {
	r        *bufio.Reader
	lastID   string
	comments []string
	retry    string
}

func newSSEParser(r io.Reader) *sseParser { return &sseParser{r: bufio.NewReader(r)} }

// line reads one line, whatever its ending.
func (p *sseParser) line() (string, error) {
	var sb strings.Builder
	for {
		c, err := p.r.ReadByte()
		if err != nil {
			return sb.String(), err
		}
		switch c {
		case '\n':
			return sb.String(), nil
		case '\r':
			if n, err := p.r.Peek(1); err == nil && n[0] == '\n' {
				_, _ = p.r.ReadByte()
			}
			return sb.String(), nil
		}
		sb.WriteByte(c)
	}
}

// next returns the next dispatched event.
func (p *sseParser) next() (sseEvent, error) {
	var ev sseEvent
	var data []string
	hasData := false
	for {
		line, err := p.line()
		if err != nil {
			return ev, err
		}
		if line == "" {
			ev.id = p.lastID
			if !hasData {
				ev, data = sseEvent{}, nil
				continue
			}
			ev.data = strings.Join(data, "\n")
			ev.comments, p.comments = p.comments, nil
			ev.retry = p.retry
			return ev, nil
		}
		if strings.HasPrefix(line, ":") {
			p.comments = append(p.comments, strings.TrimPrefix(strings.TrimPrefix(line, ":"), " "))
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			ev.name = value
		case "id":
			p.lastID = value
		case "data":
			data = append(data, value)
			hasData = true
		case "retry":
			p.retry = value
		}
	}
}

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

	p := newSSEParser(strings.NewReader(string(b)))
	ev, err := p.next()
	require.NoError(t, err)
	assert.Equal(t, sseEvent{id: "c1", data: "{\n\"a\": 1,\n\"b\": 2\n}"}, ev, "lines joined with \\n again")
	ev, err = p.next()
	require.NoError(t, err)
	assert.Equal(t, sseEvent{name: "closed", id: "c2", data: "{}", comments: []string{"one", "two"}}, ev)
	ev, err = p.next()
	require.NoError(t, err)
	assert.Equal(t, "c2", ev.id, "an event without id keeps the last one")
	assert.Equal(t, "", ev.data)
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
	req, ok := st.request(now)
	require.True(t, ok)
	res, sub, err := b.Subscribe(req, nil)
	require.NoError(t, err)
	require.Nil(t, sub)
	out, next, _ := st.answer(nil, res, now)
	assert.Equal(t, sseContinue, next)

	var events []sseEvent
	p := newSSEParser(strings.NewReader(string(out)))
	for {
		ev, err := p.next()
		if err != nil {
			break
		}
		events = append(events, ev)
	}
	require.Len(t, events, 8)
	for i, ev := range events {
		c, err := broker.ParseCursor(ev.id)
		require.NoError(t, err)
		rest, _, err := b.Subscribe(broker.SubscribeRequest{Channels: []string{"a", "b"}, Cursor: c}, nil)
		require.NoError(t, err)
		var want []string
		for _, later := range events[i+1:] {
			want = append(want, later.data)
		}
		var got []string
		for _, m := range rest.Messages {
			got = append(got, string(m.JSON))
		}
		assert.Equal(t, want, got, "resuming after event %d", i)
	}
	assert.Equal(t, res.Cursor.String(), events[7].id, "the last id is the answer's cursor")
}

func TestStreamEventsForTruncatedClosedAndShutdown(t *testing.T) {
	now := time.Now()
	st := newSSEStream(DefaultSSEConfig(), []string{"a"}, broker.Cursor{}, now, 0)
	out, next, _ := st.answer(nil, broker.Result{Truncated: true, Cursor: broker.SinceMillis(5)}, now)
	assert.Equal(t, sseContinue, next)
	assert.Contains(t, string(out), "event: truncated\ndata: {\"truncated\":true}\n\n")
	assert.Contains(t, string(out), "id: "+broker.SinceMillis(5).String(), "a gap with nothing after it still moves the id")

	out, next, why := st.answer(nil, broker.Result{Reason: broker.ReasonClosed, Cursor: broker.SinceMillis(7)}, now)
	assert.Equal(t, sseEnd, next)
	assert.Equal(t, sseEndClosed, why)
	ev, err := newSSEParser(strings.NewReader(string(out))).next()
	require.NoError(t, err)
	assert.Equal(t, "closed", ev.name)
	assert.Equal(t, broker.SinceMillis(7).String(), ev.id)
	assert.JSONEq(t, `{"error":"channel_closed","message":"every channel of this stream was closed","cursor":"`+ev.id+`"}`, ev.data)

	out, next, why = st.answer(nil, broker.Result{Reason: broker.ReasonShutdown}, now)
	assert.Empty(t, out)
	assert.Equal(t, sseEnd, next)
	assert.Equal(t, sseEndShutdown, why)
}

func TestStreamLifetimeHasJitterAndBoundsTheWait(t *testing.T) {
	cfg := SSEConfig{Heartbeat: 15 * time.Second, MaxLifetime: 100 * time.Second, Retry: time.Second}
	now := time.Unix(1000, 0)
	early := newSSEStream(cfg, []string{"a"}, broker.Cursor{}, now, 0.999)
	late := newSSEStream(cfg, []string{"a"}, broker.Cursor{}, now, 0)
	assert.Equal(t, now.Add(100*time.Second), late.endAt)
	assert.InDelta(t, 80, early.endAt.Sub(now).Seconds(), 0.1, "jitter takes up to 20% off")

	req, ok := late.request(now)
	require.True(t, ok)
	assert.Equal(t, 15*time.Second, req.Timeout, "waits a heartbeat")
	req, ok = late.request(now.Add(95 * time.Second))
	require.True(t, ok)
	assert.Equal(t, 5*time.Second, req.Timeout, "but not past the lifetime")
	_, ok = late.request(now.Add(100 * time.Second))
	assert.False(t, ok)
	_, next, why := late.answer(nil, broker.Result{Reason: broker.ReasonTimeout}, now.Add(100*time.Second))
	assert.Equal(t, sseEnd, next)
	assert.Equal(t, sseEndLifetime, why)
}
