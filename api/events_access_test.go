package api

import (
	"bufio"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/internal/sse"
)

// Streams and positions answer to the same subscriber tokens as polls:
// the token travels as token= because EventSource cannot set headers.
func TestEventsAndPositionNeedTokensForPrivateChannels(t *testing.T) {
	eachModel(t, func(t *testing.T, m Model) {
		clock := newTestClock()
		ts := privateServer(t, m, clock, nil)
		good := hs(t, clock, []string{"user:42"}, time.Hour)
		for _, path := range []string{"/v1/events?channels=user:42", "/v1/position?channels=user:42"} {
			r := ts.do(http.MethodGet, path, "")
			assert.Equal(t, http.StatusUnauthorized, r.status, "%s: %s", path, r.body)
			assert.Equal(t, "token_required", r.code(t), path)
			r = ts.do(http.MethodGet, path+",user:43&token="+good, "")
			assert.Equal(t, http.StatusForbidden, r.status, "%s: %s", path, r.body)
			assert.Equal(t, "channel_forbidden", r.code(t), path)
		}
		assert.Equal(t, http.StatusOK, ts.do(http.MethodGet, "/v1/position?channels=user:42&token="+good, "").status)
		s := ts.openStream("channels=user:42&token=" + good)
		require.Equal(t, http.StatusOK, s.resp.StatusCode)
		assert.Equal(t, "cursor", s.next().Type)
	})
}

// An open stream holds its connection for its whole life, so it takes a
// slot of -max-conns-per-ip like a waiting poll, and gives it back when
// it ends.
func TestEventsCountAgainstMaxConnsPerIP(t *testing.T) {
	eachModel(t, func(t *testing.T, m Model) {
		ts := startServer(t, options{model: m, api: func(c *Config) { c.MaxConnsPerIP = 1 }})
		s := ts.openStream("channels=a")
		require.Equal(t, http.StatusOK, s.resp.StatusCode)
		r := ts.do(http.MethodGet, "/v1/events?channels=a", "")
		require.Equal(t, http.StatusTooManyRequests, r.status, "body: %s", r.body)
		assert.Equal(t, "too_many_connections", r.code(t))
		s.close()
		require.Eventually(t, func() bool { return ts.srv.perIP.holding(netip.MustParseAddr("127.0.0.1")) == 0 },
			10*time.Second, time.Millisecond, "the stream's slot is given back when it ends")
	})
}

// rawAnswer is an answer read off a connection of its own.
type rawAnswer struct {
	status int
	header http.Header
	conn   net.Conn
	br     *bufio.Reader
}

// rawGet sends one GET of target with the header lines given on a
// connection of its own (a connection http.Server served once stays
// with it, so each request here shows where its own head went).
func rawGet(t *testing.T, ts *testServer, target string, lines ...string) rawAnswer {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	head := "GET " + target + " HTTP/1.1\r\nHost: pushup\r\n"
	for _, l := range lines {
		head += l + "\r\n"
	}
	_, err = c.Write([]byte(head + "\r\n"))
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	return rawAnswer{status: resp.StatusCode, header: resp.Header, conn: c, br: br}
}

// With subscriber tokens, -max-conns-per-ip and trusted proxies on, the
// event engine still serves polls and streams from their heads, with the
// answers http.Server gives: no hand-over to http.Server, which cost a
// goroutine, its buffers and a hijack per request.
func TestTokensAndCapsStayOnTheFastPath(t *testing.T) {
	clock := newTestClock()
	ts := privateServer(t, ModelEvent, clock, func(c *Config) {
		c.MaxConnsPerIP = 1
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	good := hs(t, clock, []string{"user:42"}, time.Hour)
	before := ts.srv.event.e.Stats()
	const poll = "/v1/subscribe?timeout=0&channels="
	for _, c := range []struct {
		name, target string
		lines        []string
		status       int
	}{
		{"token in a header", poll + "user:42", []string{"Authorization: Bearer " + good}, 200},
		{"token in the query", poll + "user:42&token=" + good, nil, 200},
		{"token in the cookie", poll + "user:42", []string{"Cookie: a=b; pushup_token=" + good}, 200},
		{"no token", poll + "user:42", nil, 401},
		{"not granted", poll + "user:43", []string{"Authorization: bearer " + good}, 403},
		{"public, no token", poll + "news", nil, 200},
	} {
		r := rawGet(t, ts, c.target, c.lines...)
		assert.Equal(t, c.status, r.status, c.name)
		if c.status == 401 {
			assert.Equal(t, `Bearer realm="pushup"`, r.header.Get("WWW-Authenticate"), c.name)
		}
	}
	// A stream with its token in the query (EventSource cannot set
	// headers) takes its client's one slot; the client is the address
	// the trusted proxy forwarded for.
	s := rawGet(t, ts, "/v1/events?channels=user:42&token="+good, "X-Forwarded-For: 198.51.100.7, 203.0.113.1")
	require.Equal(t, http.StatusOK, s.status)
	ev, err := sse.NewReader(s.br).Next()
	require.NoError(t, err)
	assert.Equal(t, "cursor", ev.Type)
	client := netip.MustParseAddr("203.0.113.1")
	require.Eventually(t, func() bool { return ts.srv.perIP.holding(client) == 1 }, 10*time.Second, time.Millisecond)
	r := rawGet(t, ts, "/v1/subscribe?since=now&timeout=30&channels=news", "X-Forwarded-For: 203.0.113.1")
	assert.Equal(t, http.StatusTooManyRequests, r.status)
	assert.Equal(t, "5", r.header.Get("Retry-After"))
	r = rawGet(t, ts, "/v1/events?channels=user:42", "Authorization: Bearer "+good, "X-Forwarded-For: 203.0.113.1")
	assert.Equal(t, http.StatusTooManyRequests, r.status, "a second stream of the same client")
	r = rawGet(t, ts, "/v1/subscribe?since=now&timeout=0&channels=news", "X-Forwarded-For: 203.0.113.1")
	assert.Equal(t, http.StatusOK, r.status, "a poll that cannot wait takes no slot")
	s.conn.Close()
	require.Eventually(t, func() bool { return ts.srv.perIP.holding(client) == 0 }, 10*time.Second, time.Millisecond,
		"the stream's slot is given back when it ends")

	after := ts.srv.event.e.Stats()
	assert.Equal(t, before.Handbacks, after.Handbacks, "nothing handed to http.Server")
	assert.Equal(t, before.Served+10, after.Served, "every request served from its head")
}
