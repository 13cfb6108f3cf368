package api

import (
	"net/http"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const jsonType = "application/json"

func TestDemoIsOffByDefault(t *testing.T) {
	ts := startServer(t, options{})
	for _, path := range []string{"/demo", "/demo/", "/demo/app.js"} {
		r := ts.do(http.MethodGet, path, "")
		assert.Equal(t, http.StatusNotFound, r.status, path)
	}
	r := ts.do(http.MethodPost, "/demo/api/questions", `{"author":"ann","title":"t","tags":["go"]}`, "Content-Type", jsonType)
	assert.Equal(t, http.StatusNotFound, r.status)
	assert.Equal(t, "not_found", r.code(t))
}

// echoPlugin is a plug-in that decodes {"n":1} and refuses n < 0.
type echoPlugin struct{}

func (echoPlugin) Name() string { return "echo" }
func (echoPlugin) Path() string { return "/echo/" }
func (echoPlugin) Mount(r chi.Router, front Front) {
	r.Post("/echo/", front.Handle(func(w http.ResponseWriter, r *http.Request) error {
		var v struct{ N int }
		if err := front.ReadJSON(w, r, 64, &v, "an echo object", ` (expected {"n":1})`); err != nil {
			return err
		}
		if v.N < 0 {
			return &ClientError{Code: "negative", Message: "n must not be negative"}
		}
		writeJSON(w, http.StatusOK, v)
		return nil
	}))
}

// TestPluginErrorsAreTheAPIs: a plug-in's refusals, malformed bodies and
// oversized bodies get the API's error bodies, and the index lists it.
func TestPluginErrorsAreTheAPIs(t *testing.T) {
	ts := startServer(t, options{api: func(c *Config) { c.Plugins = []Plugin{echoPlugin{}} }})
	for _, tc := range []struct {
		body, code string
		status     int
		msg        string
	}{
		{`{"n":1}`, "", 200, ""},
		{`{"n":-1}`, "negative", 400, "n must not be negative"},
		{`[]`, "invalid_json", 400, `the body: expected an echo object, got JSON array (expected {"n":1})`},
		{`{"n":1} {}`, "invalid_json", 400, "unexpected data after the JSON value"},
		{`{"n":"` + string(make([]byte, 100)) + `"}`, "body_too_large", 413, "exceeds the limit of 64 bytes"},
	} {
		r := ts.do(http.MethodPost, "/echo/", tc.body)
		require.Equal(t, tc.status, r.status, "%s", r.body)
		if tc.code != "" {
			assert.Equal(t, tc.code, r.code(t))
			assert.Contains(t, r.json(t)["message"], tc.msg)
		}
	}
	idx := ts.do(http.MethodGet, "/", "").json(t)
	assert.Equal(t, map[string]any{"echo": "/echo/"}, idx["plugins"])
}

// TestIndexSaysWhereThingsAre: GET / is a small JSON map of the server.
func TestIndexSaysWhereThingsAre(t *testing.T) {
	ts := startServer(t, options{})
	r := ts.do(http.MethodGet, "/", "")
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, jsonType, r.header.Get("Content-Type"))
	v := r.json(t)
	assert.Equal(t, "PushUp", v["name"])
	assert.Contains(t, v["subscribe"], "/v1/subscribe")
	assert.Contains(t, v["publish"], "/v1/publish")
	assert.Equal(t, "/pushup.js", v["client"])
	assert.Equal(t, "/metrics", v["metrics"])
	assert.NotContains(t, v, "plugins", "no plug-in, none listed")
	assert.NotContains(t, v, "cluster", "alone")
}
