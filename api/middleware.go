package api

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// requirePublisherKey guards publisher and channel endpoints when a key is
// configured. The comparison is constant-time so response timing does not
// leak the key.
func (s *Server) requirePublisherKey(next http.Handler) http.Handler {
	if len(s.publisherKeys) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !publisherKeyOK(r.Header.Get("Authorization"), s.publisherKeys) {
			s.writeError(w, r, &apiError{status: http.StatusUnauthorized, code: "unauthorized",
				msg: "this endpoint needs \"Authorization: Bearer <publisher key>\""})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// allowOrigin returns the Access-Control-Allow-Origin value for a request
// from origin, or "" when the origin is absent or not allowed.
func (s *Server) allowOrigin(origin string) string {
	if origin == "" {
		return ""
	}
	if slices.Contains(s.cfg.CORSOrigins, "*") {
		return "*"
	}
	if slices.Contains(s.cfg.CORSOrigins, origin) {
		return origin
	}
	return ""
}

// cors lets browsers on allowed origins call the endpoint. It answers
// preflight requests itself.
func (s *Server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		allow := s.allowOrigin(r.Header.Get("Origin"))
		allowed := allow != ""
		h := w.Header()
		h.Add("Vary", "Origin")
		if allowed {
			h.Set("Access-Control-Allow-Origin", allow)
			// Scripts on other origins see only a few headers unless
			// told; a client backing off on 503 or 429 needs this one.
			h.Set("Access-Control-Expose-Headers", "Retry-After")
		}
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			if allowed {
				h.Set("Access-Control-Allow-Methods", "GET, OPTIONS")
				if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
					h.Set("Access-Control-Allow-Headers", req)
				}
				h.Set("Access-Control-Max-Age", "600")
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// reqMeta travels in a request's context from observe to the handler. A
// subscribe that parks its connection sets parked: its latency is recorded
// when the answer is written, not when the handler returns.
type reqMeta struct {
	start  time.Time
	parked bool
}

type reqMetaKey struct{}

func metaFrom(ctx context.Context) *reqMeta {
	m, _ := ctx.Value(reqMetaKey{}).(*reqMeta)
	return m
}

// observe records request latency and logs each request at debug level.
// It runs outside the router so unmatched requests are counted too.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		meta := &reqMeta{start: time.Now()}
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		// chi fills in a route context it finds on the request rather
		// than making its own, so the pattern is readable afterwards.
		rc := chi.NewRouteContext()
		ctx := context.WithValue(r.Context(), chi.RouteCtxKey, rc)
		r = r.WithContext(context.WithValue(ctx, reqMetaKey{}, meta))
		next.ServeHTTP(ww, r)
		if meta.parked {
			return
		}
		route := rc.RoutePattern()
		if route == "" {
			route = "unmatched"
		}
		status := ww.Status()
		if status == 0 {
			status = 499 // client left before an answer (nginx's convention)
		}
		d := time.Since(meta.start)
		s.metrics.observe(route, r.Method, status, d)
		s.log.Debug("request", "method", r.Method, "route", route, "path", r.URL.Path,
			"status", status, "bytes", ww.BytesWritten(), "duration", d, "remote", r.RemoteAddr)
	})
}

// recoverer turns a handler panic into a 500 instead of a dropped
// connection, and logs it.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("handler panic", "method", r.Method, "path", r.URL.Path, "panic", p)
				writeJSON(w, http.StatusInternalServerError, errorBody{Error: "internal", Message: "internal error"})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// notFound and methodNotAllowed answer in the API's JSON error format.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusNotFound, errorBody{Error: "not_found", Message: "no such endpoint: " + r.URL.Path})
}

// methodNotAllowed lists the allowed methods in Allow, as RFC 9110 asks.
// chi only does that for its own default handler.
func (s *Server) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions} {
		if s.router.Match(chi.NewRouteContext(), m, r.URL.Path) {
			allow = append(allow, m)
		}
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: "method_not_allowed",
		Message: r.Method + " is not allowed on " + r.URL.Path + "; allowed: " + strings.Join(allow, ", ")})
}
