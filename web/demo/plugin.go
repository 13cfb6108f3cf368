package demo

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"mime"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/pushuphq/pushup/api"
)

// csp confines the demo page to its own origin: it shows text other
// people typed, so even a rendering bug must not be able to run a script
// or send data elsewhere.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// contentTypes are the content types of the demo's files, by extension;
// set explicitly for the same reason as pushup.js's.
var contentTypes = map[string]string{
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
		ct, ok := contentTypes[path.Ext(p)]
		if !ok {
			return fmt.Errorf("demo: asset %s: no content type for %q", p, path.Ext(p))
		}
		sum := sha256.Sum256(b)
		files[p] = staticFile{name: p, contentType: ct, data: string(b),
			etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	return files, err
}

// Plugin serves the demo beside the API (an api.Plugin): its page under
// /demo/, its question endpoint, POST /demo/api/questions, and its token
// endpoint, GET /demo/api/token, which mints the subscriber token of the
// page's private channel, user:<name>, when Config.TokenKey is set. The question
// endpoint publishes without the publisher key (browsers must not hold
// it), but only validated questions, only to author:<name> and tag:<t>
// channels, within its Config. It holds no state between requests and is
// safe for concurrent use.
type Plugin struct {
	cfg   Config
	files map[string]staticFile
	front api.Front
}

// NewPlugin validates cfg and loads the page's assets.
func NewPlugin(cfg Config) (*Plugin, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	files, err := loadStatic(Assets())
	if err != nil {
		return nil, err
	}
	return &Plugin{cfg: cfg, files: files}, nil
}

// Name is "demo".
func (p *Plugin) Name() string { return "demo" }

// Path is "/demo/", the page.
func (p *Plugin) Path() string { return "/demo/" }

// Mount adds the page and the question endpoint. Each file gets its own
// route rather than a wildcard, so a GET on the endpoint is a 405 and an
// unknown path the API's JSON 404.
func (p *Plugin) Mount(r chi.Router, front api.Front) {
	p.front = front
	r.Get("/demo", redirectToPage)
	for _, name := range append([]string{""}, slices.Sorted(maps.Keys(p.files))...) {
		r.Get("/demo/"+name, p.serveAsset)
		r.Head("/demo/"+name, p.serveAsset)
	}
	r.Post("/demo/api/questions", front.Handle(p.postQuestion))
	r.Get("/demo/api/token", front.Handle(p.getToken))
}

// redirectToPage sends /demo to /demo/, so the page's relative URLs
// resolve. The Location is relative, so a proxy serving PushUp under a
// path prefix keeps it.
func redirectToPage(w http.ResponseWriter, r *http.Request) {
	loc := "demo/"
	if r.URL.RawQuery != "" {
		loc += "?" + r.URL.RawQuery
	}
	w.Header().Set("Location", loc)
	w.WriteHeader(http.StatusMovedPermanently)
}

// serveAsset serves the embedded files; /demo/ is index.html.
func (p *Plugin) serveAsset(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/demo/")
	if name == "" {
		name = "index.html"
	}
	f := p.files[name] // routed only for names it has
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	// Revalidate every time: the files are tiny and a 304 is cheap, and a
	// demo should never run a stale page against a newer server.
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	http.ServeContent(w, r, f.name, time.Time{}, strings.NewReader(f.data))
}

// draftShape is appended to question body errors.
const draftShape = ` (expected {"author":"ann","title":"...","tags":["go"]})`

// postQuestion serves POST /demo/api/questions: it validates a question
// and publishes it once to author:<name> and each tag:<t>.
//
// It needs Content-Type: application/json. Besides saying what the body
// is, that makes a cross-origin post a non-simple request the browser must
// preflight, and nothing here answers preflights, so other sites cannot
// make their visitors' browsers post questions.
func (p *Plugin) postQuestion(w http.ResponseWriter, r *http.Request) error {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return &api.ClientError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
			Message: "send the question as JSON with Content-Type: application/json"}
	}
	var d Draft
	if err := p.front.ReadJSON(w, r, p.cfg.MaxBodyBytes, &d, "a question object", draftShape); err != nil {
		return err
	}
	q, err := NewQuestion(d, p.cfg)
	var invalid *Error
	if errors.As(err, &invalid) {
		return &api.ClientError{Code: invalid.Code, Message: invalid.Message}
	}
	if err != nil {
		return err
	}
	return p.front.Publish(w, q.Publication())
}

// Off returns the plug-in for a server without the demo: /demo and all
// under it answer the API's 404, saying how to turn the demo on, and the
// index lists no page.
func Off() api.Plugin { return off{} }

type off struct{}

func (off) Name() string { return "demo" }
func (off) Path() string { return "" }

func (off) Mount(r chi.Router, front api.Front) {
	h := front.Handle(func(http.ResponseWriter, *http.Request) error {
		return &api.ClientError{Status: http.StatusNotFound, Code: "not_found",
			Message: "the Q&A demo is off on this server: start pushupd with -demo to serve it at /demo/"}
	})
	r.HandleFunc("/demo", h)
	r.HandleFunc("/demo/*", h)
}
