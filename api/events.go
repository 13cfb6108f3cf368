package api

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/pushuphq/pushup/broker"
)

// eventsRoute and positionRoute are the streaming endpoints' paths.
const (
	eventsRoute   = "/v1/events"
	positionRoute = "/v1/position"
)

// streamRoutes adds GET /v1/events and GET /v1/position to the /v1 router,
// with the same CORS as subscribe, and registers the streams' metrics.
func (s *Server) streamRoutes(r chi.Router) {
	s.sse = newSSEMetrics()
	s.reg.MustRegister(s.sse)
	r.With(s.cors).Get("/events", s.handle(s.handleEvents))
	r.With(s.cors).Options("/events", s.handleOptions)
	r.With(s.cors).Get("/position", s.handle(s.handlePosition))
	r.With(s.cors).Options("/position", s.handleOptions)
}

// maxBufferKept is the largest write buffer a stream keeps between
// answers; a burst that needed more gives it back to the GC.
const maxBufferKept = 16 << 10

// handleEvents serves GET /v1/events: the stream's channels and start
// position are parsed and checked (errors get the API's JSON answer, as
// for subscribe), then the stream runs until its lifetime ends, its
// channels close, the node shuts down or the client goes. In the event
// model the connection is then handed to the engine (events_engine.go);
// in the goroutine model a stream is a goroutine served by http.Server,
// in the thread model it holds an OS thread for its whole life.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) error {
	req, err := s.parseEventsRequest(r.URL.RawQuery, r.Header.Get("Last-Event-ID"))
	if err != nil {
		return err
	}
	if err := s.authorizeSubscribe(r, req.Channels); err != nil {
		return err
	}
	// A stream holds its connection as a waiting poll does: it counts
	// against -max-conns-per-ip for its whole life.
	release, err := s.admitWaiter(w, r)
	if err != nil {
		return err
	}
	handed := false // release is the engine stream's
	if release != nil {
		defer func() {
			if !handed {
				release()
			}
		}()
	}
	st, err := s.newStream(req)
	if err != nil {
		return err
	}

	streamHeaders(w.Header())
	if m, ok := s.holder.(*eventModel); ok && canPark(r) {
		// The event model holds the stream in its engine: no goroutine
		// and no buffer between events.
		if handed = m.streamOn(w, r, &st, release); handed {
			return nil
		}
	}
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	write := func(b []byte) error { return s.writeStream(w, rc, b) }

	s.sse.opened()
	why := sseEndClient
	if err := write(st.open(nil, s.cfg.SSE.Retry)); err == nil {
		if m, ok := s.holder.(*threadModel); ok {
			why, err = m.gate.run(func() string { return s.driveStream(r.Context(), &st, write) })
			if err != nil {
				why = sseEndError
				s.log.Warn("stream ends: no thread", "err", err)
			}
		} else {
			why = s.driveStream(r.Context(), &st, write)
		}
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		why = sseEndSlow
	}
	s.sse.closed(why)
	// Room to end the chunked body cleanly: the last write's deadline may
	// have passed while the stream waited.
	_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	return nil
}

// parseEventsRequest parses a stream's query and Last-Event-ID header.
func (s *Server) parseEventsRequest(query, lastEventID string) (broker.SubscribeRequest, error) {
	req, err := parseSubscribeQuery(query, s.cfg.DefaultTimeout, s.cfg.MaxTimeout)
	if err != nil {
		return req, err
	}
	if req.Until != 0 {
		return req, badRequest("invalid_until", "a stream has no end: until works with /v1/subscribe only")
	}
	// EventSource resends the URL it was opened with, since= included,
	// and says where it got to in Last-Event-ID: that wins.
	if lastEventID != "" {
		c, err := broker.ParseCursor(lastEventID)
		if err != nil {
			return req, badRequest("invalid_last_event_id", "Last-Event-ID must be an event id of this stream: "+err.Error())
		}
		req.Cursor, req.FromNow = c, false
	}
	return req, nil
}

// newStream starts the stream req asks for. It checks the channels before
// the 200 goes out, and pins "now" to a cursor the stream can hand out as
// its first id.
func (s *Server) newStream(req broker.SubscribeRequest) (sseStream, error) {
	now, err := s.b.Position(req.Channels)
	if err != nil {
		return sseStream{}, err
	}
	if req.FromNow {
		req.Cursor = now
	}
	return newSSEStream(s.cfg.SSE, compactNames(req.Channels), req.Cursor, time.Now(), rand.Float64()), nil
}

// compactNames copies names into one string and one slice of their own. A
// stream keeps its channel names for its whole life; as parsed they point
// into the request's query string, which would keep all of it alive (a
// token in token= is a few hundred bytes) in every idle stream.
func compactNames(names []string) []string {
	n := 0
	for _, c := range names {
		n += len(c)
	}
	var all strings.Builder
	all.Grow(n)
	for _, c := range names {
		all.WriteString(c)
	}
	joined := all.String()
	out := make([]string, len(names))
	for i, c := range names {
		out[i], joined = joined[:len(c)], joined[len(c):]
	}
	return out
}

// streamHeaders sets the headers of a stream's 200.
func streamHeaders(h http.Header) {
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx in front: do not buffer the stream
}

// driveStream runs st until it ends and says why: subscribe, wait for the
// answer (or ctx, the client's request, to end), write the events, again.
// write gets each answer's bytes; an error from it ends the stream.
func (s *Server) driveStream(ctx context.Context, st *sseStream, write func([]byte) error) string {
	answer := make(chan broker.Result, 1) // deliver must not block
	deliver := func(r broker.Result) { answer <- r }
	var buf []byte
	for {
		req, ok := st.request(time.Now(), s.cfg.SSE.Heartbeat)
		if !ok {
			return sseEndLifetime
		}
		res, sub, err := s.b.Subscribe(req, deliver)
		switch {
		case errors.Is(err, broker.ErrShuttingDown):
			return sseEndShutdown
		case errors.Is(err, broker.ErrChannelNotFound):
			// Closed and gone between two waits (a closed channel
			// seen while waiting is ReasonClosed instead).
			_ = write(st.closed(buf[:0], "a channel of this stream no longer exists"))
			return sseEndClosed
		case err != nil:
			s.log.Error("stream ends", "path", eventsRoute, "err", err)
			return sseEndError
		}
		if sub != nil {
			if res, ok = awaitAnswer(ctx, sub, answer); !ok {
				return sseEndClient
			}
		}
		var next sseNext
		var why string
		buf, next, why = st.answer(buf[:0], res, time.Now(), s.cfg.SSE.Heartbeat)
		if len(buf) > 0 {
			if err := write(buf); err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					return sseEndSlow
				}
				return sseEndClient
			}
			s.sse.wrote(len(res.Messages))
		}
		if next == sseEnd {
			return why
		}
		if cap(buf) > maxBufferKept {
			buf = nil
		}
	}
}

// writeStream writes b to a stream and flushes it, each chunk under its
// own write deadline: a client that keeps reading is never cut off, one
// whose socket stays full for WriteTimeout is (the error wraps
// os.ErrDeadlineExceeded).
func (s *Server) writeStream(w http.ResponseWriter, rc *http.ResponseController, b []byte) error {
	for len(b) > 0 {
		chunk := b[:min(len(b), writeChunk)]
		b = b[len(chunk):]
		_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		if _, err := w.Write(chunk); err != nil {
			return err
		}
	}
	return rc.Flush()
}

// run runs fn on an OS thread of its own, as await does for a long poll,
// and returns its result; it fails with ErrThreadLimit when no thread may
// be had.
func (g *threadGate) run(fn func() string) (string, error) {
	if err := g.acquire(); err != nil {
		return "", err
	}
	done := make(chan string, 1)
	// Owned by this call, which waits for it; it ends when fn returns.
	go func() {
		runtime.LockOSThread()
		// Never unlocked: exiting locked ends the thread.
		g.hold()
		why := fn()
		g.release()
		done <- why
	}()
	return <-done, nil
}

// positionBody is the answer of GET /v1/position.
type positionBody struct {
	Cursor string `json:"cursor"`
}

// handlePosition serves GET /v1/position?channels=a,b: the cursor of "now"
// for those channels. A backend rendering a page puts it in the page, and
// the page subscribes (or opens a stream) with since=<cursor>: it gets
// exactly what was published after the render, from any node.
func (s *Server) handlePosition(w http.ResponseWriter, r *http.Request) error {
	req, err := parseSubscribeQuery(r.URL.RawQuery, s.cfg.DefaultTimeout, s.cfg.MaxTimeout)
	if err != nil {
		return err
	}
	if err := s.authorizeSubscribe(r, req.Channels); err != nil {
		return err
	}
	c, err := s.b.Position(req.Channels)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, positionBody{Cursor: c.String()})
	return nil
}
