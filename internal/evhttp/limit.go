package evhttp

import (
	"net"
	"strconv"
	"sync/atomic"
	"syscall"
)

// Limit keeps a server answering near its open-file limit. A connection
// accepted while Max are open is still served, but is marked (OverLimit):
// the server answers it only for health checks. Past a margin above Max
// (room for those health checks) new connections get a 503 without being
// read. Safe for concurrent use; a nil *Limit limits nothing.
type Limit struct {
	soft, hard int64
	refused    atomic.Uint64
}

// NewLimit returns the limit for maxConns open connections; 0 derives it
// from the process's open-file limit (RLIMIT_NOFILE), less a tenth kept
// for listeners, cluster sockets, files and the epoll set.
func NewLimit(maxConns int) *Limit {
	soft := int64(maxConns)
	if soft <= 0 {
		var rl syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur > 0 && rl.Cur < 1<<40 {
			soft = int64(rl.Cur) - int64(rl.Cur)/10
		} else {
			soft = 1 << 30
		}
	}
	return &Limit{soft: soft, hard: soft + max(8, soft/20)}
}

// Refused counts connections and requests refused for being over the
// limit (Refuse counts those the server answers itself).
func (l *Limit) Refused() uint64 {
	if l == nil {
		return 0
	}
	return l.refused.Load()
}

// Refuse counts one request refused by the server for being over the
// limit.
func (l *Limit) Refuse() {
	if l != nil {
		l.refused.Add(1)
	}
}

func (l *Limit) overLimit(live int64) bool { return l != nil && live >= l.soft }

// refuse reports whether a connection accepted while live are open gets
// the 503 unread; it counts it.
func (l *Limit) refuse(live int64) bool {
	if l != nil && live >= l.hard {
		l.refused.Add(1)
		return true
	}
	return false
}

// refusal is the whole answer to a connection refused unread.
var refusal = func() []byte {
	body := `{"error":"overloaded","message":"too many open connections; retry in a moment"}` + "\n"
	return []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n" +
		"Connection: close\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}()

// Listener counts the connections http.Server accepts itself (without an
// Engine) against l, marks those over it and refuses those past its
// margin, as the engine does.
func (l *Limit) Listener(ln net.Listener) net.Listener { return &limitListener{Listener: ln, l: l} }

type limitListener struct {
	net.Listener
	l    *Limit
	live atomic.Int64
}

func (ln *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		live := ln.live.Load()
		if ln.l.refuse(live) {
			// Best effort and bounded: the socket buffer takes this.
			c.Write(refusal)
			c.Close()
			continue
		}
		ln.live.Add(1)
		return &countedConn{Conn: c, live: &ln.live, shed: ln.l.overLimit(live)}, nil
	}
}

// countedConn is a connection limitListener counts until it is closed.
type countedConn struct {
	net.Conn
	live   *atomic.Int64
	shed   bool
	closed atomic.Bool
}

func (c *countedConn) Close() error {
	if !c.closed.Swap(true) {
		c.live.Add(-1)
	}
	return c.Conn.Close()
}

func (c *countedConn) overLimit() bool { return c.shed }

// OverLimit reports whether c, as http.Server got it from an Engine's or a
// Limit's listener, was accepted over the limit (for
// http.Server.ConnContext).
func OverLimit(c net.Conn) bool {
	oc, ok := c.(interface{ overLimit() bool })
	return ok && oc.overLimit()
}
