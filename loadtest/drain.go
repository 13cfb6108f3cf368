package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/pushuphq/pushup/internal/testbed"
)

// DrainConfig configures the drain experiment: how hard a node's SIGTERM
// hits the node its subscribers move to, with and without a drain spread.
type DrainConfig struct {
	// Pushupd is the pushupd binary; empty builds one.
	Pushupd string
	// Subscribers parked on the node that is stopped. Each holds two
	// connections here (to the stopped node, then to the survivor).
	Subscribers int
	// Spreads are the -drain-spread values compared, one run each; 0 is
	// the behaviour before the drain: every subscriber answered at once,
	// no retry hint.
	Spreads []time.Duration
	// Window is the width of the window the peak request rate is counted
	// over.
	Window time.Duration
	// Hold is the long-poll timeout the subscribers ask for.
	Hold time.Duration
	// ConnectTimeout bounds parking every subscriber.
	ConnectTimeout time.Duration
	// Progress, if set, gets a line per step.
	Progress io.Writer
	// DaemonLog, if set, gets the pushupd logs.
	DaemonLog io.Writer
}

// DefaultDrainConfig compares no spread with pushupd's default 5 s.
func DefaultDrainConfig() DrainConfig {
	return DrainConfig{
		Subscribers:    5000,
		Spreads:        []time.Duration{0, 5 * time.Second},
		Window:         100 * time.Millisecond,
		Hold:           60 * time.Second,
		ConnectTimeout: 60 * time.Second,
	}
}

// DrainRun is one run's result.
type DrainRun struct {
	Spread      time.Duration `json:"spread_ns"`
	Subscribers int           `json:"subscribers"`
	// Moved is how many subscribers polled the survivor afterwards.
	Moved int `json:"moved"`
	// Hinted is how many answers carried retry_after_ms.
	Hinted int `json:"hinted"`
	// PeakRate is the most re-polls the survivor got in any Window, per
	// second; Peak10ms the same over 10 ms windows.
	PeakRate float64 `json:"peak_rate"`
	Peak10ms float64 `json:"peak_rate_10ms"`
	// Ramp is the time from the first re-poll to the last.
	Ramp time.Duration `json:"ramp_ns"`
}

// DrainReport is the experiment's result.
type DrainReport struct {
	Window time.Duration `json:"window_ns"`
	Runs   []DrainRun    `json:"runs"`
}

// RunDrain runs the drain experiment: per spread, it starts two pushupd
// (the one to stop and the survivor), parks Subscribers long polls on the
// first, sends it SIGTERM, and has each subscriber, once answered, wait
// the retry hint as pushup.js does and poll the survivor. The times those
// polls are sent (on loopback, their arrival) give the survivor's request
// rate.
func RunDrain(ctx context.Context, cfg DrainConfig) (DrainReport, error) {
	rep := DrainReport{Window: cfg.Window}
	if cfg.Subscribers < 1 || cfg.Window <= 0 || len(cfg.Spreads) == 0 {
		return rep, errors.New("loadtest: drain needs subscribers, a window and at least one spread")
	}
	limit, err := testbed.RaiseFileLimit()
	if err != nil {
		return rep, err
	}
	if err := testbed.CheckFileBudget("pushup-loadtest", 2*cfg.Subscribers, limit); err != nil {
		return rep, err
	}
	bin, flags, cleanup, err := testbed.PreparePushupd(ctx, cfg.Pushupd)
	defer cleanup()
	if err != nil {
		return rep, err
	}
	if err := testbed.RequireFlags(bin, flags, "the drain experiment", "drain-spread"); err != nil {
		return rep, err
	}
	for _, spread := range cfg.Spreads {
		run, err := drainOnce(ctx, cfg, bin, spread)
		if err != nil {
			return rep, fmt.Errorf("spread %s: %w", spread, err)
		}
		rep.Runs = append(rep.Runs, run)
	}
	return rep, nil
}

func (cfg DrainConfig) progress(format string, args ...any) {
	if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, format+"\n", args...)
	}
}

func drainOnce(ctx context.Context, cfg DrainConfig, bin string, spread time.Duration) (DrainRun, error) {
	run := DrainRun{Spread: spread, Subscribers: cfg.Subscribers}
	dc := testbed.DefaultDaemonConfig()
	dc.Binary, dc.Log = bin, cfg.DaemonLog
	dc.StopTimeout = spread + 30*time.Second
	survivor, err := testbed.StartDaemon(dc)
	if err != nil {
		return run, err
	}
	defer survivor.Stop()
	dc.Args = []string{"-drain-spread", spread.String(), "-shutdown-timeout", (spread + 20*time.Second).String()}
	leaving, err := testbed.StartDaemon(dc)
	if err != nil {
		return run, err
	}
	defer leaving.Stop()

	client := &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: cfg.Subscribers + 16,
		DisableCompression:  true,
	}}
	defer client.CloseIdleConnections()
	pollCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	hold := strconv.Itoa(int(cfg.Hold / time.Second))
	var mu sync.Mutex
	var sent []time.Time
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // runs before wg.Wait: ends the polls on the survivor
	for range cfg.Subscribers {
		wg.Go(func() {
			hint, err := drainPoll(pollCtx, client, leaving.URL, hold)
			if err != nil {
				return
			}
			if hint > 0 {
				select {
				case <-time.After(hint):
				case <-pollCtx.Done():
					return
				}
			}
			mu.Lock()
			sent = append(sent, time.Now())
			if hint > 0 {
				run.Hinted++
			}
			mu.Unlock()
			_, _ = drainPoll(pollCtx, client, survivor.URL, hold)
		})
	}
	parked := func() (int, error) {
		resp, err := client.Get(leaving.URL + "/v1/channels/drain")
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var info struct {
			Subscribers int `json:"subscribers"`
		}
		return info.Subscribers, json.NewDecoder(resp.Body).Decode(&info)
	}
	deadline := time.Now().Add(cfg.ConnectTimeout)
	for {
		n, err := parked()
		if err == nil && n == cfg.Subscribers {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return run, fmt.Errorf("only %d of %d subscribers parked within %s (%v)", n, cfg.Subscribers, cfg.ConnectTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cfg.progress("spread %s: %d subscribers parked; SIGTERM", spread, cfg.Subscribers)
	stopped := make(chan error, 1)
	go func() { stopped <- leaving.Stop() }()
	deadline = time.Now().Add(spread + 30*time.Second)
	for {
		mu.Lock()
		n := len(sent)
		mu.Unlock()
		if n == cfg.Subscribers || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := <-stopped; err != nil {
		return run, err
	}
	mu.Lock()
	times := slices.Clone(sent)
	mu.Unlock()
	run.Moved = len(times)
	run.PeakRate = peakRate(times, cfg.Window)
	run.Peak10ms = peakRate(times, 10*time.Millisecond)
	if len(times) > 0 {
		slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
		run.Ramp = times[len(times)-1].Sub(times[0])
	}
	cfg.progress("spread %s: %d moved, peak %.0f req/s over %s, %.0f req/s over 10ms, ramp %s",
		spread, run.Moved, run.PeakRate, cfg.Window, run.Peak10ms, run.Ramp.Round(time.Millisecond))
	return run, nil
}

// drainPoll long-polls channel "drain" on base from now and returns the
// retry hint of the answer.
func drainPoll(ctx context.Context, c *http.Client, base, hold string) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/subscribe?channels=drain&since=now&timeout="+hold, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var a struct {
		RetryAfterMS int64 `json:"retry_after_ms"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return 0, err
	}
	return time.Duration(a.RetryAfterMS) * time.Millisecond, nil
}

// peakRate is the most events in any window of width w starting at an
// event, per second.
func peakRate(times []time.Time, w time.Duration) float64 {
	if len(times) == 0 {
		return 0
	}
	ts := slices.Clone(times)
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	best, j := 0, 0
	for i := range ts {
		for j < len(ts) && ts[j].Sub(ts[i]) < w {
			j++
		}
		best = max(best, j-i)
	}
	return float64(best) / w.Seconds()
}
