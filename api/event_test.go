package api

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/broker"
)

// rawClient is one keep-alive HTTP/1.1 connection driven by hand.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t *testing.T, ts *testServer) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, conn: c, r: bufio.NewReader(c)}
}

func (c *rawClient) send(method, target, body string) {
	c.t.Helper()
	req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: pushup\r\nContent-Length: %d\r\n\r\n%s", method, target, len(body), body)
	if method == http.MethodGet {
		req = fmt.Sprintf("GET %s HTTP/1.1\r\nHost: pushup\r\n\r\n", target)
	}
	_, err := io.WriteString(c.conn, req)
	require.NoError(c.t, err)
}

func (c *rawClient) read() (*http.Response, string) {
	c.t.Helper()
	require.NoError(c.t, c.conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	resp, err := http.ReadResponse(c.r, nil)
	require.NoError(c.t, err)
	b, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	resp.Body.Close()
	return resp, string(b)
}

func (ts *testServer) metric(name string) float64 {
	ts.t.Helper()
	r := ts.do(http.MethodGet, "/metrics", "")
	for _, l := range strings.Split(string(r.body), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	ts.t.Fatalf("metric %s not found", name)
	return 0
}

// TestParkedConnectionServesTheNextRequests: a connection that waited is
// an ordinary keep-alive connection afterwards, whatever comes next.
func TestParkedConnectionServesTheNextRequests(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model})
		c := dialRaw(t, ts)

		c.send(http.MethodGet, "/v1/subscribe?channels=a&since=now&timeout=30", "")
		require.Eventually(t, func() bool { return ts.b.Stats().Waiters == 1 }, 5*time.Second, time.Millisecond)
		if model == ModelEvent {
			assert.EqualValues(t, 1, ts.metric("pushup_event_parked"))
		}
		ts.publish(`{"channels":["a"],"data":"one"}`)
		resp, body := c.read()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.False(t, resp.Close)
		assert.Contains(t, body, `"one"`)
		var a subAnswer
		require.NoError(t, jsonUnmarshal([]byte(body), &a))

		// The next poll on the same connection parks again.
		c.send(http.MethodGet, "/v1/subscribe?channels=a&timeout=30&since="+a.Cursor, "")
		require.Eventually(t, func() bool { return ts.b.Stats().Waiters == 1 }, 5*time.Second, time.Millisecond)
		ts.publish(`{"channels":["a"],"data":"two"}`)
		_, body = c.read()
		assert.Contains(t, body, `"two"`)
		assert.NotContains(t, body, `"one"`)

		// A request the event loop does not serve itself, then a cached
		// answer, then an error: all on the same connection.
		c.send(http.MethodPost, "/v1/publish", `{"channels":["b"],"data":"via handback"}`)
		resp, body = c.read()
		assert.Equal(t, http.StatusCreated, resp.StatusCode, body)
		c.send(http.MethodGet, "/v1/subscribe?channels=b&timeout=0", "")
		_, body = c.read()
		assert.Contains(t, body, `"via handback"`)
		c.send(http.MethodGet, "/v1/subscribe?channels=b&timeout=-1", "")
		resp, body = c.read()
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		assert.Contains(t, body, "invalid_timeout")
		if model == ModelEvent {
			assert.GreaterOrEqual(t, ts.metric("pushup_event_requests_total"), 1.0, "the second poll was served by the event loop")
			assert.GreaterOrEqual(t, ts.metric("pushup_event_handbacks_total"), 1.0)
		}
	})
}

// TestPipelinedRequestAfterParkedOne: a request sent before the parked one
// is answered is served, in order, after it.
func TestPipelinedRequestAfterParkedOne(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model})
		c := dialRaw(t, ts)
		_, err := io.WriteString(c.conn,
			"GET /v1/subscribe?channels=a&since=now&timeout=30 HTTP/1.1\r\nHost: x\r\n\r\n"+
				"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		require.Eventually(t, func() bool { return ts.b.Stats().Waiters == 1 }, 5*time.Second, time.Millisecond)
		ts.publish(`{"channels":["a"],"data":"first"}`)
		_, body := c.read()
		assert.Contains(t, body, `"first"`)
		resp, body := c.read()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Contains(t, body, `"status":"ok"`)
	})
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

// TestThousandVanishingClients: 1,000 clients park and then go away; no
// subscription, socket or goroutine is left behind.
func TestThousandVanishingClients(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts sockets through /proc")
	}
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model})
		ts.do(http.MethodGet, "/healthz", "") // warm the client's connection pool
		goroutines, fds := goroutinesAsEventuallySees(t), openFDs(t)
		const n = 1000
		conns := parkRaw(t, ts, n, q("channels", "a,b", "since", "now", "timeout", "60"))
		require.Eventually(t, func() bool { return ts.b.Stats().Waiters == 2*n }, 20*time.Second, 5*time.Millisecond)
		for _, c := range conns {
			c.Close()
		}
		require.Eventually(t, func() bool { return ts.b.Stats().Waiters == 0 }, 10*time.Second, 5*time.Millisecond)
		require.Eventually(t, func() bool { return openFDs(t) <= fds }, 10*time.Second, 5*time.Millisecond,
			"server sockets never closed")
		var now int
		require.Eventually(t, func() bool { now = runtime.NumGoroutine(); return now <= goroutines }, 10*time.Second, 5*time.Millisecond,
			"goroutines never came back to %d", goroutines)
		assert.EqualValues(t, n, ts.b.Stats().Cancelled)
		if model == ModelEvent {
			assert.Zero(t, ts.metric("pushup_event_connections"))
			assert.EqualValues(t, n, ts.metric("pushup_event_vanished_total"))
		}
	})
}

// TestSlowClientIsDroppedWithoutStallingOthers: a subscriber that stops
// reading its (large) answer is dropped after the write timeout and
// counted; subscribers that read get the same answer in full meanwhile.
func TestSlowClientIsDroppedWithoutStallingOthers(t *testing.T) {
	ts := startServer(t, options{model: ModelEvent,
		api: func(c *Config) { c.WriteTimeout = 2 * time.Second; c.MaxBodyBytes = 16 << 20 },
	})
	slow := dialRaw(t, ts)
	require.NoError(t, slow.conn.(*net.TCPConn).SetReadBuffer(4096))
	slow.send(http.MethodGet, "/v1/subscribe?channels=big&since=now&timeout=30", "")
	fast := make([]*rawClient, 2)
	for i := range fast {
		fast[i] = dialRaw(t, ts)
		fast[i].send(http.MethodGet, "/v1/subscribe?channels=big&since=now&timeout=30", "")
	}
	require.Eventually(t, func() bool { return ts.b.Stats().Waiters == 3 }, 5*time.Second, time.Millisecond)

	// 6 MB: more than loopback socket buffers hold for a client that does
	// not read, so its write cannot complete.
	const size = 6 << 20
	r := ts.publish(`{"channels":["big"],"data":"` + strings.Repeat("x", size) + `"}`)
	require.Equal(t, http.StatusCreated, r.status, "%.200s", r.body)
	var readers sync.WaitGroup
	for _, c := range fast {
		readers.Go(func() { // real clients read in parallel
			resp, body := c.read()
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Greater(t, len(body), size)
		})
	}
	readers.Wait()
	require.Eventually(t, func() bool { return ts.metric("pushup_event_slow_clients_dropped_total") == 1 }, 20*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return ts.metric("pushup_event_connections") == 2 }, 5*time.Second, 10*time.Millisecond,
		"the slow client's connection was closed, the readers' kept")
}

// writeSelfSigned writes a throwaway certificate for 127.0.0.1.
func writeSelfSigned(t *testing.T) (certFile, keyFile string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "pushup test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600))
	return certFile, keyFile
}

// TestHTTP2OverTLSFallsBackToGoroutines: the event model cannot hijack an
// HTTP/2 stream, so such subscribers wait in a goroutine, and work.
func TestHTTP2OverTLSFallsBackToGoroutines(t *testing.T) {
	b, err := broker.New(broker.DefaultConfig())
	require.NoError(t, err)
	srv, err := New(b, DefaultConfig())
	require.NoError(t, err)
	require.Equal(t, ModelEvent, srv.Model())
	certFile, keyFile := writeSelfSigned(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, certFile, keyFile) }()
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		ForceAttemptHTTP2: true,
	}}
	defer client.CloseIdleConnections()
	base := "https://" + ln.Addr().String()

	got := make(chan *http.Response, 1)
	go func() {
		resp, err := client.Get(base + "/v1/subscribe?channels=a&since=now&timeout=30")
		if assert.NoError(t, err) {
			got <- resp
		}
	}()
	require.Eventually(t, func() bool { return b.Stats().Waiters == 1 }, 5*time.Second, time.Millisecond)
	assert.Zero(t, srv.event.e.Stats().Parked, "not parked: waits in its goroutine")
	_, err = b.Publish(broker.Publication{Channels: []string{"a"}, Data: []byte(`"over h2"`)})
	require.NoError(t, err)
	resp := <-got
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 2, resp.ProtoMajor)
	assert.Contains(t, string(body), `"over h2"`)

	ctx, cancel := contextWithTimeout(10 * time.Second)
	defer cancel()
	require.NoError(t, srv.Shutdown(ctx))
	require.NoError(t, <-served)
}
