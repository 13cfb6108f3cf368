//go:build linux

package api

import (
	"context"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/btree"
	"golang.org/x/sys/unix"

	"github.com/pushuphq/pushup/broker"
	"github.com/pushuphq/pushup/internal/epoll"
)

// parker runs the event model: the epoll set that watches parked and idle
// connections, the worker pool that writes answers and serves the requests
// that arrive on them, and the schedule of idle deadlines.
//
// Goroutines it owns: the accept loop, the poller and GOMAXPROCS workers;
// shutdown stops them all. Nothing else runs per connection: a slow client
// waits in the epoll set for its socket to drain, under a deadline.
type parker struct {
	s       *Server
	log     *slog.Logger
	poll    *epoll.Poller
	reg     registry
	reentry atomic.Pointer[reentryListener] // set by listen
	closing atomic.Bool
	debug   bool // debug logging is on: worth a syscall per request for the peer address

	qmu   sync.Mutex
	qcond *sync.Cond
	queue ring
	qstop bool

	// deadlineMu guards deadlines, the connections that have a deadline
	// (idle, header or write stall), ordered by it. Leaf lock.
	deadlineMu sync.Mutex
	deadlines  *btree.BTreeG[*pconn]

	bufs sync.Pool // *[]byte read buffers, held only while parsing

	workers sync.WaitGroup

	lmu sync.Mutex // guards lfd; accept and stopAccepting hold it
	lfd int        // the listening socket, -1 when not accepting

	// live counts the connections the engine accepted and not closed
	// yet, in the loop or handed back: what MaxConns bounds.
	live        atomic.Int64
	parkedNow   atomic.Int64 // connections waiting for an answer
	vanished    atomic.Uint64
	writeFailed atomic.Uint64
	slowDropped atomic.Uint64
	handbacks   atomic.Uint64
	served      atomic.Uint64
}

// job is work for a worker.
type job struct {
	c      *pconn
	kind   jobKind
	events uint32
	res    broker.Result
	// conns, for jobAnswers, are the connections that all get res: a
	// fan-out is queued as batches that share one answer (res.Share), at
	// 8 bytes per subscriber rather than a job each.
	conns []*pconn
}

type jobKind uint8

const (
	jobEvent    jobKind = iota // an epoll report
	jobAnswer                  // write a delivered answer
	jobAnswers                 // write one shared answer to several connections
	jobDeadline                // a deadline passed
	jobAccept                  // the listener has connections waiting
)

// deadlineTick is how often connection deadlines are swept. Idle and
// header timeouts are seconds long and a write stall is dropped within a
// tick of its timeout, so a tenth of a second is fine-grained enough.
const deadlineTick = 100 * time.Millisecond

func newParker(s *Server) (*parker, error) {
	p := &parker{s: s, log: s.log, lfd: -1, debug: s.log.Enabled(context.Background(), slog.LevelDebug)}
	p.qcond = sync.NewCond(&p.qmu)
	p.deadlines = btree.NewG(32, func(a, b *pconn) bool {
		if a.deadline != b.deadline {
			return a.deadline < b.deadline
		}
		return a.key < b.key
	})
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

// events runs on the poller goroutine: it only looks the connections up
// and queues the work.
func (p *parker) events(evs []epoll.Event) {
	p.qmu.Lock()
	for _, e := range evs {
		if e.Key == listenerKey {
			p.queue.push(job{kind: jobAccept})
			continue
		}
		if c := p.reg.get(e.Key); c != nil {
			p.queue.push(job{c: c, kind: jobEvent, events: e.Events})
		}
	}
	p.qmu.Unlock()
	p.qcond.Broadcast()
}

// enqueue queues one job; it never blocks on I/O.
func (p *parker) enqueue(j job) {
	p.qmu.Lock()
	p.queue.push(j)
	p.qmu.Unlock()
	p.qcond.Signal()
}

// answerBatch is how many connections one jobAnswers holds: big enough to
// make the queue small, small enough that workers share a fan-out.
const answerBatch = 128

// enqueueAnswer queues c's answer. Answers shared by a fan-out join the
// batch of the same answer at the tail of the queue, if there is one.
func (p *parker) enqueueAnswer(c *pconn, res broker.Result) {
	p.qmu.Lock()
	if res.Share != nil {
		if t := p.queue.tail(); t != nil && t.kind == jobAnswers && t.res.Share == res.Share && len(t.conns) < answerBatch {
			t.conns = append(t.conns, c)
			p.qmu.Unlock()
			return // the worker that takes the batch is already signalled
		}
		p.queue.push(job{kind: jobAnswers, res: res, conns: append(make([]*pconn, 0, answerBatch), c)})
	} else {
		p.queue.push(job{c: c, kind: jobAnswer, res: res})
	}
	p.qmu.Unlock()
	p.qcond.Signal()
}

// work is a worker: it takes jobs in batches, so a fan-out of thousands of
// answers costs few lock round trips.
func (p *parker) work() {
	var batch []job
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
			batch[i] = job{}
		}
	}
}

func (p *parker) run(j job) {
	switch j.kind {
	case jobEvent:
		j.c.event(j.events, false)
	case jobDeadline:
		j.c.event(0, true)
	case jobAccept:
		p.accept()
	case jobAnswer:
		j.c.answer(j.res)
	case jobAnswers:
		for _, c := range j.conns {
			c.answer(j.res)
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
func (p *parker) watchListener(ln *net.TCPListener) error {
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
func (p *parker) accept() {
	p.lmu.Lock()
	defer p.lmu.Unlock()
	if p.lfd < 0 {
		return // stopped
	}
	for range acceptBatch {
		fd, _, err := unix.Accept4(p.lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		switch {
		case err == nil:
			if p.s.conns.refuse(p.live.Load()) {
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
			time.AfterFunc(100*time.Millisecond, func() { p.enqueue(job{kind: jobAccept}) })
			return
		}
		break
	}
	p.poll.Rearm(p.lfd, listenerKey, epoll.Readable)
}

// stopAccepting takes the listener out of the epoll set, before it is
// closed.
func (p *parker) stopAccepting() {
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
func (p *parker) adopt(fd int) {
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
	c := newPconn(p)
	c.shed = p.s.conns.overLimit(p.live.Load())
	c.attachFD(fd, nil)
	c.mu.Lock()
	c.goIdle(time.Now().Add(p.s.cfg.ReadHeaderTimeout).UnixNano())
}

func (p *parker) deadlineAdd(c *pconn) {
	p.deadlineMu.Lock()
	p.deadlines.ReplaceOrInsert(c)
	p.deadlineMu.Unlock()
}

func (p *parker) deadlineRemove(c *pconn) {
	p.deadlineMu.Lock()
	p.deadlines.Delete(c)
	p.deadlineMu.Unlock()
}

// sweepDeadlines hands the connections whose deadline passed to the
// workers: one range sweep of the deadline tree per tick, on the poller
// goroutine. The worker re-checks under the connection's lock, since the
// deadline may move meanwhile.
func (p *parker) sweepDeadlines() {
	now := time.Now().UnixNano()
	var due []*pconn
	p.deadlineMu.Lock()
	p.deadlines.Ascend(func(c *pconn) bool {
		if c.deadline > now {
			return false
		}
		due = append(due, c)
		return true
	})
	p.deadlineMu.Unlock()
	if len(due) == 0 {
		return
	}
	p.qmu.Lock()
	for _, c := range due {
		p.queue.push(job{c: c, kind: jobDeadline})
	}
	p.qmu.Unlock()
	p.qcond.Broadcast()
}

// shutdown closes idle connections, waits (until ctx ends) for every
// parked connection to be answered (the broker answers them all when it
// closes), then closes what is left and stops the goroutines.
func (p *parker) shutdown(ctx context.Context) error {
	p.closing.Store(true)
	for _, c := range p.reg.all() {
		c.mu.Lock()
		idle := c.state == csIdle
		c.mu.Unlock()
		if idle {
			c.close()
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
		c.close()
	}
	p.poll.Close()
	return err
}

func (p *parker) stats() parkerStats {
	return parkerStats{
		connections: int64(p.reg.len()),
		parked:      p.parkedNow.Load(),
		vanished:    p.vanished.Load(),
		writeFailed: p.writeFailed.Load(),
		slow:        p.slowDropped.Load(),
		handbacks:   p.handbacks.Load(),
		served:      p.served.Load(),
	}
}

// registry maps epoll keys to connections. Keys are slot index + 1 in the
// low 32 bits and a generation in the high 32, so a late event for a
// closed connection never reaches the one that took its slot.
type registry struct {
	mu    sync.Mutex
	slots []*pconn
	gens  []uint32
	free  []uint32
	n     int
}

func (r *registry) add(c *pconn) uint64 {
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

func (r *registry) get(key uint64) *pconn {
	i, gen := uint32(key)-1, uint32(key>>32)
	r.mu.Lock()
	defer r.mu.Unlock()
	if int(i) >= len(r.slots) || r.gens[i] != gen {
		return nil
	}
	return r.slots[i]
}

func (r *registry) remove(key uint64) {
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

func (r *registry) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

func (r *registry) all() []*pconn {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*pconn, 0, r.n)
	for _, c := range r.slots {
		if c != nil {
			out = append(out, c)
		}
	}
	return out
}

// listen puts the event loop in front of ln and returns the listener
// http.Server should serve from. Listeners other than TCP are served by
// http.Server alone.
func (p *parker) listen(ln net.Listener) (net.Listener, error) {
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
type ring struct {
	buf        []job
	head, size int
}

// maxIdleRing is the capacity kept after a burst (about 100 B a job): a
// fan-out to 64K subscribers reuses it; a bigger one lets its array go.
const maxIdleRing = 64 << 10

func (r *ring) len() int { return r.size }

// tail returns the last job queued, to extend it; nil when empty.
func (r *ring) tail() *job {
	if r.size == 0 {
		return nil
	}
	return &r.buf[(r.head+r.size-1)%len(r.buf)]
}

func (r *ring) push(j job) {
	if r.size == len(r.buf) {
		grown := make([]job, max(256, 2*len(r.buf)))
		n := copy(grown, r.buf[r.head:])
		copy(grown[n:], r.buf[:r.head])
		r.buf, r.head = grown, 0
	}
	r.buf[(r.head+r.size)%len(r.buf)] = j
	r.size++
}

// pop moves up to n jobs to dst, clearing their slots so the ring does not
// keep answers and connections alive.
func (r *ring) pop(dst []job, n int) []job {
	for range min(n, r.size) {
		dst = append(dst, r.buf[r.head])
		r.buf[r.head] = job{}
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
