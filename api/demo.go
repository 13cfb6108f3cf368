package api

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io/fs"
	"maps"
	"mime"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/pushuphq/pushup/web/demo"
)

// demoCSP confines the demo page to its own origin: it shows text other
// people typed, so even a rendering bug must not be able to run a script
// or send data elsewhere.
const demoCSP = "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// demoTypes are the content types of the demo's files, by extension; set
// explicitly for the same reason as pushup.js's.
var demoTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
}

// staticFile is one embedded file, read once at startup.
type staticFile struct {
	name        string
	contentType string
	etag        string
	data        string
}

// loadStatic reads every file of fsys, keyed by its path.
func loadStatic(fsys fs.FS) (map[string]staticFile, error) {
	files := map[string]staticFile{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		ct, ok := demoTypes[path.Ext(p)]
		if !ok {
			return fmt.Errorf("api: demo asset %s: no content type for %q", p, path.Ext(p))
		}
		sum := sha256.Sum256(b)
		files[p] = staticFile{name: p, contentType: ct, data: string(b),
			etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	return files, err
}

// demoRoutes adds the Q&A demo: its page under /demo/ and its question
// endpoint. Each file gets its own route rather than a wildcard, so a GET
// on the endpoint is a 405 and an unknown path the usual JSON 404.
func (s *Server) demoRoutes(r chi.Router) {
	r.Get("/demo", s.redirectToDemo)
	for _, p := range append([]string{""}, slices.Sorted(maps.Keys(s.demoFiles))...) {
		r.Get("/demo/"+p, s.handleDemoAsset)
		r.Head("/demo/"+p, s.handleDemoAsset)
	}
	r.Post("/demo/api/questions", s.handle(s.handleDemoQuestion))
}

// redirectToDemo sends /demo to /demo/, so the page's relative URLs
// resolve. The Location is relative, so a proxy serving PushUp under a
// path prefix keeps it.
func (s *Server) redirectToDemo(w http.ResponseWriter, r *http.Request) {
	loc := "demo/"
	if r.URL.RawQuery != "" {
		loc += "?" + r.URL.RawQuery
	}
	w.Header().Set("Location", loc)
	w.WriteHeader(http.StatusMovedPermanently)
}

// handleDemoAsset serves the demo's embedded files; /demo/ is index.html.
func (s *Server) handleDemoAsset(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/demo/")
	if name == "" {
		name = "index.html"
	}
	f := s.demoFiles[name] // routed only for names it has
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	// Revalidate every time: the files are tiny and a 304 is cheap, and a
	// demo should never run a stale page against a newer server.
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	h.Set("Content-Security-Policy", demoCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	http.ServeContent(w, r, f.name, time.Time{}, strings.NewReader(f.data))
}

// demoShape is appended to question body errors.
const demoShape = ` (expected {"author":"ann","title":"...","tags":["go"]})`

// handleDemoQuestion serves POST /demo/api/questions: it validates a
// question and publishes it once to author:<name> and each tag:<t>.
//
// It needs Content-Type: application/json. Besides saying what the body
// is, that makes a cross-origin post a non-simple request the browser must
// preflight, and nothing here answers preflights, so other sites cannot
// make their visitors' browsers post questions.
func (s *Server) handleDemoQuestion(w http.ResponseWriter, r *http.Request) error {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return &apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type",
			msg: "send the question as JSON with Content-Type: application/json"}
	}
	body, err := readBodyLimit(w, r, s.cfg.DemoConfig.MaxBodyBytes)
	if err != nil {
		return err
	}
	// The JSON decoder would quietly turn invalid UTF-8 into U+FFFD.
	if !utf8.Valid(body) {
		return badRequest("invalid_json", "the body is not valid UTF-8")
	}
	var d demo.Draft
	if err := decodeStrict(body, &d, demoShape); err != nil {
		return err
	}
	q, err := demo.NewQuestion(d, s.cfg.DemoConfig)
	if err != nil {
		return err
	}
	msgs, err := s.b.Publish(q.Publication())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, publishedOf(msgs[0]))
	return nil
}
