package api

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCORSOnSubscribeOnly(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model})
		_, r := ts.subscribe(q("channels", "a", "timeout", "0"))
		assert.Empty(t, r.header.Get("Access-Control-Allow-Origin"), "no Origin, no CORS headers")

		r = ts.do(http.MethodGet, "/v1/subscribe?channels=a&timeout=0", "", "Origin", "https://app.example")
		assert.Equal(t, "*", r.header.Get("Access-Control-Allow-Origin"))
		assert.Equal(t, "Retry-After", r.header.Get("Access-Control-Expose-Headers"),
			"pushup.js on another origin must see Retry-After to honour it")

		r = ts.do(http.MethodOptions, "/v1/subscribe", "", "Origin", "https://app.example",
			"Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "x-requested-with")
		assert.Equal(t, http.StatusNoContent, r.status)
		assert.Equal(t, "*", r.header.Get("Access-Control-Allow-Origin"))
		assert.Contains(t, r.header.Get("Access-Control-Allow-Methods"), "GET")
		assert.Equal(t, "x-requested-with", r.header.Get("Access-Control-Allow-Headers"))

		r = ts.do(http.MethodPost, "/v1/publish", `{"channels":["a"],"data":1}`, "Origin", "https://app.example")
		assert.Equal(t, http.StatusCreated, r.status)
		assert.Empty(t, r.header.Get("Access-Control-Allow-Origin"), "publishers get no CORS")

		r = ts.do(http.MethodOptions, "/v1/subscribe", "")
		assert.Equal(t, http.StatusNoContent, r.status)
		assert.Equal(t, "GET, OPTIONS", r.header.Get("Allow"))
	})
}

func TestCORSAllowList(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model, api: func(c *Config) { c.CORSOrigins = []string{"https://good.example"} }})
		r := ts.do(http.MethodGet, "/v1/subscribe?channels=a&timeout=0", "", "Origin", "https://good.example")
		assert.Equal(t, "https://good.example", r.header.Get("Access-Control-Allow-Origin"))
		assert.Contains(t, r.header.Values("Vary"), "Origin")
		r = ts.do(http.MethodGet, "/v1/subscribe?channels=a&timeout=0", "", "Origin", "https://evil.example")
		assert.Empty(t, r.header.Get("Access-Control-Allow-Origin"))
		r = ts.do(http.MethodOptions, "/v1/subscribe", "", "Origin", "https://evil.example", "Access-Control-Request-Method", "GET")
		assert.Empty(t, r.header.Get("Access-Control-Allow-Methods"))
	})
}

func TestPublisherKey(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model, api: func(c *Config) { c.PublisherKey = "s3cret" }})
		guarded := []struct{ method, path, body string }{
			{http.MethodPost, "/v1/publish", `{"channels":["a"],"data":1}`},
			{http.MethodPost, "/v1/channels", ``},
			{http.MethodPut, "/v1/channels/a", ``},
			{http.MethodGet, "/v1/channels/a", ``},
			{http.MethodDelete, "/v1/channels/a", ``},
			{http.MethodPost, "/v1/channels/a/messages", `x`},
		}
		for _, g := range guarded {
			for _, auth := range []string{"", "Bearer wrong", "s3cret", "Bearer s3cret2", "bearer s3cret"} {
				r := ts.do(g.method, g.path, g.body, "Authorization", auth)
				assert.Equal(t, http.StatusUnauthorized, r.status, "%s %s with %q", g.method, g.path, auth)
				assert.Equal(t, "unauthorized", r.code(t))
				assert.Contains(t, r.header.Get("WWW-Authenticate"), "Bearer")
			}
		}
		assert.Zero(t, ts.b.Stats().Channels, "rejected requests changed nothing")
		for _, g := range guarded {
			r := ts.do(g.method, g.path, g.body, "Authorization", "Bearer s3cret")
			assert.Less(t, r.status, 300, "%s %s: %s", g.method, g.path, r.body)
		}
		_, r := ts.subscribe(q("channels", "b", "timeout", "0"))
		assert.Equal(t, http.StatusOK, r.status, "subscribers need no key")
		assert.Equal(t, http.StatusOK, ts.do(http.MethodGet, "/healthz", "").status)
	})
}

func TestUnknownRouteAndMethod(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model})
		r := ts.do(http.MethodGet, "/v2/publish", "")
		assert.Equal(t, http.StatusNotFound, r.status)
		assert.Equal(t, "not_found", r.code(t))

		r = ts.do(http.MethodGet, "/v1/publish", "")
		assert.Equal(t, http.StatusMethodNotAllowed, r.status)
		assert.Equal(t, "method_not_allowed", r.code(t))
		assert.Equal(t, "POST", r.header.Get("Allow"))

		r = ts.do(http.MethodPatch, "/v1/channels/x", "")
		assert.Equal(t, http.StatusMethodNotAllowed, r.status)
		assert.Equal(t, "GET, PUT, DELETE", r.header.Get("Allow"))

		r = ts.do(http.MethodPost, "/v1/subscribe", "")
		assert.Equal(t, http.StatusMethodNotAllowed, r.status)
		assert.Equal(t, "GET, OPTIONS", r.header.Get("Allow"))
	})
}

func TestHealthAndMetrics(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model})
		r := ts.do(http.MethodGet, "/healthz", "")
		assert.Equal(t, http.StatusOK, r.status)
		assert.Equal(t, "ok", r.json(t)["status"])

		ts.publish(`{"channels":["a","b"],"data":1}`)
		ts.subscribe(q("channels", "a", "timeout", "0"))
		r = ts.do(http.MethodGet, "/metrics", "")
		require.Equal(t, http.StatusOK, r.status)
		body := string(r.body)
		for _, want := range []string{
			"pushup_channels 2",
			"pushup_cached_messages 2",
			"pushup_waiting_subscribers 0",
			"pushup_publications_total 1",
			"pushup_deliveries_total 1",
			`pushup_subscribe_answers_total{reason="messages"} 1`,
			`pushup_http_request_duration_seconds_count{code="201",method="POST",route="/v1/publish"} 1`,
			`pushup_http_request_duration_seconds_count{code="200",method="GET",route="/v1/subscribe"} 1`,
			"process_resident_memory_bytes",
			"go_goroutines",
		} {
			assert.Contains(t, body, want)
		}
	})
}

func TestHealthReportsShutdown(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model})
		ts.b.Close()
		rec := httptest.NewRecorder()
		ts.srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
		r := ts.publish(`{"channels":["a"],"data":1}`)
		assert.Equal(t, http.StatusServiceUnavailable, r.status)
		assert.Equal(t, "shutting_down", r.code(t))
		assert.Equal(t, "1", r.header.Get("Retry-After"))
	})
}

func TestSlowHeadersAreCutOff(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model, api: func(c *Config) { c.ReadHeaderTimeout = 100 * time.Millisecond }})
		conn, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
		require.NoError(t, err)
		defer conn.Close()
		_, err = io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n") // never finished
		require.NoError(t, err)
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
		_, err = io.ReadAll(conn)
		assert.NoError(t, err, "the server closed the connection (EOF) rather than waiting for our deadline")
	})
}

// parkRaw opens n raw connections, each a waiting subscribe.
func parkRaw(t testing.TB, ts *testServer, n int, query string) []net.Conn {
	t.Helper()
	return rawGets(t, ts, n, "/v1/subscribe?"+query)
}

// rawGets opens n raw connections, each sending one GET of target.
func rawGets(t testing.TB, ts *testServer, n int, target string) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
		require.NoError(t, err)
		_, err = fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: pushup\r\n\r\n", target)
		require.NoError(t, err)
		conns[i] = c
	}
	return conns
}

func TestClientsVanishingWhileWaitingLeaveNothing(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model})
		ts.do(http.MethodGet, "/healthz", "") // the server is up and the client pool warm
		baseline := goroutinesAsEventuallySees(t)
		const n = 200
		conns := parkRaw(t, ts, n, q("channels", "a,b", "since", "now", "timeout", "60"))
		require.Eventually(t, func() bool { return ts.b.Stats().Waiters == 2*n }, 10*time.Second, 5*time.Millisecond)
		for _, c := range conns {
			c.Close()
		}
		require.Eventually(t, func() bool { return ts.b.Stats().Waiters == 0 }, 10*time.Second, 5*time.Millisecond,
			"every subscription removed from both channels")
		require.Eventually(t, func() bool { return runtime.NumGoroutine() <= baseline }, 10*time.Second, 10*time.Millisecond,
			"handler goroutines gone")
		assert.EqualValues(t, n, ts.b.Stats().Cancelled)
		// The channels still work for the next subscriber.
		ts.publish(`{"channels":["a"],"data":1}`)
		a, _ := ts.subscribe(q("channels", "a", "timeout", "0"))
		assert.Equal(t, []string{"1"}, a.data())
	})
}

func TestShutdownAnswersWaitersWithCursor(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model})
		ts.publish(`{"channels":["a"],"data":"seen"}`)
		first, _ := ts.subscribe(q("channels", "a", "timeout", "0"))
		conns := parkRaw(t, ts, 20, q("channels", "a", "since", first.Cursor, "timeout", "60"))
		require.Eventually(t, func() bool { return ts.b.Stats().Waiters == 20 }, 10*time.Second, 5*time.Millisecond)

		done := make(chan struct{})
		go func() { ts.shutdown(); close(done) }()
		for _, c := range conns {
			require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.True(t, resp.Close, "Connection: close, so the client reconnects elsewhere")
			assert.Contains(t, string(body), `"cursor":"`+first.Cursor+`"`, "resumes exactly where it was")
			c.Close()
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("shutdown did not finish")
		}
		_, err := ts.client.Get(ts.url + "/healthz")
		assert.Error(t, err, "no longer accepting")
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		assert.NoError(t, ts.srv.Shutdown(ctx), "shutting down twice is harmless")
	})
}
