package api

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/broker"
	"github.com/pushuphq/pushup/channel"
)

// rawPoller sends polls on one kept-alive connection: after the first,
// the event loop's fast path serves them.
type rawPoller struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

func newRawPoller(t *testing.T, ts *testServer) *rawPoller {
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return &rawPoller{t: t, conn: conn, br: bufio.NewReader(conn)}
}

func (p *rawPoller) poll(query string, header ...string) (subAnswer, *http.Response) {
	p.t.Helper()
	var extra strings.Builder
	for i := 0; i+1 < len(header); i += 2 {
		fmt.Fprintf(&extra, "%s: %s\r\n", header[i], header[i+1])
	}
	_, err := fmt.Fprintf(p.conn, "GET /v1/subscribe?%s HTTP/1.1\r\nHost: pushup\r\n%s\r\n", query, extra.String())
	require.NoError(p.t, err)
	resp, err := http.ReadResponse(p.br, nil)
	require.NoError(p.t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(p.t, err)
	require.Equal(p.t, http.StatusOK, resp.StatusCode, "body: %s", body)
	var a subAnswer
	require.NoError(p.t, jsonUnmarshal(body, &a), "body: %s", body)
	return a, resp
}

// TestCachedPollFollowsTheChannel: answers remembered by the fast path
// (issue 12) change as soon as their channel does, carry the head the
// request asks for, and cursors that neither skip nor repeat.
func TestCachedPollFollowsTheChannel(t *testing.T) {
	ts := startServer(t, options{model: ModelEvent, api: func(c *Config) { c.CORSOrigins = []string{"https://good.example"} }})
	ts.publish(`{"channels":["a"],"data":"one"}`)
	p := newRawPoller(t, ts)
	const query = "channels=a&since=0&timeout=0"
	var first subAnswer
	for i := range 4 {
		a, resp := p.poll(query)
		assert.Equal(t, []string{`"one"`}, a.data(), "poll %d", i)
		assert.NotEmpty(t, resp.Header.Get("Date"))
		assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
		assert.Equal(t, "Origin", resp.Header.Get("Vary"))
		first = a
	}
	e, _, err := ts.srv.event.polls.request(query, time.Second, time.Second)
	require.NoError(t, err)
	require.NotNil(t, e, "a repeated query is remembered")
	require.NotNil(t, e.answers.Load(), "and so is its answer")

	// Another channel's message does not change a's answer, and its
	// cursor still leads to that message.
	ts.publish(`{"channels":["b"],"data":"elsewhere"}`)
	a, _ := p.poll(query)
	assert.Equal(t, []string{`"one"`}, a.data())
	b, _ := p.poll(q("channels", "a,b", "since", a.Cursor, "timeout", "0"))
	assert.Equal(t, []string{`"elsewhere"`}, b.data())

	// A message on a is in the next answer.
	ts.publish(`{"channels":["a"],"data":"two"}`)
	a, _ = p.poll(query)
	assert.Equal(t, []string{`"one"`, `"two"`}, a.data())
	assert.NotEqual(t, first.Cursor, a.Cursor)
	next, _ := p.poll(q("channels", "a", "since", a.Cursor, "timeout", "0"))
	assert.Empty(t, next.Messages, "the cursor covers what was returned")

	// Head variants: an allowed origin, then the same without one.
	for range 2 {
		_, resp := p.poll(query, "Origin", "https://good.example")
		assert.Equal(t, "https://good.example", resp.Header.Get("Access-Control-Allow-Origin"))
		assert.Equal(t, "Retry-After", resp.Header.Get("Access-Control-Expose-Headers"))
		_, resp = p.poll(query, "Origin", "https://evil.example")
		assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	// Connection: close is answered so, and the connection closes.
	a, resp := p.poll(query, "Connection", "close")
	assert.Equal(t, []string{`"one"`, `"two"`}, a.data())
	assert.True(t, resp.Close)
	_, err = p.br.ReadByte()
	assert.ErrorIs(t, err, io.EOF)
}

// TestCachedPollReparksOnASharedCursor: a re-poll query shared by many
// subscribers (a fan-out's cursor) parks from the memo and is answered by
// the next publication.
func TestCachedPollReparksOnASharedCursor(t *testing.T) {
	ts := startServer(t, options{model: ModelEvent})
	ts.publish(`{"channels":["a"],"data":"one"}`)
	cur, _ := ts.subscribe("channels=a&timeout=0")
	query := q("channels", "a", "since", cur.Cursor, "timeout", "30")
	conns := parkRaw(t, ts, 3, query)
	require.Eventually(t, func() bool { return ts.b.Stats().Waiters == 3 }, 10*time.Second, time.Millisecond)
	ts.publish(`{"channels":["a"],"data":"two"}`)
	for _, c := range conns {
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		var a subAnswer
		body, _ := io.ReadAll(resp.Body)
		require.NoError(t, jsonUnmarshal(body, &a))
		assert.Equal(t, []string{`"two"`}, a.data())
		c.Close()
	}
}

// TestPollMemoCountsItsBytes: the encoded answers the memo holds are
// counted as slots are taken over, within the budget.
func TestPollMemoCountsItsBytes(t *testing.T) {
	s := &Server{}
	p := newPollMemo()
	msg := &channel.Message{ID: "x", JSON: []byte(`{"id":"x","data":"` + strings.Repeat("y", 200) + `"}`)}
	now := time.Now()
	for i := range 4 * pollMemoSlots {
		query := fmt.Sprintf("channels=c%d", i)
		_, _, err := p.request(query, time.Second, time.Second)
		require.NoError(t, err)
		e, _, err := p.request(query, time.Second, time.Second)
		require.NoError(t, err)
		require.NotNil(t, e, "admitted on its second sighting")
		res := broker.Result{Messages: []*channel.Message{msg}, Share: new(broker.Share)}
		b := p.answer(s, e, res, "", true, now)
		assert.Same(t, &b[0], &p.answer(s, e, res, "", true, now)[0], "the same bytes within a second")
		p.answer(s, e, res, "", false, now)
		assert.NotSame(t, &b[0], &p.answer(s, e, res, "", true, now.Add(time.Second))[0], "a new Date each second")
	}
	var live int64
	for i := range p.slots {
		if e := p.slots[i].entry.Load(); e != nil {
			if set := e.answers.Load(); set != nil {
				live += set.size
			}
		}
	}
	assert.Equal(t, live, p.bytes.Load())
	assert.LessOrEqual(t, p.bytes.Load(), int64(pollMemoMaxBytes))
	assert.Positive(t, live)
}

// TestCachedPollIsNotAnswerForTheUnauthorised: a query whose answer is
// remembered for a request with a valid token (in a header: the query is
// the same) is still refused to one without, and to one whose token
// expired since.
func TestCachedPollIsNotAnswerForTheUnauthorised(t *testing.T) {
	clock := newTestClock()
	ts := privateServer(t, ModelEvent, clock, nil)
	ts.publish(`{"channels":["user:42"],"data":"private"}`)
	good := hs(t, clock, []string{"user:42"}, time.Minute)
	p := newRawPoller(t, ts)
	const query = "channels=user%3A42&since=0&timeout=0"
	for range 3 {
		a, _ := p.poll(query, "Authorization", "Bearer "+good)
		assert.Equal(t, []string{`"private"`}, a.data())
	}
	e, _, err := ts.srv.event.polls.request(query, time.Second, time.Second)
	require.NoError(t, err)
	require.NotNil(t, e)
	require.NotNil(t, e.answers.Load(), "the answer is remembered")

	status := func(header ...string) int {
		conn, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
		require.NoError(t, err)
		defer conn.Close()
		var extra strings.Builder
		for i := 0; i+1 < len(header); i += 2 {
			fmt.Fprintf(&extra, "%s: %s\r\n", header[i], header[i+1])
		}
		br := bufio.NewReader(conn)
		for range 2 { // both served by the fast path (it fails without its check)
			_, err = fmt.Fprintf(conn, "GET /v1/subscribe?%s HTTP/1.1\r\nHost: pushup\r\n%s\r\n", query, extra.String())
			require.NoError(t, err)
			resp, err := http.ReadResponse(br, nil)
			require.NoError(t, err)
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return resp.StatusCode
			}
		}
		return http.StatusOK
	}
	assert.Equal(t, http.StatusUnauthorized, status())
	clock.advance(2 * time.Minute)
	assert.Equal(t, http.StatusUnauthorized, status("Authorization", "Bearer "+good))
}
