package api

import (
	"context"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/pushuphq/pushup/internal/evhttp"
)

// errOverloaded answers requests on connections accepted over MaxConns
// (with Retry-After, as every 503).
var errOverloaded = &apiError{status: http.StatusServiceUnavailable, code: "overloaded",
	msg: "too many open connections; retry in a moment"}

type shedKey struct{}

// connContext marks the requests of connections accepted over the limit
// (http.Server.ConnContext).
func connContext(ctx context.Context, c net.Conn) context.Context {
	if evhttp.OverLimit(c) {
		return context.WithValue(ctx, shedKey{}, true)
	}
	return ctx
}

// shedOverLimit answers 503 to every request but the health checks on a
// connection accepted over MaxConns, and closes it.
func (s *Server) shedOverLimit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if shed, _ := r.Context().Value(shedKey{}).(bool); shed {
			w.Header().Set("Connection", "close")
			if !strings.HasPrefix(r.URL.Path, "/healthz") {
				s.conns.Refuse()
				s.writeError(w, r, errOverloaded)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// strictFraming closes the connection after any request with a
// Transfer-Encoding (RFC 9112 §6.1: after a request with both it and a
// Content-Length the server MUST close; net/http drops the Content-Length
// before a handler could tell), so nothing sent behind such a request is
// ever read as a request of its own. A method the API never reads a body
// of gets 400 as well.
func (s *Server) strictFraming(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TransferEncoding) > 0 {
			w.Header().Set("Connection", "close")
			switch r.Method {
			case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodDelete:
				s.writeError(w, r, errFraming)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

var errFraming = badRequest("invalid_framing", "a request with Transfer-Encoding must be a POST or PUT with a body; "+
	"with Content-Length as well it is ambiguous")

// boundWrites bounds writing every response by WriteTimeout, in every
// model: a client that sends requests and never reads the answers (say
// 100,000 pipelined GET /healthz) is cut off instead of holding its
// connection and goroutine. The deadline starts with the response, not the
// request, so a slow handler (a large publish) is not cut by it; a
// subscribe renews it for each chunk of its answer (writeResult).
func (s *Server) boundWrites(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&deadlineWriter{ResponseWriter: w, timeout: s.cfg.WriteTimeout}, r)
	})
}

// deadlineWriter sets the write deadline when the response begins.
type deadlineWriter struct {
	http.ResponseWriter
	timeout time.Duration
	started bool
}

func (w *deadlineWriter) start() {
	if !w.started {
		w.started = true
		_ = http.NewResponseController(w.ResponseWriter).SetWriteDeadline(time.Now().Add(w.timeout))
	}
}

func (w *deadlineWriter) WriteHeader(status int) {
	w.start()
	w.ResponseWriter.WriteHeader(status)
}

func (w *deadlineWriter) Write(b []byte) (int, error) {
	w.start()
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (deadlines,
// Hijack, Flush).
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
