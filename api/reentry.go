package api

import (
	"errors"
	"net"
	"sync"
)

// reentryListener is the listener http.Server serves from in the event
// model. Besides new connections it yields connections the event loop hands
// back: ones whose next request is not a subscribe the loop serves itself.
// To http.Server such a connection looks new; its first request is
// already waiting (see prefixConn).
type reentryListener struct {
	net.Listener
	back     chan net.Conn
	accepted chan acceptResult
	done     chan struct{}
	once     sync.Once
	loopDone chan struct{}
}

type acceptResult struct {
	c   net.Conn
	err error
}

func newReentryListener(ln net.Listener) *reentryListener {
	l := &reentryListener{
		Listener: ln,
		// Hand-backs are rare (a subscriber that then publishes on the
		// same connection); a small buffer keeps workers from waiting on
		// http.Server's accept loop.
		back:     make(chan net.Conn, 128),
		accepted: make(chan acceptResult),
		done:     make(chan struct{}),
		loopDone: make(chan struct{}),
	}
	go l.acceptLoop()
	return l
}

// acceptLoop feeds real accepts into Accept. It stops when the listener
// is closed.
func (l *reentryListener) acceptLoop() {
	defer close(l.loopDone)
	for {
		c, err := l.Listener.Accept()
		select {
		case l.accepted <- acceptResult{c, err}:
		case <-l.done:
			if c != nil {
				c.Close()
			}
			return
		}
		if errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

// Accept returns the next new or handed-back connection.
func (l *reentryListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.back:
		return c, nil
	case r := <-l.accepted:
		return r.c, r.err
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
		close(l.done)
		err = l.Listener.Close()
		<-l.loopDone
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

// prefixConn is a connection whose first bytes were already read by the
// event loop; Read returns them before reading the socket.
type prefixConn struct {
	*net.TCPConn
	prefix []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.TCPConn.Read(b)
}
