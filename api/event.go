package api

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/pushuphq/pushup/broker"
	"github.com/pushuphq/pushup/internal/evhttp"
)

// subscribeRoute is the route pattern of subscribe, for metrics, and the
// one path the event engine serves itself.
const subscribeRoute = "/v1/subscribe"

// eventModel is ModelEvent: an evhttp.Engine accepts every connection,
// serves subscribe heads it fully validated itself, parks waiting
// subscribers as records in its epoll set, and hands everything else to
// http.Server. It is the engine's Handler; answers are broker Results.
type eventModel struct {
	s       *Server
	e       *evhttp.Engine[broker.Result]
	workers *streamWorkers // write the answers of engine-held streams
	own     streamOwner    // of the streams that hold no -max-conns-per-ip slot
	// polls remembers repeated subscribe queries of the fast path.
	polls *pollMemo
}

type eventConn = evhttp.Conn[broker.Result]

func newEventModel(s *Server) (*eventModel, error) {
	m := &eventModel{s: s, workers: newStreamWorkers(0), polls: newPollMemo()}
	m.own.m = m
	e, err := evhttp.New[broker.Result](evhttp.Config{
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		FastPath:          subscribeRoute,
		StreamPath:        eventsRoute,
		StreamBacklog:     streamBacklog(s.cfg.MaxBodyBytes),
		Limit:             s.conns,
		Logger:            s.log,
	}, m)
	if err != nil {
		return nil, err
	}
	m.e = e
	return m, nil
}

func (m *eventModel) model() Model                                 { return ModelEvent }
func (m *eventModel) listen(ln net.Listener) (net.Listener, error) { return m.e.Listen(ln) }

// shutdown stops the engine, which ends every stream, then the stream
// workers, which write what the broker's last answers left queued.
func (m *eventModel) shutdown(ctx context.Context) error {
	err := m.e.Shutdown(ctx)
	m.workers.stop()
	return err
}

// subscribe serves a subscribe that came through http.Server (the engine's
// own requests take ServeFast). An answer that is ready is written at
// once, like any response. Otherwise the connection is taken from
// http.Server and parked: the handler returns and nothing waits but a
// record. HTTP/2 and TLS connections cannot be taken: they wait in their
// goroutine.
func (m *eventModel) subscribe(w http.ResponseWriter, r *http.Request, req broker.SubscribeRequest) error {
	if !canPark(r) {
		return goroutineModel{m.s}.subscribe(w, r, req)
	}
	c := m.e.NewConn() // owned by this handler until parked
	meta := metaFrom(r.Context())
	take := func() error {
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return err
		}
		return c.AttachHijacked(conn, rw)
	}
	parked, err := m.subscribeOn(c, w, req, w.Header().Get("Access-Control-Allow-Origin"), !r.Close, meta.start, take)
	meta.parked = parked
	return err
}

// subscribeOn subscribes on behalf of connection c, which the caller owns:
// it writes an answer that is ready to w, or parks c until the broker
// answers (after take, if not nil, has handed the connection over). acao
// and keep say how the eventual answer is to be written; start is when
// the request arrived.
func (m *eventModel) subscribeOn(c *eventConn, w http.ResponseWriter, req broker.SubscribeRequest,
	acao string, keep bool, start time.Time, take func() error) (parked bool, err error) {
	c.SetRequest(acao, keep, start)
	res, sub, err := m.s.b.Subscribe(req, c.DeliverFunc())
	if err != nil {
		return false, err
	}
	if sub == nil {
		m.s.writeResult(w, res)
		return false, nil
	}
	if take != nil {
		if err := take(); err != nil {
			// Cannot park. If the answer was given meanwhile it is lost,
			// but nothing is skipped: the client keeps its cursor.
			sub.Cancel()
			m.s.log.Warn("cannot park a subscribe connection", "err", err)
			return false, fmt.Errorf("api: parking the connection: %w", err)
		}
	}
	c.Park(sub)
	return true, nil
}

// ServeFast serves a subscribe whose head the engine validated: what the
// router chain does for this one route, without its allocations, on the
// hottest path there is (every poll after a client's first). Same
// behaviour: CORS headers, JSON errors, latency metrics, a 500 for a
// panic.
func (m *eventModel) ServeFast(c *eventConn, h evhttp.Head) {
	s := m.s
	start := time.Now()
	acao := s.allowOrigin(h.Origin)
	if h.Stream {
		if w := m.serveStreamFast(c, &h, acao); w != nil {
			corsHeaders(w.Header(), acao)
			s.metrics.observe(eventsRoute, http.MethodGet, w.status, time.Since(start))
			c.Reply(w.bytes(false), false)
		}
		return
	}
	var (
		out          []byte
		status       int
		keep, parked bool
	)
	func() {
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("handler panic", "path", subscribeRoute, "panic", p)
				w := newEventWriter()
				w.Header().Set("Connection", "close")
				writeJSON(w, http.StatusInternalServerError, errorBody{Error: "internal", Message: "internal error"})
				out, status, keep, parked = m.written(w, acao, false)
			}
		}()
		out, status, keep, parked = m.servePoll(c, h, acao, start)
	}()
	if parked {
		return // answered later, by the broker; c is no longer ours
	}
	d := time.Since(start)
	s.metrics.observe(subscribeRoute, http.MethodGet, status, d)
	if s.debug {
		s.log.Debug("request", "method", http.MethodGet, "route", subscribeRoute, "status", status,
			"bytes", len(out), "duration", d, "remote", c.RemoteAddr(), "loop", true)
	}
	c.Reply(out, keep)
}

// servePoll serves a long-poll subscribe for ServeFast: it parks c, or
// returns the whole response and whether to keep the connection. A query
// repeated while its channels are unchanged is answered with the bytes
// of the last identical answer (see pollMemo): nothing is allocated.
func (m *eventModel) servePoll(c *eventConn, h evhttp.Head, acao string, start time.Time) (out []byte, status int, keep, parked bool) {
	s := m.s
	if c.OverLimit() {
		s.conns.Refuse()
		w := newEventWriter()
		w.Header().Set("Connection", "close")
		s.writeError(w, nil, errOverloaded)
		return m.written(w, acao, h.KeepAlive)
	}
	e, req, err := m.polls.request(h.Query, s.cfg.DefaultTimeout, s.cfg.MaxTimeout)
	if err == nil && s.clusterNotReady() {
		err = errNotReady
	}
	var w *eventWriter // only for answers that are not remembered
	if err == nil {
		// Tokens and -max-conns-per-ip, before anything is answered: a
		// remembered answer is reused only for a request let through.
		var rw http.ResponseWriter // a 429's Retry-After, with a cap only
		if s.perIP != nil {
			w = newEventWriter()
			rw = w
		}
		err = m.admitPoll(c, &h, rw, &req)
	}
	var res broker.Result
	if err == nil {
		c.SetRequest(acao, h.KeepAlive, start)
		// The engine may cancel late, after the answer came (a hang-up
		// racing it): through a ticket, which cannot reach the wait's
		// record once the broker recycled it for another.
		var t *broker.Ticket
		res, t, err = s.b.SubscribeRecycled(req, c.DeliverFunc())
		parked = err == nil && t != nil
		releaseUnparked(req, parked)
		if parked {
			c.Park(t)
			return nil, 0, false, true
		}
	}
	if err != nil {
		if w == nil {
			w = newEventWriter()
		}
		s.writeError(w, nil, err)
		return m.written(w, acao, h.KeepAlive)
	}
	keep = h.KeepAlive && res.Reason != broker.ReasonShutdown && !m.e.Closing()
	if e != nil && res.Share != nil {
		// The broker answered from e's memo: the answer is one it gave
		// before, or is now remembered; so are its bytes.
		return m.polls.answer(s, e, res, acao, keep, start), http.StatusOK, keep, false
	}
	status = http.StatusOK
	if res.Reason == broker.ReasonClosed {
		status = http.StatusGone
	}
	return s.answerFor(res, acao, keep), status, keep, false
}

// written finishes a response built in w for the fast path: CORS headers
// (only answers given now need them) and keep-alive.
func (m *eventModel) written(w *eventWriter, acao string, requestKeep bool) (out []byte, status int, keep, parked bool) {
	corsHeaders(w.Header(), acao)
	keep = w.keepAlive(requestKeep) && !m.e.Closing()
	return w.bytes(keep), w.status, keep, false
}

// Encode writes the broker's answer to a parked subscribe.
func (m *eventModel) Encode(c *eventConn, res broker.Result) ([]byte, bool) {
	acao, keep, start := c.Request()
	keep = keep && !m.e.Closing()
	b, status := m.s.answerBytes(res, acao, keep)
	m.s.metrics.observe(subscribeRoute, http.MethodGet, status, time.Since(start))
	return b, keep && res.Reason != broker.ReasonShutdown
}

// Batch queues the answers of one publication together: they share their
// bytes (answerBytes memoises them on res.Share).
func (m *eventModel) Batch(res broker.Result) any {
	if res.Share == nil {
		return nil
	}
	return res.Share
}
