package browsertest

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/broker"
)

// readmeSnippet returns the HTML example of the README's "Use from a
// browser" section.
func readmeSnippet(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(b), "## Use from a browser")
	require.True(t, ok, "the README has a \"Use from a browser\" section")
	_, rest, ok := strings.Cut(section, "```html\n")
	require.True(t, ok, "the section has an html example")
	html, _, ok := strings.Cut(rest, "```")
	require.True(t, ok)
	return html
}

// TestReadmeBrowserExample runs the README's example page, served from
// another origin, against a server: it shows what is published to its
// channels, and its Stop button ends the subscription.
func TestReadmeBrowserExample(t *testing.T) {
	srv := startPushup(t, nil)
	html := readmeSnippet(t)
	require.Contains(t, html, "http://localhost:8080/pushup.js")
	html = strings.ReplaceAll(html, "http://localhost:8080", srv.URL)
	page := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(html))
	}))
	ctx := newPage(t, "readme")
	run(t, ctx, chromedp.Navigate(page+"/"))
	require.Eventually(t, func() bool { return waiting(srv, "tag:go") == 1 && waiting(srv, "news") == 1 },
		5*time.Second, 5*time.Millisecond)

	_, err := srv.B.Publish(broker.Publication{Channels: []string{"tag:go", "news"}, Data: json.RawMessage(`{"q":"How do I long-poll?"}`)})
	require.NoError(t, err)
	waitFor(t, ctx, "the message in the list", `document.querySelectorAll("#feed li").length === 1`, 5*time.Second)
	assert.Contains(t, eval[string](t, ctx, `document.querySelector("#feed li").textContent`), `{"q":"How do I long-poll?"}`)

	run(t, ctx, chromedp.Click(chromedp.ID("stop")))
	require.Eventually(t, func() bool { return waiting(srv, "tag:go") == 0 }, 5*time.Second, 5*time.Millisecond,
		"Stop unsubscribes, and the server lets the poll go")
}
