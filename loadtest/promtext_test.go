package loadtest

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParsePromText(t *testing.T) {
	text := `# HELP pushup_waiting_subscribers Subscriptions waiting.
# TYPE pushup_waiting_subscribers gauge
pushup_waiting_subscribers 15000
pushup_waiting_subscribers_other 3
process_resident_memory_bytes 8.1526784e+07
process_cpu_seconds_total 12.5 1700000000000
pushup_subscribe_answers_total{reason="message"} 10
pushup_subscribe_answers_total{reason="tim}eout\"x"} 5

`
	m, err := parsePromText(strings.NewReader(text), metricWaiting, metricRSS, metricCPU, "pushup_subscribe_answers_total", "absent")
	require.NoError(t, err)
	assert.Equal(t, map[string]float64{
		metricWaiting:                    15000,
		metricRSS:                        81526784,
		metricCPU:                        12.5,
		"pushup_subscribe_answers_total": 15,
	}, m)

	for _, bad := range []string{"pushup_waiting_subscribers\n", "pushup_waiting_subscribers abc\n", `pushup_waiting_subscribers{a="b" 1` + "\n"} {
		_, err := parsePromText(strings.NewReader(bad), metricWaiting)
		assert.ErrorIs(t, err, ErrMalformedResponse, bad)
	}
}
