package api

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/btree"

	"github.com/pushuphq/pushup/broker"
	"github.com/pushuphq/pushup/internal/epoll"
)

// parker runs the event model: the epoll set that watches parked and idle
// connections, the worker pool that writes answers and serves the requests
// that arrive on them, and the schedule of idle deadlines.
//
// Goroutines it owns: the poller, GOMAXPROCS workers, and one per slow
// write (bounded by the write timeout). shutdown stops them all.
type parker struct {
	s       *Server
	log     *slog.Logger
	poll    *epoll.Poller
	reg     registry
	reentry *reentryListener // set by Serve
	closing atomic.Bool

	qmu   sync.Mutex
	qcond *sync.Cond
	queue []job
	qstop bool

	// idleMu guards idle, the idle connections by deadline. Leaf lock.
	idleMu sync.Mutex
	idle   *btree.BTreeG[*pconn]

	bufs sync.Pool // *[]byte read buffers, held only while parsing

	workers sync.WaitGroup
	slow    sync.WaitGroup

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
}

type jobKind uint8

const (
	jobEvent  jobKind = iota // an epoll report
	jobAnswer                // write a delivered answer
)

// idleTick is how often idle connections are checked against their
// deadline; idle timeouts are seconds long, so a second is fine-grained.
const idleTick = time.Second

func newParker(s *Server) (*parker, error) {
	p := &parker{s: s, log: s.log}
	p.qcond = sync.NewCond(&p.qmu)
	p.idle = btree.NewG(32, func(a, b *pconn) bool {
		if a.idleUntil != b.idleUntil {
			return a.idleUntil < b.idleUntil
		}
		return a.key < b.key
	})
	p.bufs.New = func() any { b := make([]byte, 4096); return &b }
	poll, err := epoll.New(p.events, p.sweepIdle, idleTick)
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
		if c := p.reg.get(e.Key); c != nil {
			p.queue = append(p.queue, job{c: c, kind: jobEvent, events: e.Events})
		}
	}
	p.qmu.Unlock()
	p.qcond.Broadcast()
}

// enqueue queues one job; it never blocks on I/O.
func (p *parker) enqueue(j job) {
	p.qmu.Lock()
	p.queue = append(p.queue, j)
	p.qmu.Unlock()
	p.qcond.Signal()
}

// work is a worker: it takes jobs in batches, so a fan-out of thousands of
// answers costs few lock round trips.
func (p *parker) work() {
	var batch []job
	for {
		p.qmu.Lock()
		for len(p.queue) == 0 && !p.qstop {
			p.qcond.Wait()
		}
		if len(p.queue) == 0 && p.qstop {
			p.qmu.Unlock()
			return
		}
		// Take a share, leaving the rest for the other workers.
		n := min(len(p.queue), max(64, len(p.queue)/runtime.GOMAXPROCS(0)))
		batch = append(batch[:0], p.queue[:n]...)
		p.queue = p.queue[n:]
		if len(p.queue) == 0 {
			p.queue = nil // let a big fan-out's backing array go
		}
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
		j.c.event(j.events)
	case jobAnswer:
		j.c.answer(j.res)
	}
}

// slowWrite finishes a write the socket could not take at once, on its own
// goroutine, so the workers stay free. The write timeout bounds a stall,
// not the whole answer: each chunk gets a fresh deadline, so a client that
// keeps reading a large answer is never cut off, and one that stops is
// dropped within the timeout.
func (p *parker) slowWrite(c *pconn, rest []byte, keep bool) {
	p.slow.Go(func() {
		for len(rest) > 0 {
			chunk := rest[:min(len(rest), slowChunk)]
			c.conn.SetWriteDeadline(time.Now().Add(p.s.cfg.WriteTimeout))
			n, err := c.conn.Write(chunk)
			rest = rest[n:]
			if err != nil {
				p.slowDropped.Add(1)
				p.log.Debug("dropped a slow client", "remote", c.conn.RemoteAddr().String(), "err", err)
				c.close()
				return
			}
		}
		c.conn.SetWriteDeadline(time.Time{})
		c.afterWrite(keep)
	})
}

// slowChunk is how much a slow write sends per deadline: small enough that
// a client reading at a few hundred KB/s renews its deadline well within
// any sane write timeout.
const slowChunk = 64 << 10

func (p *parker) idleAdd(c *pconn) {
	p.idleMu.Lock()
	p.idle.ReplaceOrInsert(c)
	p.idleMu.Unlock()
}

func (p *parker) idleRemove(c *pconn) {
	p.idleMu.Lock()
	p.idle.Delete(c)
	p.idleMu.Unlock()
}

// sweepIdle closes idle connections past their deadline: one range sweep
// of the deadline tree, once a second, on the poller goroutine.
func (p *parker) sweepIdle() {
	now := time.Now().UnixNano()
	var due []*pconn
	p.idleMu.Lock()
	for {
		c, ok := p.idle.Min()
		if !ok || c.idleUntil > now {
			break
		}
		p.idle.DeleteMin()
		due = append(due, c)
	}
	p.idleMu.Unlock()
	for _, c := range due {
		p.enqueue(job{c: c, kind: jobEvent, events: epoll.Hangup})
	}
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
	p.slow.Wait()
	p.poll.Close()
	return err
}

// parkerStats are the event model's figures for /metrics.
type parkerStats struct {
	connections, parked                    int64
	vanished, writeFailed, slow, handbacks uint64
	served                                 uint64
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
