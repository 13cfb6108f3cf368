package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/pushuphq/pushup/internal/testbed"
)

// ErrWrk: wrk(1), which measures the cached-subscribe rate, is missing
// while required, failed, or printed what this package cannot read.
var ErrWrk = errors.New("loadtest: wrk")

// cachedTargets are the targets with a cached-subscribe phase: the floor
// has no cache, and Centrifugo no long polling.
var cachedTargets = []string{"pushup", "nchan"}

// cachedChannel holds the one message the cached phase reads over and
// over; the fan-out's channel is left alone.
const cachedChannel = "cached"

// CachedConfig configures the cached-subscribe phase: wrk, with
// keep-alive, asks a broker for a channel's one cached message over and
// over (PushUp: timeout=0; Nchan: a long poll without a position, which
// its oldest message answers at once), with the same settings for every
// broker.
type CachedConfig struct {
	// Wrk is the wrk binary; empty looks it up on the PATH.
	Wrk string `json:"wrk,omitempty"`
	// Connections and Threads are wrk's -c and -t.
	Connections int `json:"connections"`
	Threads     int `json:"threads"`
	// Duration is wrk's -d; 0 skips the phase.
	Duration time.Duration `json:"duration_ns"`
	// Require makes a missing wrk an error; without it the phase is
	// skipped with a reason in the report.
	Require bool `json:"require"`
}

// DefaultCachedConfig returns issue 12's settings: 64 connections, 2
// threads, 10 seconds.
func DefaultCachedConfig() CachedConfig {
	return CachedConfig{Connections: 64, Threads: 2, Duration: 10 * time.Second}
}

// Validate reports a configuration that cannot work.
func (c CachedConfig) Validate() error {
	if c.Duration < 0 || (c.Duration > 0 && (c.Connections < 1 || c.Threads < 1 || c.Threads > c.Connections)) {
		return fmt.Errorf("%w: cached subscribe: %d connections, %d threads, %s: want at least one connection per thread and a duration of 0 or more",
			ErrInvalidConfig, c.Connections, c.Threads, c.Duration)
	}
	if c.Require && c.Duration == 0 {
		return fmt.Errorf("%w: cached subscribe required with a duration of 0", ErrInvalidConfig)
	}
	return nil
}

// CachedResult is one broker's cached-subscribe rate.
type CachedResult struct {
	// Skipped says why the phase did not run (wrk missing); the figures
	// are then zero.
	Skipped string `json:"skipped,omitempty"`
	// URL is what wrk asked for.
	URL string `json:"url,omitempty"`
	// Requests and RequestsPerSecond are wrk's count and rate; Non2xx and
	// SocketErrors what it counted as failures.
	Requests          int64   `json:"requests"`
	RequestsPerSecond float64 `json:"requests_per_second"`
	Non2xx            int64   `json:"non_2xx"`
	SocketErrors      int64   `json:"socket_errors"`
	// CPUSeconds and BytesWritten are the broker's over wrk's run.
	CPUSeconds   float64 `json:"cpu_seconds"`
	BytesWritten int64   `json:"bytes_written"`
}

// cachedRequest returns, for a broker at base, how to publish its
// channel's one message and the URL that reads it back at once.
func cachedRequest(target, base string) (pubURL string, body []byte, want []int, readURL string) {
	msg := []byte(`{"text":"a cached message","user":"ann"}`)
	if target == "nchan" {
		return base + "/pub/" + cachedChannel, msg, []int{http.StatusCreated, http.StatusAccepted}, base + "/sub/" + cachedChannel
	}
	body = append([]byte(`{"channels":["`+cachedChannel+`"],"data":`), msg...)
	return base + "/v1/publish", append(body, '}'), []int{http.StatusCreated}, base + "/v1/subscribe?channels=" + cachedChannel + "&timeout=0"
}

// runCached publishes the one message to a broker, checks that a read
// answers it, then runs wrk on the read, counting the broker's CPU (pid's
// tree) over wrk's run.
func runCached(ctx context.Context, cfg CachedConfig, target, base string, pid int) (CachedResult, error) {
	bin := cfg.Wrk
	if bin == "" {
		bin = "wrk"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		if cfg.Require {
			return CachedResult{}, fmt.Errorf("%w: %v (apt-get install wrk)", ErrWrk, err)
		}
		return CachedResult{Skipped: "wrk not found (apt-get install wrk)"}, nil
	}
	pubURL, body, want, readURL := cachedRequest(target, base)
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	if err := post(ctx, client, pubURL, "application/json", body, want...); err != nil {
		return CachedResult{}, err
	}
	if err := checkCachedRead(ctx, client, readURL); err != nil {
		return CachedResult{}, err
	}
	res := CachedResult{URL: readURL}
	from, err := readTreeCost(pid)
	if err != nil {
		return res, err
	}
	cmd := exec.CommandContext(ctx, path, "-t", strconv.Itoa(cfg.Threads), "-c", strconv.Itoa(cfg.Connections),
		"-d", strconv.Itoa(max(1, int(cfg.Duration.Seconds())))+"s", readURL)
	testbed.SetDeathSignal(cmd)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return res, fmt.Errorf("%w: %v: %s", ErrWrk, err, bytes.TrimSpace(out))
	}
	to, err := readTreeCost(pid)
	if err != nil {
		return res, err
	}
	cost := to.sub(from)
	res.CPUSeconds, res.BytesWritten = cost.User+cost.Sys, cost.WChar
	if err := parseWrk(out, &res); err != nil {
		return res, err
	}
	return res, nil
}

// checkCachedRead reads url once: it must answer 200 with the cached
// message at once, or wrk would measure errors or holds.
func checkCachedRead(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK || !bytes.Contains(answer, []byte("a cached message")) {
		return fmt.Errorf("%w: GET %s: %s: %s", ErrUnexpectedStatus, url, resp.Status, truncate(answer))
	}
	return nil
}

// parseWrk reads wrk's summary: the requests line, "Requests/sec:",
// and the error lines when there are errors.
func parseWrk(out []byte, res *CachedResult) error {
	var haveCount, haveRate bool
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[1] == "requests" && f[2] == "in":
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return fmt.Errorf("%w: %q: %v", ErrWrk, line, err)
			}
			res.Requests, haveCount = n, true
		case strings.HasPrefix(line, "Requests/sec:") && len(f) == 2:
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return fmt.Errorf("%w: %q: %v", ErrWrk, line, err)
			}
			res.RequestsPerSecond, haveRate = v, true
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:") && len(f) == 5:
			res.Non2xx, _ = strconv.ParseInt(f[4], 10, 64)
		case strings.HasPrefix(line, "Socket errors:"):
			// "Socket errors: connect 0, read 0, write 0, timeout 0"
			for i := 2; i+1 < len(f); i += 2 {
				n, _ := strconv.ParseInt(strings.TrimSuffix(f[i+1], ","), 10, 64)
				res.SocketErrors += n
			}
		}
	}
	if !haveCount || !haveRate {
		return fmt.Errorf("%w: no request count or rate in its output: %s", ErrWrk, bytes.TrimSpace(out))
	}
	return nil
}
