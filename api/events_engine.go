package api

import (
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/pushuphq/pushup/broker"
	"github.com/pushuphq/pushup/internal/evhttp"
)

// engineStream is a GET /v1/events stream held by the event engine: the
// engine validated its head (or the handler checked the request in
// net/http and the connection was taken from http.Server), and the
// connection became an evhttp.Stream. Between events nothing waits for
// it: the broker holds a subscription whose deliver callback is the
// stream's, and the engine holds the socket (hang-up only). The broker's
// wait timeout, the same shared schedule that ends a long poll, is the
// stream's heartbeat and lifetime clock, so no timer is kept per stream
// either.
//
// Each delivery is queued to the model's stream workers (deliver must not
// block, and a publisher fanning out to thousands of streams must not
// write to them one after the other): a worker writes the events,
// subscribes again from the new cursor and moves on (step). At most one
// step runs at a time, since a stream has at most one subscription.
//
// It is the one record an idle stream keeps besides the engine's and the
// broker's, 15,000 of them at a time in the comparisons, so it holds only
// what differs per stream (TestIdleStreamRecordSize pins its size): the
// settings every stream shares are read from the Server, "ended" is a
// value of sub, the model and the slot of -max-conns-per-ip are one
// pointer (streams without a slot share their model's), and the deliver
// callback is made per wait.
//
// Lock order: es.mu, then the broker's locks (Subscribe runs under es.mu,
// so that an answer or an end cannot slip in before the subscription is
// noted), then streamWorkers.mu. Cancel of the broker's subscription and
// Stream.Write run with es.mu released.
type engineStream struct {
	sseStream
	own *streamOwner
	out *evhttp.Stream[broker.Result]

	mu  sync.Mutex
	sub *broker.Subscription // the wait in progress, nil, or streamEnded
}

// streamOwner is what a stream answers to: its model, and the slot of
// -max-conns-per-ip it gives back when it ends (nil: none).
type streamOwner struct {
	m       *eventModel
	release func()
}

// streamEnded is engineStream.sub once the stream ended and was counted.
// It is never subscribed or cancelled.
var streamEnded = new(broker.Subscription)

// streamOn hands the stream st, whose request the handler checked, to the
// engine: it takes the connection from http.Server, writes the head and
// the stream's first bytes, and returns at once. release, if not nil, is
// called when the stream ends. It reports false, having touched nothing,
// when the connection cannot be taken: the caller serves the stream
// itself.
func (m *eventModel) streamOn(w http.ResponseWriter, r *http.Request, st *sseStream, release func()) bool {
	c := m.e.NewConn()
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	if err := c.AttachHijacked(conn, rw); err != nil {
		// Nothing to answer on: the hijack took the connection from
		// http.Server, and it is closed here if AttachHijacked did not.
		conn.Close()
		m.s.log.Warn("cannot hand a stream to the engine", "err", err)
		m.s.sse.opened()
		m.s.sse.closed(sseEndError)
		if release != nil {
			release()
		}
		return true
	}
	// The cors middleware set the same headers the fast path sets.
	m.startStream(c, st, w.Header().Get("Access-Control-Allow-Origin"), release)
	return true
}

// startStream makes c, owned by the caller, the stream st, answering a
// request whose Access-Control-Allow-Origin is acao.
func (m *eventModel) startStream(c *eventConn, st *sseStream, acao string, release func()) {
	own := &m.own // shared by the streams that hold no slot
	if release != nil {
		own = &streamOwner{m: m, release: release}
	}
	es := &engineStream{sseStream: *st, own: own}
	m.s.sse.opened()
	// One buffer, sized for the head and the first event: every stream
	// that opens makes it, so it is not grown in steps.
	b := make([]byte, 0, 384+len(acao))
	// StreamEnded may run inside StartStream (the write fails): it does
	// not touch out, which only next and step use, after this.
	es.out = c.StartStream(st.open(appendStreamHead(b, acao), m.s.cfg.SSE.Retry), es)
	es.next()
}

// serveStreamFast serves a GET /v1/events whose head the engine
// validated, as handleEvents does, tokens and per-client caps included:
// the stream starts in the engine without passing through net/http.
// Errors get the API's JSON answer: it returns that answer for the caller
// to write, or nil once the stream started (and c is no longer the
// caller's).
func (m *eventModel) serveStreamFast(c *eventConn, h *evhttp.Head, acao string) (w *eventWriter) {
	s := m.s
	w = newEventWriter()
	started := false
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("handler panic", "path", eventsRoute, "panic", p)
			if started {
				w = nil // c is the stream's: nothing to answer on
				return
			}
			w = newEventWriter()
			w.Header().Set("Connection", "close")
			writeJSON(w, http.StatusInternalServerError, errorBody{Error: "internal", Message: "internal error"})
		}
	}()
	fail := func(err error) *eventWriter {
		w.Header().Set("Connection", "close")
		s.writeError(w, nil, err)
		return w
	}
	if c.OverLimit() {
		s.conns.Refuse()
		return fail(errOverloaded)
	}
	req, err := s.parseEventsRequest(h.Query, h.LastEventID)
	if err == nil && s.clusterNotReady() {
		err = errNotReady
	}
	var release func()
	if err == nil {
		// A stream holds its connection as a waiting poll does.
		release, err = m.admitHead(c, h, w, req.Channels, true)
	}
	var st sseStream
	if err == nil {
		if st, err = s.newStream(req); err != nil && release != nil {
			release()
		}
	}
	if err != nil {
		return fail(err)
	}
	started = true
	m.startStream(c, &st, acao, release)
	return nil
}

// appendStreamHead appends the status line and headers of a stream the
// engine holds: those streamHeaders and corsHeaders set (for a request
// whose Access-Control-Allow-Origin is acao), without a map. The body
// ends with the connection, as a stream does anyway; without chunked
// framing each event is written as is, shared bytes included.
func appendStreamHead(b []byte, acao string) []byte {
	b = append(b, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"+
		"X-Accel-Buffering: no\r\nVary: Origin\r\n"...)
	if acao != "" {
		b = append(b, "Access-Control-Allow-Origin: "...)
		b = append(b, acao...)
		b = append(b, "\r\nAccess-Control-Expose-Headers: Retry-After\r\n"...)
	}
	b = append(b, "Date: "...)
	b = time.Now().UTC().AppendFormat(b, http.TimeFormat)
	return append(b, "\r\nConnection: close\r\n\r\n"...)
}

// next subscribes from the stream's cursor and handles answers that are
// ready at once, until one has to be waited for or the stream ends.
func (es *engineStream) next() {
	s := es.own.m.s
	for {
		req, ok := es.request(time.Now(), s.cfg.SSE.Heartbeat)
		if !ok {
			es.end(sseEndLifetime)
			return
		}
		es.mu.Lock()
		if es.sub == streamEnded { // the engine ended it meanwhile
			es.mu.Unlock()
			return
		}
		res, sub, err := s.b.Subscribe(req, es.deliver)
		if sub != nil {
			es.sub = sub
			es.mu.Unlock()
			return
		}
		es.mu.Unlock()
		switch {
		case errors.Is(err, broker.ErrShuttingDown):
			es.end(sseEndShutdown)
			return
		case errors.Is(err, broker.ErrChannelNotFound):
			es.out.Write(es.closed(nil, "a channel of this stream no longer exists"))
			es.end(sseEndClosed)
			return
		case err != nil:
			s.log.Error("stream ends", "path", eventsRoute, "err", err)
			es.end(sseEndError)
			return
		}
		if !es.answer(res) {
			return
		}
	}
}

// deliver is the subscription's callback: it must not block.
func (es *engineStream) deliver(res broker.Result) { es.own.m.workers.enqueue(es, res) }

// step writes the answer to the stream's wait and waits again; it runs on
// a stream worker.
func (es *engineStream) step(res broker.Result) {
	es.mu.Lock()
	if es.sub == streamEnded {
		es.mu.Unlock()
		return
	}
	es.sub = nil
	es.mu.Unlock()
	if es.answer(res) {
		es.next()
	}
}

// answer writes the events of res and reports whether the stream goes on.
func (es *engineStream) answer(res broker.Result) bool {
	b, next, why := es.sseStream.answer(nil, res, time.Now(), es.own.m.s.cfg.SSE.Heartbeat)
	if len(b) > 0 {
		if !es.out.Write(b) {
			return false // the engine ended it and told StreamEnded
		}
		es.own.m.s.sse.wrote(len(res.Messages))
	}
	if next == sseEnd {
		es.end(why)
		return false
	}
	return true
}

// end ends the stream on the handler's side: what was written goes out,
// then the connection closes.
func (es *engineStream) end(why string) {
	if es.finish(why) {
		es.out.Close()
	}
}

// finish counts the stream's end once and withdraws its wait; it reports
// whether this call was the one.
func (es *engineStream) finish(why string) bool {
	es.mu.Lock()
	sub := es.sub
	if sub == streamEnded {
		es.mu.Unlock()
		return false
	}
	es.sub = streamEnded
	es.mu.Unlock()
	if sub != nil {
		sub.Cancel()
	}
	if es.own.release != nil {
		es.own.release()
	}
	es.own.m.s.sse.closed(why)
	return true
}

// StreamEnded is told by the engine that it ended the stream.
func (es *engineStream) StreamEnded(why evhttp.StreamEnd) {
	switch why {
	case evhttp.StreamSlow:
		es.finish(sseEndSlow)
	case evhttp.StreamShutdown:
		es.finish(sseEndShutdown)
	default:
		es.finish(sseEndClient)
	}
}

// Cancel is StreamEnded for a reason the engine did not give.
func (es *engineStream) Cancel() bool {
	es.finish(sseEndClient)
	return true
}

// streamBacklog is the engine's Config.StreamBacklog: room for the
// largest message (a publication body) twice over, so that one big event
// does not close a stream whose client reads.
func streamBacklog(maxBody int64) int {
	return int(min(2*maxBody+64<<10, 1<<30))
}
