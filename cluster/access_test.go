package cluster_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/api"
	"github.com/pushuphq/pushup/cluster"
)

// serveAPI puts PushUp's HTTP front, configured by mod, before a test
// node's broker, and returns its base URL.
func serveAPI(t *testing.T, c *cluster.ExtCluster, name string, model api.Model, mod func(*api.Config)) string {
	node, b := c.Node(name)
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Model = model
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Cluster = node
	mod(&cfg)
	srv, err := api.New(b, cfg)
	require.NoError(t, err)
	hs := httptest.NewUnstartedServer(nil)
	go func() { _ = srv.Serve(hs.Listener) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return "http://" + hs.Listener.Addr().String()
}

func httpDo(t *testing.T, method, url, body string, header ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, b
}

// A token minted once works on every node (verification is local, the key
// shared), in every model; a publisher's retry with the same
// Idempotency-Key on another node returns the first message and stores
// nothing, because the key travels with the replicated event.
func TestTokensAndIdempotencyAcrossNodes(t *testing.T) {
	secret := []byte("a-cluster-wide-subscriber-secret-32+")
	c := cluster.NewExtCluster(t, cluster.ModeUnicast)
	names := []string{"n1", "n2", "n3"}
	c.Start("n1")
	c.Start("n2", "n1")
	c.Start("n3", "n1")
	c.AllAlive(names...)
	urls := map[string]string{}
	for i, name := range names {
		urls[name] = serveAPI(t, c, name, []api.Model{api.ModelEvent, api.ModelGoroutine, api.ModelThread}[i], func(cfg *api.Config) {
			cfg.PrivateChannels = []string{"user:*"}
			cfg.SubscriberKeys = [][]byte{secret}
			cfg.PublisherKey = "pk"
		})
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"channels": []string{"user:42"}, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(secret)
	require.NoError(t, err)

	for _, name := range names {
		st, _, body := httpDo(t, http.MethodGet, urls[name]+"/v1/subscribe?timeout=0&channels=user:42", "", "Authorization", "Bearer "+tok)
		assert.Equal(t, http.StatusOK, st, "%s: %s", name, body)
		st, _, body = httpDo(t, http.MethodGet, urls[name]+"/v1/subscribe?timeout=0&channels=user:42", "")
		assert.Equal(t, http.StatusUnauthorized, st, "%s: %s", name, body)
		assert.Contains(t, string(body), "token_required")
		st, _, body = httpDo(t, http.MethodGet, urls[name]+"/v1/subscribe?timeout=0&channels=user:43&token="+tok, "")
		assert.Equal(t, http.StatusForbidden, st, "%s: %s", name, body)
		assert.Contains(t, string(body), `channel \"user:43\"`)
	}

	type answer struct {
		ID       string `json:"id"`
		Time     int64  `json:"time"`
		Replayed bool   `json:"replayed"`
	}
	publish := func(node string) (answer, http.Header) {
		st, h, body := httpDo(t, http.MethodPost, urls[node]+"/v1/publish", `{"channels":["user:42"],"data":"paid"}`,
			"Authorization", "Bearer pk", "Idempotency-Key", "order-17")
		require.Equal(t, http.StatusCreated, st, "%s: %s", node, body)
		var a answer
		require.NoError(t, json.Unmarshal(body, &a))
		return a, h
	}
	first, h := publish("n1")
	assert.False(t, first.Replayed)
	assert.Empty(t, h.Get("Idempotent-Replayed"))
	c.Converged("user:42", 1, names...)
	for _, node := range []string{"n2", "n3", "n1"} {
		again, h := publish(node)
		assert.True(t, again.Replayed, node)
		assert.Equal(t, "true", h.Get("Idempotent-Replayed"), node)
		assert.Equal(t, first.ID, again.ID, node)
		assert.Equal(t, first.Time, again.Time, node)
	}
	c.Converged("user:42", 1, names...)
}
