package loadtest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseVmRSS(t *testing.T) {
	status := "Name:\tpushupd\nVmPeak:\t  900000 kB\nVmRSS:\t   81234 kB\nRssAnon:\t 70000 kB\n"
	rss, err := parseVmRSS([]byte(status))
	require.NoError(t, err)
	assert.Equal(t, int64(81234*1024), rss)
	for _, bad := range []string{"Name:\tkthreadd\n", "Name:\tx\nVmRSS:\t 12 MB\n", "Name:\tx\nVmRSS:\t x kB\n"} {
		_, err := parseVmRSS([]byte(bad))
		assert.Error(t, err, bad)
	}
}

func TestParseThreads(t *testing.T) {
	n, err := parseThreads([]byte("Name:\tpushupd\nVmRSS:\t 1 kB\nThreads:\t16066\nSigQ:\t0/96365\n"))
	require.NoError(t, err)
	assert.Equal(t, int64(16066), n)
	for _, bad := range []string{"Name:\tx\n", "Name:\tx\nThreads:\tmany\n"} {
		_, err := parseThreads([]byte(bad))
		assert.Error(t, err, bad)
	}
}

func TestParseProcStatCPU(t *testing.T) {
	// The command name may hold spaces and parentheses.
	stat := "4242 (push up) d) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 130 0 0 20 0 12 0 5000 1000000 20000 rest"
	cpu, err := parseProcStatCPU([]byte(stat))
	require.NoError(t, err)
	assert.InDelta(t, 3.8, cpu, 1e-9, "(250 + 130) / 100")
	for _, bad := range []string{"no parens", "1 (x) S 1 2", "1 (x) S 1 2 3 4 5 6 7 8 9 10 x y"} {
		_, err := parseProcStatCPU([]byte(bad))
		assert.Error(t, err, bad)
	}
}

func TestProcProbeSelf(t *testing.T) {
	s, err := ProcProbe{PID: os.Getpid()}.Probe(context.Background())
	require.NoError(t, err)
	assert.Greater(t, s.RSS, int64(1<<20))
	assert.GreaterOrEqual(t, s.CPUSeconds, 0.0)
	assert.Positive(t, s.Threads)
}

func ticksOf(start time.Time, step time.Duration, rss ...int64) []Tick {
	out := make([]Tick, len(rss))
	for i, r := range rss {
		out[i] = Tick{At: start.Add(time.Duration(i) * step), Total: ServerSample{RSS: r, CPUSeconds: float64(i)}}
	}
	return out
}

func TestSteady(t *testing.T) {
	t0 := time.Unix(1000, 0)
	cfg := SettleConfig{Window: 100 * time.Millisecond, Tolerance: 0.01, MinSpread: 10}
	const M = 1 << 20
	tests := []struct {
		name  string
		ticks []Tick
		since time.Time
		mean  int64
		ok    bool
	}{
		{"no ticks", nil, t0, 0, false},
		{"flat over the window", ticksOf(t0, 10*time.Millisecond, M, M, M, M, M, M, M, M, M, M, M, M), t0, M, true},
		{"still rising", ticksOf(t0, 10*time.Millisecond, M, 2*M, 3*M, 4*M, 5*M, 6*M, 7*M, 8*M, 9*M, 10*M, 11*M, 12*M), t0, 7 * M, false},
		{"within 1%", ticksOf(t0, 10*time.Millisecond, M, M, M+M/200, M, M, M, M, M, M, M, M, M), t0, M + M/200/11, true},
		{"window not yet covered", ticksOf(t0, 10*time.Millisecond, M, M, M, M, M), t0, M, false},
		{"ticks before since do not count", ticksOf(t0, 10*time.Millisecond, M, M, M, M, M, M, M, M, M, M, M, M), t0.Add(50 * time.Millisecond), M, false},
		{"small jitter under MinSpread", ticksOf(t0, 10*time.Millisecond, 100, 105, 100, 105, 100, 105, 100, 105, 100, 105, 100, 105), t0, 102, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mean, ok := steady(tt.ticks, tt.since, cfg)
			assert.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.mean, mean)
		})
	}
}

func TestWindow(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ticks := ticksOf(t0, time.Second, 10, 50, 30, 70, 20)
	for i := range ticks {
		ticks[i].Total.Threads = int64(100 - i) // falls while RSS wanders
	}
	w := window(ticks, t0.Add(time.Second), t0.Add(3*time.Second))
	assert.Equal(t, Window{
		First:   ServerSample{RSS: 50, CPUSeconds: 1, Threads: 99},
		Last:    ServerSample{RSS: 70, CPUSeconds: 3, Threads: 97},
		PeakRSS: 70, PeakThreads: 99, Samples: 3,
	}, w)
	assert.InDelta(t, 2.0, w.CPUSeconds(), 1e-9)
	assert.Equal(t, Window{}, window(ticks, t0.Add(10*time.Second), t0.Add(20*time.Second)))
}

func TestMonitorSamplesUntilStopped(t *testing.T) {
	m, err := NewMonitor(time.Millisecond, ProcProbe{PID: os.Getpid()})
	require.NoError(t, err)
	require.NoError(t, m.Start(context.Background()))
	require.Eventually(t, func() bool { return len(m.Ticks()) >= 5 }, 10*time.Second, time.Millisecond)
	m.Stop()
	n := len(m.Ticks())
	m.Stop() // twice is fine
	assert.Equal(t, n, len(m.Ticks()), "no samples after Stop")
	errs, _ := m.Errors()
	assert.Zero(t, errs)

	_, err = NewMonitor(0, ProcProbe{})
	assert.ErrorIs(t, err, ErrInvalidConfig)
	bad, err := NewMonitor(time.Millisecond, ProcProbe{PID: -1})
	require.NoError(t, err)
	assert.Error(t, bad.Start(context.Background()), "a first sample that fails fails Start")
}
