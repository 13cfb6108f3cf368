package api

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// closedWithin reports whether the server closes conn (EOF or reset on a
// read) before limit; what it sends first is discarded.
func closedWithin(conn net.Conn, limit time.Duration) bool {
	conn.SetReadDeadline(time.Now().Add(limit))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// TestSlowHeadIsCutFromItsFirstByte (finding 2, slowloris): a client that
// sends its head a byte at a time is cut off ReadHeaderTimeout after the
// first byte, however often it sends one; in every model, for a head the
// event loop reads itself and for one it hands to http.Server.
func TestSlowHeadIsCutFromItsFirstByte(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model, api: func(c *Config) { c.ReadHeaderTimeout = 300 * time.Millisecond }})
		for _, start := range []string{"GET /v1/subscribe?channels=a HTTP/1.1\r\n", "GET /healthz HTTP/1.1\r\n"} {
			t.Run(strings.Fields(start)[1], func(t *testing.T) {
				conn, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
				require.NoError(t, err)
				defer conn.Close()
				closed := make(chan bool, 1)
				go func() { closed <- closedWithin(conn, 20*time.Second) }()
				// 100 bytes, one every 30 ms: each arrives well within the
				// header timeout of the one before, the whole head never.
				trickle := start + "X-Slow: " + strings.Repeat("a", 100)
				began := time.Now()
				for i := 0; i < len(trickle); i++ {
					if _, err := conn.Write([]byte{trickle[i]}); err != nil {
						break
					}
					select {
					case ok := <-closed:
						require.True(t, ok, "never closed")
						assert.Less(t, time.Since(began), 3*time.Second, "cut well before the trickle ends")
						return
					case <-time.After(30 * time.Millisecond):
					}
				}
				require.True(t, <-closed, "never closed")
				t.Fatalf("the whole trickle (%s) went through before the connection was cut", time.Since(began))
			})
		}
	})
}

// TestUnreadAnswersAreCutByWriteTimeout (finding 5): a client that
// pipelines requests (100,000 GET /healthz in the report; here a larger
// answer, to fill the socket buffers sooner) and never reads the answers is dropped once an answer
// cannot be written for WriteTimeout, in every model.
func TestUnreadAnswersAreCutByWriteTimeout(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model, api: func(c *Config) { c.WriteTimeout = 300 * time.Millisecond }})
		conn, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
		require.NoError(t, err)
		defer conn.Close()
		require.NoError(t, conn.(*net.TCPConn).SetReadBuffer(4096))
		// pushup.js is 20 KB: a few hundred answers fill any socket buffers.
		req := []byte(strings.Repeat("GET /pushup.js HTTP/1.1\r\nHost: a\r\n\r\n", 100))
		require.NoError(t, conn.SetWriteDeadline(time.Now().Add(30*time.Second)))
		// 100,000 requests at once, then more now and then: bounded in
		// count and time. Once the server stops reading, a
		// write blocks until the server gives up on its answers and
		// closes, which fails it.
		for i := range 2000 {
			if _, err = conn.Write(req); err != nil {
				break
			}
			if i >= 1000 {
				time.Sleep(10 * time.Millisecond)
			}
		}
		require.Error(t, err, "the server took every request without its answers being read")
		var ne net.Error
		assert.False(t, errors.As(err, &ne) && ne.Timeout(), "the server stopped reading but never closed: %v", err)
	})
}

// TestNearConnLimitHealthzStillAnswers (finding 2's other half): with
// MaxConns connections open, a new connection is served for /healthz and
// refused with 503 + Retry-After for anything else, and counted; a few
// more past a margin are refused unread.
func TestNearConnLimitHealthzStillAnswers(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		const max = 4
		ts := startServer(t, options{model: model, api: func(c *Config) { c.MaxConns = max }})
		addr := strings.TrimPrefix(ts.url, "http://")
		ask := func(req string) (*http.Response, net.Conn) {
			conn, err := net.Dial("tcp", addr)
			require.NoError(t, err)
			t.Cleanup(func() { conn.Close() })
			_, err = io.WriteString(conn, req)
			require.NoError(t, err)
			require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			require.NoError(t, err)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp, conn
		}
		for range max { // keep-alive connections that stay open
			resp, _ := ask("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.False(t, resp.Close)
		}
		resp, conn := ask("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
		assert.Equal(t, http.StatusOK, resp.StatusCode, "health checks are answered at the limit")
		assert.True(t, resp.Close)
		conn.Close()
		for _, req := range []string{
			"GET /v1/subscribe?channels=a&timeout=0 HTTP/1.1\r\nHost: a\r\n\r\n",
			"POST /v1/publish HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}",
		} {
			resp, conn := ask(req)
			assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, req)
			assert.Equal(t, "1", resp.Header.Get("Retry-After"))
			assert.True(t, resp.Close)
			conn.Close()
		}
		require.Eventually(t, func() bool { return ts.srv.conns.Refused() >= 2 }, 5*time.Second, time.Millisecond)
	})
}
