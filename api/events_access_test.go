package api

import (
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
