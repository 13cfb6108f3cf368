package loadtest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestPercentile(t *testing.T) {
	oneTo := func(n int) []time.Duration {
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = time.Duration(i + 1)
		}
		return out
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"no samples", nil, 50, 0},
		{"one sample, p50", []time.Duration{7}, 50, 7},
		{"one sample, p99", []time.Duration{7}, 99, 7},
		{"two samples, p50 is the lower", []time.Duration{1, 2}, 50, 1},
		{"two samples, p51 is the upper", []time.Duration{1, 2}, 51, 2},
		{"1..100, p50", oneTo(100), 50, 50},
		{"1..100, p95", oneTo(100), 95, 95},
		{"1..100, p99", oneTo(100), 99, 99},
		{"1..100, p100 is the max", oneTo(100), 100, 100},
		{"1..20, p95 is rank 19 exactly", oneTo(20), 95, 19},
		{"1..1000, p99.9", oneTo(1000), 99.9, 999},
		{"1..10, p1 is the min", oneTo(10), 1, 1},
		{"1..3, p50 rounds the rank up", oneTo(3), 50, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Percentile(tt.sorted, tt.p))
		})
	}
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		name    string
		samples []time.Duration
		want    LatencySummary
	}{
		{"empty", nil, LatencySummary{}},
		{"one", []time.Duration{5 * time.Millisecond}, LatencySummary{Count: 1, Mean: 5 * time.Millisecond,
			Min: 5 * time.Millisecond, P50: 5 * time.Millisecond, P95: 5 * time.Millisecond,
			P99: 5 * time.Millisecond, Max: 5 * time.Millisecond}},
		{"unsorted input", []time.Duration{40, 10, 30, 20}, LatencySummary{Count: 4, Mean: 25, Min: 10, P50: 20, P95: 40, P99: 40, Max: 40}},
		{"an outlier moves the mean and the max, not the median",
			[]time.Duration{1, 1, 1, 1, 1, 1, 1, 1, 1, 991},
			LatencySummary{Count: 10, Mean: 100, Min: 1, P50: 1, P95: 991, P99: 991, Max: 991}},
		{"large values do not overflow the mean", []time.Duration{1 << 62, 1 << 62},
			LatencySummary{Count: 2, Mean: 1 << 62, Min: 1 << 62, P50: 1 << 62, P95: 1 << 62, P99: 1 << 62, Max: 1 << 62}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Summarize(tt.samples))
		})
	}
}
