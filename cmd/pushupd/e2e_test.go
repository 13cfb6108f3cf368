package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/internal/testbed"
)

// The e2e tests run pushupd as its own process and, for publishing, this
// test binary again as a third process (see TestMain).
const publisherEnv = "PUSHUP_E2E_PUBLISH_TO"

func TestMain(m *testing.M) {
	if target := os.Getenv(publisherEnv); target != "" {
		if err := runPublisher(target); err != nil {
			fmt.Fprintln(os.Stderr, "publisher:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	pushupd.Remove()
	os.Exit(code)
}

const (
	e2eMessages = 10_000
	e2eBatch    = 50
)

var e2eChannels = []string{"c0", "c1", "c2", "c3", "c4"}

// e2ePlan is the deterministic list of channel sets, one per message; the
// publisher and the checker derive it from the same seed.
func e2ePlan() [][]string {
	r := rand.New(rand.NewPCG(42, 42))
	plan := make([][]string, e2eMessages)
	for i := range plan {
		n := 1 + r.IntN(3)
		for _, k := range r.Perm(len(e2eChannels))[:n] {
			plan[i] = append(plan[i], e2eChannels[k])
		}
	}
	return plan
}

// runPublisher posts the plan in batches of e2eBatch publications.
func runPublisher(base string) error {
	plan := e2ePlan()
	for start := 0; start < len(plan); start += e2eBatch {
		var batch []map[string]any
		for i := start; i < start+e2eBatch && i < len(plan); i++ {
			batch = append(batch, map[string]any{"channels": plan[i], "data": map[string]int{"seq": i}})
		}
		body, _ := json.Marshal(batch)
		resp, err := http.Post(base+"/v1/publish", "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("batch at %d: status %d", start, resp.StatusCode)
		}
	}
	return nil
}

// pushupd is this command, built once for the tests that run it.
var pushupd testbed.SharedBuild

// startDaemon runs the built pushupd with args on a free loopback port;
// the test's cleanup stops it.
func startDaemon(t *testing.T, args ...string) *testbed.Daemon {
	t.Helper()
	cfg := testbed.DefaultDaemonConfig()
	cfg.Binary, cfg.Args, cfg.StopTimeout = pushupd.For(t), args, 10*time.Second
	d, err := testbed.StartDaemon(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Stop() })
	return d
}

type e2eAnswer struct {
	Messages []struct {
		ID   string `json:"id"`
		Time int64  `json:"time"`
		Data struct {
			Seq int `json:"seq"`
		} `json:"data"`
	} `json:"messages"`
	Cursor string `json:"cursor"`
	More   bool   `json:"more"`
}

func subscribeHTTP(c *http.Client, base string, channels []string, since, timeout string) (e2eAnswer, int, error) {
	v := url.Values{"channels": {strings.Join(channels, ",")}, "timeout": {timeout}}
	if since != "" {
		v.Set("since", since)
	}
	resp, err := c.Get(base + "/v1/subscribe?" + v.Encode())
	if err != nil {
		return e2eAnswer{}, 0, err
	}
	defer resp.Body.Close()
	var a e2eAnswer
	if resp.StatusCode == http.StatusOK {
		err = json.NewDecoder(resp.Body).Decode(&a)
	}
	return a, resp.StatusCode, err
}

// TestE2ECursorLoopGetsEveryMessageOnce is the single-node acceptance
// test: while another process publishes 10,000 messages in batches over 5
// channels, subscribers looping on their cursor receive each message of
// their channels exactly once, in time order.
func TestE2ECursorLoopGetsEveryMessageOnce(t *testing.T) {
	d := startDaemon(t, "-max-messages", "20000")
	plan := e2ePlan()

	subsets := [][]string{e2eChannels, {"c1", "c3"}, {"c4"}}
	results := make([][]int, len(subsets))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, chs := range subsets {
		want := 0
		for _, p := range plan {
			if overlaps(p, chs) {
				want++
			}
		}
		wg.Go(func() {
			client := &http.Client{}
			var cursor string
			first := true
			var lastTime int64
			for len(results[i]) < want {
				a, status, err := subscribeHTTP(client, d.URL, chs, cursor, "5")
				if !assert.NoError(t, err) || !assert.Equal(t, http.StatusOK, status) {
					return
				}
				if first {
					close(start) // first poll done before publishing, for one of them
					first = false
				}
				for _, m := range a.Messages {
					assert.GreaterOrEqual(t, m.Time, lastTime, "time order")
					lastTime = m.Time
					results[i] = append(results[i], m.Data.Seq)
				}
				cursor = a.Cursor
			}
		})
		<-start
		start = make(chan struct{})
	}

	pub := exec.Command(os.Args[0], "-test.run=^$")
	pub.Env = append(os.Environ(), publisherEnv+"="+d.URL)
	out, err := pub.CombinedOutput()
	require.NoError(t, err, "publisher: %s", out)
	wg.Wait()

	for i, chs := range subsets {
		seen := map[int]bool{}
		prev := -1
		for _, seq := range results[i] {
			require.False(t, seen[seq], "subscriber %v got %d twice", chs, seq)
			seen[seq] = true
			assert.Greater(t, seq, prev, "one publisher, so publish order is time order")
			prev = seq
		}
		for seq, p := range plan {
			assert.Equal(t, overlaps(p, chs), seen[seq], "subscriber %v, message %d on %v", chs, seq, p)
		}
	}
	assert.Len(t, results[0], e2eMessages)
}

func overlaps(a, b []string) bool {
	return slices.ContainsFunc(a, func(x string) bool { return slices.Contains(b, x) })
}

// TestE2ESigtermAnswersWaitersAndExitsZero: on SIGTERM the daemon stops
// accepting, answers the waiting subscriber with its cursor and exits 0.
func TestE2ESigtermAnswersWaitersAndExitsZero(t *testing.T) {
	d := startDaemon(t)
	client := &http.Client{}
	first, status, err := subscribeHTTP(client, d.URL, []string{"a"}, "now", "0")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)

	answered := make(chan e2eAnswer, 1)
	go func() {
		a, _, err := subscribeHTTP(client, d.URL, []string{"a"}, first.Cursor, "60")
		assert.NoError(t, err)
		answered <- a
	}()
	require.Eventually(t, func() bool {
		resp, err := http.Get(d.URL + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), "pushup_waiting_subscribers 1")
	}, 10*time.Second, 10*time.Millisecond)

	stopped := make(chan error, 1)
	go func() { stopped <- d.Stop() }() // SIGTERM, then the exit status
	select {
	case a := <-answered:
		assert.Empty(t, a.Messages)
		assert.Equal(t, first.Cursor, a.Cursor, "resume exactly where it was, on any node")
	case <-time.After(10 * time.Second):
		t.Fatal("waiting subscriber not answered on SIGTERM")
	}
	assert.NoError(t, <-stopped, "exit status 0 within the stop timeout")
	assert.Contains(t, d.Log(), "msg=stopped")
}
