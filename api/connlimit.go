package api

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// connLimit keeps the server answering near its open-file limit. A
// connection accepted while MaxConns are open is still served, but only
// for /healthz: anything else gets 503 with Retry-After and the
// connection closes, so a load balancer's health checks go on working
// while clients back off. Past a margin above MaxConns (room for the
// health checks) new connections get the same 503 without being read.
// Safe for concurrent use.
type connLimit struct {
	soft, hard int64
	refused    atomic.Uint64 // connections answered 503 for being over the limit
}

// newConnLimit derives the bounds: max, or when 0 the process's open-file
// limit less a tenth (for listeners, cluster sockets, files, epoll).
func newConnLimit(max int) *connLimit {
	soft := int64(max)
	if soft <= 0 {
		var rl syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur > 0 && rl.Cur < 1<<40 {
			soft = int64(rl.Cur) - int64(rl.Cur)/10
		} else {
			soft = 1 << 30
		}
	}
	return &connLimit{soft: soft, hard: soft + max64(8, soft/20)}
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// overLimit reports whether a connection accepted while live are open
// is to be served for /healthz only.
func (l *connLimit) overLimit(live int64) bool { return live >= l.soft }

// refuse reports whether a connection accepted while live are open gets
// the 503 unread; it counts it.
func (l *connLimit) refuse(live int64) bool {
	if live >= l.hard {
		l.refused.Add(1)
		return true
	}
	return false
}

// errOverloaded answers requests on connections over MaxConns (with
// Retry-After, as every 503).
var errOverloaded = &apiError{status: http.StatusServiceUnavailable, code: "overloaded",
	msg: "too many open connections; retry in a moment"}

// refusal is the whole answer to a connection refused unread.
var refusal = func() []byte {
	body := `{"error":"overloaded","message":"` + errOverloaded.msg + `"}` + "\n"
	return []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n" +
		"Connection: close\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}()

// limitListener counts the connections http.Server accepts itself (the
// goroutine and thread models) and marks or refuses those over the limit.
type limitListener struct {
	net.Listener
	l    *connLimit
	live atomic.Int64
}

func (ln *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		live := ln.live.Load()
		if ln.l.refuse(live) {
			// Best effort and bounded: the socket buffer takes this.
			c.Write(refusal)
			c.Close()
			continue
		}
		ln.live.Add(1)
		return &countedConn{Conn: c, live: &ln.live, shed: ln.l.overLimit(live)}, nil
	}
}

// countedConn is a connection limitListener counts until it is closed.
type countedConn struct {
	net.Conn
	live   *atomic.Int64
	shed   bool
	closed atomic.Bool
}

func (c *countedConn) Close() error {
	if !c.closed.Swap(true) {
		c.live.Add(-1)
	}
	return c.Conn.Close()
}

func (c *countedConn) overLimit() bool { return c.shed }

// overLimitConn is a connection that knows whether it was accepted over
// MaxConns.
type overLimitConn interface{ overLimit() bool }

type shedKey struct{}

// connContext marks the requests of connections accepted over the limit
// (http.Server.ConnContext).
func connContext(ctx context.Context, c net.Conn) context.Context {
	if oc, ok := c.(overLimitConn); ok && oc.overLimit() {
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
				s.conns.refused.Add(1)
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
