//go:build !race

// The race detector changes what allocates: allocation counts are checked
// without it (go test ./api), like the benchmark they come from.

package api

import (
	"net/http"
	"testing"
	"time"

	"github.com/pushuphq/pushup/broker"
	"github.com/pushuphq/pushup/channel"
	"github.com/pushuphq/pushup/internal/evhttp"
)

// answerFixture is one message's answer, as a fan-out of the compare
// experiment sends it.
func answerFixture() (*Server, broker.Result) {
	msg := &channel.Message{ID: "6e2fad29904e2938-1", JSON: []byte(`{"id":"6e2fad29904e2938-1","time":1796159228795,"channels":["compare"],"data":{"p":0,"seq":1,"t":1764600000000000000,"pad":"xxxxxxxxxxxxxxxxxxx"}}`)}
	return &Server{}, broker.Result{Messages: []*channel.Message{msg}, Reason: broker.ReasonMessages}
}

// buildAnswer builds one answer the way answerBytes does.
func buildAnswer(s *Server, res broker.Result) []byte { return s.answerFor(res, "", true) }

// TestAnswerBuildAllocations pins what an unshared answer allocates in
// the event loop: one buffer, the body appended after room for the head,
// the cursor encoded into it (13 allocations before issue 12's profile
// found them, 8 with shared header values and no ResponseController,
// then 1 without a header map and a writer).
func TestAnswerBuildAllocations(t *testing.T) {
	s, res := answerFixture()
	allocs := testing.AllocsPerRun(100, func() { buildAnswer(s, res) })
	if allocs > 1 {
		t.Fatalf("building an answer allocates %v times, want at most 1", allocs)
	}
}

// BenchmarkAnswerBuild is what building one subscribe answer costs the
// event loop when it is not shared: an answer to a poll that finds its
// message already there, or the one build a fan-out shares. Allocations
// here are GC work per delivery (docs/BENCHMARKS.md, issue 12).
func BenchmarkAnswerBuild(b *testing.B) {
	s, res := answerFixture()
	b.ReportAllocs()
	for b.Loop() {
		if len(buildAnswer(s, res)) == 0 {
			b.Fatal("empty answer")
		}
	}
}

// TestObserveAllocations: observing an answer's latency allocates
// nothing once its label set has been seen (WithLabelValues formatted the
// status and built a label slice every time).
func TestObserveAllocations(t *testing.T) {
	_, m := newMetrics(nil)
	m.observe(subscribeRoute, http.MethodGet, http.StatusOK, time.Millisecond)
	allocs := testing.AllocsPerRun(100, func() {
		m.observe(subscribeRoute, http.MethodGet, http.StatusOK, time.Millisecond)
	})
	if allocs != 0 {
		t.Fatalf("observing allocates %v times, want 0", allocs)
	}
}

// BenchmarkObserve is one answer's latency observation.
func BenchmarkObserve(b *testing.B) {
	_, m := newMetrics(nil)
	b.ReportAllocs()
	for b.Loop() {
		m.observe(subscribeRoute, http.MethodGet, http.StatusOK, time.Millisecond)
	}
}

// cachedPollFixture is an event-model server with one cached message and
// the head of a poll for it, already seen twice (so remembered).
func cachedPollFixture(t testing.TB) (*eventModel, *eventConn, evhttp.Head) {
	ts := startServer(t, options{model: ModelEvent})
	ts.publish(`{"channels":["a"],"data":"x"}`)
	m := ts.srv.event
	c := m.e.NewConn()
	h := evhttp.Head{Query: "channels=a&since=0&timeout=0", KeepAlive: true}
	for range 3 {
		if _, status, _, _ := m.servePoll(c, h, "", time.Now()); status != http.StatusOK {
			t.Fatalf("status %d", status)
		}
	}
	return m, c, h
}

// servePollOnce is what ServeFast does for a poll, but the write.
func servePollOnce(m *eventModel, c *eventConn, h evhttp.Head) []byte {
	start := time.Now()
	acao := m.s.allowOrigin(h.Origin)
	out, status, _, _ := m.servePoll(c, h, acao, start)
	m.s.metrics.observe(subscribeRoute, http.MethodGet, status, time.Since(start))
	return out
}

// TestCachedPollAllocations pins issue 12's requirement: the event
// loop answers a repeated cached read (the same query, its channel
// unchanged) without allocating. Before, it parsed the query, read the
// channel and encoded the answer every time: 14 allocations.
func TestCachedPollAllocations(t *testing.T) {
	m, c, h := cachedPollFixture(t)
	allocs := testing.AllocsPerRun(200, func() {
		if len(servePollOnce(m, c, h)) == 0 {
			t.Fatal("no answer")
		}
	})
	if allocs != 0 {
		t.Fatalf("a cached poll allocates %v times, want 0", allocs)
	}
}

// BenchmarkCachedPoll is the event loop's work for one cached poll, but
// the write: what the requests/s of wrk's cached subscribe come from.
func BenchmarkCachedPoll(b *testing.B) {
	m, c, h := cachedPollFixture(b)
	b.ReportAllocs()
	for b.Loop() {
		if len(servePollOnce(m, c, h)) == 0 {
			b.Fatal("no answer")
		}
	}
}
