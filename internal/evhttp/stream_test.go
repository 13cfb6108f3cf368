//go:build linux

package evhttp

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// streamHandler starts a stream for every fast-path request and hands it
// to the test.
type streamHandler struct {
	streams chan *Stream[int]
	ended   *counter
}

// counter counts the engine's calls to end a stream and keeps the last
// reason given.
type counter struct{ n, why atomic.Int32 }

func (c *counter) Cancel() bool { c.n.Add(1); return true }
func (c *counter) StreamEnded(why StreamEnd) {
	c.why.Store(int32(why))
	c.n.Add(1)
}

const sseHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n\r\n"

func (h streamHandler) ServeFast(c *Conn[int], _ Head) {
	h.streams <- c.StartStream([]byte(sseHead), h.ended)
}
func (streamHandler) Encode(*Conn[int], int) ([]byte, bool) { return nil, false }
func (streamHandler) Batch(int) any                         { return nil }

func startStreamEngine(t *testing.T, cfg func(*Config)) (*Engine[int], streamHandler, string) {
	h := streamHandler{streams: make(chan *Stream[int], 4), ended: &counter{}}
	e, addr := startEngine[int](t, h, cfg)
	return e, h, addr
}

// TestStreamWritesOverTimeAndCloses: a stream's head, then events written
// later from another goroutine, arrive in order; Close ends the
// connection after them, without calling cancel.
func TestStreamWritesOverTimeAndCloses(t *testing.T) {
	e, h, addr := startStreamEngine(t, nil)
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "GET /fast HTTP/1.1\r\nHost: a\r\n\r\n")
	require.NoError(t, err)
	s := <-h.streams
	require.Eventually(t, func() bool { return e.Stats().Connections == 1 }, 5*time.Second, time.Millisecond)
	for i := range 3 {
		assert.True(t, s.Write([]byte("data: "+strings.Repeat("x", i)+"\n\n")))
	}
	s.Close()
	assert.False(t, s.Write([]byte("data: late\n\n")), "a closed stream takes nothing")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(bufio.NewReader(conn))
	require.NoError(t, err, "closed by the server")
	assert.Equal(t, sseHead+"data: \n\ndata: x\n\ndata: xx\n\n", string(b))
	assert.Zero(t, h.ended.n.Load(), "the handler ended it: no cancel")
	require.Eventually(t, func() bool { return e.Stats().Connections == 0 }, 5*time.Second, time.Millisecond)
}

// TestStreamEndsWhenTheClientGoes: a client that hangs up ends its stream
// and the handler hears of it (cancel), with nothing left behind.
func TestStreamEndsWhenTheClientGoes(t *testing.T) {
	e, h, addr := startStreamEngine(t, nil)
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	_, err = io.WriteString(conn, "GET /fast HTTP/1.1\r\nHost: a\r\n\r\n")
	require.NoError(t, err)
	s := <-h.streams
	conn.Close()
	require.Eventually(t, func() bool { return h.ended.n.Load() == 1 }, 5*time.Second, time.Millisecond)
	assert.False(t, s.Write([]byte("data: x\n\n")))
	assert.EqualValues(t, 0, e.Stats().Connections)
	assert.EqualValues(t, 1, h.ended.n.Load(), "cancel is called once")
	assert.EqualValues(t, StreamGone, h.ended.why.Load())
}

// TestStreamThatCannotKeepUpIsEnded: a client that reads nothing ends its
// stream once the backlog would overflow (or the write deadline passes),
// and Write says so; the handler hears of it.
func TestStreamThatCannotKeepUpIsEnded(t *testing.T) {
	e, h, addr := startStreamEngine(t, func(c *Config) { c.StreamBacklog = 16 << 10; c.WriteTimeout = 500 * time.Millisecond })
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.(*net.TCPConn).SetReadBuffer(4096))
	_, err = io.WriteString(conn, "GET /fast HTTP/1.1\r\nHost: a\r\n\r\n")
	require.NoError(t, err)
	s := <-h.streams
	event := []byte("data: " + strings.Repeat("x", 1000) + "\n\n")
	ok := true
	for i := 0; ok && i < 100_000; i++ { // bounded: far beyond socket buffers
		ok = s.Write(event)
	}
	assert.False(t, ok, "a stream nobody reads is ended")
	require.Eventually(t, func() bool { return h.ended.n.Load() == 1 }, 5*time.Second, time.Millisecond)
	require.Eventually(t, func() bool { return e.Stats().Connections == 0 }, 5*time.Second, time.Millisecond)
	assert.EqualValues(t, 1, e.Stats().Slow)
	assert.EqualValues(t, StreamSlow, h.ended.why.Load())
}

// gatedStreamHandler starts a stream once the test opens its gate.
type gatedStreamHandler struct {
	streamHandler
	gate chan struct{}
}

func (h gatedStreamHandler) ServeFast(c *Conn[int], hd Head) {
	<-h.gate
	h.streamHandler.ServeFast(c, hd)
}

// TestShutdownEndsAStreamItFoundBusy: a stream whose connection was busy
// (its handler still at work) when Shutdown looked at it is ended as it
// starts, with the reason, and Shutdown does not wait for its context.
func TestShutdownEndsAStreamItFoundBusy(t *testing.T) {
	h := gatedStreamHandler{streamHandler{streams: make(chan *Stream[int], 1), ended: &counter{}}, make(chan struct{})}
	e, err := New[int](testConfig(), h)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	rl, err := e.Listen(ln)
	require.NoError(t, err)
	conn, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "GET /fast HTTP/1.1\r\nHost: a\r\n\r\n")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return e.Stats().Served == 1 }, 5*time.Second, time.Millisecond)
	rl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.Shutdown(ctx) }()
	require.Eventually(t, e.Closing, 5*time.Second, time.Millisecond)
	close(h.gate)
	s := <-h.streams
	assert.NoError(t, <-done, "ended before the context")
	assert.False(t, s.Write([]byte("data: x\n\n")))
	assert.EqualValues(t, 1, h.ended.n.Load())
	assert.EqualValues(t, StreamShutdown, h.ended.why.Load())
}
