package main

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/internal/testbed"
)

// publishSeq publishes {"seq":i} to channel on base and requires a 201:
// the publication is acknowledged.
func publishSeq(t *testing.T, c *http.Client, base, channel string, i int) {
	t.Helper()
	body := fmt.Sprintf(`{"channels":[%q],"data":{"seq":%d}}`, channel, i)
	resp, err := c.Post(base+"/v1/publish", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode, "publish %d", i)
}

// readSeqs reads channel from since until caught up (timeout 0, following
// "more"), returning the seqs in order and the last cursor.
func readSeqs(c *http.Client, base, channel, since string) ([]int, string, error) {
	var seqs []int
	for range 1000 {
		a, status, err := subscribeHTTP(c, base, []string{channel}, since, "0")
		if err != nil {
			return nil, "", err
		}
		if status != http.StatusOK {
			return nil, "", fmt.Errorf("subscribe: status %d", status)
		}
		for _, m := range a.Messages {
			seqs = append(seqs, m.Data.Seq)
		}
		since = a.Cursor
		if !a.More {
			return seqs, since, nil
		}
	}
	return nil, "", fmt.Errorf("more than 1000 answers")
}

func upTo(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func kill9(t *testing.T, d *testbed.Daemon) {
	t.Helper()
	d.Kill()
	<-d.Exited()
}

// TestE2EKill9WithFsyncAlwaysLosesNothing: every acknowledged publication
// survives a kill -9 with -fsync always, and a subscriber's cursor from
// before the kill goes on after the restart with exactly the rest.
func TestE2EKill9WithFsyncAlwaysLosesNothing(t *testing.T) {
	dir := t.TempDir()
	c := &http.Client{Timeout: 10 * time.Second}
	d := startDaemon(t, "-data-dir", dir, "-fsync", "always")
	for i := range 300 {
		publishSeq(t, c, d.URL, "d", i)
	}
	seen, cursor, err := readSeqs(c, d.URL, "d", "")
	require.NoError(t, err)
	require.Equal(t, upTo(0, 300), seen)
	for i := 300; i < 400; i++ {
		publishSeq(t, c, d.URL, "d", i)
	}
	kill9(t, d)

	d = startDaemon(t, "-data-dir", dir, "-fsync", "always")
	assert.Contains(t, d.Log(), "replayed data directory")
	rest, _, err := readSeqs(c, d.URL, "d", cursor)
	require.NoError(t, err)
	assert.Equal(t, upTo(300, 400), rest, "the cursor from before the kill goes on with exactly the rest")
	all, _, err := readSeqs(c, d.URL, "d", "")
	require.NoError(t, err)
	assert.Equal(t, upTo(0, 400), all, "every acknowledged publication is there")
	publishSeq(t, c, d.URL, "d", 400)
	rest, _, err = readSeqs(c, d.URL, "d", cursor)
	require.NoError(t, err)
	assert.Equal(t, upTo(300, 401), rest, "and new ones follow")
}

// TestE2EKill9WithFsyncBatchKeepsAPrefix: with -fsync batch a kill -9 may
// lose the last few milliseconds of acknowledged publications, never one
// in the middle: what comes back is a prefix, in order.
func TestE2EKill9WithFsyncBatchKeepsAPrefix(t *testing.T) {
	dir := t.TempDir()
	c := &http.Client{Timeout: 10 * time.Second}
	d := startDaemon(t, "-data-dir", dir, "-fsync", "batch")
	const n = 500
	for i := range n {
		publishSeq(t, c, d.URL, "d", i)
	}
	kill9(t, d)
	d = startDaemon(t, "-data-dir", dir)
	got, _, err := readSeqs(c, d.URL, "d", "")
	require.NoError(t, err)
	require.Equal(t, upTo(0, len(got)), got, "a prefix of what was acknowledged, without holes")
	t.Logf("kill -9 right after the last publish lost %d of %d acknowledged publications (the batch window)", n-len(got), n)
}

// TestE2EWholeClusterRestartKeepsHistory: three nodes with data
// directories are killed at once and started at once; every node comes
// back with every acknowledged publication (what a node had not received
// before the kill is repaired from the others), and a subscriber's
// cursor from before goes on with exactly what it had not seen.
func TestE2EWholeClusterRestartKeepsHistory(t *testing.T) {
	c := &http.Client{Timeout: 10 * time.Second}
	type member struct {
		http, bind, dir string
		args            []string
		d               *testbed.Daemon
	}
	var ms []*member
	var joins []string
	for range 3 {
		h, err := testbed.FreeLoopbackAddr(false)
		require.NoError(t, err)
		b, err := testbed.FreeLoopbackAddr(true)
		require.NoError(t, err)
		ms = append(ms, &member{http: h, bind: b, dir: t.TempDir()})
		joins = append(joins, b)
	}
	for i, m := range ms {
		m.args = []string{"-listen", m.http, "-node-name", fmt.Sprintf("n%d", i+1), "-cluster-bind", m.bind,
			"-join", strings.Join(joins, ","), "-cluster-key", "durable-e2e", "-join-timeout", "2s",
			"-data-dir", m.dir, "-fsync", "always"}
	}
	startAll := func() {
		done := make(chan struct{})
		for _, m := range ms {
			go func() {
				defer func() { done <- struct{}{} }()
				m.d = startDaemon(t, m.args...)
			}()
		}
		for range ms {
			<-done
		}
		var urls []string
		for _, m := range ms {
			urls = append(urls, m.d.URL)
		}
		require.Eventually(t, func() bool { return testbed.Ready(c, urls...) }, 30*time.Second, 20*time.Millisecond, "every node ready")
	}
	startAll()
	const n = 300
	for i := range n {
		publishSeq(t, c, ms[i%3].d.URL, "h", i)
	}
	// A subscriber on n2 has read whatever had reached n2 by now.
	before, cursor, err := readSeqs(c, ms[1].d.URL, "h", "")
	require.NoError(t, err)
	for _, m := range ms {
		kill9(t, m.d)
	}

	startAll()
	var orders [][]int
	for _, m := range ms {
		var got []int
		require.Eventually(t, func() bool {
			got, _, err = readSeqs(c, m.d.URL, "h", "")
			return err == nil && len(got) >= n
		}, 30*time.Second, 50*time.Millisecond, "%s has every acknowledged publication back", m.http)
		sorted := slices.Sorted(slices.Values(got))
		require.Equal(t, upTo(0, n), sorted, "each exactly once")
		orders = append(orders, got)
	}
	assert.Equal(t, orders[0], orders[1], "same order on every node")
	assert.Equal(t, orders[0], orders[2], "same order on every node")

	rest, _, err := readSeqs(c, ms[1].d.URL, "h", cursor)
	require.NoError(t, err)
	together := append(slices.Clone(before), rest...)
	assert.Equal(t, n, len(together), "the old cursor gets exactly what it had not seen: %d before, %d after", len(before), len(rest))
	assert.Equal(t, upTo(0, n), slices.Sorted(slices.Values(together)))

	// One node down while the others publish: restarted, it replays its
	// disk and repairs from its peers what it missed.
	kill9(t, ms[2].d)
	for i := n; i < n+100; i++ {
		publishSeq(t, c, ms[i%2].d.URL, "h", i)
	}
	ms[2].d = startDaemon(t, ms[2].args...)
	assert.Contains(t, ms[2].d.Log(), "replayed data directory")
	require.Eventually(t, func() bool {
		got, _, err := readSeqs(c, ms[2].d.URL, "h", "")
		return err == nil && slices.Equal(upTo(0, n+100), slices.Sorted(slices.Values(got))) && len(got) == n+100
	}, 30*time.Second, 50*time.Millisecond, "the restarted node has its old history and what it missed")
}
