package api

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/broker"
)

// The flood: unauthenticated timeout=0 subscribes naming 64 fresh
// channels each made 99,999 channels and locked keyed publishers out with
// 503 channel_limit. Now they create nothing, in every model, and a
// waiting subscriber's channel goes when it does.
func TestSubscribeFloodLeavesNothingBehind(t *testing.T) {
	eachModel(t, func(t *testing.T, m Model) {
		ts := startServer(t, options{model: m,
			broker: func(c *broker.Config) { c.MaxChannels = 200 },
			api:    func(c *Config) { c.PublisherKey = "pk" }})
		for i := range 20 {
			names := make([]string, 64)
			for j := range names {
				names[j] = fmt.Sprintf("flood-%d-%d", i, j)
			}
			_, r := ts.subscribe("timeout=0&channels=" + strings.Join(names, ","))
			require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		}
		assert.Zero(t, ts.b.Stats().Channels)
		r := ts.do(http.MethodPost, "/v1/publish", `{"channels":["fresh"],"data":1}`, "Authorization", "Bearer pk")
		assert.Equal(t, http.StatusCreated, r.status, "a keyed publisher can still create channels: %s", r.body)

		got := make(chan response, 1)
		go func() { got <- ts.do(http.MethodGet, "/v1/subscribe?since=now&timeout=0.2&channels=brief", "") }()
		require.Eventually(t, func() bool { return ts.b.Stats().Channels == 2 }, 10*time.Second, time.Millisecond)
		assert.Equal(t, http.StatusOK, (<-got).status)
		require.Eventually(t, func() bool { return ts.b.Stats().Channels == 1 }, 10*time.Second, time.Millisecond,
			"the waiter's channel went with it")
	})
}
