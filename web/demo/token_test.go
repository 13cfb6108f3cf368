package demo

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/api"
)

var testTokenKey = []byte("the-demo-tests-subscriber-key-of-32+bytes")

// withTokens makes user:* private and plugs in a demo that mints tokens
// with the key the server verifies them with, on clock now.
func withTokens(now func() time.Time) func(*api.Config) {
	return func(c *api.Config) {
		dc := DefaultConfig()
		dc.TokenKey = testTokenKey
		dc.Now = now
		p, err := NewPlugin(dc)
		if err != nil {
			panic(err)
		}
		c.Plugins = []api.Plugin{p}
		c.PrivateChannels = []string{UserPrefix + "*"}
		c.SubscriberKeys = [][]byte{testTokenKey}
		c.Now = now
	}
}

// TestDemoTokenGrantsOnlyTheUsersChannel: GET /demo/api/token?name=alice
// answers a token that opens user:alice, not user:bob nor a prefix of
// them, and that the server refuses once TokenTTL has passed.
func TestDemoTokenGrantsOnlyTheUsersChannel(t *testing.T) {
	clock := time.Now()
	ts := startServer(t, withTokens(func() time.Time { return clock }))

	r := ts.do(http.MethodGet, "/demo/api/token?name=alice", "")
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Equal(t, "no-store", r.header.Get("Cache-Control"), "a credential must not be cached")
	var tok Token
	require.NoError(t, json.Unmarshal(r.body, &tok))
	assert.Equal(t, []string{"user:alice"}, tok.Channels)
	assert.Equal(t, clock.Add(DefaultConfig().TokenTTL).Unix()*1000, tok.Expires)

	var claims jwt.MapClaims
	_, err := jwt.NewParser(jwt.WithTimeFunc(func() time.Time { return clock })).ParseWithClaims(tok.Token, &claims,
		func(*jwt.Token) (any, error) { return testTokenKey, nil })
	require.NoError(t, err)
	assert.Equal(t, []any{"user:alice"}, claims["channels"], "one channel, no wildcard")
	assert.Equal(t, float64(tok.Expires/1000), claims["exp"])

	_, ok := ts.subscribe(q("channels", "user:alice", "timeout", "0", "token", tok.Token))
	assert.Equal(t, http.StatusOK, ok.status, "%s", ok.body)
	for _, other := range []string{"user:bob", "user:alice2", "user:alice,user:bob"} {
		_, r := ts.subscribe(q("channels", other, "timeout", "0", "token", tok.Token))
		assert.Equal(t, http.StatusForbidden, r.status, other)
		assert.Equal(t, "channel_forbidden", r.code(t), other)
	}
	_, r = ts.subscribe(q("channels", "user:alice", "timeout", "0"))
	assert.Equal(t, "token_required", r.code(t), "the channel is private: the token is what opens it")

	clock = clock.Add(DefaultConfig().TokenTTL)
	_, r = ts.subscribe(q("channels", "user:alice", "timeout", "0", "token", tok.Token))
	assert.Equal(t, http.StatusUnauthorized, r.status)
	assert.Equal(t, "token_expired", r.code(t), "the token is short-lived")
	r = ts.do(http.MethodGet, "/demo/api/token?name=alice", "")
	require.NoError(t, json.Unmarshal(r.body, &tok))
	_, ok = ts.subscribe(q("channels", "user:alice", "timeout", "0", "token", tok.Token))
	assert.Equal(t, http.StatusOK, ok.status, "a new token opens it again: %s", ok.body)
}

func TestDemoTokenRefusals(t *testing.T) {
	ts := startServer(t, withTokens(time.Now))
	for _, name := range []string{"", "a b", "x:user:bob", "bob*", "zoë", "ann@example"} {
		r := ts.do(http.MethodGet, "/demo/api/token?"+q("name", name), "")
		assert.Equal(t, http.StatusBadRequest, r.status, "%q", name)
		assert.Equal(t, "invalid_name", r.code(t), "%q", name)
	}
	r := ts.do(http.MethodPost, "/demo/api/token?name=alice", "")
	assert.Equal(t, http.StatusMethodNotAllowed, r.status)

	off := startServer(t, withDemo) // no TokenKey
	r = off.do(http.MethodGet, "/demo/api/token?name=alice", "")
	assert.Equal(t, http.StatusNotFound, r.status)
	assert.Equal(t, "not_found", r.code(t))
	assert.Contains(t, string(r.body), "-subscriber-key")
}
