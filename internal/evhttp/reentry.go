//go:build linux

package evhttp

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// reentryListener is the listener http.Server serves from in front of an
// Engine. New connections go to the engine first (accept and adopt),
// which reads their first request itself: a fast-path client never costs
// http.Server's goroutine and 8 KiB of buffers. http.Server accepts only
// the connections the engine hands back, those whose request is not one
// it serves; to http.Server such a connection looks new, with its first
// request already waiting (see prefixConn).
type reentryListener struct {
	net.Listener
	stop func() // takes the listener out of the event loop before Close
	back chan net.Conn
	errs chan error
	done chan struct{}
	once sync.Once
}

func newReentryListener(ln net.Listener, stop func()) *reentryListener {
	return &reentryListener{
		Listener: ln,
		stop:     stop,
		// Hand-backs happen once per publisher connection and when a
		// subscriber's connection sends something else; a buffer keeps
		// workers from waiting on http.Server's accept loop.
		back: make(chan net.Conn, 128),
		errs: make(chan error),
		done: make(chan struct{}),
	}
}

// fail reports an accept error to http.Server. It returns false once the
// listener is closed.
func (l *reentryListener) fail(err error) bool {
	select {
	case l.errs <- err:
		return true
	case <-l.done:
		return false
	}
}

// Accept returns the next handed-back connection, or an accept error.
func (l *reentryListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.back:
		return c, nil
	case err := <-l.errs:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// handback gives c to http.Server. After Close it closes c instead.
func (l *reentryListener) handback(c net.Conn) {
	select {
	case l.back <- c:
	case <-l.done:
		c.Close()
	}
}

// Close stops accepting and closes connections handed back but not yet
// accepted.
func (l *reentryListener) Close() error {
	var err error
	l.once.Do(func() {
		l.stop()
		close(l.done)
		err = l.Listener.Close()
		for {
			select {
			case c := <-l.back:
				c.Close()
			default:
				return
			}
		}
	})
	return err
}

// prefixConn is a connection handed back by the event loop: its first
// bytes were already read (Read returns them before reading the socket),
// the head they begin must still be whole by headBy, it counts in the
// engine's live connections until closed, and shed marks one accepted over
// MaxConns.
type prefixConn struct {
	*net.TCPConn
	prefix []byte
	headBy time.Time // zero: no head begun
	shed   bool
	live   *atomic.Int64
	closed atomic.Bool
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.TCPConn.Read(b)
}

// SetReadDeadline keeps the deadline of a head the event loop began to
// read: http.Server's first deadline (ReadHeaderTimeout from now) would
// otherwise give a client that trickles its head a second allowance.
func (c *prefixConn) SetReadDeadline(t time.Time) error {
	if !c.headBy.IsZero() {
		if t.IsZero() || t.After(c.headBy) {
			t = c.headBy
		}
		c.headBy = time.Time{}
	}
	return c.TCPConn.SetReadDeadline(t)
}

// Close closes the socket and stops counting it.
func (c *prefixConn) Close() error {
	if !c.closed.Swap(true) && c.live != nil {
		c.live.Add(-1)
	}
	return c.TCPConn.Close()
}

// overLimit reports whether the connection was accepted over MaxConns.
func (c *prefixConn) overLimit() bool { return c.shed }
