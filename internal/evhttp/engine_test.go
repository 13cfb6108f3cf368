//go:build linux

package evhttp

import (
	"context"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRingKeepsOrderAcrossWrapAndGrowth(t *testing.T) {
	var r ring[int]
	next, want := 0, 0
	push := func(n int) {
		for range n {
			r.push(job[int]{events: uint32(next)})
			next++
		}
	}
	pop := func(n int) {
		for _, j := range r.pop(nil, n) {
			assert.EqualValues(t, want, j.events)
			want++
		}
	}
	push(200)
	pop(150)  // head moves forward
	push(300) // wraps around, then grows while wrapped
	assert.Equal(t, 350, r.len())
	pop(1000)
	assert.Equal(t, 0, r.len())
	assert.Equal(t, next, want)
	push(maxIdleRing + 1) // a huge burst...
	pop(maxIdleRing + 1)
	assert.Nil(t, r.buf, "...does not keep its array")
}

func TestRingTail(t *testing.T) {
	var r ring[int]
	assert.Nil(t, r.tail())
	for i := range 300 { // past the first growth
		r.push(job[int]{events: uint32(i)})
		assert.EqualValues(t, i, r.tail().events)
	}
	r.tail().events = 7
	r.pop(nil, 299)
	assert.EqualValues(t, 7, r.tail().events, "the tail can be extended in place")
}

// TestCloseWaitsForTheOwner (finding 6): a close asked for by anyone but
// the connection's owner (a deadline, a hang-up, shutdown) while the owner
// is doing I/O does not close the descriptor under it; the owner closes it
// when done, so the number cannot be reused by a new client meanwhile.
func TestCloseWaitsForTheOwner(t *testing.T) {
	e := newTestEngine(t, nopHandler{})
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(fds[1])
	c := e.NewConn() // owned by this test, as by a worker
	c.attachFD(fds[0], nil)

	c.Close() // from elsewhere, while owned
	_, err = unix.FcntlInt(uintptr(fds[0]), unix.F_GETFD, 0)
	require.NoError(t, err, "closed under its owner")
	c.mu.Lock()
	assert.True(t, c.closeReq)
	assert.Equal(t, csBusy, c.state)
	c.mu.Unlock()

	c.send([]byte("answer"), true) // the owner finishes its I/O...
	buf := make([]byte, 16)
	n, err := unix.Read(fds[1], buf)
	require.NoError(t, err)
	assert.Equal(t, "answer", string(buf[:n]))
	c.mu.Lock()
	assert.Equal(t, csClosed, c.state, "...and then closes")
	c.mu.Unlock()
	_, err = unix.FcntlInt(uintptr(fds[0]), unix.F_GETFD, 0)
	assert.ErrorIs(t, err, unix.EBADF)
}

// nopHandler serves nothing: tests that drive connections by hand.
type nopHandler struct{}

func (nopHandler) ServeFast(c *Conn[int], h Head) {
	c.Reply([]byte("HTTP/1.1 204 No Content\r\n\r\n"), true)
}
func (nopHandler) Encode(c *Conn[int], a int) ([]byte, bool) { return nil, false }
func (nopHandler) Batch(a int) any                           { return nil }

func testConfig() Config {
	return Config{ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: 90 * time.Second, FastPath: "/fast"}
}

func newTestEngine[A any](t *testing.T, h Handler[A]) *Engine[A] {
	t.Helper()
	e, err := New[A](testConfig(), h)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, e.Shutdown(ctx))
	})
	return e
}

// TestConnRecordFitsItsSizeClass: a parked or idle connection costs its
// Conn record (plus the Deliver closure and a registry slot); 128 bytes is
// a size class of the allocator, so one field more costs 16 bytes per
// waiting subscriber (144), and a buffer kept in it 40 more.
func TestConnRecordFitsItsSizeClass(t *testing.T) {
	assert.LessOrEqual(t, unsafe.Sizeof(Conn[int]{}), uintptr(128))
}
