package api

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Shutdown drains: publishers are refused and the node reports not ready
// while waiting subscribers get their answers, each with a retry hint.
func TestShutdownDrainsWithRetryHint(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model, api: func(c *Config) { c.DrainSpread = 2 * time.Second }})
		const n = 10
		conns := parkRaw(t, ts, n, q("channels", "a", "since", "now", "timeout", "60"))
		require.Eventually(t, func() bool { return ts.b.Stats().Waiters == n }, 10*time.Second, 5*time.Millisecond)

		done := make(chan struct{})
		go func() { ts.shutdown(); close(done) }()
		require.Eventually(t, ts.b.Draining, 10*time.Second, time.Millisecond)
		// The listener still accepts during the drain: the load balancer
		// learns the node is leaving, and publishers go elsewhere.
		r := ts.do(http.MethodGet, "/healthz/ready", "")
		assert.Equal(t, http.StatusServiceUnavailable, r.status)
		r = ts.publish(`{"channels":["a"],"data":1}`)
		assert.Equal(t, http.StatusServiceUnavailable, r.status)
		assert.Equal(t, "shutting_down", r.code(t))

		for _, c := range conns {
			require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			var a struct {
				Messages     []json.RawMessage `json:"messages"`
				RetryAfterMS *int64            `json:"retry_after_ms"`
			}
			require.NoError(t, json.Unmarshal(body, &a), "%s", body)
			assert.Empty(t, a.Messages)
			require.NotNil(t, a.RetryAfterMS, "a drain answer carries a retry hint: %s", body)
			assert.True(t, *a.RetryAfterMS >= 1 && *a.RetryAfterMS <= 1001, "hint %d ms", *a.RetryAfterMS)
			assert.True(t, resp.Close)
			c.Close()
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("shutdown did not finish")
		}
	})
}
