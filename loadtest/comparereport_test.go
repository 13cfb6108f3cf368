package loadtest

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeRow is a finished row: 1,000 subscribers, 5,000 deliveries, cpu µs
// and p99 ms per delivery, rss B per parked subscriber, a peak of peak x
// parked, and a cached rate (0: none).
func fakeRow(target string, cpu float64, p99 time.Duration, rss int64, peak float64, rate float64) CompareResult {
	r := CompareResult{
		Target: target, Subscribers: 1000, Expected: 5000, Received: 5000,
		UserSeconds: cpu * 5000 / 1e6 / 4, SysSeconds: cpu * 5000 / 1e6 * 3 / 4,
		TripTime:    LatencySummary{Count: 5000, P50: p99 / 2, P99: p99},
		BaselineRSS: 10 << 20, HalfRSS: 11<<20 + rss*500, ParkedRSS: 11<<20 + rss*1000,
		BytesWritten: 5000 * 300, Syscalls: map[string]int64{syscallTotal: 10000, "write": 5000},
	}
	r.PeakRSS = int64(peak * float64(r.ParkedRSS))
	if rate > 0 {
		r.Cached = &CachedResult{RequestsPerSecond: rate, Requests: int64(rate) * 10}
	}
	return r
}

func verdictStatus(vs []Verdict) map[string]string {
	m := map[string]string{}
	for _, v := range vs {
		m[v.Target] = v.Status
	}
	return m
}

func TestVerdicts(t *testing.T) {
	floor := fakeRow("floor", 20, 900*time.Millisecond, 300, 1.0, 0)
	nchan := fakeRow("nchan", 30, time.Second, 10_000, 1.01, 80_000)

	// PushUp at just under 0.9x Nchan's CPU, 1.35x the floor's; p99 0.85x
	// Nchan's; 1.25x its cached rate; 610 B parked; peak 1.1x; one
	// message short.
	pushup := fakeRow("pushup", 26.9, 850*time.Millisecond, 610, 1.1, 100_000)
	pushup.Received = 4999
	vs := Verdicts([]CompareResult{floor, pushup, nchan})
	require.Len(t, vs, 7)
	assert.Equal(t, map[string]string{
		"CPU per delivery <= 0.9x Nchan":     VerdictPass,
		"CPU per delivery <= 1.5x floor":     VerdictPass,
		"trip time p99 <= 0.8x Nchan":        VerdictMiss,
		"cached subscribe >= 1.2x Nchan":     VerdictPass,
		"RSS per parked subscriber <= 600 B": VerdictMiss,
		"peak RSS in fan-out <= 1.2x parked": VerdictPass,
		"100% received, 0 duplicates":        VerdictMiss,
	}, verdictStatus(vs))
	assert.Equal(t, "0.85x (850.0 ms / 1000 ms)", vs[2].Measured)
	assert.Equal(t, "1.25x (100000 req/s / 80000 req/s)", vs[3].Measured)
	assert.Equal(t, "610 B (from the baseline: 1659 B)", vs[4].Measured, "the marginal figure is checked, the other shown")
	assert.Equal(t, "4999/5000, 0 duplicates", vs[6].Measured)

	// The other side of each line.
	pushup = fakeRow("pushup", 31, 800*time.Millisecond, 600, 1.21, 95_000)
	pushup.Duplicates = 1
	assert.Equal(t, map[string]string{
		"CPU per delivery <= 0.9x Nchan":     VerdictMiss,
		"CPU per delivery <= 1.5x floor":     VerdictMiss,
		"trip time p99 <= 0.8x Nchan":        VerdictPass,
		"cached subscribe >= 1.2x Nchan":     VerdictMiss,
		"RSS per parked subscriber <= 600 B": VerdictPass,
		"peak RSS in fan-out <= 1.2x parked": VerdictMiss,
		"100% received, 0 duplicates":        VerdictMiss,
	}, verdictStatus(Verdicts([]CompareResult{floor, pushup, nchan})))

	// Nchan failed, the floor did not run, wrk was skipped: what needs
	// them is unknown, PushUp's own figures are still checked.
	failed := nchan
	failed.Error = "nginx: exited"
	pushup = fakeRow("pushup", 27, 850*time.Millisecond, 500, 1.1, 0)
	pushup.Cached = &CachedResult{Skipped: "wrk not found"}
	assert.Equal(t, map[string]string{
		"CPU per delivery <= 0.9x Nchan":     VerdictUnknown,
		"CPU per delivery <= 1.5x floor":     VerdictUnknown,
		"trip time p99 <= 0.8x Nchan":        VerdictUnknown,
		"cached subscribe >= 1.2x Nchan":     VerdictUnknown,
		"RSS per parked subscriber <= 600 B": VerdictPass,
		"peak RSS in fan-out <= 1.2x parked": VerdictPass,
		"100% received, 0 duplicates":        VerdictPass,
	}, verdictStatus(Verdicts([]CompareResult{pushup, failed})))
}

func TestRatioTable(t *testing.T) {
	floor := fakeRow("floor", 20, time.Second, 300, 1.0, 0)
	pushup := fakeRow("pushup", 50, 2*time.Second, 900, 1.2, 60_000)
	nchan := fakeRow("nchan", 25, 4*time.Second, 10_000, 1.0, 80_000)
	pushup.Syscalls[syscallTotal] = 20000
	rows := ratioTable([]CompareResult{floor, pushup, nchan})
	require.NotNil(t, rows)
	assert.Equal(t, []string{"ratios", "PushUp / Nchan", "PushUp / floor", "Nchan / floor"}, rows[0])
	byName := map[string][]string{}
	for _, r := range rows[1:] {
		byName[strings.TrimSpace(r[0])] = r[1:]
	}
	assert.Equal(t, []string{"2.00x", "2.50x", "1.25x"}, byName["CPU per delivery"])
	assert.Equal(t, []string{"2.00x", "2.00x", "1.00x"}, byName["system calls per delivery"])
	assert.Equal(t, []string{"0.50x", "2.00x", "4.00x"}, byName["trip time p99"])
	assert.Equal(t, []string{"0.09x", "3.00x", "33.33x"}, byName["RSS per parked subscriber (marginal)"])
	assert.Equal(t, []string{"0.75x", "-", "-"}, byName["cached subscribe rate (higher is better)"], "the floor has no cached rate")

	rows = ratioTable([]CompareResult{pushup})
	assert.Nil(t, rows, "no pair ran")
	rows = ratioTable([]CompareResult{floor, pushup})
	assert.Equal(t, []string{"ratios", "PushUp / floor"}, rows[0])
}

func TestCompareReportText(t *testing.T) {
	cfg := DefaultCompareConfig()
	cfg.Subscribers = 1000
	res := []CompareResult{
		fakeRow("floor", 20, time.Second, 300, 1.0, 0),
		fakeRow("pushup", 50, 2*time.Second, 900, 1.2, 0),
		{Target: "nchan", Error: "nginx: exited"},
	}
	res[1].Cached = &CachedResult{Skipped: "wrk not found (apt-get install wrk)"}
	rep := CompareReport{Started: time.Unix(0, 0), Config: cfg, Results: res, Verdicts: Verdicts(res)}
	var out strings.Builder
	require.NoError(t, rep.WriteText(&out))
	text := out.String()
	for _, want := range []string{
		"CPU per delivery", "50.00 µs", "  user / sys", "12.50 / 37.50 µs", "system calls per delivery", "  write",
		"RSS per parked subscriber", "1949 B", "marginal: second half's growth", "900 B", "PushUp / floor", "2.50x",
		"cached subscribe on pushup skipped: wrk not found",
		"CPU per delivery <= 1.5x floor", "2.50x (50.0 µs / 20.0 µs)", "MISS", "n/a",
		"FAILED nchan: nginx: exited",
	} {
		assert.Contains(t, text, want)
	}
}

func TestParseWrk(t *testing.T) {
	out := `Running 10s test @ http://127.0.0.1:1/v1/subscribe?channels=cached&timeout=0
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.21ms  500.00us  20.00ms   90.00%
    Req/Sec    26.50k     1.00k   30.00k    70.00%
  528000 requests in 10.00s, 120.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:  52800.12
Transfer/sec:     12.00MB
`
	var res CachedResult
	require.NoError(t, parseWrk([]byte(out), &res))
	assert.Equal(t, CachedResult{Requests: 528000, RequestsPerSecond: 52800.12, Non2xx: 7, SocketErrors: 5}, res)
	assert.ErrorIs(t, parseWrk([]byte("unable to connect to 127.0.0.1:1 Connection refused\n"), &res), ErrWrk)
}

func TestSteadyMemory(t *testing.T) {
	cfg := SettleConfig{Tolerance: 0.01, MinSpread: 0}
	mb := func(rss ...int64) []processMemory {
		var s []processMemory
		for _, r := range rss {
			s = append(s, processMemory{RSS: r << 20, PSS: r << 20, Processes: 1})
		}
		return s
	}
	m, ok := steadyMemory(mb(100, 100, 100), 3, cfg)
	assert.True(t, ok)
	assert.Equal(t, int64(100<<20), m.RSS)
	_, ok = steadyMemory(mb(100, 100), 3, cfg)
	assert.False(t, ok, "a window not yet full is not steady")
	m, ok = steadyMemory(mb(100, 105, 110), 3, cfg)
	assert.False(t, ok, "RSS still growing")
	assert.Equal(t, int64(105<<20), m.RSS, "the mean, when the timeout takes it anyway")
	_, ok = steadyMemory(mb(100, 105), 2, SettleConfig{MinSpread: 8 << 20})
	assert.True(t, ok, "a spread under MinSpread passes")
}
