//go:build linux

package api

import (
	"fmt"
	"net/http"

	"github.com/pushuphq/pushup/broker"
)

// subscribeParked serves a subscribe in the event model. An answer that is
// ready is written at once, like any response. Otherwise the connection is
// taken from http.Server (or, when the event loop is already serving it,
// kept) and parked: the handler returns and nothing waits but a record.
func (s *Server) subscribeParked(w http.ResponseWriter, r *http.Request, req broker.SubscribeRequest) error {
	c := pconnFrom(r.Context())
	fresh := c == nil
	if fresh {
		c = newPconn(s.parker)
	}
	meta := metaFrom(r.Context())
	c.acao = w.Header().Get("Access-Control-Allow-Origin")
	c.keepAlive = !r.Close
	c.start = meta.start.UnixNano()
	res, sub, err := s.b.Subscribe(req, c.deliverFn)
	if err != nil {
		return err
	}
	if sub == nil {
		s.writeResult(w, res)
		return nil
	}
	meta.parked = true
	if fresh {
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err == nil {
			err = c.attachHijacked(conn, rw)
		}
		if err != nil {
			// Cannot park. If the answer was given meanwhile it is lost,
			// but nothing is skipped: the client keeps its cursor.
			sub.Cancel()
			s.log.Warn("cannot park a subscribe connection", "err", err)
			if conn == nil {
				meta.parked = false
				return fmt.Errorf("api: parking the connection: %w", err)
			}
			return nil
		}
	}
	c.park(sub)
	return nil
}
