package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// serveDemo runs pushupd in this process with args on a loopback port
// until the test ends, and returns its base URL and its log.
func serveDemo(t *testing.T, args ...string) (string, *syncBuffer) {
	t.Helper()
	cfg, err := parseConfig(append([]string{"-listen", "127.0.0.1:0", "-demo"}, args...), env(nil), io.Discard)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan net.Addr, 1)
	done := make(chan error, 1)
	logs := &syncBuffer{}
	go func() { done <- run(ctx, cfg, logs, func(a net.Addr) { addr <- a }) }()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a.String()
	case err := <-done:
		cancel()
		t.Fatalf("pushupd stopped: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return base, logs
}

// syncBuffer is a log the server writes while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// demoToken asks the demo for name's token and subscribes to channel with
// it, and without it; it returns the token and both statuses.
func demoToken(t *testing.T, base, name, channel string) (token string, with, without int) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	resp, err := c.Get(base + "/demo/api/token?name=" + name)
	require.NoError(t, err)
	var tok struct{ Token string }
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tok))
	resp.Body.Close()
	status := func(q url.Values) int {
		q.Set("channels", channel)
		q.Set("timeout", "0")
		resp, err := c.Get(base + "/v1/subscribe?" + q.Encode())
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	return tok.Token, status(url.Values{"token": {tok.Token}}), status(url.Values{})
}

// TestDemoPrivateChannelWithoutAKey: pushupd -demo alone makes user:*
// private and mints the demo's tokens with a key of its own, and says so.
func TestDemoPrivateChannelWithoutAKey(t *testing.T) {
	base, logs := serveDemo(t)
	_, with, without := demoToken(t, base, "alice", "user:alice")
	assert.Equal(t, http.StatusOK, with, "the demo's token opens the user's channel")
	assert.Equal(t, http.StatusUnauthorized, without, "-demo makes user:* private")
	_, with, _ = demoToken(t, base, "alice", "user:bob")
	assert.Equal(t, http.StatusForbidden, with, "and only that one")
	assert.Contains(t, logs.String(), "no -subscriber-key")
}

// TestDemoMintsWithTheFirstSubscriberKey: with -subscriber-key the demo
// signs with the first key listed (the new one during a rotation), so
// the nodes of a cluster accept each other's demo tokens.
func TestDemoMintsWithTheFirstSubscriberKey(t *testing.T) {
	newKey, oldKey := "the-new-subscriber-key-of-32-bytes-or-more", "the-old-subscriber-key-of-32-bytes-or-more"
	base, logs := serveDemo(t, "-subscriber-key", newKey+","+oldKey, "-private-channels", "private:*")
	token, with, without := demoToken(t, base, "bob", "user:bob")
	assert.Equal(t, http.StatusOK, with)
	assert.Equal(t, http.StatusUnauthorized, without, "user:* is private beside -private-channels")
	_, err := jwt.Parse(token, func(*jwt.Token) (any, error) { return []byte(newKey), nil })
	assert.NoError(t, err, "signed with the first key")
	assert.NotContains(t, logs.String(), "no -subscriber-key")
}
