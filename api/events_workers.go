package api

import (
	"runtime"
	"sync"

	"github.com/pushuphq/pushup/broker"
)

// streamWork is one broker answer for an engine-held stream to write.
type streamWork struct {
	es  stepper
	res broker.Result
}

// stepper is what the workers drive: an engineStream.
type stepper interface{ step(res broker.Result) }

// streamWorkers write the broker's answers to engine-held streams: a fixed
// pool of goroutines draining one queue, so a publication fanned out to
// 15,000 streams queues 15,000 small records rather than starting 15,000
// goroutines (each with its stack). A stream has at most one broker
// subscription at a time, so at most one of its answers is ever queued or
// being written: one step per stream at a time, in order.
//
// The workers start with the first answer and stop with stop, after the
// engine has ended every stream. Safe for concurrent use; mu is a leaf
// lock (nothing else is taken under it, and no I/O runs under it).
type streamWorkers struct {
	n int // goroutines once started

	mu      sync.Mutex
	queue   []streamWork // FIFO from head
	head    int
	started bool
	stopped bool

	// wake has room for one signal: whoever queues work signals it
	// without blocking, and a worker that takes work while more is left
	// passes the signal on, so every worker wakes for a fan-out.
	wake chan struct{}
	quit chan struct{}
	wg   sync.WaitGroup
}

// streamBatch is how many answers a worker takes from the queue at a time:
// enough to amortise the lock, few enough that a fan-out spreads over
// every worker.
const streamBatch = 32

// maxQueueKept is the most queue entries (about 100 bytes each) kept
// between fan-outs: a fan-out to 15,000 streams grows the queue to 1.5 MB
// for a moment, which idle streams should not keep paying for.
const maxQueueKept = 1024

func newStreamWorkers(n int) *streamWorkers {
	if n < 1 {
		n = runtime.GOMAXPROCS(0)
	}
	return &streamWorkers{n: n, wake: make(chan struct{}, 1), quit: make(chan struct{})}
}

// enqueue queues res for es; it never blocks. After stop the answer is
// dropped: the engine ended every stream before, and told each one.
func (p *streamWorkers) enqueue(es stepper, res broker.Result) {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	if !p.started {
		p.started = true
		p.wg.Add(p.n)
		for range p.n {
			// Owned by p; ends when stop closes quit and the queue is empty.
			go p.run()
		}
	}
	p.queue = append(p.queue, streamWork{es, res})
	p.mu.Unlock()
	p.signal()
}

func (p *streamWorkers) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// take moves up to len(dst) queued answers into dst; more reports whether
// some are left.
func (p *streamWorkers) take(dst []streamWork) (n int, more bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n = copy(dst, p.queue[p.head:])
	clear(p.queue[p.head : p.head+n]) // drop references to streams and messages
	p.head += n
	if p.head == len(p.queue) {
		p.head = 0
		if cap(p.queue) > maxQueueKept {
			p.queue = nil // a big fan-out's worth: give it back to the GC
		} else {
			p.queue = p.queue[:0]
		}
	}
	return n, p.head < len(p.queue)
}

func (p *streamWorkers) run() {
	defer p.wg.Done()
	var batch [streamBatch]streamWork
	for {
		n, more := p.take(batch[:])
		if more {
			p.signal()
		}
		for i := range batch[:n] {
			batch[i].es.step(batch[i].res)
			batch[i] = streamWork{}
		}
		if n > 0 {
			continue
		}
		select {
		case <-p.wake:
		case <-p.quit:
			if p.idle() { // nothing comes after stop
				return
			}
		}
	}
}

// idle reports whether nothing is queued.
func (p *streamWorkers) idle() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.head == len(p.queue)
}

// stop ends the workers once what is queued is written, and drops what
// comes after. Call it once the engine has ended the streams.
func (p *streamWorkers) stop() {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	p.stopped = true
	p.mu.Unlock()
	close(p.quit)
	p.wg.Wait()
}
