package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/api"
	"github.com/pushuphq/pushup/broker"
)

// clientEvent is one callback call pushup.js made, as the page logged it.
type clientEvent struct {
	Kind    string          `json:"kind"` // message, error, closed, truncated, answer
	ID      string          `json:"id"`
	Data    json.RawMessage `json:"data"`
	Status  int             `json:"status"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Cursor  string          `json:"cursor"`
	RetryIn *float64        `json:"retryIn"`
	Attempt int             `json:"attempt"`
}

// startClient subscribes in the page, as subs[name], logging every
// callback into logs[name]. module is where pushup.js is imported from,
// options a JavaScript object literal, and onMessage extra statements run
// for each message m after it is logged.
func startClient(t *testing.T, ctx context.Context, module, name string, channels []string, options, onMessage string) {
	t.Helper()
	chs, _ := json.Marshal(channels)
	run(t, ctx, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(async () => {
		const { subscribe } = await import(%s);
		window.logs ??= {};
		window.subs ??= {};
		const log = (logs[%[2]s] = []);
		subs[%[2]s] = subscribe(%[3]s, (m) => {
			log.push({ kind: "message", id: m.id, data: m.data });
			%[5]s
		}, {
			...%[4]s,
			onError: (e) => log.push({ kind: "error", status: e.status, code: e.code, message: e.message, retryIn: e.retryIn, attempt: e.attempt }),
			onClosed: (e) => log.push({ kind: "closed", status: e.status, code: e.code, message: e.message, cursor: e.cursor, retryIn: e.retryIn }),
			onTruncated: (a) => log.push({ kind: "truncated", cursor: a.cursor }),
			onAnswer: (a) => log.push({ kind: "answer", cursor: a.cursor }),
		});
	})()`, jsString(module), jsString(name), chs, options, onMessage), chromedp.EvalAwaitPromise))
}

func clientLog(t *testing.T, ctx context.Context, name string) []clientEvent {
	t.Helper()
	return eval[[]clientEvent](t, ctx, "logs["+jsString(name)+"]")
}

func kinds(events []clientEvent) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.Kind
		if e.Kind == "message" {
			out[i] += ":" + e.ID
		}
	}
	return out
}

// TestClientRetriesWithBackoff: every kind of failed poll (5xx, 429, a
// proxy's HTML, garbled or cut-off JSON) is retried after a full-jitter
// delay under an exponentially growing, capped ceiling; Retry-After is
// honoured up to the cap; the message that finally arrives is delivered
// once; the next poll starts from its cursor; unsubscribe aborts the poll
// in flight.
func TestClientRetriesWithBackoff(t *testing.T) {
	fake := newFakeServer()
	fake.script("flaky",
		fakeAnswer{status: 500, body: `{"error":"internal","message":"internal error"}`},
		fakeAnswer{status: 503, body: `{"error":"shutting_down","message":"shutting down"}`, header: map[string]string{"Retry-After": "1"}},
		fakeAnswer{status: 429},
		answerOK(`<html><body>It works!</body></html>`),
		answerOK(`{"messages":[{"id":"m1","time":1,"chan`),
		answerOK(`{"messages":"none","cursor":"c0"}`),
		fakeAnswer{status: 502, body: `<html><h1>502 Bad Gateway</h1></html>`, header: map[string]string{"Content-Type": "text/html"}},
		answerOK(`{"messages":[{"id":"m1","time":1,"channels":["flaky"],"data":"finally"}],"cursor":"c1","more":false,"truncated":false}`),
	)
	url := serve(t, fake)
	ctx := newPage(t, "page")
	run(t, ctx, chromedp.Navigate(url+"/"))

	const base, ceiling = 40, 160 // ms
	startClient(t, ctx, "/pushup.js", "flaky", []string{"flaky"}, fmt.Sprintf(`{ timeout: 7, backoffBase: %d, backoffCap: %d }`, base, ceiling), "")
	waitFor(t, ctx, "the answer after 7 failures", `logs.flaky.some((e) => e.kind === "answer")`, 10*time.Second)
	require.Eventually(t, func() bool { return len(fake.requests("flaky")) == 9 }, 5*time.Second, 5*time.Millisecond,
		"the poll after the answer is in flight")

	log := clientLog(t, ctx, "flaky")
	require.Equal(t, []string{"error", "error", "error", "error", "error", "error", "error", "message:m1", "answer"}, kinds(log))
	wantErrors := []struct {
		status int
		code   string
	}{
		{500, "internal"}, {503, "shutting_down"}, {429, "http_error"},
		{200, "invalid_response"}, {200, "invalid_response"}, {200, "invalid_response"}, {502, "http_error"},
	}
	reqs := fake.requests("flaky")
	for i, want := range wantErrors {
		e := log[i]
		assert.Equal(t, want.status, e.Status, "error %d", i)
		assert.Equal(t, want.code, e.Code, "error %d", i)
		assert.Equal(t, i+1, e.Attempt, "error %d: attempts count up while failures continue", i)
		require.NotNil(t, e.RetryIn, "error %d", i)
		assert.GreaterOrEqual(t, *e.RetryIn, 0.0)
		if want.status != 503 { // the one with Retry-After, below
			limit := min(ceiling, base<<i)
			assert.LessOrEqual(t, *e.RetryIn, float64(limit), "error %d: full jitter below min(cap, base*2^n)", i)
		}
		// The client really waited: the next poll came retryIn ms or more
		// after this answer left the server.
		gap := reqs[i+1].at.Sub(reqs[i].answered)
		assert.GreaterOrEqual(t, gap, time.Duration(*e.RetryIn)*time.Millisecond-time.Millisecond, "error %d: gap %s", i, gap)
	}
	assert.Equal(t, float64(ceiling), *log[1].RetryIn, "Retry-After: 1 (s) waits the cap, 160 ms, not less")
	assert.Contains(t, log[3].Message, "It works!", "the message quotes the unexpected body")
	assert.JSONEq(t, `"finally"`, string(log[7].Data))

	for i, r := range reqs {
		assert.Equal(t, "7", r.timeout, "poll %d", i)
		if i < 8 {
			assert.Empty(t, r.since, "poll %d: no answer yet, so still from the start", i)
		}
	}
	assert.Equal(t, "c1", reqs[8].since, "the poll after an answer starts from its cursor")

	run(t, ctx, chromedp.Evaluate[chromedp.Void](`subs.flaky.unsubscribe()`))
	require.Eventually(t, func() bool { return fake.abandonedPolls("flaky") == 1 }, 5*time.Second, 5*time.Millisecond,
		"unsubscribe aborts the poll in flight")
	assert.False(t, eval[bool](t, ctx, `subs.flaky.active`))
	assert.Len(t, fake.requests("flaky"), 9, "no poll after unsubscribe")
}

// TestClientStopsWhenTheServerSaysSo: 410 channel_closed and errors that
// retrying cannot fix end the subscription with one onClosed call and no
// further poll.
func TestClientStopsWhenTheServerSaysSo(t *testing.T) {
	fake := newFakeServer()
	fake.script("closed", fakeAnswer{status: http.StatusGone,
		body: `{"error":"channel_closed","message":"every channel of this subscription was closed","cursor":"cz"}`})
	fake.script("bad", fakeAnswer{status: http.StatusBadRequest,
		body: `{"error":"invalid_since","message":"since: pass back the cursor unchanged"}`})
	url := serve(t, fake)
	ctx := newPage(t, "page")
	run(t, ctx, chromedp.Navigate(url+"/"))

	startClient(t, ctx, "/pushup.js", "closed", []string{"closed"}, `{ backoffBase: 10, backoffCap: 20 }`, "")
	startClient(t, ctx, "/pushup.js", "bad", []string{"bad"}, `{ since: "c-garbled", backoffBase: 10, backoffCap: 20 }`, "")
	waitFor(t, ctx, "both subscriptions closed", `!subs.closed.active && !subs.bad.active`, 5*time.Second)

	closed := clientLog(t, ctx, "closed")
	require.Equal(t, []string{"closed"}, kinds(closed))
	assert.Equal(t, 410, closed[0].Status)
	assert.Equal(t, "channel_closed", closed[0].Code)
	assert.Equal(t, "cz", closed[0].Cursor, "the cursor to resume from if the channels reopen")
	assert.Nil(t, closed[0].RetryIn, "no retry")

	bad := clientLog(t, ctx, "bad")
	require.Equal(t, []string{"closed"}, kinds(bad))
	assert.Equal(t, 400, bad[0].Status)
	assert.Equal(t, "invalid_since", bad[0].Code)
	assert.Contains(t, bad[0].Message, "pass back the cursor")

	// The loops have returned (active is false only then), so these counts
	// are final.
	assert.Len(t, fake.requests("closed"), 1)
	require.Len(t, fake.requests("bad"), 1)
	assert.Equal(t, "c-garbled", fake.requests("bad")[0].since)
}

// TestClientMoreTruncatedAndCallbacks: a "more" answer is followed at once
// by the next poll from its cursor; truncated is reported before the
// answer's messages; a callback that throws does not stop delivery; an
// unsubscribe inside a callback skips the rest of the answer and leaves
// the cursor at the answer's start.
func TestClientMoreTruncatedAndCallbacks(t *testing.T) {
	fake := newFakeServer()
	fake.script("more",
		answerOK(`{"messages":[{"id":"a","time":1,"channels":["more"],"data":1}],"cursor":"t1","more":true,"truncated":true}`),
		answerOK(`{"messages":[{"id":"b","time":2,"channels":["more"],"data":2},{"id":"c","time":3,"channels":["more"],"data":3}],"cursor":"t2","more":false,"truncated":false}`),
	)
	fake.script("stop",
		answerOK(`{"messages":[{"id":"x","time":1,"channels":["stop"],"data":0},{"id":"y","time":2,"channels":["stop"],"data":0},{"id":"z","time":3,"channels":["stop"],"data":0}],"cursor":"s1","more":false,"truncated":false}`),
	)
	url := serve(t, fake)
	ctx := newPage(t, "page")
	run(t, ctx, chromedp.Navigate(url+"/"))

	startClient(t, ctx, "/pushup.js", "more", []string{"more"}, `{ since: 1234 }`,
		`if (m.id === "a") throw new Error("a bug in the page's callback");`)
	startClient(t, ctx, "/pushup.js", "stop", []string{"stop"}, `{ since: "now" }`,
		`if (m.id === "y") subs.stop.unsubscribe();`)
	waitFor(t, ctx, "both answers of 'more'", `logs.more.filter((e) => e.kind === "answer").length === 2`, 5*time.Second)
	waitFor(t, ctx, "'stop' stopped", `!subs.stop.active`, 5*time.Second)
	require.Eventually(t, func() bool { return len(fake.requests("more")) == 3 }, 5*time.Second, 5*time.Millisecond)

	log := clientLog(t, ctx, "more")
	assert.Equal(t, []string{"truncated", "message:a", "answer", "message:b", "message:c", "answer"}, kinds(log),
		"truncated first; b and c arrive although the callback threw on a")
	reqs := fake.requests("more")
	assert.Equal(t, []string{"1234", "t1", "t2"}, []string{reqs[0].since, reqs[1].since, reqs[2].since})
	assert.Less(t, reqs[1].at.Sub(reqs[0].answered), 500*time.Millisecond, "more: the next poll goes at once")
	assert.Equal(t, "t2", eval[string](t, ctx, `subs.more.cursor`))

	assert.Equal(t, []string{"message:x", "message:y"}, kinds(clientLog(t, ctx, "stop")), "nothing after unsubscribe")
	assert.Equal(t, "now", eval[string](t, ctx, `subs.stop.cursor`), "z was not delivered, so the cursor stays")
	assert.Len(t, fake.requests("stop"), 1)
	assert.Equal(t, "now", fake.requests("stop")[0].since)

	run(t, ctx, chromedp.Evaluate[chromedp.Void](`subs.more.unsubscribe()`))
	require.Eventually(t, func() bool { return fake.abandonedPolls("more") == 1 }, 5*time.Second, 5*time.Millisecond)
}

// TestClientCrossOrigin: a page on another origin imports pushup.js from
// the PushUp server and subscribes through CORS, by default to the server
// it loaded pushup.js from. A server whose -cors-origins leaves that
// origin out is refused by the browser, and the client keeps retrying.
func TestClientCrossOrigin(t *testing.T) {
	srv := startPushup(t, nil)
	strict := startPushup(t, func(c *api.Config) { c.CORSOrigins = []string{"https://pages.example"} })
	page := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte("<!doctype html><title>a page on another origin</title>"))
	}))
	require.NotEqual(t, page, srv.URL)
	ctx := newPage(t, "page")
	run(t, ctx, chromedp.Navigate(page+"/"))

	_, err := srv.B.Publish(broker.Publication{Channels: []string{"news"}, Data: json.RawMessage(`"cached"`)})
	require.NoError(t, err)
	startClient(t, ctx, srv.URL+"/pushup.js", "news", []string{"news", "weather"}, `{}`, "")
	waitFor(t, ctx, "the cached message", `logs.news.some((e) => e.kind === "message")`, 5*time.Second)
	require.Eventually(t, func() bool { return waiting(srv, "news") == 1 && waiting(srv, "weather") == 1 },
		5*time.Second, 5*time.Millisecond, "the poll after the first answer waits")
	_, err = srv.B.Publish(broker.Publication{Channels: []string{"weather", "news"}, Data: json.RawMessage(`"live"`)})
	require.NoError(t, err)
	waitFor(t, ctx, "the live message", `logs.news.filter((e) => e.kind === "message").length === 2`, 5*time.Second)
	log := clientLog(t, ctx, "news")
	var data []string
	for _, e := range log {
		if e.Kind == "message" {
			data = append(data, string(e.Data))
		}
		assert.NotEqual(t, "error", e.Kind, "%+v", e)
	}
	assert.Equal(t, []string{`"cached"`, `"live"`}, data, "each once, in order")

	// The server does not refuse the origin; it answers without CORS
	// headers and the browser discards the answer. A short timeout makes
	// that answer come soon.
	startClient(t, ctx, strict.URL+"/pushup.js", "strict", []string{"news"}, `{ timeout: 0.2, backoffBase: 50, backoffCap: 100 }`, "")
	waitFor(t, ctx, "a refused poll", `logs.strict.some((e) => e.kind === "error")`, 5*time.Second)
	refused := clientLog(t, ctx, "strict")[0]
	assert.Equal(t, 0, refused.Status, "a CORS refusal looks like a network failure to the page")
	assert.Equal(t, "network_error", refused.Code)
	assert.True(t, eval[bool](t, ctx, `subs.strict.active`), "and it keeps retrying")
	assert.True(t, strings.HasPrefix(eval[string](t, ctx, `location.origin`), page))
}
