package api

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pushuphq/pushup/broker"
)

// gatedStream is a stepper whose steps wait for a gate, as a stream's
// write of a big fan-out would, and that records what it was given.
type gatedStream struct {
	gate    <-chan struct{}
	running *atomic.Int32
	mu      sync.Mutex
	got     []int
}

func (g *gatedStream) step(res broker.Result) {
	g.running.Add(1)
	<-g.gate
	g.mu.Lock()
	g.got = append(g.got, int(res.RetryAfter))
	g.mu.Unlock()
	g.running.Add(-1)
}

// A fan-out to thousands of streams queues records for a fixed pool of
// workers: while every worker is busy, queuing more starts no goroutine
// (one per delivery did, each with its stack). What was queued is written
// once, and stop leaves nothing running. (A real stream has one answer
// queued at most, its subscription's: order within a stream follows.)
func TestStreamWorkersAreBounded(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const workers, streams, rounds = 4, 2000, 3
	p := newStreamWorkers(workers)
	gate := make(chan struct{})
	var running atomic.Int32
	before := runtime.NumGoroutine()
	ss := make([]*gatedStream, streams)
	for i := range ss {
		ss[i] = &gatedStream{gate: gate, running: &running}
	}
	for r := range rounds {
		for _, s := range ss {
			p.enqueue(s, broker.Result{RetryAfter: time.Duration(r)})
		}
	}
	require.Eventually(t, func() bool { return running.Load() == workers }, 10*time.Second, time.Millisecond,
		"every worker took a step")
	assert.LessOrEqual(t, runtime.NumGoroutine()-before, workers, "6,000 answers queued, %d goroutines", workers)
	close(gate)
	require.Eventually(t, func() bool { return p.idle() && running.Load() == 0 }, 10*time.Second, time.Millisecond)
	p.stop()
	for i, s := range ss {
		require.ElementsMatch(t, []int{0, 1, 2}, s.got, "stream %d: each answer once", i)
	}
	p.enqueue(ss[0], broker.Result{}) // after stop: dropped, nothing started
	assert.Len(t, ss[0].got, rounds)
}

// A stream's record is what an idle stream holds besides the engine's
// connection and the broker's subscription, 15,000 times over in the
// comparisons: Go rounds it up to a size class (80, 96, 112, 128, ...
// bytes), so one more field can cost 16 bytes per stream.
func TestIdleStreamRecordSize(t *testing.T) {
	assert.LessOrEqual(t, unsafe.Sizeof(sseStream{}), uintptr(64), "channels, cursor, end of life")
	assert.LessOrEqual(t, unsafe.Sizeof(engineStream{}), uintptr(96), "the 96-byte size class (was 160)")
}
