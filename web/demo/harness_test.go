package demo

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pushuphq/pushup/api"
	"github.com/pushuphq/pushup/broker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testServer is a pushup server with the demo plugged in, on loopback.
type testServer struct {
	t      *testing.T
	url    string
	client *http.Client
}

// withDemo plugs the demo, with its default limits, into a server.
func withDemo(c *api.Config) {}

// startServer serves the API on a free loopback port, with the demo
// plugged in unless configure sets Plugins itself; the test's cleanup
// shuts it down.
func startServer(t *testing.T, configure func(*api.Config)) *testServer {
	t.Helper()
	b, err := broker.New(broker.DefaultConfig())
	require.NoError(t, err)
	p, err := NewPlugin(DefaultConfig())
	require.NoError(t, err)
	ac := api.DefaultConfig()
	ac.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	ac.Plugins = []api.Plugin{p}
	configure(&ac)
	srv, err := api.New(b, ac)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	ts := &testServer{t: t, url: "http://" + ln.Addr().String(), client: &http.Client{}}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, srv.Shutdown(ctx))
		require.NoError(t, <-served)
		ts.client.CloseIdleConnections()
	})
	return ts
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

// code is an error answer's "error"; every one also has a message.
func (r response) code(t *testing.T) string {
	t.Helper()
	v := r.json(t)
	require.Contains(t, v, "message", "error bodies carry a message")
	return v["error"].(string)
}

// do sends one request with header's name-value pairs.
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

// subAnswer is a subscribe answer.
type subAnswer struct {
	Messages []struct {
		ID   string          `json:"id"`
		Data json.RawMessage `json:"data"`
	} `json:"messages"`
	Cursor string `json:"cursor"`
}

func (ts *testServer) subscribe(query string) (subAnswer, response) {
	ts.t.Helper()
	r := ts.do(http.MethodGet, "/v1/subscribe?"+query, "")
	var a subAnswer
	if r.status == http.StatusOK {
		require.NoError(ts.t, json.Unmarshal(r.body, &a), "body: %s", r.body)
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
