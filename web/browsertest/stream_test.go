package browsertest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/api"
)

// metric reads one unlabelled figure from the server's /metrics.
func metric(t *testing.T, srv *pushupServer, name string) float64 {
	t.Helper()
	resp, err := http.Get(srv.URL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			return f
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func publishTo(t *testing.T, srv *pushupServer, channel string, data any) {
	t.Helper()
	body := fmt.Sprintf(`{"channels":[%q],"data":%q}`, channel, fmt.Sprint(data))
	resp, err := http.Post(srv.URL+"/v1/publish", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
}

// messageData lists the data of the message callbacks in a client log.
func messageData(events []clientEvent) []string {
	var out []string
	for _, e := range events {
		if e.Kind == "message" {
			var s string
			_ = jsonUnmarshal(e.Data, &s)
			out = append(out, s)
		}
	}
	return out
}

func seq(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprint(i))
	}
	return out
}

// TestEventSourcePageReceivesEachMessageOnce: a page's own EventSource,
// no pushup.js, on streams that end every second: the browser reconnects
// by itself with Last-Event-ID, and each message arrives once, in order.
func TestEventSourcePageReceivesEachMessageOnce(t *testing.T) {
	srv := startPushup(t, func(c *api.Config) {
		c.SSE.MaxLifetime = time.Second
		c.SSE.Heartbeat = 200 * time.Millisecond
		c.SSE.Retry = 50 * time.Millisecond
	})
	page := newPage(t, "eventsource")
	run(t, page, chromedp.Navigate(srv.URL+"/healthz"))
	run(t, page, chromedp.Evaluate[chromedp.Void](`(() => {
		window.got = [];
		const es = new EventSource("/v1/events?channels=room&since=now");
		es.onmessage = (e) => got.push(JSON.parse(e.data).data);
	})()`))
	require.Eventually(t, func() bool { return metric(t, srv, "pushup_sse_streams") == 1 }, 5*time.Second, 10*time.Millisecond)

	// Publish across several stream lifetimes: each message after the
	// stream that was open when the last one arrived has ended.
	for i := range 4 {
		started := metric(t, srv, "pushup_sse_streams_started_total")
		publishTo(t, srv, "room", 2*i)
		publishTo(t, srv, "room", 2*i+1)
		waitFor(t, page, "the messages so far", fmt.Sprintf("got.length >= %d", 2*i+2), 5*time.Second)
		require.Eventually(t, func() bool { return metric(t, srv, "pushup_sse_streams_started_total") > started },
			5*time.Second, 10*time.Millisecond, "the stream ends and EventSource reconnects")
	}
	assert.Equal(t, seq(0, 8), eval[[]string](t, page, "got"), "each message once, in order, across reconnections")
}

// TestClientStreamTransport: pushup.js with transport "sse" holds one
// stream, delivers each message once with the same callbacks as long
// polling, and its cursor is the last event's id.
func TestClientStreamTransport(t *testing.T) {
	srv := startPushup(t, nil)
	page := newPage(t, "sse")
	run(t, page, chromedp.Navigate(srv.URL+"/healthz"))
	startClient(t, page, "/pushup.js", "s", []string{"room", "hall"}, `{ transport: "sse", since: "now" }`, "")
	require.Eventually(t, func() bool { return metric(t, srv, "pushup_sse_streams") == 1 }, 5*time.Second, 10*time.Millisecond)
	publishTo(t, srv, "room", 0)
	publishTo(t, srv, "hall", 1)
	publishTo(t, srv, "room", 2)
	waitFor(t, page, "three messages", `logs.s.filter((e) => e.kind === "message").length === 3`, 5*time.Second)
	log := clientLog(t, page, "s")
	assert.Equal(t, seq(0, 3), messageData(log))
	assert.Equal(t, log[len(log)-1].Cursor, eval[string](t, page, "subs.s.cursor"), "the cursor is the last answer's")
	assert.Zero(t, waiting(srv, "room")-1, "one stream, not a poll per message")

	// The cursor resumes a long-poll subscription exactly there.
	run(t, page, chromedp.Evaluate[chromedp.Void](`subs.s.unsubscribe()`))
	require.Eventually(t, func() bool { return metric(t, srv, "pushup_sse_streams") == 0 }, 5*time.Second, 10*time.Millisecond)
	publishTo(t, srv, "hall", 3)
	startClient(t, page, "/pushup.js", "lp", []string{"room", "hall"}, `{ transport: "longpoll", since: subs.s.cursor }`, "")
	waitFor(t, page, "the rest", `logs.lp.some((e) => e.kind === "message")`, 5*time.Second)
	assert.Equal(t, []string{"3"}, messageData(clientLog(t, page, "lp")))
}

// TestClientAutoFallsBackToLongPolling: behind a proxy that breaks
// streams, transport "auto" long-polls after two failed streams.
func TestClientAutoFallsBackToLongPolling(t *testing.T) {
	srv := startPushup(t, nil)
	target, err := url.Parse(srv.URL)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/events" {
			http.Error(w, "no streams here", http.StatusBadGateway)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	page := newPage(t, "auto")
	run(t, page, chromedp.Navigate(front+"/healthz"))
	startClient(t, page, "/pushup.js", "a", []string{"room"}, `{ transport: "auto", since: "now", backoffBase: 10, backoffCap: 20 }`, "")
	require.Eventually(t, func() bool { return waiting(srv, "room") == 1 }, 5*time.Second, 10*time.Millisecond,
		"long polling after the streams failed")
	publishTo(t, srv, "room", 0)
	waitFor(t, page, "the message", `logs.a.some((e) => e.kind === "message")`, 5*time.Second)
	log := clientLog(t, page, "a")
	assert.Equal(t, []string{"0"}, messageData(log))
	assert.Equal(t, "error", log[0].Kind, "the first failure is reported")
	assert.Equal(t, "stream_error", log[0].Code)
	assert.Zero(t, metric(t, srv, "pushup_sse_streams_started_total"))
}

// TestSharedTabsHoldOneConnection: three tabs of one origin subscribe
// with shared: true and hold one stream between them (the server's
// metrics say so); each tab shows each message once; when the leader's
// tab closes, another takes over and the other tabs miss nothing.
func TestSharedTabsHoldOneConnection(t *testing.T) {
	srv := startPushup(t, nil)
	first := newPage(t, "tab1")
	tabs := []context.Context{first}
	var closeFirst context.CancelFunc
	for range 2 {
		ctx, cancel := chromedp.NewContext(first) // a tab in the same browser context
		t.Cleanup(cancel)
		tabs = append(tabs, bounded(t, ctx))
	}
	{
		// The leader: the first tab to subscribe; closed later.
		ctx, cancel := chromedp.NewContext(first)
		closeFirst = cancel
		tabs[0] = bounded(t, ctx)
	}
	for i, tab := range tabs {
		run(t, tab, chromedp.Navigate(srv.URL+"/healthz"))
		startClient(t, tab, "/pushup.js", "s", []string{"room"}, `{ shared: true, transport: "sse", since: "now" }`, "")
		// Subscribed when its own read up to the present is done.
		waitFor(t, tab, "the tab's catch-up", `logs.s.some((e) => e.kind === "answer")`, 5*time.Second)
		if i == 0 {
			require.Eventually(t, func() bool { return metric(t, srv, "pushup_sse_streams") == 1 }, 5*time.Second, 10*time.Millisecond)
		}
	}
	for i := range 5 {
		publishTo(t, srv, "room", i)
	}
	for i, tab := range tabs {
		waitFor(t, tab, "five messages", `logs.s.filter((e) => e.kind === "message").length >= 5`, 5*time.Second)
		assert.Equal(t, seq(0, 5), messageData(clientLog(t, tab, "s")), "tab %d: each message once", i+1)
	}
	assert.EqualValues(t, 1, metric(t, srv, "pushup_sse_streams"), "three tabs, one stream")
	assert.EqualValues(t, 1, metric(t, srv, "pushup_sse_streams_started_total"))
	assert.Equal(t, 1, waiting(srv, "room"))

	// Close the leader's tab and publish while the others take over.
	closeFirst()
	for i := 5; i < 10; i++ {
		publishTo(t, srv, "room", i)
	}
	for i, tab := range tabs[1:] {
		waitFor(t, tab, "ten messages", `logs.s.filter((e) => e.kind === "message").length >= 10`, 10*time.Second)
		assert.Equal(t, seq(0, 10), messageData(clientLog(t, tab, "s")), "tab %d: nothing lost, nothing twice", i+2)
	}
	require.Eventually(t, func() bool { return metric(t, srv, "pushup_sse_streams") == 1 }, 5*time.Second, 10*time.Millisecond,
		"a new leader holds the one stream")
	assert.EqualValues(t, 2, metric(t, srv, "pushup_sse_streams_started_total"))
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
