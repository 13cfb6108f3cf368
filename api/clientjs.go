package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/pushuphq/pushup/web"
)

// clientJSMaxAge is how long browsers and proxies may use pushup.js
// without asking again. Five minutes spares a page load the request while
// letting a new server's client reach browsers soon; after that a
// revalidation with the ETag costs a 304.
const clientJSMaxAge = "300"

// handleClientJS serves GET /pushup.js, the browser client. It is public
// code, so any origin may load it: a page on another origin imports it as
// an ES module, and module scripts are fetched with CORS.
func (s *Server) handleClientJS(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Set explicitly: mime.TypeByExtension reads the system's tables,
	// which may say application/javascript or nothing at all.
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("Cache-Control", "public, max-age="+clientJSMaxAge)
	h.Set("ETag", web.ClientETag())
	h.Set("Access-Control-Allow-Origin", "*")
	// Pages that isolate themselves (Cross-Origin-Embedder-Policy) may
	// still load it.
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	h.Set("X-Content-Type-Options", "nosniff")
	// ServeContent answers If-None-Match with 304, HEAD without a body,
	// and Range requests.
	http.ServeContent(w, r, "pushup.js", time.Time{}, strings.NewReader(web.ClientJS()))
}
