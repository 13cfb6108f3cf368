package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// ServerSample is one reading of a server's resource usage.
type ServerSample struct {
	// RSS is the resident set size in bytes (SMU).
	RSS int64 `json:"rss_bytes"`
	// CPUSeconds is user plus system CPU time the process has used.
	CPUSeconds float64 `json:"cpu_seconds"`
	// Threads is the process's OS thread count (Threads: in
	// /proc/<pid>/status); 0 when sampled through /metrics, which has no
	// current count.
	Threads int64 `json:"threads"`
}

// ServerProbe reads one server's resource usage. ProcProbe and
// MetricsProbe implement it.
type ServerProbe interface {
	Probe(ctx context.Context) (ServerSample, error)
}

// userHZ is the unit of utime and stime in /proc/<pid>/stat. It is 100 on
// every Linux architecture Go supports (sysconf(_SC_CLK_TCK) would need
// cgo to ask).
const userHZ = 100

// ProcProbe reads a local process's figures from /proc: VmRSS and Threads
// from /proc/<pid>/status and utime+stime from /proc/<pid>/stat. It is cheap
// enough to sample every few milliseconds and, unlike a /metrics scrape,
// makes the server allocate nothing.
type ProcProbe struct {
	PID int
}

// Probe reads the process's RSS and CPU time.
func (p ProcProbe) Probe(context.Context) (ServerSample, error) {
	dir := "/proc/" + strconv.Itoa(p.PID)
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return ServerSample{}, err
	}
	rss, err := parseVmRSS(status)
	if err != nil {
		return ServerSample{}, fmt.Errorf("%s/status: %w", dir, err)
	}
	threads, err := parseThreads(status)
	if err != nil {
		return ServerSample{}, fmt.Errorf("%s/status: %w", dir, err)
	}
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return ServerSample{}, err
	}
	cpu, err := parseProcStatCPU(stat)
	if err != nil {
		return ServerSample{}, fmt.Errorf("%s/stat: %w", dir, err)
	}
	return ServerSample{RSS: rss, CPUSeconds: cpu, Threads: threads}, nil
}

// parseVmRSS returns the VmRSS line of /proc/<pid>/status in bytes.
func parseVmRSS(status []byte) (int64, error) {
	rss, err := parseKBLine(status, "VmRSS:")
	if err != nil {
		return 0, fmt.Errorf("%w (a kernel thread, or a process that exited?)", err)
	}
	return rss, nil
}

// parseProcStatPPID returns field 4 of /proc/<pid>/stat.
func parseProcStatPPID(stat []byte) (int, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("no command name")
	}
	fields := bytes.Fields(stat[i+1:])
	if len(fields) < 2 {
		return 0, fmt.Errorf("short stat")
	}
	return strconv.Atoi(string(fields[1]))
}

// parseKBLine returns the value of a "Name:   123 kB" line in bytes.
func parseKBLine(text []byte, name string) (int64, error) {
	i := bytes.Index(text, []byte("\n"+name))
	if i < 0 {
		if !bytes.HasPrefix(text, []byte(name)) {
			return 0, fmt.Errorf("no %s line", name)
		}
		i = -1
	}
	line, _, _ := bytes.Cut(text[i+1+len(name):], []byte{'\n'})
	fields := bytes.Fields(line)
	if len(fields) != 2 || string(fields[1]) != "kB" {
		return 0, fmt.Errorf("%s line %q", name, line)
	}
	kb, err := strconv.ParseInt(string(fields[0]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s line %q: %w", name, line, err)
	}
	return kb << 10, nil
}

// parseThreads returns the Threads line of /proc/<pid>/status.
func parseThreads(status []byte) (int64, error) {
	_, rest, ok := bytes.Cut(status, []byte("\nThreads:"))
	if !ok {
		return 0, fmt.Errorf("no Threads line")
	}
	line, _, _ := bytes.Cut(rest, []byte{'\n'})
	n, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("Threads line %q: %w", line, err)
	}
	return n, nil
}

// parseProcStatCPU returns utime+stime of /proc/<pid>/stat in seconds.
// The command name (field 2) may hold spaces and parentheses, so fields
// are counted from the last ')'.
func parseProcStatCPU(stat []byte) (float64, error) {
	u, s, err := parseProcStatUserSys(stat)
	return u + s, err
}

// MetricsProbe reads a node's figures from its /metrics
// (process_resident_memory_bytes, process_cpu_seconds_total), for nodes
// whose pid is not local. Each scrape makes the server allocate, so sample
// it every few hundred milliseconds, not every few.
type MetricsProbe struct {
	// URL is the node's base URL.
	URL string
	// Client does the scrapes; nil means a client of the probe's own.
	Client *http.Client
}

// Probe scrapes the node's RSS and CPU time.
func (p MetricsProbe) Probe(ctx context.Context) (ServerSample, error) {
	client := p.Client
	if client == nil {
		client = http.DefaultClient
	}
	m, err := scrapeMetrics(ctx, client, p.URL, metricRSS, metricCPU)
	if err != nil {
		return ServerSample{}, err
	}
	rss, ok1 := m[metricRSS]
	cpu, ok2 := m[metricCPU]
	if !ok1 || !ok2 {
		return ServerSample{}, fmt.Errorf("%w: %s/metrics lacks %s or %s", ErrMalformedResponse, p.URL, metricRSS, metricCPU)
	}
	return ServerSample{RSS: int64(rss), CPUSeconds: cpu}, nil
}

// Tick is one round of samples, one per server, and their sum.
type Tick struct {
	At    time.Time
	Total ServerSample
	Nodes []ServerSample
}

// Monitor samples the servers of a run at a fixed interval and keeps the
// series, so phases can be measured after the fact (peak during the
// publish window, RSS once settled). Create it with NewMonitor, run it
// with Start, end it with Stop; its other methods are safe to call at any
// time.
type Monitor struct {
	probes   []ServerProbe
	interval time.Duration

	mu      sync.Mutex
	ticks   []Tick
	errs    int
	lastErr error

	cancel context.CancelFunc
	done   chan struct{}
}

// NewMonitor returns a monitor that probes every interval. The series
// grows by one Tick per interval: a 10 ms interval over a ten-minute run
// keeps 60,000, a few megabytes.
func NewMonitor(interval time.Duration, probes ...ServerProbe) (*Monitor, error) {
	if interval <= 0 || len(probes) == 0 {
		return nil, fmt.Errorf("%w: monitor needs a positive interval and at least one probe", ErrInvalidConfig)
	}
	return &Monitor{probes: probes, interval: interval}, nil
}

// Start takes a first sample and then samples in its own goroutine until
// Stop or until ctx ends. It fails if the first sample fails.
func (m *Monitor) Start(ctx context.Context) error {
	if err := m.sample(ctx); err != nil {
		return fmt.Errorf("loadtest: sampling the server: %w", err)
	}
	ctx, m.cancel = context.WithCancel(ctx)
	m.done = make(chan struct{})
	go func() {
		defer close(m.done)
		t := time.NewTicker(m.interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = m.sample(ctx) // counted in Errors
			}
		}
	}()
	return nil
}

// Stop ends sampling and waits for the sampling goroutine.
func (m *Monitor) Stop() {
	if m.cancel != nil {
		m.cancel()
		<-m.done
	}
}

func (m *Monitor) sample(ctx context.Context) error {
	t := Tick{At: time.Now(), Nodes: make([]ServerSample, len(m.probes))}
	for i, p := range m.probes {
		s, err := p.Probe(ctx)
		if err != nil {
			m.mu.Lock()
			m.errs++
			m.lastErr = err
			m.mu.Unlock()
			return err
		}
		t.Nodes[i] = s
		t.Total.RSS += s.RSS
		t.Total.CPUSeconds += s.CPUSeconds
		t.Total.Threads += s.Threads
	}
	m.mu.Lock()
	m.ticks = append(m.ticks, t)
	m.mu.Unlock()
	return nil
}

// Ticks returns a copy of the series so far.
func (m *Monitor) Ticks() []Tick {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Tick(nil), m.ticks...)
}

// Last returns the latest tick; ok is false before the first.
func (m *Monitor) Last() (t Tick, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.ticks) == 0 {
		return Tick{}, false
	}
	return m.ticks[len(m.ticks)-1], true
}

// Errors returns how many rounds of sampling failed, and the last error.
func (m *Monitor) Errors() (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.errs, m.lastErr
}

// SettleConfig says when server memory counts as settled.
type SettleConfig struct {
	// Window is how long RSS must stay within Tolerance.
	Window time.Duration
	// Tolerance is the allowed spread (max - min) over Window, as a
	// fraction of RSS; spreads under MinSpread bytes always pass, so a
	// small server's page-sized jitter does not keep it unsettled.
	Tolerance float64
	MinSpread int64
	// Timeout bounds the wait. When it passes, the run goes on with the
	// latest figure and reports it as not settled.
	Timeout time.Duration
}

// DefaultSettleConfig: RSS within 1% (or 256 KiB) for one second, waiting
// at most 15 s. The Go runtime returns freed memory to the OS over minutes,
// so RSS that rises and then holds still is what "settled" can mean.
func DefaultSettleConfig() SettleConfig {
	return SettleConfig{Window: time.Second, Tolerance: 0.01, MinSpread: 256 << 10, Timeout: 15 * time.Second}
}

// WaitSettled waits until total RSS has been steady for cfg.Window and
// returns its mean over that window; settled is false if cfg.Timeout or
// ctx ended the wait first, and rss is then the mean over the last window.
func (m *Monitor) WaitSettled(ctx context.Context, cfg SettleConfig) (rss int64, settled bool) {
	deadline := time.Now().Add(cfg.Timeout)
	since := time.Now() // only samples taken from now on count
	for {
		ticks := m.Ticks()
		rss, settled = steady(ticks, since, cfg)
		if settled || time.Now().After(deadline) || !sleep(ctx, m.interval) {
			return rss, settled
		}
	}
}

// steady looks at the ticks of the last cfg.Window, counting only ticks
// at or after since. It returns their mean total RSS and whether they
// cover the whole window and stay within the tolerance.
func steady(ticks []Tick, since time.Time, cfg SettleConfig) (mean int64, ok bool) {
	if len(ticks) == 0 {
		return 0, false
	}
	end := ticks[len(ticks)-1].At
	from := end.Add(-cfg.Window)
	covered := !from.Before(since) && !ticks[0].At.After(from)
	lo, hi := int64(1<<62), int64(0)
	var sum, n int64
	for i := len(ticks) - 1; i >= 0 && !ticks[i].At.Before(from) && !ticks[i].At.Before(since); i-- {
		r := ticks[i].Total.RSS
		lo, hi = min(lo, r), max(hi, r)
		sum += r
		n++
	}
	if n == 0 {
		return 0, false
	}
	mean = sum / n
	return mean, covered && hi-lo <= max(cfg.MinSpread, int64(cfg.Tolerance*float64(hi)))
}

// Window summarises the ticks between two times.
type Window struct {
	// First and Last are the total figures of the first and last tick
	// in the window.
	First, Last ServerSample
	// PeakRSS is the highest total RSS in the window.
	PeakRSS int64
	// PeakThreads is the highest total thread count in the window.
	PeakThreads int64
	// Samples is how many ticks fell in the window.
	Samples int
}

// CPUSeconds is the CPU time used over the window.
func (w Window) CPUSeconds() float64 { return w.Last.CPUSeconds - w.First.CPUSeconds }

// window returns the summary of the ticks in [from, to].
func window(ticks []Tick, from, to time.Time) Window {
	var w Window
	for _, t := range ticks {
		if t.At.Before(from) || t.At.After(to) {
			continue
		}
		if w.Samples == 0 {
			w.First = t.Total
		}
		w.Last = t.Total
		w.PeakRSS = max(w.PeakRSS, t.Total.RSS)
		w.PeakThreads = max(w.PeakThreads, t.Total.Threads)
		w.Samples++
	}
	return w
}
