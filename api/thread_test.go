package api

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// osThreads is this process's thread count, from /proc/self/status.
func osThreads(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	require.NoError(t, err)
	_, rest, ok := bytes.Cut(b, []byte("\nThreads:"))
	require.True(t, ok, "no Threads line")
	line, _, _ := bytes.Cut(rest, []byte{'\n'})
	n, err := strconv.Atoi(string(bytes.TrimSpace(line)))
	require.NoError(t, err)
	return n
}

// TestThreadModelHoldsAThreadPerWaitingRequest: in the thread model the
// process really has one more OS thread per waiting request, and gives
// them back once the requests are answered.
func TestThreadModelHoldsAThreadPerWaitingRequest(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts threads through /proc")
	}
	ts := startServer(t, options{model: ModelThread})
	ts.do(http.MethodGet, "/healthz", "")
	before := osThreads(t)
	const n = 60
	conns := parkRaw(t, ts, n, q("channels", "a", "since", "now", "timeout", "60"))
	require.Eventually(t, func() bool { return ts.metric("pushup_thread_waiting") == n }, 10*time.Second, 5*time.Millisecond)
	// Each waiting request's goroutine locked the thread it started on,
	// idle or new; at least one more runs everything else.
	assert.Greater(t, osThreads(t), n, "one OS thread per waiting request (%d before)", before)

	ts.publish(`{"channels":["a"],"data":"wake"}`)
	for _, c := range conns {
		rc := &rawClient{t: t, conn: c, r: bufio.NewReader(c)}
		resp, body := rc.read()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Contains(t, body, `"wake"`)
		c.Close()
	}
	assert.Zero(t, ts.metric("pushup_thread_waiting"))
	require.Eventually(t, func() bool { return osThreads(t) < before+n/2 }, 10*time.Second, 10*time.Millisecond,
		"the threads of answered requests end")
}

// TestThreadModelRefusesBeyondItsLimit: with every thread taken, the next
// waiting request gets 503 thread_limit with Retry-After, the server goes
// on, and a freed thread is used again.
func TestThreadModelRefusesBeyondItsLimit(t *testing.T) {
	const room = 3
	ts := startServer(t, options{model: ModelThread, api: func(c *Config) { c.MaxThreads = threadMargin() + room }})
	conns := parkRaw(t, ts, room, q("channels", "a", "since", "now", "timeout", "60"))
	// Unreachable sockets are closed by their finalizers: keep them.
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	require.Eventually(t, func() bool { return ts.metric("pushup_thread_waiting") == room }, 10*time.Second, 5*time.Millisecond)
	assert.EqualValues(t, room, ts.metric("pushup_thread_capacity"))

	_, r := ts.subscribe(q("channels", "a", "since", "now", "timeout", "60"))
	assert.Equal(t, http.StatusServiceUnavailable, r.status)
	assert.Equal(t, "thread_limit", r.code(t))
	assert.Equal(t, "1", r.header.Get("Retry-After"))
	assert.Contains(t, r.json(t)["message"], "-max-threads=")
	assert.EqualValues(t, 1, ts.metric("pushup_thread_refused_total"))
	assert.EqualValues(t, room, ts.b.Stats().Waiters, "the refused request left no subscription behind")

	// Requests that need no thread are served as usual.
	ts.publish(`{"channels":["b"],"data":1}`)
	a, r := ts.subscribe(q("channels", "b", "timeout", "0"))
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, []string{"1"}, a.data())

	conns[0].Close()
	require.Eventually(t, func() bool { return ts.metric("pushup_thread_waiting") == room-1 }, 10*time.Second, 5*time.Millisecond)
	done := make(chan response, 1)
	go func() {
		_, r := ts.subscribe(q("channels", "a", "since", "now", "timeout", "60"))
		done <- r
	}()
	require.Eventually(t, func() bool { return ts.metric("pushup_thread_waiting") == room }, 10*time.Second, 5*time.Millisecond)
	ts.publish(`{"channels":["a"],"data":"all"}`)
	assert.Equal(t, http.StatusOK, (<-done).status)
}

func TestThreadGateRefusesBeforeTheOSLimit(t *testing.T) {
	machine := 1000
	g := newThreadGate(10_000, []threadLimit{
		{name: "broken", limit: 1, used: func() (int, error) { return 0, errors.New("unreadable") }},
		{name: "kernel.pid_max", limit: 1000 + osThreadMargin + 2, used: func() (int, error) { return machine, nil }},
	})
	require.NoError(t, g.acquire())
	assert.Zero(t, g.stats().waiting, "a slot taken is not a thread held: the metric waits for the lock")
	g.hold()
	machine++ // the thread it made
	require.NoError(t, g.acquire())
	g.hold()
	machine++
	err := g.acquire()
	require.ErrorIs(t, err, ErrThreadLimit)
	assert.Contains(t, err.Error(), "kernel.pid_max")
	assert.Contains(t, err.Error(), "1002 exist")
	assert.Equal(t, threadStats{waiting: 2, capacity: 10_000 - threadMargin(), refused: 1}, g.stats())
	g.release()
	machine--
	require.NoError(t, g.acquire(), "room again")
}

func TestThreadModelConfig(t *testing.T) {
	m, err := ParseModel("thread")
	require.NoError(t, err)
	assert.Equal(t, ModelThread, m)
	_, err = ParseModel("threads")
	assert.ErrorContains(t, err, `"thread"`)

	c := DefaultConfig()
	c.Model = ModelThread
	c.MaxThreads = threadMargin()
	assert.ErrorContains(t, c.Validate(), "MaxThreads")
	c.Model = ModelGoroutine
	assert.NoError(t, c.Validate(), "other models ignore MaxThreads")
}
