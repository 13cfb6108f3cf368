//go:build linux

package evhttp

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// scriptHandler serves each fast-path request with serve, and answers a
// delivered int with a 200 whose body is the number.
type scriptHandler struct {
	serve func(c *Conn[int], h Head)
}

func (h scriptHandler) ServeFast(c *Conn[int], hd Head)         { h.serve(c, hd) }
func (scriptHandler) Encode(_ *Conn[int], a int) ([]byte, bool) { return okAnswer(fmt.Sprint(a)), true }
func (scriptHandler) Batch(int) any                             { return nil }

func okAnswer(body string) []byte {
	return []byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
}

// startEngine runs an engine with h behind a loopback listener and returns
// its address.
func startEngine[A any](t *testing.T, h Handler[A], cfg func(*Config)) (*Engine[A], string) {
	t.Helper()
	c := testConfig()
	if cfg != nil {
		cfg(&c)
	}
	e, err := New[A](c, h)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	rl, err := e.Listen(ln)
	require.NoError(t, err)
	t.Cleanup(func() {
		rl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, e.Shutdown(ctx))
	})
	return e, ln.Addr().String()
}

// client is a raw keep-alive connection to the engine.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(20*time.Second)))
	return &client{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func get(query string) string { return "GET /fast?" + query + " HTTP/1.1\r\nHost: a\r\n\r\n" }

func (c *client) send(s string) {
	_, err := io.WriteString(c.conn, s)
	require.NoError(c.t, err)
}

// body reads one response and returns its body.
func (c *client) body() string {
	res, err := http.ReadResponse(c.r, nil)
	require.NoError(c.t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(c.t, err)
	return string(b)
}

// echo answers a request with its query.
func echo(c *Conn[int], h Head) { c.Reply(okAnswer(h.Query), true) }

// locked reports, under c's lock, what f reads of it.
func locked(c *Conn[int], f func(*Conn[int]) bool) func() bool {
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return f(c)
	}
}

// gatedHandler serves a request for "wait" on a goroutine of its own,
// which owns the connection (handlers must not block the engine): it
// hands the connection to the test, then waits for the gate before
// serving it with then. Other requests get then at once.
func gatedHandler(then func(c *Conn[int], h Head)) (scriptHandler, chan *Conn[int], chan struct{}) {
	conns, gate := make(chan *Conn[int], 1), make(chan struct{})
	return scriptHandler{serve: func(c *Conn[int], h Head) {
		if h.Query != "wait" {
			then(c, h)
			return
		}
		go func() { // ends when the test opens the gate
			conns <- c
			<-gate
			then(c, h)
		}()
	}}, conns, gate
}

// TestRepollWhileBusyIsServed: a request whose bytes arrive while the
// connection is busy (its edge reported then, never again) is read once
// the owner is done with the one before. An engine that dropped edges it
// could not act on at once would leave it unanswered.
func TestRepollWhileBusyIsServed(t *testing.T) {
	h, conns, gate := gatedHandler(echo)
	_, addr := startEngine[int](t, h, nil)
	cl := dial(t, addr)
	cl.send(get("wait"))
	c := <-conns // busy in ServeFast
	cl.send(get("second"))
	require.Eventually(t, locked(c, func(c *Conn[int]) bool { return c.readPending }), 5*time.Second, time.Millisecond,
		"the edge came while busy")
	close(gate)
	assert.Equal(t, "wait", cl.body())
	assert.Equal(t, "second", cl.body())
}

// TestRequestWhileParkedIsServedAfterTheAnswer: a request pipelined behind
// a parked one is served once the answer is written.
func TestRequestWhileParkedIsServedAfterTheAnswer(t *testing.T) {
	conns := make(chan *Conn[int], 1)
	_, addr := startEngine[int](t, scriptHandler{serve: func(c *Conn[int], h Head) {
		if h.Query == "park" {
			c.Park(neverCancel{})
			conns <- c
			return
		}
		echo(c, h)
	}}, nil)
	cl := dial(t, addr)
	cl.send(get("park"))
	c := <-conns
	cl.send(get("after"))
	require.Eventually(t, locked(c, func(c *Conn[int]) bool { return c.readPending }), 5*time.Second, time.Millisecond)
	c.Deliver(42)
	assert.Equal(t, "42", cl.body())
	assert.Equal(t, "after", cl.body())
}

// neverCancel is a parked request's cancel that says the answer is on its
// way.
type neverCancel struct{}

func (neverCancel) Cancel() bool { return false }

// cancels counts Cancel calls and withdraws the request.
type cancels struct{ n atomic.Int32 }

func (c *cancels) Cancel() bool { c.n.Add(1); return true }

// TestHangupWhileBusyCancelsThePark: a client that goes while its request
// is being served (the hang-up edge comes while busy) is noticed when the
// request parks: cancel is called and the connection closed, rather than
// held until its answer.
func TestHangupWhileBusyCancelsThePark(t *testing.T) {
	cancel := &cancels{}
	h, conns, gate := gatedHandler(func(c *Conn[int], h Head) { c.Park(cancel) })
	e, addr := startEngine[int](t, h, nil)
	cl := dial(t, addr)
	cl.send(get("wait"))
	c := <-conns
	cl.conn.Close()
	require.Eventually(t, locked(c, func(c *Conn[int]) bool { return c.hup }), 5*time.Second, time.Millisecond)
	close(gate)
	require.Eventually(t, func() bool { return cancel.n.Load() == 1 && e.Stats().Connections == 0 }, 5*time.Second, time.Millisecond)
	assert.EqualValues(t, 1, e.Stats().Vanished)
	assert.Zero(t, e.Stats().Parked)
}

// TestManyPipelinedRequestsAreAnsweredInOrder: requests pipelined in one
// write, more than an owner serves in a row (maxServeDepth), are all
// answered, in order.
func TestManyPipelinedRequestsAreAnsweredInOrder(t *testing.T) {
	_, addr := startEngine[int](t, scriptHandler{serve: echo}, nil)
	cl := dial(t, addr)
	const n = 3 * maxServeDepth
	var all strings.Builder
	for i := range n {
		all.WriteString(get(fmt.Sprint(i)))
	}
	cl.send(all.String())
	for i := range n {
		require.Equal(t, fmt.Sprint(i), cl.body())
	}
}

// TestLargeAnswerDrainsThenServesTheNext: an answer bigger than the socket
// takes waits for the client (writable edges) and is written whole; the
// connection then serves its next request.
func TestLargeAnswerDrainsThenServesTheNext(t *testing.T) {
	big := strings.Repeat("x", 8<<20)
	var cs atomic.Pointer[Conn[int]]
	_, addr := startEngine[int](t, scriptHandler{serve: func(c *Conn[int], h Head) {
		if h.Query == "big" {
			cs.Store(c)
			c.Reply(okAnswer(big), true)
			return
		}
		echo(c, h)
	}}, nil)
	cl := dial(t, addr)
	cl.send(get("big"))
	require.Eventually(t, func() bool {
		c := cs.Load()
		return c != nil && locked(c, func(c *Conn[int]) bool { return c.state == csDraining })()
	}, 5*time.Second, time.Millisecond, "the socket took part of it")
	assert.Equal(t, len(big), len(cl.body()))
	cl.send(get("next"))
	assert.Equal(t, "next", cl.body())
}

// deliverOnCancel is a parked request's cancel that finds the answer on its
// way: the broker delivers it (to a connection still busy) as the cancel
// is tried.
type deliverOnCancel struct{ c *Conn[int] }

func (d deliverOnCancel) Cancel() bool { d.c.Deliver(7); return false }

// TestAnswerDeliveredWhileAHangupParksIsWritten: a request whose client
// hung up while it was served is withdrawn as it parks; if the answer is
// given at that very moment (cancel says too late, Deliver finds the
// connection still busy), it is written and the connection closed, rather
// than left parked with an answer nobody writes (Shutdown then waited for
// it forever).
func TestAnswerDeliveredWhileAHangupParksIsWritten(t *testing.T) {
	e := newTestEngine[int](t, scriptHandler{serve: echo})
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(fds[1])
	c := e.NewConn() // owned by this test, as by ServeFast
	c.attachFD(fds[0], nil)
	c.SetRequest("", true, time.Now())
	c.mu.Lock()
	c.hup = true // the hang-up's edge came (and went) while the request was served
	c.mu.Unlock()

	c.Park(deliverOnCancel{c})
	buf := make([]byte, 256)
	var got []byte
	require.Eventually(t, func() bool {
		n, _ := unix.Read(fds[1], buf)
		if n > 0 {
			got = append(got, buf[:n]...)
		}
		return len(got) >= len(okAnswer("7"))
	}, 5*time.Second, time.Millisecond, "the answer given as the cancel came is written")
	assert.Equal(t, string(okAnswer("7")), string(got))
	assert.Zero(t, e.Stats().Parked)
	require.NoError(t, unix.Shutdown(fds[1], unix.SHUT_WR))
	require.Eventually(t, locked(c, func(c *Conn[int]) bool { return c.state == csClosed }), 5*time.Second, time.Millisecond)
}
