//go:build !linux

package api

import (
	"context"
	"errors"
	"net"
	"net/http"

	"github.com/pushuphq/pushup/broker"
)

// parker is the event model's engine; it needs epoll, so on this platform
// it is never created and servers use the goroutine model.
type parker struct{}

var errNoEventModel = errors.New("api: the event model needs Linux")

func newParker(*Server) (*parker, error)                       { return nil, errNoEventModel }
func (p *parker) listen(ln net.Listener) (net.Listener, error) { return ln, nil }
func (p *parker) shutdown(context.Context) error               { return nil }
func (p *parker) stats() parkerStats                           { return parkerStats{} }

func (s *Server) subscribeParked(http.ResponseWriter, *http.Request, broker.SubscribeRequest) error {
	return errNoEventModel
}

func eventPeer(*http.Request) string { return "" }
