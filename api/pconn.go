//go:build linux

package api

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pushuphq/pushup/broker"
	"github.com/pushuphq/pushup/internal/epoll"
)

// connState is where an event-model connection is in its life.
type connState uint8

const (
	// csServing: a handler or worker is serving a request on it.
	csServing connState = iota
	// csParked: waiting for the broker's answer; watched for hang-up.
	csParked
	// csWriting: a worker is writing its answer; if the socket could not
	// take it all, the rest waits in out for the socket to drain.
	csWriting
	// csIdle: answered; watched for its next request or hang-up.
	csIdle
	// csClosed: closed and forgotten.
	csClosed
)

// pconn is an event-model connection. The event loop owns its raw file
// descriptor from accept to close: no net.Conn, no netpoller descriptor,
// no goroutine, no buffers while it waits. This record (plus the broker's
// Subscription) is all a waiting subscriber costs. It becomes a net.Conn
// only if it is handed to http.Server.
//
// mu guards the state, the epoll registration and the deadline together:
// a state change and the matching (re)arming happen under it, so an event
// never finds a connection in a state its arming does not match. Lock
// order: pconn.mu -> parker.deadlineMu.
type pconn struct {
	p   *parker
	fd  int
	key uint64 // registry key, also the epoll key
	// deliverFn is c.deliver as a func value, made once per connection
	// rather than once per poll.
	deliverFn func(broker.Result)

	mu         sync.Mutex
	state      connState
	registered bool // in the epoll set
	sub        *broker.Subscription
	pending    *broker.Result // answered before it was parked
	acao       string         // CORS header of the parked request
	keepAlive  bool           // the parked request allows another one
	start      int64          // when the parked request arrived (Unix ns)
	partial    []byte         // bytes of the next request, read early
	out        []byte         // the rest of an answer the socket did not take yet
	outKeep    bool           // keep the connection after out is written
	deadline   int64          // Unix ns: idle, header or write-stall deadline; 0 = none
}

func newPconn(p *parker) *pconn {
	c := &pconn{p: p, fd: -1}
	c.deliverFn = c.deliver
	return c
}

// pconnKey finds the pconn of a request the event loop is serving.
type pconnKey struct{}

func pconnFrom(ctx context.Context) *pconn {
	c, _ := ctx.Value(pconnKey{}).(*pconn)
	return c
}

// deliver is the broker's deliver function for the subscription parked on
// c. It must not block: it hands the answer to a worker.
func (c *pconn) deliver(res broker.Result) {
	c.mu.Lock()
	switch c.state {
	case csServing:
		// The broker answered before the handler finished parking. (The
		// copy keeps res itself off the heap on the usual path.)
		r := res
		c.pending = &r
		c.mu.Unlock()
	case csParked:
		c.state = csWriting
		c.mu.Unlock()
		c.p.parkedNow.Add(-1)
		c.p.enqueueAnswer(c, res)
	default:
		c.mu.Unlock() // closed meanwhile: nobody to tell
	}
}

// attachFD makes c own fd, a connected non-blocking socket.
func (c *pconn) attachFD(fd int, early []byte) {
	c.fd, c.partial = fd, early
	c.key = c.p.reg.add(c)
}

// attachHijacked takes over a connection hijacked from http.Server, with
// whatever it had already read of a next request: it keeps a duplicate of
// the socket and closes the net.Conn, so the parked connection costs no
// netpoller descriptor.
func (c *pconn) attachHijacked(conn net.Conn, rw *bufio.ReadWriter) error {
	var early []byte
	if rw != nil && rw.Reader.Buffered() > 0 {
		early, _ = rw.Reader.Peek(rw.Reader.Buffered())
		early = bytes.Clone(early)
	}
	if pc, ok := conn.(*prefixConn); ok {
		early = append(early, pc.prefix...)
		conn = pc.TCPConn
	}
	tcp, ok := conn.(*net.TCPConn)
	if !ok {
		return errors.New("api: hijacked connection is not TCP")
	}
	raw, err := tcp.SyscallConn()
	if err != nil {
		return err
	}
	fd := -1
	cerr := raw.Control(func(s uintptr) {
		// The duplicate shares the socket (and its non-blocking mode).
		fd, err = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	})
	conn.Close() // the duplicate keeps the socket open
	if cerr != nil {
		return cerr
	}
	if err != nil {
		return err
	}
	c.attachFD(fd, early)
	return nil
}

// park starts waiting for sub's answer, or writes the answer at once if it
// already came.
func (c *pconn) park(sub *broker.Subscription) {
	c.mu.Lock()
	c.sub = sub
	if c.pending != nil {
		res := *c.pending
		c.pending = nil
		c.state = csWriting
		c.mu.Unlock()
		c.p.enqueueAnswer(c, res)
		return
	}
	if err := c.armLocked(0); err != nil {
		c.mu.Unlock()
		c.p.log.Debug("parking failed", "err", err)
		if sub.Cancel() {
			c.close()
		} // else the answer is on its way; writing it will fail and close
		return
	}
	c.state = csParked
	c.mu.Unlock()
	c.p.parkedNow.Add(1)
}

// armLocked registers or re-arms the socket in the epoll set for events
// (besides hang-up, always watched). Caller holds c.mu.
func (c *pconn) armLocked(events uint32) error {
	if c.registered {
		return c.p.poll.Rearm(c.fd, c.key, events)
	}
	if err := c.p.poll.Add(c.fd, c.key, events); err != nil {
		return err
	}
	c.registered = true
	return nil
}

// setDeadlineLocked moves c in the deadline schedule. Caller holds c.mu.
func (c *pconn) setDeadlineLocked(d int64) {
	if c.deadline != 0 {
		c.p.deadlineRemove(c)
	}
	c.deadline = d
	if d != 0 {
		c.p.deadlineAdd(c)
	}
}

// event handles an epoll report, or a passed deadline (timedOut).
func (c *pconn) event(events uint32, timedOut bool) {
	c.mu.Lock()
	state, stalled := c.state, len(c.out) > 0
	if timedOut && (c.deadline == 0 || c.deadline > time.Now().UnixNano()) {
		c.mu.Unlock()
		return // the deadline moved since the sweep saw it
	}
	c.mu.Unlock()
	switch {
	case timedOut && stalled:
		c.p.slowDropped.Add(1)
		c.p.log.Debug("dropped a slow client", "fd", c.fd)
		c.close()
	case timedOut:
		c.close() // idle too long, or headers too slow
	case events&epoll.Hangup != 0 && (state == csParked || state == csIdle):
		c.hangup()
	case events&epoll.Hangup != 0 && stalled:
		c.p.writeFailed.Add(1)
		c.close()
	case events&epoll.Writable != 0 && stalled:
		c.flush()
	case events&epoll.Readable != 0 && state == csIdle:
		c.readable()
	}
	// Otherwise a worker owns the connection right now and will see the
	// condition on its next I/O.
}

// hangup releases a connection whose client went away: its subscription
// is withdrawn and its socket closed.
func (c *pconn) hangup() {
	c.mu.Lock()
	sub, parked := c.sub, c.state == csParked
	c.mu.Unlock()
	if parked && sub != nil {
		if sub.Cancel() {
			c.p.vanished.Add(1)
		}
		// If Cancel lost the race, the answer is being delivered; close
		// makes deliver drop it.
	}
	c.close()
}

// answer writes a delivered answer.
func (c *pconn) answer(res broker.Result) {
	c.mu.Lock()
	acao, keep, start := c.acao, c.keepAlive, c.start
	c.sub = nil
	c.mu.Unlock()
	b, status := c.p.s.answerBytes(res, acao, keep && !c.p.closing.Load())
	c.p.s.metrics.observe(subscribeRoute, http.MethodGet, status, time.Duration(time.Now().UnixNano()-start))
	c.write(b, keep && res.Reason != broker.ReasonShutdown)
}

// write sends b without blocking the worker, then keeps the connection
// for its next request (keep) or closes it. What the socket does not take
// at once waits for it to drain (flush), under the write-stall deadline:
// a client that stops reading cannot hold up anyone else.
func (c *pconn) write(b []byte, keep bool) { c.send(b, keep) }

// flush continues a stalled write once the socket drained.
func (c *pconn) flush() {
	c.mu.Lock()
	out, keep := c.out, c.outKeep
	c.mu.Unlock()
	c.send(out, keep)
}

// send writes what the socket takes of b now. The rest waits for EPOLLOUT;
// a new stall, and every bit of progress, (re)starts the deadline: it
// bounds a stall, not a large answer.
func (c *pconn) send(b []byte, keep bool) {
	n, err := writeFD(c.fd, b)
	if err != nil {
		c.p.writeFailed.Add(1)
		c.close()
		return
	}
	c.mu.Lock()
	if c.state == csClosed {
		c.mu.Unlock()
		return
	}
	if n == len(b) {
		c.out = nil
		c.setDeadlineLocked(0)
		c.mu.Unlock()
		c.afterWrite(keep)
		return
	}
	c.state = csWriting
	c.out, c.outKeep = b[n:], keep
	if n > 0 || c.deadline == 0 {
		c.setDeadlineLocked(time.Now().Add(c.p.s.cfg.WriteTimeout).UnixNano())
	}
	if err := c.armLocked(epoll.Writable); err != nil {
		c.mu.Unlock()
		c.close()
		return
	}
	c.mu.Unlock()
}

// afterWrite returns the connection to idle (or serves a request that
// already arrived), or closes it.
func (c *pconn) afterWrite(keep bool) {
	if !keep || c.p.closing.Load() {
		c.close()
		return
	}
	c.mu.Lock()
	if c.state == csClosed {
		c.mu.Unlock()
		return
	}
	if len(c.partial) > 0 {
		// A pipelined request is already here: serve it now.
		c.state = csServing
		data := c.partial
		c.partial = nil
		c.mu.Unlock()
		c.serve(data)
		return
	}
	c.goIdle(time.Now().Add(c.p.s.cfg.IdleTimeout).UnixNano())
}

// goIdle waits for the next request until deadline; caller holds c.mu,
// which goIdle releases. A connection that cannot be watched is closed.
func (c *pconn) goIdle(deadline int64) {
	if err := c.armLocked(epoll.Readable); err != nil {
		c.mu.Unlock()
		c.close()
		return
	}
	c.state = csIdle
	c.setDeadlineLocked(deadline)
	c.mu.Unlock()
}

// readable reads what the client sent while idle.
func (c *pconn) readable() {
	c.mu.Lock()
	if c.state != csIdle {
		c.mu.Unlock()
		return
	}
	c.state = csServing
	deadline := c.deadline
	c.setDeadlineLocked(0)
	c.mu.Unlock()

	bp := c.p.bufs.Get().(*[]byte)
	defer c.p.bufs.Put(bp)
	n, err := readFD(c.fd, *bp)
	if err != nil {
		c.close()
		return
	}
	if n == 0 { // spurious wake-up
		c.mu.Lock()
		c.goIdle(deadline)
		return
	}
	data := (*bp)[:n]
	if len(c.partial) > 0 {
		data = append(c.partial, data...)
		c.partial = nil
	}
	c.serve(data)
}

// maxRequestHead is the most header bytes the event loop accepts, as
// http.Server's MaxHeaderBytes.
const maxRequestHead = 64 << 10

// subscribeRoute is the route pattern of subscribe, for metrics.
const subscribeRoute = "/v1/subscribe"

// serve handles request bytes read by the event loop. A complete GET
// /v1/subscribe is served right here, through the same handler chain as
// any request; anything else is handed to http.Server with the bytes
// already read.
func (c *pconn) serve(data []byte) {
	end := bytes.Index(data, []byte("\r\n\r\n"))
	if end < 0 {
		if len(data) > maxRequestHead {
			c.write([]byte("HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"), false)
			return
		}
		// Not all here yet: wait for the rest, but no longer than
		// ReadHeaderTimeout from now.
		c.mu.Lock()
		c.partial = bytes.Clone(data)
		c.goIdle(time.Now().Add(c.p.s.cfg.ReadHeaderTimeout).UnixNano())
		return
	}
	head, rest := data[:end+4], data[end+4:]
	if h, ok := parseFastHead(head); ok && !c.p.s.subscribeNeedsRequest() {
		if len(rest) > 0 {
			c.partial = bytes.Clone(rest)
		}
		c.serveSubscribe(h)
		return
	}
	req, err := http.ReadRequest(bufio.NewReaderSize(bytes.NewReader(head), len(head)))
	if err != nil {
		c.write([]byte("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"), false)
		return
	}
	if !servesInLoop(req) {
		c.handback(data)
		return
	}
	if len(rest) > 0 {
		c.partial = bytes.Clone(rest)
	}
	if c.p.debug {
		req.RemoteAddr = peerAddr(c.fd) // a syscall: only for debug logs
	}
	req = req.WithContext(context.WithValue(context.Background(), pconnKey{}, c))
	w := newEventWriter()
	c.p.served.Add(1)
	c.p.s.handler.ServeHTTP(w, req)

	c.mu.Lock()
	parked := c.state != csServing
	c.mu.Unlock()
	if parked {
		return // the subscribe handler parked it
	}
	keep := w.keepAlive(!req.Close)
	c.write(w.bytes(keep && !c.p.closing.Load()), keep)
}

// serveSubscribe serves a subscribe whose head the event loop parsed
// itself (parseFastHead): what the router chain does for this one route,
// without its allocations, on the hottest path there is (every poll after
// a client's first). Same behaviour: CORS headers, JSON errors, latency
// metrics, a 500 for a panic.
func (c *pconn) serveSubscribe(h fastHead) {
	s := c.p.s
	start := time.Now()
	c.p.served.Add(1)
	acao := s.allowOrigin(h.origin)
	w := newEventWriter()
	parked := false
	func() {
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("handler panic", "path", subscribeRoute, "panic", p)
				w = newEventWriter()
				w.Header().Set("Connection", "close")
				writeJSON(w, http.StatusInternalServerError, errorBody{Error: "internal", Message: "internal error"})
			}
		}()
		req, err := parseSubscribeQuery(h.query, s.cfg.DefaultTimeout, s.cfg.MaxTimeout)
		if err == nil && s.cfg.Cluster != nil && !s.cfg.Cluster.Ready() && !s.b.Closed() {
			err = errNotReady
		}
		if err == nil {
			parked, err = s.subscribeOn(c, w, req, acao, h.keepAlive, start, nil)
		}
		if err != nil {
			s.writeError(w, nil, err)
		}
	}()
	if parked {
		return // answered later, by the broker
	}
	corsHeaders(w.Header(), acao) // after the fact: only answers now need them
	d := time.Since(start)
	s.metrics.observe(subscribeRoute, http.MethodGet, w.status, d)
	if c.p.debug {
		s.log.Debug("request", "method", http.MethodGet, "route", subscribeRoute, "status", w.status,
			"bytes", len(w.body), "duration", d, "remote", peerAddr(c.fd), "loop", true)
	}
	keep := w.keepAlive(h.keepAlive)
	c.write(w.bytes(keep && !c.p.closing.Load()), keep)
}

// servesInLoop reports whether the event loop serves req itself: a plain
// HTTP/1.1 GET of subscribe with no body and no protocol switch.
func servesInLoop(req *http.Request) bool {
	return req.Method == http.MethodGet && req.URL.Path == subscribeRoute &&
		req.ProtoAtLeast(1, 1) && req.ContentLength == 0 && len(req.TransferEncoding) == 0 &&
		req.Header.Get("Upgrade") == ""
}

// handback gives the connection to http.Server, which reads data first.
func (c *pconn) handback(data []byte) {
	fd := c.detach()
	if fd < 0 {
		return
	}
	f := os.NewFile(uintptr(fd), "pushup-conn")
	conn, err := net.FileConn(f) // duplicates the descriptor
	f.Close()
	if err != nil {
		c.p.log.Debug("hand-back failed", "err", err)
		return
	}
	tcp, ok := conn.(*net.TCPConn)
	if !ok {
		conn.Close()
		return
	}
	c.p.handbacks.Add(1)
	c.p.reentry.Load().handback(&prefixConn{TCPConn: tcp, prefix: bytes.Clone(data)})
}

// detach removes the connection from the event loop without closing its
// socket and returns the descriptor; -1 if it was closed meanwhile.
func (c *pconn) detach() int {
	c.mu.Lock()
	if c.state == csClosed {
		c.mu.Unlock()
		return -1
	}
	if c.state == csParked {
		c.p.parkedNow.Add(-1)
	}
	c.state = csClosed
	if c.registered {
		c.p.poll.Remove(c.fd)
		c.registered = false
	}
	c.setDeadlineLocked(0)
	fd := c.fd
	c.fd = -1
	c.out, c.partial = nil, nil
	c.mu.Unlock()
	c.p.reg.remove(c.key)
	return fd
}

// close closes the connection and forgets it. Safe to call more than once
// and from any state.
func (c *pconn) close() {
	if fd := c.detach(); fd >= 0 {
		unix.Close(fd)
	}
}

// writeFD writes as much of b as the socket takes now, without waiting.
func writeFD(fd int, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := unix.Write(fd, b[n:])
		if m > 0 {
			n += m
		}
		switch {
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			return n, nil
		case err != nil:
			return n, err
		case m == 0:
			return n, nil
		}
	}
	return n, nil
}

// errEOF: the client closed the connection.
var errEOF = errors.New("api: client closed the connection")

// readFD reads what the socket has now, without waiting. It returns 0, nil
// when there was nothing after all.
func readFD(fd int, b []byte) (int, error) {
	for {
		n, err := unix.Read(fd, b)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return 0, nil
		case err != nil:
			return 0, err
		case n == 0:
			return 0, errEOF
		}
		return n, nil
	}
}

// peerAddr formats the peer's address for Request.RemoteAddr and logs.
func peerAddr(fd int) string {
	sa, err := unix.Getpeername(fd)
	if err != nil {
		return ""
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return net.JoinHostPort(net.IP(a.Addr[:]).String(), strconv.Itoa(a.Port))
	case *unix.SockaddrInet6:
		return net.JoinHostPort(net.IP(a.Addr[:]).String(), strconv.Itoa(a.Port))
	}
	return ""
}
