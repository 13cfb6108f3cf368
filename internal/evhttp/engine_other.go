//go:build !linux

package evhttp

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"time"
)

// Supported reports whether the engine runs on this platform: it needs
// epoll, so here New fails and servers use a goroutine per request.
const Supported = false

// ErrUnsupported is New's error on this platform.
var ErrUnsupported = errors.New("evhttp: the engine needs Linux (epoll)")

// Config configures an Engine; see the Linux implementation.
type Config struct {
	ReadHeaderTimeout, WriteTimeout, IdleTimeout time.Duration
	FastPath, StreamPath                         string
	StreamBacklog                                int
	Limit                                        *Limit
	Logger                                       *slog.Logger
}

// Handler serves fast-path requests; see the Linux implementation.
type Handler[A any] interface {
	ServeFast(c *Conn[A], h Head)
	Encode(c *Conn[A], a A) (b []byte, keepAlive bool)
	Batch(a A) any
}

// Canceler withdraws what a parked connection waits for.
type Canceler interface{ Cancel() bool }

// Engine is unavailable on this platform.
type Engine[A any] struct{}

// Conn is unavailable on this platform.
type Conn[A any] struct{}

// Stats are the engine's figures.
type Stats struct {
	Connections, Parked                            int64
	Vanished, WriteFailed, Slow, Handbacks, Served uint64
}

// New fails on this platform.
func New[A any](Config, Handler[A]) (*Engine[A], error) { return nil, ErrUnsupported }

func (p *Engine[A]) Listen(ln net.Listener) (net.Listener, error) { return ln, nil }
func (p *Engine[A]) Shutdown(context.Context) error               { return nil }
func (p *Engine[A]) Stats() Stats                                 { return Stats{} }
func (p *Engine[A]) Closing() bool                                { return false }
func (p *Engine[A]) NewConn() *Conn[A]                            { return &Conn[A]{} }

func (c *Conn[A]) DeliverFunc() func(A)                             { return func(A) {} }
func (c *Conn[A]) Deliver(A)                                        {}
func (c *Conn[A]) SetRequest(string, bool, time.Time)               {}
func (c *Conn[A]) Request() (string, bool, time.Time)               { return "", false, time.Time{} }
func (c *Conn[A]) OverLimit() bool                                  { return false }
func (c *Conn[A]) AttachHijacked(net.Conn, *bufio.ReadWriter) error { return ErrUnsupported }
func (c *Conn[A]) Park(Canceler)                                    {}
func (c *Conn[A]) Reply([]byte, bool)                               {}
func (c *Conn[A]) Close()                                           {}
func (c *Conn[A]) RemoteAddr() string                               { return "" }

// Stream is unavailable on this platform.
type Stream[A any] struct{}

func (c *Conn[A]) StartStream([]byte, Canceler) *Stream[A] { return &Stream[A]{} }
func (s *Stream[A]) Write([]byte) bool                     { return false }
func (s *Stream[A]) Close()                                {}
