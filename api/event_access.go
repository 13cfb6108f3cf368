package api

import (
	"net/http"
	"net/netip"

	"github.com/pushuphq/pushup/broker"
	"github.com/pushuphq/pushup/internal/evhttp"
)

// The checks handleSubscribe and handleEvents make on a request's headers
// and peer (subscriber tokens: authorizeSubscribe; -max-conns-per-ip:
// admitWaiter), made for the requests the event engine serves from their
// head, with the same answers: tokened and capped polls and streams stay
// on the fast path instead of going through http.Server and a hijack.

// admitHead checks that the request of head h on c may read channels and,
// when it is to wait (a poll with a timeout, or a stream) and a
// per-address cap is set, takes a waiting slot for its client. release
// gives the slot back (nil when none was taken); a 429 sets Retry-After
// in w's headers (made only then).
func (m *eventModel) admitHead(c *eventConn, h *evhttp.Head, w http.ResponseWriter, channels []string, wait bool) (release func(), err error) {
	s := m.s
	if err := s.authorizeHead(h, channels); err != nil {
		return nil, err
	}
	if !wait || s.perIP == nil {
		return nil, nil
	}
	return s.admitAddr(w, m.headClientAddr(c, h))
}

// headClientAddr is clientAddr for a request the engine serves: the peer
// address costs a system call, made only when a cap is set.
func (m *eventModel) headClientAddr(c *eventConn, h *evhttp.Head) netip.Addr {
	return m.s.clientAddrOf(c.RemoteAddr(), func() []string {
		if h.XForwardedFor == nil {
			return nil
		}
		return []string{string(h.XForwardedFor)}
	})
}

// admitPoll is admitHead for a long poll: the slot, if one is taken, is
// given back when the poll's wait ends (req.OnEnd), or by releaseUnparked
// when it did not wait.
func (m *eventModel) admitPoll(c *eventConn, h *evhttp.Head, w http.ResponseWriter, req *broker.SubscribeRequest) error {
	release, err := m.admitHead(c, h, w, req.Channels, req.Timeout > 0)
	req.OnEnd = release
	return err
}

// releaseUnparked gives back the slot of a poll that was answered without
// waiting: the broker calls OnEnd only for a subscription that parked.
func releaseUnparked(req broker.SubscribeRequest, parked bool) {
	if !parked && req.OnEnd != nil {
		req.OnEnd()
	}
}
