package loadtest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pushuphq/pushup/internal/testbed"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func requireLinux(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the floor server uses epoll: Linux only")
	}
}

// TestFloorWritesOneAnswerPerDelivery runs the floor with the compare
// client and checks, from the kernel's own byte count, that it wrote
// exactly one fixed answer per delivery and nothing else but the
// publishers' replies: the floor is a floor only if it does no more.
func TestFloorWritesOneAnswerPerDelivery(t *testing.T) {
	requireLinux(t)
	cfg := smallCompareConfig("floor")
	rep, err := Compare(context.Background(), cfg)
	require.NoError(t, err)
	require.Len(t, rep.Results, 1)
	res := rep.Results[0]
	require.Empty(t, res.Error)
	assert.Equal(t, int64(cfg.Subscribers*cfg.Messages), res.Expected)
	assert.Equal(t, res.Expected, res.Received)
	assert.Zero(t, res.Duplicates)
	answer := len(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", cfg.PayloadSize)) + cfg.PayloadSize
	created := len("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
	// The window ends with a few answers to "how many wait?" (all of
	// them, so the same size).
	waiting := int64(len(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%d", len(itoa(cfg.Subscribers)), cfg.Subscribers)))
	extra := res.BytesWritten - (res.Received*int64(answer) + int64(cfg.Messages*created))
	assert.Zero(t, extra%waiting, "bytes written beyond the answers and replies: %d", extra)
	assert.True(t, extra >= 0 && extra <= 20*waiting, "bytes written beyond the answers and replies: %d", extra)

	var out strings.Builder
	require.NoError(t, rep.WriteText(&out))
	assert.Contains(t, out.String(), "CPU per delivery")
}

// TestFloorSyscalls counts the floor's system calls with perf: one write
// per delivery (and per publish reply) and one read per re-poll.
func TestFloorSyscalls(t *testing.T) {
	requireLinux(t)
	testbed.PerfOrSkip(t)
	cfg := smallCompareConfig("floor")
	cfg.Syscalls = true
	rep, err := Compare(context.Background(), cfg)
	require.NoError(t, err)
	res := rep.Results[0]
	require.Empty(t, res.Error)
	require.Equal(t, res.Expected, res.Received)
	// A write per delivery and per publish reply, and one per answer to
	// "how many wait?" at the window's end (a poll every 100 ms).
	replies := res.Received + int64(cfg.Messages)
	assert.GreaterOrEqual(t, res.Syscalls["write"], replies, "%v", res.Syscalls)
	assert.LessOrEqual(t, res.Syscalls["write"], replies+20, "%v", res.Syscalls)
	// Every delivery's re-poll is read once, within the window.
	assert.GreaterOrEqual(t, res.Syscalls["read"], res.Received, "%v", res.Syscalls)
	assert.GreaterOrEqual(t, res.Syscalls[syscallTotal], res.Syscalls["write"]+res.Syscalls["read"])
}

// TestFloorServerRequests checks the floor's request handling on its
// own: a re-poll split over two writes still parks, a publish whose body
// comes later still publishes, and an unknown request is refused.
func TestFloorServerRequests(t *testing.T) {
	requireLinux(t)
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	b, err := startFloor(client)
	require.NoError(t, err)
	defer func() { require.NoError(t, b.stop()) }()
	addr := strings.TrimPrefix(b.url, "http://")

	sub, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer sub.Close()
	_, err = sub.Write([]byte("GET /sub HTTP/1.1\r\nHo"))
	require.NoError(t, err)
	time.Sleep(20 * time.Millisecond) // let the halves arrive apart; the outcome is checked below either way
	_, err = sub.Write([]byte("st: x\r\n\r\n"))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		n, err := b.waiting(context.Background())
		return err == nil && n == 1
	}, 5*time.Second, 10*time.Millisecond)

	pub, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer pub.Close()
	_, err = pub.Write([]byte("POST /pub HTTP/1.1\r\nHost: x\r\ncontent-LENGTH: 5\r\n\r\nhe"))
	require.NoError(t, err)
	time.Sleep(20 * time.Millisecond)
	_, err = pub.Write([]byte("llo"))
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(pub), nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusCreated, resp.StatusCode)

	resp, err = http.ReadResponse(bufio.NewReader(sub), nil)
	require.NoError(t, err)
	_, body, err := floorProtocol{}.answer(resp, readAll(t, resp), "")
	require.NoError(t, err)
	assert.Equal(t, "", body, "the floor has no position")
	n, err := b.waiting(context.Background())
	require.NoError(t, err)
	assert.Zero(t, n, "the answered poll no longer waits")

	bad, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer bad.Close()
	_, err = bad.Write([]byte("GET /other HTTP/1.1\r\nHost: x\r\n\r\n"))
	require.NoError(t, err)
	resp, err = http.ReadResponse(bufio.NewReader(bad), nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	var b strings.Builder
	_, err := bufio.NewReader(resp.Body).WriteTo(&b)
	require.NoError(t, err)
	return []byte(b.String())
}
