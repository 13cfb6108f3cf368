package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/broker"
)

func TestPublishIdempotencyKey(t *testing.T) {
	ts := startServer(t, options{model: ModelGoroutine})
	one := ts.do(http.MethodPost, "/v1/publish", `{"channels":["a"],"data":1}`, "Idempotency-Key", "k1")
	require.Equal(t, http.StatusCreated, one.status)
	again := ts.do(http.MethodPost, "/v1/publish", `{"channels":["a"],"data":1}`, "Idempotency-Key", "k1")
	require.Equal(t, http.StatusCreated, again.status)
	assert.Equal(t, one.json(t)["id"], again.json(t)["id"])
	assert.Equal(t, true, again.json(t)["replayed"])
	assert.Equal(t, "true", again.header.Get("Idempotent-Replayed"))

	batch := `[{"channels":["a"],"data":2},{"channels":["b"],"data":3}]`
	require.Equal(t, http.StatusCreated, ts.do(http.MethodPost, "/v1/publish", batch, "Idempotency-Key", "k2").status)
	require.Equal(t, http.StatusCreated, ts.do(http.MethodPost, "/v1/publish", batch, "Idempotency-Key", "k2").status)
	raw := ts.do(http.MethodPost, "/v1/channels/c/messages", "hello", "Idempotency-Key", "k3")
	require.Equal(t, http.StatusCreated, raw.status)
	rawAgain := ts.do(http.MethodPost, "/v1/channels/c/messages", "hello", "Idempotency-Key", "k3")
	assert.Equal(t, raw.json(t)["id"], rawAgain.json(t)["id"])
	a, _ := ts.subscribe("channels=a,b,c")
	assert.Len(t, a.Messages, 4, "every retry stored nothing")

	for _, bad := range []string{"has space", strings.Repeat("x", 250), "é"} {
		r := ts.do(http.MethodPost, "/v1/publish", `{"channels":["z"],"data":1}`, "Idempotency-Key", bad)
		assert.Equal(t, http.StatusBadRequest, r.status, bad)
		assert.Equal(t, "invalid_idempotency_key", r.code(t))
	}
	assert.Zero(t, len(ts.subscribeNoWait(t, "z")), "refused publications stored nothing")
}

func (ts *testServer) subscribeNoWait(t *testing.T, ch string) []string {
	a, r := ts.subscribe("timeout=0&channels=" + ch)
	require.Equal(t, http.StatusOK, r.status)
	return a.data()
}

// FuzzIdempotencyKeyHeader: any header value is either refused with 400 or
// gives every publication of the request a valid broker key.
func FuzzIdempotencyKeyHeader(f *testing.F) {
	f.Add("order-17", true)
	f.Add("", false)
	f.Add("a b", true)
	f.Add(strings.Repeat("k", 249), true)
	f.Fuzz(func(t *testing.T, key string, batch bool) {
		r, _ := http.NewRequest(http.MethodPost, "/", nil)
		r.Header["Idempotency-Key"] = []string{key}
		got, err := idempotencyKey(r)
		if err != nil {
			assert.Equal(t, http.StatusBadRequest, toAPIError(err).status)
			return
		}
		pubs := make([]broker.Publication, 3)
		withKey(pubs, got, batch)
		for _, p := range pubs {
			assert.True(t, broker.ValidIdempotencyKey(p.IdempotencyKey), "%q", p.IdempotencyKey)
		}
	})
}

func TestPublicationLargerThanTheBudgetIs413(t *testing.T) {
	eachModel(t, func(t *testing.T, m Model) {
		ts := startServer(t, options{model: m, broker: func(c *broker.Config) { c.MaxCacheBytes = 4096 }})
		r := ts.publish(`{"channels":["a"],"data":"` + strings.Repeat("x", 5000) + `"}`)
		require.Equal(t, http.StatusRequestEntityTooLarge, r.status, "body: %s", r.body)
		assert.Equal(t, "publication_too_large", r.code(t))
		assert.Zero(t, ts.b.Stats().Channels, "nothing stored")
	})
}
