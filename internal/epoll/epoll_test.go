//go:build linux

package epoll

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair returns both ends of a loopback TCP connection.
func pair(t *testing.T) (server, client *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	s, err := ln.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { s.Close(); c.Close() })
	return s.(*net.TCPConn), c.(*net.TCPConn)
}

func fdOf(t *testing.T, c *net.TCPConn) int {
	raw, err := c.SyscallConn()
	require.NoError(t, err)
	var fd int
	require.NoError(t, raw.Control(func(f uintptr) { fd = int(f) }))
	return fd
}

type recorder struct {
	mu  sync.Mutex
	evs []Event
}

func (r *recorder) handle(evs []Event) {
	r.mu.Lock()
	r.evs = append(r.evs, evs...)
	r.mu.Unlock()
}

func (r *recorder) snapshot() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.evs...)
}

func TestHangupAndReadableOneShot(t *testing.T) {
	var rec recorder
	var ticks atomic.Int32
	p, err := New(rec.handle, func() { ticks.Add(1) }, 20*time.Millisecond)
	require.NoError(t, err)
	defer p.Close()

	s1, c1 := pair(t)
	s2, c2 := pair(t)
	require.NoError(t, p.Add(fdOf(t, s1), 1<<40|7, 0)) // hang-up only
	require.NoError(t, p.Add(fdOf(t, s2), 9, Readable))
	assert.ErrorIs(t, p.Add(fdOf(t, s2), 0, Readable), ErrBadKey)

	_, err = c1.Write([]byte("x")) // data on a hang-up-only socket: silent
	require.NoError(t, err)
	_, err = c2.Write([]byte("y"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(rec.snapshot()) == 1 }, 5*time.Second, time.Millisecond)
	ev := rec.snapshot()[0]
	assert.EqualValues(t, 9, ev.Key)
	assert.NotZero(t, ev.Events&Readable)

	_, err = c2.Write([]byte("z")) // one-shot: no second event until Rearm
	require.NoError(t, err)
	c1.Close()
	require.Eventually(t, func() bool { return len(rec.snapshot()) == 2 }, 5*time.Second, time.Millisecond)
	ev = rec.snapshot()[1]
	assert.EqualValues(t, 1<<40|7, ev.Key, "keys keep all 64 bits")
	assert.NotZero(t, ev.Events&Hangup)
	assert.Len(t, rec.snapshot(), 2)

	require.NoError(t, p.Rearm(fdOf(t, s2), 9, Readable))
	require.Eventually(t, func() bool { return len(rec.snapshot()) == 3 }, 5*time.Second, time.Millisecond,
		"readiness already true is reported on rearm")
	require.NoError(t, p.Remove(fdOf(t, s2)))
	require.NoError(t, p.Remove(fdOf(t, s1)))
	require.Eventually(t, func() bool { return ticks.Load() >= 2 }, 5*time.Second, time.Millisecond)
}

// TestAddEdgeReportsEachChangeOnce: an edge-triggered registration reports
// what is already true when added, then each new arrival once, with no
// Rearm, and nothing for a condition that merely stays true.
func TestAddEdgeReportsEachChangeOnce(t *testing.T) {
	var rec recorder
	p, err := New(rec.handle, nil, time.Second)
	require.NoError(t, err)
	defer p.Close()
	s, c := pair(t)
	_, err = c.Write([]byte("early"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { // in s's receive queue before the add
		n, _ := unix.IoctlGetInt(fdOf(t, s), unix.SIOCINQ)
		return n == len("early")
	}, 5*time.Second, time.Millisecond)
	require.NoError(t, p.AddEdge(fdOf(t, s), 5))
	require.Eventually(t, func() bool { return len(rec.snapshot()) == 1 }, 5*time.Second, time.Millisecond)
	ev := rec.snapshot()[0]
	assert.NotZero(t, ev.Events&Readable, "already readable when added")
	assert.NotZero(t, ev.Events&Writable)

	_, err = c.Write([]byte("more")) // unread data stays: a new arrival is a new edge
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(rec.snapshot()) == 2 }, 5*time.Second, time.Millisecond)
	c.Close()
	require.Eventually(t, func() bool { return len(rec.snapshot()) == 3 }, 5*time.Second, time.Millisecond)
	assert.NotZero(t, rec.snapshot()[2].Events&Hangup)
	assert.Len(t, rec.snapshot(), 3, "no event for what stays true")
	require.NoError(t, p.Remove(fdOf(t, s)))
}
