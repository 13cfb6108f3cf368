package api

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushuphq/pushup/broker"
)

// ErrThreadLimit is the cause of a waiting subscribe refused in
// ModelThread because it could not have an OS thread of its own: the
// process's thread limit (Config.MaxThreads) or a limit of the OS is
// reached. Clients get 503 thread_limit with Retry-After.
var ErrThreadLimit = errors.New("api: no OS thread for another waiting request")

// threadMargin is how many of Config.MaxThreads are kept for threads the
// Go runtime makes for itself: one per P running goroutines (GOMAXPROCS),
// sysmon, the template thread, and threads blocked in system calls (file
// reads, DNS). 64 is several times what pushupd uses besides the waiting
// requests.
func threadMargin() int { return 64 + runtime.GOMAXPROCS(0) }

// osThreadMargin is how many threads the OS must still allow after one
// more is made for a waiting request: the rest of the machine (the load
// tester, a shell, other servers) needs threads too, and Go crashes the
// whole process, not the request, when the OS refuses it one.
const osThreadMargin = 256

// threadLimit is one limit the OS puts on threads: the threads it allows
// and a way to count those that exist now.
type threadLimit struct {
	name  string // e.g. "kernel.pid_max"
	limit int
	used  func() (int, error)
}

// threadGate gives each waiting request of ModelThread an OS thread of
// its own (await): a new goroutine locks itself to its thread, waits for
// the answer there, and exits without unlocking, which ends the thread. So
// the process has one thread per waiting request, made when the request
// starts waiting and ended when it is answered, as in a thread-per-request
// server: not a pool that only grows (Go never ends an idle thread).
//
// Go crashes the whole process when it would exceed its thread limit or
// the OS refuses it a thread, so the gate counts the waiting requests
// itself and refuses one (ErrThreadLimit) before the runtime would have
// to make a thread it cannot have.
type threadGate struct {
	maxThreads int // Config.MaxThreads, for messages
	max        int // most waiting requests: maxThreads - threadMargin
	os         []threadLimit

	mu      sync.Mutex
	waiting int    // slots taken: requests holding a thread or about to
	holding int    // requests whose goroutine has locked its thread
	refused uint64 // requests refused, for /metrics
}

// newThreadGate makes the gate for a process whose Go thread limit is at
// least maxThreads, bounded also by the OS limits os.
func newThreadGate(maxThreads int, os []threadLimit) *threadGate {
	return &threadGate{maxThreads: maxThreads, max: maxThreads - threadMargin(), os: os}
}

// raiseMaxThreads raises the Go runtime's thread limit to n if it is
// lower, and never lowers it: other servers in the process (tests) may
// need the higher one.
func raiseMaxThreads(n int) {
	if prev := debug.SetMaxThreads(n); prev > n {
		debug.SetMaxThreads(prev)
	}
}

// await waits for sub's answer on a thread of its own. ok is false if
// the client went away first (nothing to write). It fails with
// ErrThreadLimit, having withdrawn sub, if no thread may be had; if sub
// was answered meanwhile, that answer is returned instead.
func (g *threadGate) await(ctx context.Context, sub *broker.Subscription, answer <-chan broker.Result) (res broker.Result, ok bool, err error) {
	if err := g.acquire(); err != nil {
		if sub.Cancel() {
			return res, false, err // 503: the client keeps its cursor and retries
		}
		return <-answer, true, nil // answered meanwhile: no wait, no thread
	}
	type awaited struct {
		res broker.Result
		ok  bool
	}
	done := make(chan awaited, 1)
	// Owned by this call, which waits for it; it ends when the broker
	// answers (at the latest on shutdown, which answers everyone) or the
	// client goes.
	go func() {
		runtime.LockOSThread()
		// Never unlocked: exiting locked ends the thread.
		g.hold()
		res, ok := awaitAnswer(ctx, sub, answer)
		g.release()
		done <- awaited{res, ok}
	}()
	a := <-done
	return a.res, a.ok, nil
}

// acquire takes a slot, or refuses.
func (g *threadGate) acquire() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.waiting >= g.max {
		g.refused++
		return fmt.Errorf("%w: %d requests already wait on their own thread, the most -max-threads=%d allows "+
			"(%d threads are kept for the Go runtime)", ErrThreadLimit, g.waiting, g.maxThreads, g.maxThreads-g.max)
	}
	// Reading /proc under the lock serialises thread creation, which the
	// runtime does one thread at a time anyway.
	if err := g.checkOS(); err != nil {
		g.refused++
		return err
	}
	g.waiting++
	return nil
}

// checkOS fails if any OS limit would leave fewer than osThreadMargin
// threads after one more. A limit whose usage cannot be read is skipped:
// a refusal must name a real reason.
func (g *threadGate) checkOS() error {
	for _, l := range g.os {
		n, err := l.used()
		if err != nil {
			continue
		}
		if n+1+osThreadMargin > l.limit {
			return fmt.Errorf("%w: the OS allows %d threads (%s) and %d exist; %d are kept for the rest of the machine "+
				"(%d requests wait on their own thread here)", ErrThreadLimit, l.limit, l.name, n, osThreadMargin, g.waiting)
		}
	}
	return nil
}

// hold counts a request whose goroutine has locked its thread: what
// /metrics reports as waiting, so the figure never runs ahead of the
// threads the process really has.
func (g *threadGate) hold() {
	g.mu.Lock()
	g.holding++
	g.mu.Unlock()
}

// release gives a slot back; the caller held its thread (hold).
func (g *threadGate) release() {
	g.mu.Lock()
	g.waiting--
	g.holding--
	g.mu.Unlock()
}

// threadStats are the gate's figures for /metrics.
type threadStats struct {
	waiting, capacity int
	refused           uint64
}

func (g *threadGate) stats() threadStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return threadStats{waiting: g.holding, capacity: g.max, refused: g.refused}
}

// describe says what bounds the gate, for the log at start.
func (g *threadGate) describe() string {
	parts := []string{fmt.Sprintf("-max-threads %d less %d for the runtime", g.maxThreads, g.maxThreads-g.max)}
	for _, l := range g.os {
		n, err := l.used()
		if err != nil {
			parts = append(parts, fmt.Sprintf("%s %d", l.name, l.limit))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %d (%d in use)", l.name, l.limit, n))
	}
	return strings.Join(parts, "; ")
}

// threadCollector exports the thread model's figures.
type threadCollector struct {
	g                          *threadGate
	waiting, capacity, refused *prometheus.Desc
}

func newThreadCollector(g *threadGate) *threadCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("pushup_thread_"+name, help, nil, nil)
	}
	return &threadCollector{
		g:        g,
		waiting:  d("waiting", "Subscribe requests waiting on an OS thread of their own."),
		capacity: d("capacity", "Most requests that may wait at once (-max-threads less the runtime's margin)."),
		refused:  d("refused_total", "Waiting requests refused with 503 thread_limit."),
	}
}

func (c *threadCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.waiting, c.capacity, c.refused} {
		ch <- d
	}
}

func (c *threadCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.g.stats()
	g := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	g(c.waiting, float64(st.waiting))
	g(c.capacity, float64(st.capacity))
	ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(st.refused))
}
