package api

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"syscall"
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
	// csWriting: a worker is writing its answer.
	csWriting
	// csIdle: answered; watched for its next request or hang-up.
	csIdle
	// csClosed: closed and forgotten.
	csClosed
)

// pconn is an event-model connection: a connection that waited for a
// subscribe answer without a goroutine, and then stays with the event loop
// between requests. This record (plus the broker's Subscription) is all a
// waiting subscriber costs.
//
// mu guards the state and the epoll registration together: a state change
// and the matching (re)arming happen under it, so an event never finds a
// connection in a state its arming does not match. Lock order:
// pconn.mu -> parker.idleMu.
type pconn struct {
	p    *parker
	conn net.Conn
	raw  syscall.RawConn
	key  uint64 // registry key, also the epoll key

	mu         sync.Mutex
	state      connState
	registered bool // in the epoll set
	sub        *broker.Subscription
	pending    *broker.Result // answered before it was parked
	acao       string         // CORS header of the parked request
	keepAlive  bool           // the parked request allows another one
	start      int64          // when the parked request arrived (Unix ns)
	partial    []byte         // bytes of the next request, read early
	idleUntil  int64          // Unix ns; valid while idle
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
		// The broker answered before the handler finished parking.
		c.pending = &res
		c.mu.Unlock()
	case csParked:
		c.state = csWriting
		c.mu.Unlock()
		c.p.parkedNow.Add(-1)
		c.p.enqueue(job{c: c, kind: jobAnswer, res: res})
	default:
		c.mu.Unlock() // closed meanwhile: nobody to tell
	}
}

// attach takes over a connection hijacked from http.Server, with whatever
// it had already read of a next request.
func (c *pconn) attach(conn net.Conn, rw *bufio.ReadWriter) error {
	var early []byte
	if rw != nil && rw.Reader.Buffered() > 0 {
		early, _ = rw.Reader.Peek(rw.Reader.Buffered())
		early = bytes.Clone(early)
	}
	if pc, ok := conn.(*prefixConn); ok {
		early = append(early, pc.prefix...)
		conn = pc.TCPConn
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return errors.New("api: hijacked connection has no file descriptor")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	c.conn, c.raw, c.partial = conn, raw, early
	c.key = c.p.reg.add(c)
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
		c.p.enqueue(job{c: c, kind: jobAnswer, res: res})
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

// armLocked registers or re-arms the connection in the epoll set. Caller
// holds c.mu.
func (c *pconn) armLocked(events uint32) error {
	var err error
	cerr := c.raw.Control(func(fd uintptr) {
		if c.registered {
			err = c.p.poll.Rearm(int(fd), c.key, events)
		} else {
			err = c.p.poll.Add(int(fd), c.key, events)
			c.registered = err == nil
		}
	})
	if cerr != nil {
		return cerr
	}
	return err
}

// event handles an epoll report for c.
func (c *pconn) event(events uint32) {
	c.mu.Lock()
	state := c.state
	c.mu.Unlock()
	switch {
	case events&epoll.Hangup != 0 && (state == csParked || state == csIdle):
		c.hangup()
	case events&epoll.Readable != 0 && state == csIdle:
		c.readable()
	}
	// Otherwise a worker owns the connection right now and will see
	// the condition on its next I/O.
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
// for its next request (keep) or closes it. A client whose socket buffer
// is full gets the rest from a goroutine of its own, bounded by the write
// timeout, so it cannot stall the others.
func (c *pconn) write(b []byte, keep bool) {
	n, err := tryWrite(c.raw, b)
	if err != nil {
		c.p.writeFailed.Add(1)
		c.close()
		return
	}
	if n < len(b) {
		c.p.slowWrite(c, b[n:], keep)
		return
	}
	c.afterWrite(keep)
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
	c.idleUntil = deadline
	c.p.idleAdd(c)
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
	c.p.idleRemove(c)
	deadline := c.idleUntil
	c.mu.Unlock()

	bp := c.p.bufs.Get().(*[]byte)
	defer c.p.bufs.Put(bp)
	n, err := tryRead(c.raw, *bp)
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
// any request; anything else is handed back to http.Server with the bytes
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
	req.RemoteAddr = c.conn.RemoteAddr().String()
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

// servesInLoop reports whether the event loop serves req itself: a plain
// HTTP/1.1 GET of subscribe with no body and no protocol switch.
func servesInLoop(req *http.Request) bool {
	return req.Method == http.MethodGet && req.URL.Path == subscribeRoute &&
		req.ProtoAtLeast(1, 1) && req.ContentLength == 0 && len(req.TransferEncoding) == 0 &&
		req.Header.Get("Upgrade") == ""
}

// handback gives the connection to http.Server, which reads data first.
func (c *pconn) handback(data []byte) {
	conn := c.detach()
	if conn == nil {
		return
	}
	c.p.handbacks.Add(1)
	tcp, ok := conn.(*net.TCPConn)
	if !ok {
		conn.Close()
		return
	}
	c.p.reentry.handback(&prefixConn{TCPConn: tcp, prefix: bytes.Clone(data)})
}

// detach removes the connection from the event loop without closing it
// and returns it; nil if it was closed meanwhile.
func (c *pconn) detach() net.Conn {
	c.mu.Lock()
	if c.state == csClosed {
		c.mu.Unlock()
		return nil
	}
	if c.state == csParked {
		c.p.parkedNow.Add(-1)
	}
	c.state = csClosed
	c.unregisterLocked()
	c.mu.Unlock()
	c.p.reg.remove(c.key)
	return c.conn
}

// unregisterLocked takes the socket out of the epoll set and the idle
// schedule. Caller holds c.mu.
func (c *pconn) unregisterLocked() {
	if c.registered {
		c.raw.Control(func(fd uintptr) { c.p.poll.Remove(int(fd)) })
		c.registered = false
	}
	c.p.idleRemove(c)
}

// close closes the connection and forgets it. Safe to call more than once
// and from any state.
func (c *pconn) close() {
	if conn := c.detach(); conn != nil {
		conn.Close()
	}
}

// tryWrite writes as much of b as the socket takes now, without waiting.
func tryWrite(raw syscall.RawConn, b []byte) (int, error) {
	n := 0
	var werr error
	err := raw.Write(func(fd uintptr) bool {
		for n < len(b) {
			m, e := unix.Write(int(fd), b[n:])
			if m > 0 {
				n += m
			}
			switch {
			case e == unix.EINTR:
				continue
			case e == unix.EAGAIN:
				return true
			case e != nil:
				werr = e
				return true
			case m == 0:
				return true
			}
		}
		return true // never let the runtime park us: we do not wait
	})
	if err != nil {
		return n, err
	}
	return n, werr
}

// errEOF: the client closed the connection.
var errEOF = errors.New("api: client closed the connection")

// tryRead reads what the socket has now, without waiting. It returns 0,
// nil when there was nothing after all.
func tryRead(raw syscall.RawConn, b []byte) (int, error) {
	n := 0
	var rerr error
	err := raw.Read(func(fd uintptr) bool {
		for {
			m, e := unix.Read(int(fd), b)
			switch {
			case e == unix.EINTR:
				continue
			case e == unix.EAGAIN:
			case e != nil:
				rerr = e
			case m == 0:
				rerr = errEOF
			default:
				n = m
			}
			return true
		}
	})
	if err != nil {
		return 0, err
	}
	return n, rerr
}
