package api

import (
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMaxConnsPerIP(t *testing.T) {
	eachModel(t, func(t *testing.T, m Model) {
		ts := startServer(t, options{model: m, api: func(c *Config) { c.MaxConnsPerIP = 2 }})
		got := make(chan response, 2)
		for range 2 {
			go func() { got <- ts.do(http.MethodGet, "/v1/subscribe?since=now&timeout=30&channels=a", "") }()
		}
		require.Eventually(t, func() bool { return ts.b.Stats().Waiters == 2 }, 10*time.Second, time.Millisecond)
		r := ts.do(http.MethodGet, "/v1/subscribe?since=now&timeout=30&channels=a", "")
		require.Equal(t, http.StatusTooManyRequests, r.status, "body: %s", r.body)
		assert.Equal(t, "too_many_connections", r.code(t))
		assert.Equal(t, "5", r.header.Get("Retry-After"))
		assert.Equal(t, 200, ts.do(http.MethodGet, "/v1/subscribe?timeout=0&channels=a", "").status,
			"a poll that cannot wait takes no slot")
		require.Equal(t, http.StatusCreated, ts.publish(`{"channels":["a"],"data":1}`).status)
		for range 2 {
			assert.Equal(t, http.StatusOK, (<-got).status)
		}
		// The slots were given back when the answers went out.
		require.Eventually(t, func() bool { return ts.srv.perIP.holding(netip.MustParseAddr("127.0.0.1")) == 0 }, 10*time.Second, time.Millisecond)
		go func() { got <- ts.do(http.MethodGet, "/v1/subscribe?since=now&timeout=0.2&channels=b", "") }()
		assert.Equal(t, http.StatusOK, (<-got).status)
		require.Eventually(t, func() bool { return ts.srv.perIP.holding(netip.MustParseAddr("127.0.0.1")) == 0 }, 10*time.Second, time.Millisecond,
			"a timed-out wait gives its slot back")
	})
}

func TestTrustedForwardedFor(t *testing.T) {
	eachModel(t, func(t *testing.T, m Model) {
		ts := startServer(t, options{model: m, api: func(c *Config) {
			c.MaxConnsPerIP = 1
			c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		}})
		got := make(chan response, 2)
		for _, client := range []string{"203.0.113.1", "203.0.113.2"} {
			go func() {
				got <- ts.do(http.MethodGet, "/v1/subscribe?since=now&timeout=30&channels=a", "", "X-Forwarded-For", "198.51.100.9, "+client)
			}()
		}
		require.Eventually(t, func() bool { return ts.b.Stats().Waiters == 2 }, 10*time.Second, time.Millisecond,
			"two clients behind one trusted proxy each get a slot")
		r := ts.do(http.MethodGet, "/v1/subscribe?since=now&timeout=30&channels=a", "", "X-Forwarded-For", "203.0.113.1")
		assert.Equal(t, http.StatusTooManyRequests, r.status, "the first client is at its cap")
		require.Equal(t, http.StatusCreated, ts.publish(`{"channels":["a"],"data":1}`).status)
		<-got
		<-got
	})
}

func TestClientAddrIgnoresUntrustedForwardedFor(t *testing.T) {
	s := &Server{cfg: Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	for _, c := range []struct{ remote, xff, want string }{
		{"192.0.2.1:5", "203.0.113.1", "192.0.2.1"},            // not from a proxy: its own address
		{"10.1.1.1:5", "203.0.113.1", "203.0.113.1"},           // from our proxy
		{"10.1.1.1:5", "6.6.6.6, 203.0.113.1", "203.0.113.1"},  // a client's forged entry is left of the real one
		{"10.1.1.1:5", "203.0.113.1, 10.2.2.2", "203.0.113.1"}, // two of our proxies
		{"10.1.1.1:5", "", "10.1.1.1"},
		{"10.1.1.1:5", "junk", "10.1.1.1"},
	} {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = c.remote
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		assert.Equal(t, c.want, s.clientAddr(r).String(), "%+v", c)
	}
}
