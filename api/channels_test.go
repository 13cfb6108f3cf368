package api

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/broker"
)

func TestCreateChannel(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model})
		r := ts.do(http.MethodPost, "/v1/channels", "")
		require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
		v := r.json(t)
		name := v["channel"].(string)
		assert.True(t, broker.ValidChannelName(name))
		assert.Equal(t, "/v1/channels/"+name, r.header.Get("Location"))
		assert.Equal(t, "1h0m0s", v["ttl"])
		assert.InDelta(t, float64(time.Now().Add(time.Hour).UnixMilli()), v["expires"], 5000)

		r2 := ts.do(http.MethodPost, "/v1/channels", `{"ttl":"5m"}`)
		require.Equal(t, http.StatusCreated, r2.status)
		assert.NotEqual(t, name, r2.json(t)["channel"])
		assert.Equal(t, "5m0s", r2.json(t)["ttl"])
	})
}

func TestPutChannelCreatesThenRenews(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model})
		r := ts.do(http.MethodPut, "/v1/channels/room:1", `{"ttl":"10m"}`)
		require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
		assert.Equal(t, "10m0s", r.json(t)["ttl"])
		r = ts.do(http.MethodPut, "/v1/channels/room:1", `{"ttl":120}`)
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		assert.Equal(t, "2m0s", r.json(t)["ttl"])
		assert.EqualValues(t, 120, r.json(t)["ttl_seconds"])
		r = ts.do(http.MethodPut, "/v1/channels/room:1", ``)
		require.Equal(t, http.StatusOK, r.status)
		assert.Equal(t, "1h0m0s", r.json(t)["ttl"], "no body: default ttl")
	})
}

func TestChannelTTLErrors(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model})
		for _, body := range []string{`{"ttl":"soon"}`, `{"ttl":"-5m"}`, `{"ttl":0}`, `{"ttl":-1}`, `{"ttl":"1ms"}`, `{"ttl":"9999h"}`, `{"ttl":true}`} {
			r := ts.do(http.MethodPut, "/v1/channels/x", body)
			assert.Equal(t, http.StatusBadRequest, r.status, body)
			assert.Equal(t, "invalid_ttl", r.code(t), body)
		}
		for _, body := range []string{`{"tll":"5m"}`, `{`, `[]`} {
			r := ts.do(http.MethodPut, "/v1/channels/x", body)
			assert.Equal(t, http.StatusBadRequest, r.status, body)
			assert.Equal(t, "invalid_json", r.code(t), body)
		}
		assert.Equal(t, http.StatusNotFound, ts.do(http.MethodGet, "/v1/channels/x", "").status, "no failed request created it")
		r := ts.do(http.MethodPost, "/v1/channels", `{"ttl":"nope"}`)
		assert.Equal(t, http.StatusBadRequest, r.status)
		assert.Zero(t, ts.b.Stats().Channels)
	})
}

func TestChannelInfo(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model})
		require.Equal(t, http.StatusCreated, ts.do(http.MethodPut, "/v1/channels/c", "").status)
		v := ts.do(http.MethodGet, "/v1/channels/c", "").json(t)
		assert.Equal(t, "c", v["channel"])
		assert.EqualValues(t, 0, v["messages"])
		assert.Nil(t, v["oldest"])
		assert.Nil(t, v["newest"])

		ts.publish(`{"channels":["c"],"data":1}`)
		ts.publish(`{"channels":["c"],"data":2}`)
		v = ts.do(http.MethodGet, "/v1/channels/c", "").json(t)
		assert.EqualValues(t, 2, v["messages"])
		assert.LessOrEqual(t, v["oldest"], v["newest"])

		r := ts.do(http.MethodGet, "/v1/channels/none", "")
		assert.Equal(t, http.StatusNotFound, r.status)
		assert.Equal(t, "channel_not_found", r.code(t))
		r = ts.do(http.MethodGet, "/v1/channels/"+strings.Repeat("x", 200), "")
		assert.Equal(t, http.StatusBadRequest, r.status)
		assert.Equal(t, "invalid_channel", r.code(t))
	})
}

func TestDeleteChannel(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model, broker: func(c *broker.Config) { c.ImplicitChannels = false }})
		require.Equal(t, http.StatusCreated, ts.do(http.MethodPut, "/v1/channels/a", "").status)
		require.Equal(t, http.StatusCreated, ts.do(http.MethodPut, "/v1/channels/b", "").status)
		ts.publish(`{"channels":["a"],"data":1}`)
		cur, _ := ts.subscribe(q("channels", "a", "timeout", "0"))

		// One subscriber waits on a alone, one on a and b.
		onlyA, both := make(chan response, 1), make(chan response, 1)
		go func() { _, r := ts.subscribe(q("channels", "a", "since", cur.Cursor, "timeout", "60")); onlyA <- r }()
		go func() { _, r := ts.subscribe(q("channels", "a,b", "since", "now", "timeout", "60")); both <- r }()
		require.Eventually(t, func() bool { return ts.b.Stats().Waiters == 3 }, 5*time.Second, 5*time.Millisecond)

		r := ts.do(http.MethodDelete, "/v1/channels/a", "")
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		assert.Equal(t, map[string]any{"channel": "a", "closed": true, "answered": float64(1)}, r.json(t))

		gone := <-onlyA
		assert.Equal(t, http.StatusGone, gone.status)
		assert.Equal(t, "channel_closed", gone.code(t))
		assert.NotEmpty(t, gone.json(t)["cursor"])

		ts.publish(`{"channels":["b"],"data":"b1"}`)
		got := <-both
		require.Equal(t, http.StatusOK, got.status)
		assert.Contains(t, string(got.body), `"b1"`)

		assert.Equal(t, http.StatusNotFound, ts.do(http.MethodGet, "/v1/channels/a", "").status)
		assert.Equal(t, http.StatusNotFound, ts.do(http.MethodDelete, "/v1/channels/a", "").status)
		assert.Equal(t, http.StatusNotFound, ts.publish(`{"channels":["a"],"data":1}`).status)
		_, sr := ts.subscribe(q("channels", "a", "timeout", "0"))
		assert.Equal(t, http.StatusNotFound, sr.status)
	})
}
