package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/broker"
)

// testServer is a Server on a random loopback port.
type testServer struct {
	t      testing.TB
	srv    *Server
	b      *broker.Broker
	url    string
	client *http.Client
	served chan error
}

type options struct {
	model  Model
	broker func(*broker.Config)
	api    func(*Config)
}

// models are the ways a waiting request can be held; the HTTP suite runs
// against each.
var models = []Model{ModelEvent, ModelGoroutine, ModelThread}

// eachModel runs fn as a subtest per model.
func eachModel(t *testing.T, fn func(t *testing.T, m Model)) {
	for _, m := range models {
		t.Run(string(m), func(t *testing.T) { fn(t, m) })
	}
}

func startServer(t testing.TB, opts options) *testServer {
	t.Helper()
	bc := broker.DefaultConfig()
	if opts.broker != nil {
		opts.broker(&bc)
	}
	b, err := broker.New(bc)
	require.NoError(t, err)
	ac := DefaultConfig()
	ac.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if opts.model != "" {
		ac.Model = opts.model
	}
	if opts.api != nil {
		opts.api(&ac)
	}
	srv, err := New(b, ac)
	require.NoError(t, err)
	require.Equal(t, ac.Model, srv.Model(), "the model asked for is the one in use")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ts := &testServer{
		t: t, srv: srv, b: b,
		url:    "http://" + ln.Addr().String(),
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		served: make(chan error, 1),
	}
	go func() { ts.served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ts.shutdown()
		ts.client.CloseIdleConnections()
	})
	return ts
}

func (ts *testServer) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(ts.t, ts.srv.Shutdown(ctx))
	require.NoError(ts.t, <-ts.served)
	ts.served <- nil // a second shutdown reads this
}

// response is a decoded HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal(r.body, &v), "body: %s", r.body)
	return v
}

func (r response) code(t *testing.T) string {
	t.Helper()
	v := r.json(t)
	require.Contains(t, v, "message", "error bodies carry a message")
	return v["error"].(string)
}

func (ts *testServer) do(method, path, body string, header ...string) response {
	ts.t.Helper()
	req, err := http.NewRequest(method, ts.url+path, strings.NewReader(body))
	require.NoError(ts.t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := ts.client.Do(req)
	require.NoError(ts.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(ts.t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (ts *testServer) publish(body string) response {
	ts.t.Helper()
	return ts.do(http.MethodPost, "/v1/publish", body)
}

// subAnswer is a decoded subscribe answer.
type subAnswer struct {
	Messages []struct {
		ID       string          `json:"id"`
		Time     int64           `json:"time"`
		Channels []string        `json:"channels"`
		Data     json.RawMessage `json:"data"`
	} `json:"messages"`
	Cursor    string `json:"cursor"`
	More      bool   `json:"more"`
	Truncated bool   `json:"truncated"`
}

func (a subAnswer) data() []string {
	out := make([]string, len(a.Messages))
	for i, m := range a.Messages {
		out[i] = string(m.Data)
	}
	return out
}

func (ts *testServer) subscribe(query string) (subAnswer, response) {
	ts.t.Helper()
	r := ts.do(http.MethodGet, "/v1/subscribe?"+query, "")
	var a subAnswer
	if r.status == http.StatusOK {
		require.NoError(ts.t, json.Unmarshal(r.body, &a), "body: %s", r.body)
		require.NotEmpty(ts.t, a.Cursor, "every answer has a cursor")
	}
	return a, r
}

func q(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v.Encode()
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// goroutinesAsEventuallySees counts goroutines from inside a
// require.Eventually condition, which runs on a goroutine of testify's: a
// baseline to compare later counts taken the same way with.
func goroutinesAsEventuallySees(t *testing.T) int {
	var n int
	require.Eventually(t, func() bool { n = runtime.NumGoroutine(); return true }, time.Second, time.Millisecond)
	return n
}
