package demo

import (
	"github.com/pushuphq/pushup/api"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const jsonType = "application/json"

func TestDemoQuestionValidation(t *testing.T) {
	ts := startServer(t, withDemo)
	for _, tc := range []struct {
		name        string
		contentType string
		body        string
		status      int
		code        string
	}{
		{"valid", jsonType, `{"author":"ann","title":"How?","tags":["go"]}`, 201, ""},
		{"charset parameter", "application/json; charset=utf-8", `{"author":"ann","title":"How?","tags":["go"]}`, 201, ""},
		{"no content type", "", `{"author":"ann","title":"How?","tags":["go"]}`, 415, "unsupported_media_type"},
		{"form post", "text/plain", `{"author":"ann","title":"How?","tags":["go"]}`, 415, "unsupported_media_type"},
		{"urlencoded", "application/x-www-form-urlencoded", `author=ann`, 415, "unsupported_media_type"},
		{"empty body", jsonType, ``, 400, "invalid_json"},
		{"malformed", jsonType, `{"author":`, 400, "invalid_json"},
		{"array", jsonType, `[]`, 400, "invalid_json"},
		{"unknown field", jsonType, `{"author":"ann","title":"t","tags":["go"],"channels":["x"]}`, 400, "invalid_json"},
		{"tags not an array", jsonType, `{"author":"ann","title":"t","tags":"go"}`, 400, "invalid_json"},
		{"trailing data", jsonType, `{"author":"ann","title":"t","tags":["go"]} {}`, 400, "invalid_json"},
		{"not UTF-8", jsonType, "{\"author\":\"ann\",\"title\":\"\xff\",\"tags\":[\"go\"]}", 400, "invalid_json"},
		{"bad author", jsonType, `{"author":"a b","title":"t","tags":["go"]}`, 400, "invalid_author"},
		{"no title", jsonType, `{"author":"ann","tags":["go"]}`, 400, "invalid_title"},
		{"no tags", jsonType, `{"author":"ann","title":"t"}`, 400, "no_tags"},
		{"too many tags", jsonType, `{"author":"ann","title":"t","tags":["a","b","c","d","e","f"]}`, 400, "too_many_tags"},
		{"bad tag", jsonType, `{"author":"ann","title":"t","tags":["c#"]}`, 400, "invalid_tag"},
		{"duplicate tag", jsonType, `{"author":"ann","title":"t","tags":["Go","go"]}`, 400, "duplicate_tag"},
		{"too large", jsonType, `{"author":"ann","title":"` + strings.Repeat("a", 5000) + `","tags":["go"]}`, 413, "body_too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var header []string
			if tc.contentType != "" {
				header = []string{"Content-Type", tc.contentType}
			}
			r := ts.do(http.MethodPost, "/demo/api/questions", tc.body, header...)
			require.Equal(t, tc.status, r.status, "%s", r.body)
			if tc.code != "" {
				assert.Equal(t, tc.code, r.code(t))
			}
		})
	}
	a, _ := ts.subscribe(q("channels", "tag:go,author:ann", "timeout", "0"))
	assert.Len(t, a.Messages, 2, "only the two valid posts were published")
}

func TestDemoQuestionIsPublishedOnceToAuthorAndTags(t *testing.T) {
	ts := startServer(t, withDemo)
	r := ts.do(http.MethodPost, "/demo/api/questions", `{"author":"John","title":" How? ","tags":["C++","java"]}`,
		"Content-Type", jsonType)
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	v := r.json(t)
	assert.Equal(t, []any{"author:John", "tag:c++", "tag:java"}, v["channels"])

	// A viewer following both tags and the author gets it once.
	a, _ := ts.subscribe(q("channels", "tag:c++,tag:java,author:John", "timeout", "0"))
	require.Len(t, a.Messages, 1)
	assert.Equal(t, v["id"], a.Messages[0].ID)
	assert.JSONEq(t, `{"type":"question","author":"John","title":"How?","tags":["c++","java"]}`, string(a.Messages[0].Data))
}

// TestDemoIsNoWayAroundThePublisherKey: with a key set, the demo still
// posts questions (that is its job, browsers hold no key), and nothing
// else gets published without the key.
func TestDemoIsNoWayAroundThePublisherKey(t *testing.T) {
	ts := startServer(t, func(c *api.Config) { c.PublisherKey = "s3cret" })
	r := ts.do(http.MethodPost, "/demo/api/questions", `{"author":"ann","title":"t","tags":["go"]}`, "Content-Type", jsonType)
	assert.Equal(t, http.StatusCreated, r.status)
	r = ts.do(http.MethodPost, "/v1/publish", `{"channels":["tag:go"],"data":1}`)
	assert.Equal(t, http.StatusUnauthorized, r.status)
	r = ts.do(http.MethodPost, "/demo/api/questions", `{"author":"ann","title":"t","tags":["go"],"data":{"x":1}}`, "Content-Type", jsonType)
	assert.Equal(t, http.StatusBadRequest, r.status, "no other data rides along")
	r = ts.do(http.MethodPost, "/demo/api/questions", `{"author":"ann","title":"t","tags":["go"]}`,
		"Content-Type", jsonType, "Origin", "https://elsewhere.example")
	assert.Empty(t, r.header.Get("Access-Control-Allow-Origin"), "other origins cannot read demo answers")
}

func TestDemoAssets(t *testing.T) {
	ts := startServer(t, withDemo)
	// Do not follow redirects: the relative Location is the point.
	ts.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	r := ts.do(http.MethodGet, "/demo?tags=go", "")
	assert.Equal(t, http.StatusMovedPermanently, r.status)
	assert.Equal(t, "demo/?tags=go", r.header.Get("Location"), "relative, so a path prefix survives")

	for path, ct := range map[string]string{
		"/demo/":           "text/html; charset=utf-8",
		"/demo/index.html": "text/html; charset=utf-8",
		"/demo/app.js":     "text/javascript; charset=utf-8",
		"/demo/style.css":  "text/css; charset=utf-8",
	} {
		r := ts.do(http.MethodGet, path, "")
		require.Equal(t, http.StatusOK, r.status, path)
		assert.Equal(t, ct, r.header.Get("Content-Type"), path)
		assert.Contains(t, r.header.Get("Content-Security-Policy"), "default-src 'self'", path)
		assert.Equal(t, "no-cache", r.header.Get("Cache-Control"), path)
		etag := r.header.Get("ETag")
		require.NotEmpty(t, etag, path)
		r = ts.do(http.MethodGet, path, "", "If-None-Match", etag)
		assert.Equal(t, http.StatusNotModified, r.status, path)
	}
	r = ts.do(http.MethodGet, "/demo/", "")
	assert.Contains(t, string(r.body), `<script type="module" src="app.js">`)

	r = ts.do(http.MethodGet, "/demo/missing.js", "")
	assert.Equal(t, http.StatusNotFound, r.status)
	assert.Equal(t, "not_found", r.code(t))
	r = ts.do(http.MethodGet, "/demo/api/questions", "")
	assert.Equal(t, http.StatusMethodNotAllowed, r.status)
	assert.Equal(t, "POST", r.header.Get("Allow"))
}

func TestDemoConfigIsValidated(t *testing.T) {
	c := DefaultConfig()
	c.MaxTags = 0
	_, err := NewPlugin(c)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "MaxTags")
}

// TestDemoOffSaysHowToTurnItOn: without -demo, /demo/ is still a 404,
// but one that says how to get the demo.
func TestDemoOffSaysHowToTurnItOn(t *testing.T) {
	ts := startServer(t, func(c *api.Config) { c.Plugins = []api.Plugin{Off()} })
	for _, path := range []string{"/demo", "/demo/", "/demo/app.js"} {
		r := ts.do(http.MethodGet, path, "")
		assert.Equal(t, http.StatusNotFound, r.status, path)
		assert.Equal(t, "not_found", r.code(t), path)
		assert.Contains(t, r.json(t)["message"], "-demo", path)
	}
	r := ts.do(http.MethodPost, "/demo/api/questions", `{"author":"ann","title":"t","tags":["go"]}`, "Content-Type", jsonType)
	assert.Equal(t, http.StatusNotFound, r.status)
	r = ts.do(http.MethodGet, "/", "")
	assert.NotContains(t, string(r.body), "/demo/", "the index lists no demo that is off")
}
