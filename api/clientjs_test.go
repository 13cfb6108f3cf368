package api

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/web"
)

func TestClientJSIsServedForAnyOrigin(t *testing.T) {
	ts := startServer(t, options{})
	r := ts.do(http.MethodGet, "/pushup.js", "", "Origin", "https://app.example")
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, web.ClientJS(), string(r.body))
	assert.Contains(t, string(r.body), "export function subscribe(")
	assert.Equal(t, "text/javascript; charset=utf-8", r.header.Get("Content-Type"))
	assert.Equal(t, "public, max-age=300", r.header.Get("Cache-Control"))
	assert.Equal(t, "*", r.header.Get("Access-Control-Allow-Origin"), "module scripts on other origins need CORS")
	assert.Equal(t, "nosniff", r.header.Get("X-Content-Type-Options"))
	etag := r.header.Get("ETag")
	assert.Equal(t, web.ClientETag(), etag)

	r = ts.do(http.MethodGet, "/pushup.js", "", "If-None-Match", etag)
	assert.Equal(t, http.StatusNotModified, r.status, "revalidation is cheap")
	assert.Empty(t, r.body)

	r = ts.do(http.MethodHead, "/pushup.js", "")
	assert.Equal(t, http.StatusOK, r.status)
	assert.Empty(t, r.body)
	assert.Equal(t, "text/javascript; charset=utf-8", r.header.Get("Content-Type"))

	r = ts.do(http.MethodPost, "/pushup.js", "")
	assert.Equal(t, http.StatusMethodNotAllowed, r.status)
}

func TestClientETagFollowsContent(t *testing.T) {
	assert.Regexp(t, `^"[A-Za-z0-9_-]{16}"$`, web.ClientETag(), "a strong ETag")
}
