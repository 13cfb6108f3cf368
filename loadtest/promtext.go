package loadtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Metric names read from a node's /metrics.
const (
	metricWaiting = "pushup_waiting_subscribers"
	metricRSS     = "process_resident_memory_bytes"
	metricCPU     = "process_cpu_seconds_total"
)

// parsePromText reads the Prometheus text exposition format and returns,
// for each wanted metric name, the sum of its samples over all label sets.
// Names not present are absent from the map.
func parsePromText(r io.Reader, want ...string) (map[string]float64, error) {
	wanted := make(map[string]bool, len(want))
	for _, w := range want {
		wanted[w] = true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		end := strings.IndexAny(line, "{ \t")
		if end < 0 {
			return nil, fmt.Errorf("%w: metrics line %q", ErrMalformedResponse, truncate([]byte(line)))
		}
		name, rest := line[:end], line[end:]
		if !wanted[name] {
			continue
		}
		if rest[0] == '{' {
			close := labelsEnd(rest)
			if close < 0 {
				return nil, fmt.Errorf("%w: metrics line %q", ErrMalformedResponse, truncate([]byte(line)))
			}
			rest = rest[close+1:]
		}
		fields := strings.Fields(rest) // value, then an optional timestamp
		if len(fields) == 0 {
			return nil, fmt.Errorf("%w: metrics line %q has no value", ErrMalformedResponse, truncate([]byte(line)))
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("%w: metrics line %q: %v", ErrMalformedResponse, truncate([]byte(line)), err)
		}
		out[name] += v
	}
	return out, sc.Err()
}

// labelsEnd returns the index of the '}' closing the label set that s
// starts with, skipping quoted label values (which may hold '}' and
// escaped quotes); -1 if there is none.
func labelsEnd(s string) int {
	quoted := false
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == '}':
			return i
		}
	}
	return -1
}

// scrapeMetrics GETs base/metrics and returns the wanted metrics.
func scrapeMetrics(ctx context.Context, client *http.Client, base string, want ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	// Uncompressed: a gzip writer's state, kept by the server between
	// scrapes, would show up in the memory per subscriber being measured
	// (~1.4 MB, ~90 B per subscriber at 15,000).
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, fmt.Errorf("%w: %s/metrics: %d", ErrUnexpectedStatus, base, resp.StatusCode)
	}
	return parsePromText(resp.Body, want...)
}
