//go:build linux

package evhttp

import (
	"context"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pushuphq/pushup/internal/epoll"
)

// Config configures an Engine.
type Config struct {
	// ReadHeaderTimeout bounds a request head from its first byte, and a
	// new connection's first head from accept.
	ReadHeaderTimeout time.Duration
	// WriteTimeout is how long an answer may stall: a client that takes
	// no bytes of it for this long is dropped (and counted).
	WriteTimeout time.Duration
	// IdleTimeout closes a kept-alive connection idle between requests.
	IdleTimeout time.Duration
	// FastPath is the one path the engine serves itself (with GET,
	// HTTP/1.1, and a head parseFastHead validates), e.g. "/v1/subscribe".
	// Every other request goes to http.Server. Empty: none is served
	// here.
	FastPath string
	// StreamPath is a second path served the same way (Head.Stream is
	// true for it), for streams; empty: none.
	StreamPath string
	// StreamBacklog is the most bytes a stream (Conn.StartStream) may
	// have waiting for a slow client before it is ended; 0 means 64 KiB.
	StreamBacklog int
	// Limit, if not nil, marks connections accepted over its bound
	// (Conn.OverLimit) and refuses those past its margin unread.
	Limit *Limit
	// Logger receives debug logs; nil means slog.Default().
	Logger *slog.Logger
}

// Handler is what the engine serves fast-path requests with. Its methods
// must not block: ServeFast runs on the engine's poller, Encode on its
// workers and poller, Batch on the goroutine that calls Conn.Deliver.
type Handler[A any] interface {
	// ServeFast serves a request whose head the engine fully validated.
	// It owns c until it gives it up with c.Reply (an answer now) or
	// c.Park (an answer later, through c.Deliver).
	ServeFast(c *Conn[A], h Head)
	// Encode returns the bytes of the whole response that answer a makes
	// to c's parked request, and whether c may serve another request
	// after it. Called once per answered connection; answers that share a
	// batch key can share their bytes (the handler memoises).
	Encode(c *Conn[A], a A) (b []byte, keepAlive bool)
	// Batch is the key under which answers are queued together: the
	// answers of one fan-out, written by the same worker in one go. nil
	// queues a on its own.
	Batch(a A) any
}

// Engine is the event-driven HTTP/1.1 front: the epoll set that watches
// idle, parked and draining connections, the worker pool that serves the
// fast path, writes answers and hands other requests to http.Server, and
// the schedule of deadlines. A is the type of the answers handlers deliver
// to parked connections.
//
// Goroutines it owns: the poller and GOMAXPROCS workers; Shutdown stops
// them all. Nothing else runs per connection: a slow client waits in the
// epoll set for its socket to drain, under a deadline.
type Engine[A any] struct {
	cfg     Config
	h       Handler[A]
	log     *slog.Logger
	poll    *epoll.Poller
	reg     registry[A]
	reentry atomic.Pointer[reentryListener] // set by Listen
	closing atomic.Bool
	fast    []byte // "GET " + FastPath, the request line start served here
	fast2   []byte // "GET " + StreamPath

	qmu   sync.Mutex
	qcond *sync.Cond
	queue ring[A]
	qstop bool
	// helping is answerFirst's batch, poller goroutine only.
	helping []job[A]

	// deadlineMu guards deadlines, the connections that have a deadline
	// (idle, header or write stall). Leaf lock.
	deadlineMu sync.Mutex
	deadlines  wheel[A]
	due        []*Conn[A] // the sweep's scratch, poller goroutine only

	bufs sync.Pool // *[]byte read buffers, held only while parsing

	workers sync.WaitGroup

	lmu sync.Mutex // guards lfd; accept and stopAccepting hold it
	lfd int        // the listening socket, -1 when not accepting

	// live counts the connections the engine accepted and not closed
	// yet, in the loop or handed back: what Config.Limit bounds.
	live        atomic.Int64
	parkedNow   atomic.Int64 // connections waiting for an answer
	vanished    atomic.Uint64
	writeFailed atomic.Uint64
	slowDropped atomic.Uint64
	handbacks   atomic.Uint64
	served      atomic.Uint64
}

// job is work for a worker.
type job[A any] struct {
	c      *Conn[A]
	kind   jobKind
	events uint32
	res    A
	batch  any
	// conns, for jobAnswers, are the connections that all get res: a
	// fan-out is queued as batches that share one answer (same batch
	// key), at 8 bytes per connection rather than a job each.
	conns []*Conn[A]
}

type jobKind uint8

const (
	jobEvent   jobKind = iota // read a request an owner left for later (goIdle)
	jobAnswer                 // write a delivered answer
	jobAnswers                // write one shared answer to several connections
	jobAccept                 // the listener has connections waiting
)

// Supported reports whether the engine runs on this platform (epoll).
const Supported = epoll.Supported

// New starts an engine (its poller and workers) that serves fast-path
// requests with h. It accepts nothing until Listen.
func New[A any](cfg Config, h Handler[A]) (*Engine[A], error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	p := &Engine[A]{cfg: cfg, h: h, log: log, lfd: -1, fast: []byte("GET " + cfg.FastPath),
		fast2: []byte("GET " + cfg.StreamPath)}
	p.qcond = sync.NewCond(&p.qmu)
	p.deadlines.swept = tickOf(time.Now().UnixNano()) - 1
	p.bufs.New = func() any { b := make([]byte, 4096); return &b }
	poll, err := epoll.New(p.events, p.sweepDeadlines, deadlineTick)
	if err != nil {
		return nil, err
	}
	p.poll = poll
	n := runtime.GOMAXPROCS(0)
	for range n {
		p.workers.Go(p.work)
	}
	return p, nil
}

// Closing reports whether Shutdown began: answers then close their
// connection.
func (p *Engine[A]) Closing() bool { return p.closing.Load() }

// events runs on the poller goroutine and serves the events there: a
// read, a request served (ServeFast, which must not block), a park, a
// drain's write, a close. None of it waits, so handing each event to a
// worker would only add a wake-up (futex) and a queue per event; the
// workers write the answers of fan-outs, which come in bursts. Accepting
// goes to a worker: an accept error waits for http.Server to take it.
func (p *Engine[A]) events(evs []epoll.Event) {
	p.answerFirst()
	for _, e := range evs {
		if e.Key == listenerKey {
			p.enqueue(job[A]{kind: jobAccept})
			continue
		}
		if c := p.reg.get(e.Key); c != nil {
			c.event(e.Events, false)
		}
	}
}

// answerFirst writes answers already queued before the poller serves its
// events, sharing them with the workers. During a fan-out the events are
// mostly the re-polls of subscribers just answered: serving one (a read,
// ServeFast, a park) costs more than writing an answer, and on a poller
// that competed with the workers for the cores it delayed the last
// answers of the fan-out (the trip time's tail) to serve re-polls that
// can wait. Bounded by the jobs queued when it starts: answers that keep
// coming do not starve the events.
func (p *Engine[A]) answerFirst() {
	p.qmu.Lock()
	budget := p.queue.len()
	for budget > 0 && p.queue.len() > 0 {
		n := min(budget, p.queue.len(), max(1, p.queue.len()/(runtime.GOMAXPROCS(0)+1)))
		p.helping = p.queue.pop(p.helping[:0], n)
		p.qmu.Unlock()
		budget -= n
		for i := range p.helping {
			p.run(p.helping[i])
			p.helping[i] = job[A]{}
		}
		p.qmu.Lock()
	}
	p.qmu.Unlock()
}

// enqueue queues one job; it never blocks on I/O.
func (p *Engine[A]) enqueue(j job[A]) {
	p.qmu.Lock()
	p.queue.push(j)
	p.qmu.Unlock()
	p.qcond.Signal()
}

// answerBatch is how many connections one jobAnswers holds: big enough to
// make the queue small, small enough that workers share a fan-out.
const answerBatch = 128

// enqueueAnswer queues c's answer. Answers of one batch (a fan-out) join
// the batch at the tail of the queue, if there is one.
func (p *Engine[A]) enqueueAnswer(c *Conn[A], res A) {
	key := p.h.Batch(res)
	p.qmu.Lock()
	if key != nil {
		if t := p.queue.tail(); t != nil && t.kind == jobAnswers && t.batch == key && len(t.conns) < answerBatch {
			t.conns = append(t.conns, c)
			p.qmu.Unlock()
			return // the worker that takes the batch is already signalled
		}
		p.queue.push(job[A]{kind: jobAnswers, res: res, batch: key, conns: append(make([]*Conn[A], 0, answerBatch), c)})
	} else {
		p.queue.push(job[A]{c: c, kind: jobAnswer, res: res})
	}
	p.qmu.Unlock()
	p.qcond.Signal()
}

// work is a worker: it takes jobs in batches, so a fan-out of thousands of
// answers costs few lock round trips.
func (p *Engine[A]) work() {
	var batch []job[A]
	for {
		p.qmu.Lock()
		for p.queue.len() == 0 && !p.qstop {
			p.qcond.Wait()
		}
		if p.queue.len() == 0 && p.qstop {
			p.qmu.Unlock()
			return
		}
		// Take a share, leaving the rest for the other workers.
		n := min(p.queue.len(), max(64, p.queue.len()/runtime.GOMAXPROCS(0)))
		batch = p.queue.pop(batch[:0], n)
		p.qmu.Unlock()
		for i := range batch {
			p.run(batch[i])
			batch[i] = job[A]{}
		}
	}
}

func (p *Engine[A]) run(j job[A]) {
	switch j.kind {
	case jobEvent:
		j.c.event(j.events, false)
	case jobAccept:
		p.accept()
	case jobAnswer:
		j.c.answer(j.res, true)
	case jobAnswers:
		for _, c := range j.conns {
			c.answer(j.res, true)
		}
	}
}

// listenerKey is the epoll key of the listening socket; the registry never
// hands it out (its generations would have to wrap first).
const listenerKey = ^uint64(0)

// acceptBatch bounds the connections one accept job takes before it
// re-arms, so a connection storm does not starve answers.
const acceptBatch = 256

// watchListener puts the listening socket in the epoll set: accepting is
// one more event. Accepted sockets never get a netpoller descriptor.
func (p *Engine[A]) watchListener(ln *net.TCPListener) error {
	raw, err := ln.SyscallConn()
	if err != nil {
		return err
	}
	var cerr error
	p.lmu.Lock()
	defer p.lmu.Unlock()
	err = raw.Control(func(fd uintptr) {
		p.lfd = int(fd)
		cerr = p.poll.Add(p.lfd, listenerKey, epoll.Readable)
	})
	if err != nil {
		return err
	}
	return cerr
}

// accept takes waiting connections, then re-arms the listener.
func (p *Engine[A]) accept() {
	p.lmu.Lock()
	defer p.lmu.Unlock()
	if p.lfd < 0 {
		return // stopped
	}
	for range acceptBatch {
		fd, _, err := unix.Accept4(p.lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		switch {
		case err == nil:
			if p.cfg.Limit.refuse(p.live.Load()) {
				refuseFD(fd)
				continue
			}
			p.adopt(fd)
			continue
		case err == unix.EAGAIN:
		case err == unix.EINTR || err == unix.ECONNABORTED:
			continue
		default:
			// Out of file descriptors and the like: tell http.Server,
			// which logs it, and try again a little later instead of
			// spinning on a listener that stays readable.
			p.reentry.Load().fail(&net.OpError{Op: "accept", Net: "tcp", Err: err})
			time.AfterFunc(100*time.Millisecond, func() { p.enqueue(job[A]{kind: jobAccept}) })
			return
		}
		break
	}
	p.poll.Rearm(p.lfd, listenerKey, epoll.Readable)
}

// stopAccepting takes the listener out of the epoll set, before it is
// closed.
func (p *Engine[A]) stopAccepting() {
	p.lmu.Lock()
	defer p.lmu.Unlock()
	if p.lfd >= 0 {
		p.poll.Remove(p.lfd)
		p.lfd = -1
	}
}

// refuseFD answers a connection accepted past the hard limit with a 503
// without reading it, and closes it.
func refuseFD(fd int) {
	writeFD(fd, refusal)
	unix.Close(fd)
}

// tcpKeepAlive matches net.ListenConfig's defaults for accepted
// connections: probe after 15s idle, every 15s, give up after 9. A parked
// client that vanished without a FIN is noticed this way.
const tcpKeepAlive = 15

// adopt takes a newly accepted socket: the event loop waits for its first
// request, for at most ReadHeaderTimeout (as http.Server would).
func (p *Engine[A]) adopt(fd int) {
	if p.closing.Load() {
		unix.Close(fd)
		return
	}
	// Best effort, like net's own: a socket that refuses an option still
	// works.
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, tcpKeepAlive)
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, tcpKeepAlive)
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 9)
	c := newConn(p)
	c.shed = p.cfg.Limit.overLimit(p.live.Load())
	c.attachFD(fd, nil)
	c.mu.Lock()
	c.goIdle(time.Now().Add(p.cfg.ReadHeaderTimeout).UnixNano())
}

// sweepDeadlines acts on the connections whose deadline passed (the
// wheel's slots of the ticks that ended), on the poller goroutine: each
// is re-checked under its lock, since the deadline may have moved since
// the sweep, then closed (or left to its owner).
func (p *Engine[A]) sweepDeadlines() {
	p.deadlineMu.Lock()
	p.due = p.deadlines.sweep(time.Now().UnixNano(), p.due[:0])
	p.deadlineMu.Unlock()
	for i, c := range p.due {
		c.event(0, true)
		p.due[i] = nil
	}
}

// Shutdown closes idle connections, waits (until ctx ends) for every
// parked connection to be answered (the caller makes its handlers deliver
// them all), then closes what is left and stops the goroutines. Call it
// after the listener is closed.
func (p *Engine[A]) Shutdown(ctx context.Context) error {
	p.closing.Store(true)
	for _, c := range p.reg.all() {
		c.mu.Lock()
		switch c.state {
		case csIdle:
			c.closeLocked()
		case csStream:
			c.endStreamLocked(true, StreamShutdown) // the handler hears of it through cancel
		case csBusy:
			if c.streaming {
				// Mid-write: its owner ends it when the write is done
				// (streamFlush honours closeReq), so Shutdown does not
				// wait for ctx on a stream nobody will close.
				c.closeReq = true
			}
			c.mu.Unlock()
		default:
			c.mu.Unlock()
		}
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var err error
wait:
	for p.reg.len() > 0 {
		select {
		case <-ctx.Done():
			err = ctx.Err()
			break wait
		case <-tick.C:
		}
	}
	p.qmu.Lock()
	p.qstop = true
	p.qmu.Unlock()
	p.qcond.Broadcast()
	p.workers.Wait()
	for _, c := range p.reg.all() {
		c.Close()
	}
	p.poll.Close()
	return err
}

// Stats are the engine's figures, for metrics.
type Stats struct {
	Connections int64 // held by the engine now: idle, parked, draining or busy
	Parked      int64 // waiting for an answer
	Vanished    uint64
	WriteFailed uint64
	Slow        uint64 // dropped for stalling an answer past WriteTimeout
	Handbacks   uint64
	Served      uint64 // fast-path requests
}

// Stats returns the engine's figures.
func (p *Engine[A]) Stats() Stats {
	return Stats{
		Connections: int64(p.reg.len()),
		Parked:      p.parkedNow.Load(),
		Vanished:    p.vanished.Load(),
		WriteFailed: p.writeFailed.Load(),
		Slow:        p.slowDropped.Load(),
		Handbacks:   p.handbacks.Load(),
		Served:      p.served.Load(),
	}
}

// registry maps epoll keys to connections. Keys are slot index + 1 in the
// low 32 bits and a generation in the high 32, so a late event for a
// closed connection never reaches the one that took its slot.
type registry[A any] struct {
	mu    sync.Mutex
	slots []*Conn[A]
	gens  []uint32
	free  []uint32
	n     int
}

func (r *registry[A]) add(c *Conn[A]) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var i uint32
	if l := len(r.free); l > 0 {
		i = r.free[l-1]
		r.free = r.free[:l-1]
	} else {
		i = uint32(len(r.slots))
		r.slots = append(r.slots, nil)
		r.gens = append(r.gens, 0)
	}
	r.gens[i]++
	r.slots[i] = c
	r.n++
	return uint64(r.gens[i])<<32 | uint64(i+1)
}

func (r *registry[A]) get(key uint64) *Conn[A] {
	i, gen := uint32(key)-1, uint32(key>>32)
	r.mu.Lock()
	defer r.mu.Unlock()
	if int(i) >= len(r.slots) || r.gens[i] != gen {
		return nil
	}
	return r.slots[i]
}

func (r *registry[A]) remove(key uint64) {
	i, gen := uint32(key)-1, uint32(key>>32)
	r.mu.Lock()
	defer r.mu.Unlock()
	if int(i) >= len(r.slots) || r.gens[i] != gen || r.slots[i] == nil {
		return
	}
	r.slots[i] = nil
	r.free = append(r.free, i)
	r.n--
}

func (r *registry[A]) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

func (r *registry[A]) all() []*Conn[A] {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Conn[A], 0, r.n)
	for _, c := range r.slots {
		if c != nil {
			out = append(out, c)
		}
	}
	return out
}

// Listen puts the engine in front of ln and returns the listener
// http.Server should serve from: it yields the connections the engine
// hands back (see reentryListener). A listener other than TCP is
// returned as it is, for http.Server alone.
func (p *Engine[A]) Listen(ln net.Listener) (net.Listener, error) {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return ln, nil
	}
	rl := newReentryListener(ln, p.stopAccepting)
	p.reentry.Store(rl)
	if err := p.watchListener(tl); err != nil {
		return nil, err
	}
	return rl, nil
}

// ring is the job queue: a ring buffer, so a fan-out of thousands of jobs
// reuses one array instead of growing a new one each time. It doubles when
// full and shrinks back once empty if a burst grew it beyond
// maxIdleRing. Not safe for concurrent use: parker.qmu guards it.
type ring[A any] struct {
	buf        []job[A]
	head, size int
}

// maxIdleRing is the capacity kept after a burst (about 100 B a job): a
// fan-out to 64K subscribers reuses it; a bigger one lets its array go.
const maxIdleRing = 64 << 10

func (r *ring[A]) len() int { return r.size }

// tail returns the last job queued, to extend it; nil when empty.
func (r *ring[A]) tail() *job[A] {
	if r.size == 0 {
		return nil
	}
	return &r.buf[(r.head+r.size-1)%len(r.buf)]
}

func (r *ring[A]) push(j job[A]) {
	if r.size == len(r.buf) {
		grown := make([]job[A], max(256, 2*len(r.buf)))
		n := copy(grown, r.buf[r.head:])
		copy(grown[n:], r.buf[:r.head])
		r.buf, r.head = grown, 0
	}
	r.buf[(r.head+r.size)%len(r.buf)] = j
	r.size++
}

// pop moves up to n jobs to dst, clearing their slots so the ring does not
// keep answers and connections alive.
func (r *ring[A]) pop(dst []job[A], n int) []job[A] {
	for range min(n, r.size) {
		dst = append(dst, r.buf[r.head])
		r.buf[r.head] = job[A]{}
		r.head = (r.head + 1) % len(r.buf)
		r.size--
	}
	if r.size == 0 {
		r.head = 0
		if len(r.buf) > maxIdleRing {
			r.buf = nil
		}
	}
	return dst
}

func (p *Engine[A]) mayBeFast(data []byte) bool {
	return (p.cfg.FastPath != "" && mayBeFastHead(data, p.fast)) ||
		(p.cfg.StreamPath != "" && mayBeFastHead(data, p.fast2))
}

func (p *Engine[A]) parseFastHead(head []byte) (Head, bool) {
	if p.cfg.FastPath != "" {
		if h, ok := parseFastHead(head, p.cfg.FastPath); ok {
			return h, true
		}
	}
	if p.cfg.StreamPath != "" {
		h, ok := parseFastHead(head, p.cfg.StreamPath)
		h.Stream = true
		return h, ok
	}
	return Head{}, false
}
