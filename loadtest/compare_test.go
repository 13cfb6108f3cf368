package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/internal/testbed"
)

func TestCompareConfigValidate(t *testing.T) {
	require.NoError(t, DefaultCompareConfig().Validate())
	for name, mutate := range map[string]func(*CompareConfig){
		"no target":               func(c *CompareConfig) { c.Targets = nil },
		"unknown target":          func(c *CompareConfig) { c.Targets = []string{"pushpin"} },
		"no subscribers":          func(c *CompareConfig) { c.Subscribers = 0 },
		"no messages":             func(c *CompareConfig) { c.Messages = 0 },
		"short hold":              func(c *CompareConfig) { c.Hold = 100 * time.Millisecond },
		"small payload":           func(c *CompareConfig) { c.PayloadSize = 8 },
		"negative parked wait":    func(c *CompareConfig) { c.ParkedWait = -time.Second },
		"negative settle":         func(c *CompareConfig) { c.Settle.Window = -time.Second },
		"wrk without a thread":    func(c *CompareConfig) { c.Cached.Threads = 0 },
		"more threads than conns": func(c *CompareConfig) { c.Cached.Threads, c.Cached.Connections = 4, 2 },
		"wrk required, no phase":  func(c *CompareConfig) { c.Cached.Require, c.Cached.Duration = true, 0 },
	} {
		c := DefaultCompareConfig()
		mutate(&c)
		assert.ErrorIs(t, c.Validate(), ErrInvalidConfig, name)
	}
}

// readResponse parses a canned response as the subscribers do.
func readResponse(t *testing.T, raw string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), nil)
	require.NoError(t, err)
	var body bytes.Buffer
	_, err = body.ReadFrom(resp.Body)
	require.NoError(t, err)
	return resp, body.Bytes()
}

func TestNchanProtocol(t *testing.T) {
	var p nchanProtocol
	assert.Equal(t, "GET /sub/compare HTTP/1.1\r\nHost: h:1\r\n\r\n", string(p.request(nil, "h:1", "")),
		"the first poll has no position: Nchan starts it at the channel's oldest message, none here")

	msg := `{"p":0,"seq":3,"t":1,"pad":""}`
	resp, body := readResponse(t, "HTTP/1.1 200 OK\r\nLast-Modified: Sun, 22 Nov 2026 14:35:19 GMT\r\nEtag: 2\r\n"+
		"Content-Length: "+itoa(len(msg))+"\r\n\r\n"+msg)
	msgs, next, err := p.answer(resp, body, "")
	require.NoError(t, err)
	assert.Equal(t, [][]byte{[]byte(msg)}, msgs)
	assert.Equal(t, "Sun, 22 Nov 2026 14:35:19 GMT\n2", next)
	assert.Equal(t, "GET /sub/compare HTTP/1.1\r\nHost: h:1\r\nIf-Modified-Since: Sun, 22 Nov 2026 14:35:19 GMT\r\nIf-None-Match: 2\r\n\r\n",
		string(p.request(nil, "h:1", next)), "the next poll carries the position back")

	resp, body = readResponse(t, "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
	msgs, same, err := p.answer(resp, body, next)
	require.NoError(t, err, "a hold that ended is not an error")
	assert.Empty(t, msgs)
	assert.Equal(t, next, same)

	resp, body = readResponse(t, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
	_, _, err = p.answer(resp, body, next)
	assert.ErrorIs(t, err, ErrMalformedResponse, "a message without its position would lose the place")

	resp, body = readResponse(t, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
	_, _, err = p.answer(resp, body, next)
	assert.ErrorIs(t, err, ErrUnexpectedStatus)
}

func TestPushupProtocol(t *testing.T) {
	p := pushupProtocol{hold: time.Minute}
	assert.Equal(t, "GET /v1/subscribe?channels=compare&timeout=60&since=now HTTP/1.1\r\nHost: h:1\r\n\r\n", string(p.request(nil, "h:1", "")))
	assert.Equal(t, "GET /v1/subscribe?channels=compare&timeout=60&since=cAQAA HTTP/1.1\r\nHost: h:1\r\n\r\n", string(p.request(nil, "h:1", "cAQAA")))

	body := `{"messages":[{"id":"a","time":1,"data":{"p":0,"seq":1,"t":5,"pad":""}},{"id":"b","time":2,"data":{"p":0,"seq":2,"t":6,"pad":""}}],"cursor":"cBQAA"}`
	resp, b := readResponse(t, "HTTP/1.1 200 OK\r\nContent-Length: "+itoa(len(body))+"\r\n\r\n"+body)
	msgs, next, err := p.answer(resp, b, "cAQAA")
	require.NoError(t, err)
	require.Len(t, msgs, 2)
	assert.JSONEq(t, `{"p":0,"seq":2,"t":6,"pad":""}`, string(msgs[1]))
	assert.Equal(t, "cBQAA", next)

	resp, b = readResponse(t, "HTTP/1.1 410 Gone\r\nContent-Length: 0\r\n\r\n")
	_, _, err = p.answer(resp, b, next)
	assert.ErrorIs(t, err, ErrUnexpectedStatus)
}

func TestTreeMemory(t *testing.T) {
	m, err := treeMemory(os.Getpid())
	require.NoError(t, err)
	assert.Positive(t, m.PSS)
	assert.GreaterOrEqual(t, m.RSS, m.PSS, "PSS shares out what RSS counts whole")
	assert.GreaterOrEqual(t, m.Processes, 1)

	rollup := []byte("55d0c0000000-7ffd5bbf2000 ---p 00000000 00:00 0  [rollup]\nRss:               17408 kB\nPss:               13579 kB\n")
	rss, err := parseKBLine(rollup, "Rss:")
	require.NoError(t, err)
	assert.Equal(t, int64(17408<<10), rss)
	_, err = parseKBLine(rollup, "Swap:")
	assert.Error(t, err)
	ppid, err := parseProcStatPPID([]byte("123 (nginx: worker (x)) S 77 123 123 0"))
	require.NoError(t, err)
	assert.Equal(t, 77, ppid)
}

// smallCompareConfig is a fan-out small enough for a unit test, on
// targets, without perf or wrk.
func smallCompareConfig(targets ...string) CompareConfig {
	cfg := DefaultCompareConfig()
	cfg.Targets = targets
	cfg.Subscribers, cfg.Messages, cfg.Interval = 40, 3, 50*time.Millisecond
	// Generous waits: each ends as soon as its condition holds, and a
	// loaded machine (or -race) can be slow to deliver 120 answers.
	cfg.Hold, cfg.Drain, cfg.ConnectTimeout = 10*time.Second, time.Minute, time.Minute
	cfg.ParkedWait, cfg.Settle.Window, cfg.Settle.Timeout = 0, 200*time.Millisecond, 2*time.Second
	cfg.Syscalls, cfg.Cached.Duration = false, 0
	return cfg
}

// TestE2ECompare runs the floor, pushupd and Nginx + Nchan with the same
// client: every message reaches every subscriber once, every figure is
// filled in, and the report has a column for each target, the ratios and
// the verdicts.
func TestE2ECompare(t *testing.T) {
	requireLinux(t)
	testbed.NchanOrSkip(t)
	cfg := smallCompareConfig("floor", "pushup", "nchan")
	cfg.Pushupd = pushupd.For(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := Compare(ctx, cfg)
	require.NoError(t, err)
	require.Len(t, rep.Results, 3)
	for _, r := range rep.Results {
		require.Empty(t, r.Error, r.Target)
		assert.Equal(t, int64(120), r.Expected, r.Target)
		assert.Equal(t, int64(120), r.Received, r.Target)
		assert.Zero(t, r.Duplicates, r.Target)
		assert.Equal(t, 100.0, r.RMP, r.Target)
		assert.Equal(t, 120, r.TripTime.Count, r.Target)
		assert.Positive(t, r.ParkedRSS, r.Target)
		assert.Positive(t, r.HalfRSS, r.Target)
		assert.GreaterOrEqual(t, r.PeakRSS, r.ParkedRSS, r.Target)
		assert.Positive(t, r.BytesWritten, r.Target)
		assert.Positive(t, r.KernelParked.Slab, r.Target)
		assert.Nil(t, r.Cached, "%s: no cached phase asked for", r.Target)
		assert.Empty(t, r.Errors, r.Target)
	}
	assert.Equal(t, 1, rep.Results[1].Processes, "pushupd is one process")
	assert.Equal(t, 1+cfg.Workers, rep.Results[2].Processes, "nginx's master and its workers")
	require.Len(t, rep.Verdicts, 7)
	var text bytes.Buffer
	require.NoError(t, rep.WriteText(&text))
	for _, want := range []string{"floor", "pushup", "nchan", "RSS per parked subscriber", "PushUp / Nchan", "Nchan / floor", "100% received, 0 duplicates"} {
		assert.Contains(t, text.String(), want)
	}
}

// TestE2ECompareCached runs the cached-subscribe phase with wrk on both
// brokers: every read is answered 200 with the one cached message, and
// the rate and the broker's CPU are filled in.
func TestE2ECompareCached(t *testing.T) {
	testbed.NchanOrSkip(t)
	cfg := smallCompareConfig("pushup", "nchan")
	cfg.Cached.Wrk = testbed.WrkOrSkip(t)
	cfg.Pushupd = pushupd.For(t)
	cfg.Subscribers, cfg.Messages = 4, 1
	cfg.Cached.Duration, cfg.Cached.Connections, cfg.Cached.Require = time.Second, 4, true
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Compare(ctx, cfg)
	require.NoError(t, err)
	require.Len(t, rep.Results, 2)
	for _, r := range rep.Results {
		require.Empty(t, r.Error, r.Target)
		require.NotNil(t, r.Cached, r.Target)
		assert.Empty(t, r.Cached.Skipped, r.Target)
		assert.Positive(t, r.Cached.Requests, r.Target)
		assert.Positive(t, r.Cached.RequestsPerSecond, r.Target)
		assert.Zero(t, r.Cached.Non2xx, "%s: every cached read answered 200", r.Target)
		assert.Positive(t, r.Cached.CPUSeconds, r.Target)
		assert.Positive(t, r.Cached.BytesWritten, r.Target)
	}
	assert.NotEqual(t, VerdictUnknown, rep.Verdicts[3].Status, "the cached verdict has its two rates")
}

// TestCachedSkippedWithoutWrk: a missing wrk skips the phase with a
// reason, or fails it when required.
func TestCachedSkippedWithoutWrk(t *testing.T) {
	cfg := DefaultCachedConfig()
	cfg.Wrk = "/nonexistent/wrk"
	res, err := runCached(context.Background(), cfg, "pushup", "http://127.0.0.1:1", os.Getpid())
	require.NoError(t, err)
	assert.Contains(t, res.Skipped, "wrk not found")
	cfg.Require = true
	_, err = runCached(context.Background(), cfg, "pushup", "http://127.0.0.1:1", os.Getpid())
	assert.ErrorIs(t, err, ErrWrk)
}
