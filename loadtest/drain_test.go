package loadtest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPeakRate(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms ...int) []time.Time {
		var out []time.Time
		for _, m := range ms {
			out = append(out, t0.Add(time.Duration(m)*time.Millisecond))
		}
		return out
	}
	assert.Zero(t, peakRate(nil, time.Second))
	// 3 within one 100 ms window (at 500-599), the rest apart.
	assert.Equal(t, 30.0, peakRate(at(0, 200, 500, 550, 599, 600, 900), 100*time.Millisecond))
	assert.Equal(t, 1.0/0.01, peakRate(at(0, 10, 20), 10*time.Millisecond), "a window is half-open")
}

// TestRunDrainMovesEverySubscriber runs the experiment small: with a
// spread every answer carries a hint and the ramp lasts about the spread;
// without one no answer does.
func TestRunDrainMovesEverySubscriber(t *testing.T) {
	bin := pushupd.For(t)
	cfg := DefaultDrainConfig()
	cfg.Pushupd = bin
	cfg.Subscribers = 40
	cfg.Spreads = []time.Duration{0, 400 * time.Millisecond}
	rep, err := RunDrain(context.Background(), cfg)
	require.NoError(t, err)
	require.Len(t, rep.Runs, 2)
	for _, r := range rep.Runs {
		assert.Equal(t, 40, r.Moved, "spread %s", r.Spread)
		assert.Positive(t, r.PeakRate)
	}
	assert.Zero(t, rep.Runs[0].Hinted, "no spread, no hint")
	assert.Equal(t, 40, rep.Runs[1].Hinted)
	assert.GreaterOrEqual(t, rep.Runs[1].Ramp, 200*time.Millisecond, "the answers are spread out")
}
