package api

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/internal/sse"
)

// openRawStreams opens n GET /v1/events streams on raw connections.
func openRawStreams(t testing.TB, ts *testServer, n int, query string) []net.Conn {
	t.Helper()
	return rawGets(t, ts, n, "/v1/events?"+query)
}

// In the event model an open stream is a record in the engine between
// events: no goroutine waits for it, before or after it carried
// messages, and a client that goes is noticed and counted.
func TestEventModelStreamsHoldNoGoroutine(t *testing.T) {
	ts := startServer(t, options{model: ModelEvent})
	ts.do(http.MethodGet, "/healthz", "")
	baseline := goroutinesAsEventuallySees(t)
	handbacks := ts.srv.event.e.Stats().Handbacks
	const n = 100
	conns := openRawStreams(t, ts, n, q("channels", "a"))
	readers := make([]*sse.Reader, n)
	for i, c := range conns {
		require.NoError(t, c.SetReadDeadline(time.Now().Add(20*time.Second)))
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
		readers[i] = sse.NewReader(resp.Body)
		ev, err := readers[i].Next()
		require.NoError(t, err)
		require.Equal(t, "cursor", ev.Type)
	}
	require.Eventually(t, func() bool { return ts.b.Stats().Waiters == n }, 10*time.Second, 5*time.Millisecond)
	assert.Equal(t, handbacks, ts.srv.event.e.Stats().Handbacks, "started by the engine, not net/http")
	held := func() bool { return runtime.NumGoroutine() < baseline+n/10 }
	require.Eventually(t, held, 10*time.Second, 10*time.Millisecond, "open streams hold no goroutine")

	for i := range 2 {
		ts.publish(fmt.Sprintf(`{"channels":["a"],"data":%d}`, i))
		for _, r := range readers {
			ev, err := r.Next()
			require.NoError(t, err)
			assert.Equal(t, "", ev.Type)
			assert.Contains(t, ev.Data, fmt.Sprintf(`"data":%d`, i))
		}
	}
	require.Eventually(t, func() bool { return ts.b.Stats().Waiters == n }, 10*time.Second, 5*time.Millisecond,
		"each stream waits again from its new cursor")
	require.Eventually(t, held, 10*time.Second, 10*time.Millisecond, "and again holds no goroutine")
	assert.EqualValues(t, n, ts.srv.sse.open.Load())

	for _, c := range conns {
		c.Close()
	}
	require.Eventually(t, func() bool { return ts.srv.sse.open.Load() == 0 }, 10*time.Second, 5*time.Millisecond)
	assert.EqualValues(t, n, ts.srv.sse.ended[3].Load(), "ended by the client")
	require.Eventually(t, func() bool { return ts.b.Stats().Waiters == 0 }, 10*time.Second, 5*time.Millisecond,
		"their subscriptions withdrawn")
	require.Eventually(t, func() bool { return ts.srv.event.e.Stats().Connections == 0 }, 10*time.Second, 5*time.Millisecond)
}

// The head of an engine-held stream, written without a map, says what
// streamHeaders and corsHeaders say to a stream net/http serves.
func TestEngineStreamHeadMatchesTheHeaders(t *testing.T) {
	for _, acao := range []string{"", "https://a.example", "*"} {
		want := http.Header{}
		corsHeaders(want, acao)
		streamHeaders(want)
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(appendStreamHead(nil, acao))), nil)
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.True(t, resp.Close, "the stream ends with the connection")
		assert.NotEmpty(t, resp.Header.Get("Date"))
		resp.Header.Del("Date")
		resp.Header.Del("Connection")
		assert.Equal(t, want, resp.Header, "acao %q", acao)
	}
}
