//go:build linux

package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/pushuphq/pushup/broker"
)

// subscribeParked serves a subscribe in the event model that came through
// http.Server (the event loop's own requests take serveSubscribe). An
// answer that is ready is written at once, like any response. Otherwise the
// connection is taken from http.Server (or, when the event loop is already
// serving it, kept) and parked: the handler returns and nothing waits but a
// record.
func (s *Server) subscribeParked(w http.ResponseWriter, r *http.Request, req broker.SubscribeRequest) error {
	c := pconnFrom(r.Context())
	fresh := c == nil
	if fresh {
		c = newPconn(s.parker)
	}
	meta := metaFrom(r.Context())
	var take func() error
	if fresh {
		take = func() error {
			conn, rw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return err
			}
			return c.attachHijacked(conn, rw)
		}
	}
	parked, err := s.subscribeOn(c, w, req, w.Header().Get("Access-Control-Allow-Origin"), !r.Close, meta.start, take)
	meta.parked = parked
	return err
}

// subscribeOn subscribes on behalf of connection c: it writes an answer
// that is ready to w, or parks c until the broker answers (after take, if
// not nil, has handed the connection over). acao and keep say how the
// eventual answer is to be written; start is when the request arrived.
func (s *Server) subscribeOn(c *pconn, w http.ResponseWriter, req broker.SubscribeRequest,
	acao string, keep bool, start time.Time, take func() error) (parked bool, err error) {
	c.acao, c.keepAlive, c.start = acao, keep, start.UnixNano()
	res, sub, err := s.b.Subscribe(req, c.deliverFn)
	if err != nil {
		return false, err
	}
	if sub == nil {
		s.writeResult(w, res)
		return false, nil
	}
	if take != nil {
		if err := take(); err != nil {
			// Cannot park. If the answer was given meanwhile it is lost,
			// but nothing is skipped: the client keeps its cursor.
			sub.Cancel()
			s.log.Warn("cannot park a subscribe connection", "err", err)
			return false, fmt.Errorf("api: parking the connection: %w", err)
		}
	}
	c.park(sub)
	return true, nil
}

// eventPeer returns the peer address of a request the event loop serves
// itself (it sets no RemoteAddr), or "".
func eventPeer(r *http.Request) string {
	if c := pconnFrom(r.Context()); c != nil {
		return peerAddr(c.fd) // c is being served here: fd is stable
	}
	return ""
}
