//go:build linux

package evhttp

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pushuphq/pushup/internal/epoll"
)

// connState is where an event-model connection is in its life. The
// states say who may touch the socket: csBusy has exactly one owner (the
// worker or handler that moved it there), the others none.
type connState uint8

const (
	// csBusy: one goroutine owns the connection: it reads a request,
	// serves it, parks it, writes an answer, hands it back or closes it.
	// Nobody else does I/O on it or closes it; they set closeReq instead.
	csBusy connState = iota
	// csParked: waiting for the broker's answer; watched for hang-up.
	csParked
	// csDraining: an answer the socket could not take at once waits in
	// out for the socket to drain (EPOLLOUT), under the write deadline.
	csDraining
	// csIdle: watched for its next request (or the rest of one) or
	// hang-up, under the idle or head deadline.
	csIdle
	// csStream: a stream (StartStream) between writes: watched for
	// hang-up, and for EPOLLOUT while out holds bytes the socket did not
	// take, under the write deadline.
	csStream
	// csClosed: closed, or handed back to http.Server, and forgotten.
	csClosed
)

// Conn is a connection the engine holds. The engine owns its raw file
// descriptor from accept to close: no net.Conn, no netpoller descriptor,
// no goroutine, no buffers while it waits. This record is all a parked
// request costs the engine. It becomes a net.Conn only if it is handed to
// http.Server.
//
// Ownership (nats-server's flushOutbound pattern): whoever moves the
// connection into csBusy under mu owns it and is the only one to use fd
// until it moves it out again, doing its I/O without the lock. A close
// asked for by anyone else while it is busy only sets closeReq; the owner
// closes when it is done. So a descriptor is closed only when no I/O on it
// is in flight, and its number cannot be reused under a writer's feet.
//
// mu guards the state, the edges seen and the deadline together. The
// socket is registered once, edge-triggered (epoll.AddEdge): an edge that
// finds the connection busy is remembered here (readPending,
// writePending, hup) and the owner acts on it when it leaves csBusy, under
// the same lock, so no edge is lost between an owner's last read or write
// and its state change.
type Conn[A any] struct {
	p   *Engine[A]
	key uint64 // registry key, also the epoll key
	// deliverFn is c.Deliver as a func value, made once per connection
	// rather than once per request.
	deliverFn func(A)

	mu         sync.Mutex
	fd         int32 // -1 once closed; read under mu or by the owner
	state      connState
	closeReq   bool // close when the owner is done
	shed       bool // accepted over the connection limit
	registered bool // in the epoll set
	// Edges the owner has yet to act on: the socket became readable
	// (or may hold more than one read took), or writable, while busy or
	// parked. hup stays set once the peer hung up.
	readPending  bool
	writePending bool
	hup          bool
	// depth counts requests the owner served in a row without giving c
	// up (pipelined, or read at once because they came while busy):
	// past maxServeDepth the next is left to a worker, which bounds the
	// owner's stack. Owner only.
	depth     uint8
	keepAlive bool // the parked request allows another one
	streaming bool // a stream (StartStream): bufs.out is its backlog
	streamEnd bool // the handler closed the stream: close once out is written
	cancel    Canceler
	pending   *A     // answered before it was parked
	tag       string // the handler's note for encoding the answer (say, a CORS origin)
	start     int64  // when the parked request arrived (Unix ns)
	// deadline is the idle, header or write-stall deadline, Unix ns (0:
	// none): written holding mu and Engine.deadlineMu, read under either.
	deadline int64
	bufs     *connBufs // nil while it holds nothing (idle, parked)
	// wnext and wprev link c in its slot of the deadline wheel; guarded
	// by Engine.deadlineMu.
	wnext, wprev *Conn[A]
}

// connBufs is what a connection holds only now and then: bytes of a next
// request read early, the rest of an answer the socket did not take, a
// stream's backlog. Idle and parked connections hold none, which keeps a
// Conn at 128 bytes (a size class of its own) for the many that wait.
// Guarded by Conn.mu.
type connBufs struct {
	partial []byte // bytes of the next request, read early
	out     []byte // the rest of an answer the socket did not take yet
	outKeep bool   // keep the connection after out is written
	headBy  int64  // Unix ns: the head in partial must be whole by then; 0 = no head begun
}

// bufsLocked returns c's buffers, made on first use. Caller holds c.mu.
func (c *Conn[A]) bufsLocked() *connBufs {
	if c.bufs == nil {
		c.bufs = &connBufs{}
	}
	return c.bufs
}

func (c *Conn[A]) partialLocked() []byte {
	if c.bufs == nil {
		return nil
	}
	return c.bufs.partial
}

func (c *Conn[A]) outLocked() []byte {
	if c.bufs == nil {
		return nil
	}
	return c.bufs.out
}

// trimBufsLocked lets c's buffers go once they hold nothing (a stream
// keeps its backlog's). Caller holds c.mu.
func (c *Conn[A]) trimBufsLocked() {
	if b := c.bufs; b != nil && !c.streaming && len(b.partial) == 0 && len(b.out) == 0 && b.headBy == 0 {
		c.bufs = nil
	}
}

// headByLocked is when the head being read must be whole: set when its
// first bytes came, else ReadHeaderTimeout from now. Caller holds c.mu.
func (c *Conn[A]) headByLocked() int64 {
	if c.bufs != nil && c.bufs.headBy != 0 {
		return c.bufs.headBy
	}
	return time.Now().Add(c.p.cfg.ReadHeaderTimeout).UnixNano()
}

// NewConn returns a connection record for a request http.Server is
// serving, owned by the caller: it is to park it (AttachHijacked, then
// Park) or drop it. Its DeliverFunc can be handed out before that.
func (p *Engine[A]) NewConn() *Conn[A] { return newConn(p) }

func newConn[A any](p *Engine[A]) *Conn[A] {
	c := &Conn[A]{p: p, fd: -1}
	c.deliverFn = c.Deliver
	return c
}

// DeliverFunc returns c.Deliver as a func value made once per connection.
func (c *Conn[A]) DeliverFunc() func(A) { return c.deliverFn }

// SetRequest notes, for the answer to the request being served, a tag of
// the handler's (Handler.Encode reads it back), whether the request allows
// another after it, and when it began. The caller owns c.
func (c *Conn[A]) SetRequest(tag string, keepAlive bool, start time.Time) {
	c.mu.Lock()
	c.tag, c.keepAlive, c.start = tag, keepAlive, start.UnixNano()
	c.mu.Unlock()
}

// Request returns what SetRequest noted.
func (c *Conn[A]) Request() (tag string, keepAlive bool, start time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tag, c.keepAlive, time.Unix(0, c.start)
}

// OverLimit reports whether c was accepted over Config.Limit: it is to be
// answered only for health checks.
func (c *Conn[A]) OverLimit() bool { return c.shed }

// Deliver hands c the answer to its parked request, from any goroutine;
// it never blocks: a worker writes it (Handler.Encode), and becomes the
// connection's owner meanwhile. An answer that comes before Park is kept
// and written by Park; one for a connection closed meanwhile is dropped.
func (c *Conn[A]) Deliver(a A) {
	c.mu.Lock()
	switch c.state {
	case csBusy:
		// Answered before the owner finished parking: Park writes it.
		// (The copy keeps a itself off the heap on the usual path.)
		r := a
		c.pending = &r
		c.mu.Unlock()
	case csParked:
		// The worker that writes the answer owns c from here: clear
		// what answer would otherwise take c.mu again for (the
		// Canceler is spent, and the worker serves from depth 0).
		c.state = csBusy
		c.cancel, c.depth = nil, 0
		c.mu.Unlock()
		c.p.parkedNow.Add(-1)
		c.p.enqueueAnswer(c, a)
	default:
		c.mu.Unlock() // closed meanwhile: nobody to tell
	}
}

// attachFD makes c own fd, a connected non-blocking socket. c is busy,
// owned by the caller.
func (c *Conn[A]) attachFD(fd int, early []byte) {
	c.fd = int32(fd)
	if len(early) > 0 {
		c.bufsLocked().partial = early // not shared yet: no lock needed
	}
	c.p.live.Add(1)
	c.key = c.p.reg.add(c)
}

// AttachHijacked makes c, owned by the caller, take over a connection
// hijacked from http.Server, with whatever it had already read of a next
// request: it keeps a duplicate of the socket and closes the net.Conn, so
// a parked connection costs no netpoller descriptor.
func (c *Conn[A]) AttachHijacked(conn net.Conn, rw *bufio.ReadWriter) error {
	var early []byte
	if rw != nil && rw.Reader.Buffered() > 0 {
		early, _ = rw.Reader.Peek(rw.Reader.Buffered())
		early = bytes.Clone(early)
	}
	orig := conn
	if pc, ok := conn.(*prefixConn); ok {
		early = append(early, pc.prefix...)
		conn = pc.TCPConn
	}
	tcp, ok := conn.(*net.TCPConn)
	if !ok {
		return ErrNotTCP
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
	orig.Close() // the duplicate keeps the socket open
	if cerr != nil {
		return cerr
	}
	if err != nil {
		return err
	}
	c.attachFD(fd, early)
	return nil
}

// Canceler withdraws what a parked connection waits for. Cancel reports
// whether it did: false means the answer is already on its way (Deliver).
// An interface rather than a func so that a pointer (say, a
// subscription) parks without allocating a closure per request.
type Canceler interface{ Cancel() bool }

// Park waits for the answer to the request being served: the caller owns
// c and gives it up. Until the answer comes (Deliver) the engine watches
// the socket for hang-up only; if the client goes, cancel.Cancel is
// called, and if it returns true (nothing will be delivered) the
// connection is closed. An answer delivered before Park is written at
// once.
func (c *Conn[A]) Park(cancel Canceler) {
	c.mu.Lock()
	c.cancel = cancel
	if c.answerPendingLocked() {
		return
	}
	if c.closeReq {
		c.mu.Unlock()
		c.cancelAndClose()
		return
	}
	if err := c.registerLocked(); err != nil {
		c.mu.Unlock()
		c.p.log.Debug("parking failed", "err", err)
		c.cancelAndClose()
		return
	}
	if c.hup {
		// The client hung up while its request was being served: its
		// edge came and went, none will come again.
		c.mu.Unlock()
		c.p.vanished.Add(1)
		c.cancelAndClose()
		return
	}
	// A parked request waits as long as its hold, and the broker answers
	// it then: no deadline of the engine's (the idle one that bounded the
	// wait for this request is over).
	c.setDeadlineLocked(0)
	c.trimBufsLocked()
	c.state = csParked
	c.mu.Unlock()
	c.p.parkedNow.Add(1)
}

// answerPendingLocked writes an answer Deliver kept in pending while c
// was busy, and reports whether there was one. The caller owns c and
// holds c.mu, which is released if there was one.
func (c *Conn[A]) answerPendingLocked() bool {
	if c.pending == nil {
		return false
	}
	a := *c.pending
	c.pending = nil
	c.mu.Unlock()
	c.answer(a, false) // still the owner
	return true
}

// cancelAndClose withdraws the parked request and closes c, owned by the
// caller; if the answer is already on its way, Deliver takes over and
// writes it (then the write fails or the connection carries on).
// An answer that came while c was still busy (Deliver kept it in
// pending) is written now: nobody else will.
func (c *Conn[A]) cancelAndClose() {
	if c.cancel.Cancel() {
		c.closeOwned()
		return
	}
	c.mu.Lock()
	if c.answerPendingLocked() {
		return
	}
	c.setDeadlineLocked(0)
	c.state = csParked
	c.mu.Unlock()
	c.p.parkedNow.Add(1)
}

// Reply writes b, a whole response, for the request being served; the
// caller owns c and gives it up. keep says whether the connection may
// serve another request afterwards.
func (c *Conn[A]) Reply(b []byte, keep bool) { c.send(b, keep) }

// registerLocked puts the socket in the epoll set, edge-triggered for
// readable, writable and hang-up, once for its life in the engine: no
// state change re-arms it. Caller holds c.mu.
func (c *Conn[A]) registerLocked() error {
	if c.registered {
		return nil
	}
	if err := c.p.poll.AddEdge(int(c.fd), c.key); err != nil {
		return err
	}
	c.registered = true
	return nil
}

// setDeadlineLocked moves c in the deadline schedule: an unlink and a
// link in the wheel, constant time. A deadline set again is linked again
// if a sweep took it out meanwhile. Caller holds c.mu.
func (c *Conn[A]) setDeadlineLocked(d int64) {
	if d == 0 && c.deadline == 0 {
		return
	}
	w := &c.p.deadlines
	c.p.deadlineMu.Lock()
	if d != c.deadline || !w.linked(c) {
		w.remove(c)
		c.deadline = d
		if d != 0 {
			w.add(c)
		}
	}
	c.p.deadlineMu.Unlock()
}

// event handles an epoll edge, or a passed deadline (timedOut). What to
// do is decided under mu from the state. Edges are reported once, so each
// is first written down (readPending, writePending, hup): a connection
// some goroutine owns is left to it, and the owner acts on what was
// written down when it leaves csBusy.
func (c *Conn[A]) event(events uint32, timedOut bool) {
	c.mu.Lock()
	if timedOut && (c.deadline == 0 || c.deadline > time.Now().UnixNano()) {
		c.mu.Unlock()
		return // the deadline moved since the sweep saw it
	}
	if timedOut && c.state == csBusy {
		// Its owner decides; until it does, the deadline stays in the
		// schedule (the sweep took it out).
		c.setDeadlineLocked(c.deadline)
		c.mu.Unlock()
		return
	}
	if events&epoll.Readable != 0 {
		c.readPending = true
	}
	if events&epoll.Writable != 0 {
		c.writePending = true
	}
	if events&epoll.Hangup != 0 {
		c.hup = true
	}
	switch c.state {
	case csIdle:
		if timedOut {
			c.closeLocked() // idle too long, or a head too slow
			return
		}
		if !c.readPending && !c.hup {
			c.mu.Unlock() // writable: nothing to write
			return
		}
		// Readable, or hang-up: read first, so a request that came with
		// the client's FIN is answered before the connection ends.
		c.state = csBusy
		c.depth = 0
		c.readPending = false // this read takes what it was for
		c.mu.Unlock()
		c.readable()
	case csParked:
		// A request that came early (pipelined behind the parked one)
		// stays in readPending for after the answer.
		cancel := c.cancel
		c.mu.Unlock()
		if events&epoll.Hangup == 0 || cancel == nil {
			return
		}
		if cancel.Cancel() {
			c.p.vanished.Add(1)
			c.Close()
		} // else deliver made a worker the owner; its write fails and closes
	case csDraining:
		switch {
		case timedOut:
			c.p.slowDropped.Add(1)
			c.closeLocked()
		case events&epoll.Hangup != 0:
			c.p.writeFailed.Add(1)
			c.closeLocked()
		case c.writePending:
			c.state = csBusy
			c.depth = 0
			out, keep := c.bufs.out, c.bufs.outKeep
			c.mu.Unlock()
			c.send(out, keep)
		default:
			c.mu.Unlock()
		}
	case csStream:
		c.streamEvent(events, timedOut)
	default: // csBusy (its owner decides) or csClosed
		c.mu.Unlock()
	}
}

// answer writes a delivered answer. The caller owns c; fresh says it
// took c over from Deliver (a worker with a delivered answer: Deliver
// cleared cancel and depth as it made c busy, so no lock round trip is
// needed here) rather than answering on a stack that is already serving
// c (Park), which keeps counting towards maxServeDepth.
func (c *Conn[A]) answer(a A, fresh bool) {
	if !fresh {
		c.mu.Lock()
		c.cancel = nil
		c.mu.Unlock()
	}
	b, keep := c.p.h.Encode(c, a)
	c.send(b, keep)
}

// send writes what the socket takes of b now; the caller owns c. The rest
// waits for EPOLLOUT (csDraining) under the write deadline: a client that
// stops reading cannot hold up anyone else. Every bit of progress restarts
// the deadline: it bounds a stall, not a large answer. Once all is written
// the connection serves its next request, goes idle, or closes (keep).
func (c *Conn[A]) send(b []byte, keep bool) {
	for {
		n, err := writeFD(int(c.fd), b) // the owner's fd: nobody closes it meanwhile
		if err != nil {
			c.p.writeFailed.Add(1)
			c.closeOwned()
			return
		}
		c.mu.Lock()
		if n == len(b) {
			if c.bufs != nil {
				c.bufs.out = nil
			}
			c.setDeadlineLocked(0)
			c.afterWrite(keep)
			return
		}
		if c.closeReq {
			c.closeLocked()
			return
		}
		if n > 0 || c.deadline == 0 {
			c.setDeadlineLocked(time.Now().Add(c.p.cfg.WriteTimeout).UnixNano())
		}
		if err := c.registerLocked(); err != nil {
			c.closeLocked()
			return
		}
		if c.hup {
			// The client hung up while we wrote (its edge came and
			// went): the rest would wait for nothing.
			c.p.writeFailed.Add(1)
			c.closeLocked()
			return
		}
		b = b[n:]
		if c.writePending {
			// Room was reported since the write began: the edge will
			// not come again, so try now.
			c.writePending = false
			c.mu.Unlock()
			continue
		}
		bf := c.bufsLocked()
		bf.out, bf.outKeep = b, keep
		c.state = csDraining
		c.mu.Unlock()
		return
	}
}

// afterWrite serves a request that already arrived, returns the connection
// to idle, or closes it; the caller owns c and holds c.mu, which
// afterWrite releases.
func (c *Conn[A]) afterWrite(keep bool) {
	if !keep || c.closeReq || c.p.closing.Load() {
		c.closeLocked()
		return
	}
	if data := c.partialLocked(); len(data) > 0 {
		if c.depth < maxServeDepth {
			// A pipelined request is already here: serve it now.
			c.depth++
			c.bufs.partial = nil
			c.mu.Unlock()
			c.serve(data)
			return
		}
		c.readPending = true // goIdle leaves it to a worker
	}
	c.goIdle(time.Now().Add(c.p.cfg.IdleTimeout).UnixNano())
}

// maxServeDepth bounds how many requests an owner serves in a row on its
// own stack (each answer written inline calls back into the engine);
// the next one goes to a worker.
const maxServeDepth = 16

// goIdle gives up ownership and waits for the next request (or the rest
// of one) until deadline; caller owns c and holds c.mu, which goIdle
// releases. If the socket became readable while c was busy (its edge will
// not come again), or bytes of a next request wait in partial, it reads
// or serves now instead; past maxServeDepth, a worker does. A connection
// that cannot be watched is closed.
func (c *Conn[A]) goIdle(deadline int64) {
	if c.closeReq || c.p.closing.Load() {
		// Shutdown closes idle connections once; one that goes idle
		// after that pass would hold it up until its deadline.
		c.closeLocked()
		return
	}
	if err := c.registerLocked(); err != nil {
		c.closeLocked()
		return
	}
	c.setDeadlineLocked(deadline)
	ready := c.readPending || c.hup
	if ready && c.depth < maxServeDepth {
		c.depth++
		c.readPending = false // this read takes what it was for
		c.mu.Unlock()
		c.readable() // still the owner: the re-poll is read without an epoll round trip
		return
	}
	c.trimBufsLocked()
	c.state = csIdle
	c.mu.Unlock()
	if ready {
		// Deep enough: a worker picks it up as if the edge came now.
		c.p.enqueue(job[A]{c: c, kind: jobEvent, events: epoll.Readable})
	}
}

// readable reads what the client sent; the caller owns c and cleared
// readPending when it took c for this read. A read that fills the buffer
// may have left more in the socket, whose edge has come and gone:
// readPending is set again for after this request.
func (c *Conn[A]) readable() {
	bp := c.p.bufs.Get().(*[]byte)
	defer c.p.bufs.Put(bp)
	n, err := readFD(int(c.fd), *bp)
	if err != nil {
		// The client closed (or reset) its side. An incomplete request
		// in partial will never be completed: nothing to answer.
		c.closeOwned()
		return
	}
	c.mu.Lock()
	partial := c.partialLocked()
	if n == 0 && len(partial) == 0 { // nothing after all (the edge was for bytes read since)
		c.goIdle(c.deadline)
		return
	}
	if n == len(*bp) {
		c.readPending = true
	}
	// data may be the pooled buffer, which goes back when serve returns:
	// whatever serve keeps (partial, a hand-back's prefix) it copies.
	data := (*bp)[:n]
	if len(partial) > 0 {
		data = append(partial, data...)
		c.bufs.partial = nil
	}
	c.mu.Unlock()
	c.serve(data)
}

// serve handles request bytes read by the engine; the caller owns c. data
// may be a pooled buffer: serve copies what it keeps.
// Only a head parseFastHead fully validated is served here (by the
// Handler). Everything else, as soon as it is clearly not one, is handed
// to http.Server byte for byte: there is one parser of record for the
// general case, net/http's server, never a second one that could disagree
// with it on where a request ends.
func (c *Conn[A]) serve(data []byte) {
	// The whole head must arrive within ReadHeaderTimeout of its first
	// byte, here or after a hand-back: a client that trickles a byte at a
	// time renews nothing. The clock is read only for a head that is not
	// all here (headByLocked).
	end := headEnd(data)
	if end < 0 {
		if len(data) > maxRequestHead || !c.p.mayBeFast(data) {
			c.handback(data)
			return
		}
		c.mu.Lock()
		headBy := c.headByLocked()
		b := c.bufsLocked()
		b.partial, b.headBy = bytes.Clone(data), headBy // not all here yet
		c.goIdle(headBy)
		return
	}
	h, ok := c.p.parseFastHead(data[:end])
	if !ok {
		c.handback(data)
		return
	}
	c.mu.Lock()
	if rest := data[end:]; len(rest) > 0 {
		c.bufsLocked().partial = bytes.Clone(rest)
	}
	if c.bufs != nil {
		c.bufs.headBy = 0
	}
	c.mu.Unlock()
	c.p.served.Add(1)
	c.p.h.ServeFast(c, h)
}

// RemoteAddr formats the peer's address, for logs: a system call.
func (c *Conn[A]) RemoteAddr() string {
	c.mu.Lock()
	fd := int(c.fd)
	c.mu.Unlock()
	return peerAddr(fd)
}

// handback gives the connection to http.Server, which reads data first;
// the caller owns c.
func (c *Conn[A]) handback(data []byte) {
	c.mu.Lock()
	headBy, shed := c.headByLocked(), c.shed
	fd := c.detachLocked()
	c.mu.Unlock()
	if fd < 0 {
		return
	}
	f := os.NewFile(uintptr(fd), "pushup-conn")
	conn, err := net.FileConn(f) // duplicates the descriptor
	f.Close()
	c.p.live.Add(-1) // counted again, as a prefixConn, if it worked
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
	c.p.live.Add(1)
	pc := &prefixConn{TCPConn: tcp, prefix: bytes.Clone(data), live: &c.p.live, shed: shed}
	if headBy != 0 {
		pc.headBy = time.Unix(0, headBy)
	}
	c.p.reentry.Load().handback(pc)
}

// detachLocked removes the connection from the event loop without closing
// its socket and returns the descriptor; -1 if it was closed already.
// Caller holds c.mu.
func (c *Conn[A]) detachLocked() int {
	if c.state == csClosed {
		return -1
	}
	if c.state == csParked {
		c.p.parkedNow.Add(-1)
	}
	c.state = csClosed
	if c.registered {
		c.p.poll.Remove(int(c.fd))
		c.registered = false
	}
	c.setDeadlineLocked(0)
	fd := int(c.fd)
	c.fd = -1
	c.bufs = nil
	c.p.reg.remove(c.key)
	return fd
}

// closeLocked closes the connection; the caller holds c.mu (which
// closeLocked releases) and either owns c or found it in a state nobody
// owns.
func (c *Conn[A]) closeLocked() {
	fd := c.detachLocked()
	c.mu.Unlock()
	if fd >= 0 {
		unix.Close(fd)
		c.p.live.Add(-1)
	}
}

// closeOwned closes a connection the caller owns.
func (c *Conn[A]) closeOwned() {
	c.mu.Lock()
	c.closeLocked()
}

// Close closes the connection on behalf of someone who does not own it:
// at once if nobody does, else by its owner when it is done. Safe to call
// more than once and from any state.
func (c *Conn[A]) Close() {
	c.mu.Lock()
	if c.state == csBusy {
		c.closeReq = true
		c.mu.Unlock()
		return
	}
	c.closeLocked()
}

// errEOF: the client closed the connection.
var errEOF = errors.New("evhttp: client closed the connection")

// ErrNotTCP: only TCP connections can be parked.
var ErrNotTCP = errors.New("evhttp: hijacked connection is not TCP")

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
