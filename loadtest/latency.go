package loadtest

import (
	"slices"
	"time"
)

// LatencySummary summarises publish trip times. A publish trip time is
// the receive time of a message at a subscriber minus the send timestamp
// the publisher put in its payload (same host, same clock; see the package
// doc). Mean is the paper's MPT. Percentiles are nearest-rank: P99 is the
// smallest sample that at least 99% of the samples do not exceed.
type LatencySummary struct {
	// Count is the number of samples: first receipts of expected messages.
	Count int           `json:"count"`
	Mean  time.Duration `json:"mean_ns"`
	Min   time.Duration `json:"min_ns"`
	P50   time.Duration `json:"p50_ns"`
	P95   time.Duration `json:"p95_ns"`
	P99   time.Duration `json:"p99_ns"`
	Max   time.Duration `json:"max_ns"`
}

// Summarize returns the summary of samples, which it sorts in place. No
// samples give a zero summary.
func Summarize(samples []time.Duration) LatencySummary {
	n := len(samples)
	if n == 0 {
		return LatencySummary{}
	}
	slices.Sort(samples)
	// Sum in float64: 10^7 samples of 100 s would overflow int64 ns.
	var sum float64
	for _, s := range samples {
		sum += float64(s)
	}
	return LatencySummary{
		Count: n,
		Mean:  time.Duration(sum / float64(n)),
		Min:   samples[0],
		P50:   Percentile(samples, 50),
		P95:   Percentile(samples, 95),
		P99:   Percentile(samples, 99),
		Max:   samples[n-1],
	}
}

// Percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted samples: the value at rank ceil(p/100 * n). It returns 0 for no
// samples.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	// Integer arithmetic in hundredths of a percent keeps ranks exact:
	// p=95 of n=20 must be rank 19, which float rounding can miss.
	rank := (int64(p*100+0.5)*int64(n) + 9999) / 10000
	rank = max(1, min(rank, int64(n)))
	return sorted[rank-1]
}
