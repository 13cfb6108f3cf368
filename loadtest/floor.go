package loadtest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pushuphq/pushup/internal/testbed"
)

// ErrFloor: the floor server could not be started or stopped cleanly
// (testbed's).
var ErrFloor = testbed.ErrFloor

// FloorTargets are the servers Floor measures per delivery: the floor
// server (see floorserver_linux.go), pushupd and Nginx + Nchan.
var FloorTargets = []string{"floor", "pushup", "nchan"}

// FloorConfig configures a per-delivery measurement. The fan-out's shape,
// the brokers' binaries and the waits are Compare's; Targets replaces its
// Brokers.
type FloorConfig struct {
	CompareConfig
	// Targets to run, in order (see FloorTargets).
	Targets []string
	// Syscalls counts every target's system calls during the fan-out
	// with perf stat (tracepoints: counting costs a little CPU per call,
	// the same for every target).
	Syscalls bool
	// ProfileDir, if not empty, receives perf record -g samples of each
	// target during the fan-out, <target>.perf.data (user and kernel
	// stacks; read with perf report -i). Sampling costs CPU: the run's
	// CPU figures are then not comparable with a run without it.
	ProfileDir string
}

// DefaultFloorConfig returns Compare's fan-out, every target, with system
// calls counted.
func DefaultFloorConfig() FloorConfig {
	return FloorConfig{CompareConfig: DefaultCompareConfig(), Targets: slices.Clone(FloorTargets), Syscalls: true}
}

// Validate reports a configuration that cannot work.
func (c FloorConfig) Validate() error {
	if err := checkNames("target", c.Targets, FloorTargets); err != nil {
		return err
	}
	cc := c.CompareConfig
	cc.Brokers = []string{"pushup", "nchan"} // the fan-out's fields are checked as Compare's, on long polling
	return cc.Validate()
}

// FloorResult is one target's costs over the fan-out: from just before
// the first publish until every subscriber has its last message and is
// parked again (or the drain's end).
type FloorResult struct {
	Target  string `json:"target"`
	Version string `json:"version"`
	// Expected is subscribers x messages; Received counts first receipts,
	// Duplicates the rest.
	Expected   int64 `json:"expected"`
	Received   int64 `json:"received"`
	Duplicates int64 `json:"duplicates"`
	// UserSeconds and SysSeconds are the target's CPU time, summed over
	// its processes (nginx's master and workers).
	UserSeconds float64 `json:"user_cpu_seconds"`
	SysSeconds  float64 `json:"sys_cpu_seconds"`
	// BytesWritten and BytesRead are what its read- and write-type system
	// calls moved (wchar and rchar of /proc/<pid>/io): the answers and
	// the re-polls, plus the few publish requests.
	BytesWritten int64 `json:"bytes_written"`
	BytesRead    int64 `json:"bytes_read"`
	// Syscalls counts system calls by name, every one under "all"; empty
	// without Syscalls.
	Syscalls map[string]int64 `json:"syscalls,omitempty"`
	// Threads is the target's thread count at the end.
	Threads int `json:"threads"`
	// BaselineRSS and ParkedRSS are its RSS (summed over processes)
	// before the subscribers connect and once they all wait; ParkedPSS
	// and BaselinePSS the same as PSS.
	BaselineRSS int64 `json:"baseline_rss_bytes"`
	ParkedRSS   int64 `json:"parked_rss_bytes"`
	BaselinePSS int64 `json:"baseline_pss_bytes"`
	ParkedPSS   int64 `json:"parked_pss_bytes"`
	// SocketMemBefore and SocketMemParked are the kernel's TCP buffer
	// memory, machine wide (/proc/net/sockstat), at the same two moments.
	SocketMemBefore int64 `json:"socket_mem_before_bytes"`
	SocketMemParked int64 `json:"socket_mem_parked_bytes"`
	// SlabBefore and SlabParked are the kernel's slab memory, machine
	// wide (/proc/meminfo), at the same two moments: the sockets' own
	// records, both ends of each connection.
	SlabBefore int64 `json:"slab_before_bytes"`
	SlabParked int64 `json:"slab_parked_bytes"`
	// TripTime is from the publisher's timestamp to a subscriber reading
	// the message, over every first receipt.
	TripTime LatencySummary `json:"trip_time"`
	// Errors counts subscriber errors by kind.
	Errors map[string]int64 `json:"errors"`
	// Profile is the perf record file, if one was asked for.
	Profile string `json:"profile,omitempty"`
	// Error says why the run failed; empty if it did not.
	Error string `json:"error,omitempty"`
}

// CPUPerDelivery is the target's CPU time per first receipt.
func (r FloorResult) CPUPerDelivery() time.Duration {
	return time.Duration((r.UserSeconds + r.SysSeconds) * 1e9 / float64(max(r.Received, 1)))
}

// perDelivery divides n by the deliveries.
func (r FloorResult) perDelivery(n int64) float64 { return float64(n) / float64(max(r.Received, 1)) }

// FloorReport is one run over every target.
type FloorReport struct {
	Started time.Time     `json:"started"`
	Machine Machine       `json:"machine"`
	Config  FloorConfig   `json:"config"`
	Results []FloorResult `json:"results"`
}

// Floor measures, target by target, what one delivery costs: the
// servers are started in turn, the same client (Compare's) parks the
// same subscribers on each and the same publisher fans the same messages
// out. A target that fails gets a row with its Error; the others still
// run.
func Floor(ctx context.Context, cfg FloorConfig) (FloorReport, error) {
	rep := FloorReport{Started: time.Now(), Config: cfg}
	if err := cfg.Validate(); err != nil {
		return rep, err
	}
	if _, err := fileLimit("the load tester", cfg.Subscribers+8); err != nil {
		return rep, err
	}
	if cfg.ProfileDir != "" {
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			return rep, err
		}
	}
	rep.Machine = DescribeMachine()
	var err error
	rep.Results, err = inTurn(ctx, cfg.Targets, func(t string) (FloorResult, error) { return floorOne(ctx, cfg, t) })
	return rep, err
}

func (r FloorResult) failed() bool { return r.Error != "" }

func (r *FloorResult) done(target string, err error) {
	r.Target = target
	if err != nil {
		r.Error = err.Error()
	}
}

func floorOne(ctx context.Context, cfg FloorConfig, name string) (res FloorResult, err error) {
	logf := func(format string, args ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, "[%s] "+format+"\n", append([]any{name}, args...)...)
		}
	}
	scraper := &http.Client{Timeout: 10 * time.Second}
	defer scraper.CloseIdleConnections()
	var b *brokerUnderTest
	if name == "floor" {
		b, err = startFloor(scraper)
	} else {
		b, err = startBroker(ctx, cfg.CompareConfig, name, scraper)
	}
	if err != nil {
		return res, err
	}
	defer b.release(&err)
	res.Version = b.version
	ctx, cancel := b.watch(ctx)
	defer cancel()

	if !sleep(ctx, cfg.Settle) {
		return res, ctx.Err()
	}
	base, err := treeMemory(b.pid)
	if err != nil {
		return res, err
	}
	res.BaselineRSS, res.BaselinePSS = base.RSS, base.PSS
	if res.SocketMemBefore, err = readSocketMemory(); err != nil {
		return res, err
	}
	if res.SlabBefore, err = readSlab(); err != nil {
		return res, err
	}

	tgt, err := resolveTarget(ctx, b.url)
	if err != nil {
		return res, err
	}
	subs := newCompareSubscribers(cfg.CompareConfig, tgt, b.proto)
	subs.start(ctx)
	defer subs.stop()
	if err := waitParked(ctx, b, cfg.Subscribers, cfg.ConnectTimeout, subs); err != nil {
		return res, err
	}
	if !sleep(ctx, cfg.Settle) {
		return res, ctx.Err()
	}
	parked, err := treeMemory(b.pid)
	if err != nil {
		return res, err
	}
	res.ParkedRSS, res.ParkedPSS = parked.RSS, parked.PSS
	if res.SocketMemParked, err = readSocketMemory(); err != nil {
		return res, err
	}
	if res.SlabParked, err = readSlab(); err != nil {
		return res, err
	}
	logf("%d waiting: RSS %s -> %s, kernel TCP buffers %s -> %s, slab %s -> %s", cfg.Subscribers,
		mib(res.BaselineRSS), mib(res.ParkedRSS), mib(res.SocketMemBefore), mib(res.SocketMemParked), mib(res.SlabBefore), mib(res.SlabParked))

	pids := treePIDs(b.pid)
	var counter, recorder *perfProcess
	if cfg.Syscalls {
		if counter, err = startSyscallCount(pids); err != nil {
			return res, err
		}
		defer func() {
			if counter != nil {
				_, _ = counter.stop()
			}
		}()
	}
	if cfg.ProfileDir != "" {
		res.Profile = filepath.Join(cfg.ProfileDir, name+".perf.data")
		if recorder, err = startPerf([]string{"record", "-F", "999", "-g", "-o", res.Profile}, pids); err != nil {
			return res, err
		}
		defer func() {
			if recorder != nil {
				_, _ = recorder.stop()
			}
		}()
	}
	from, err := readTreeCost(b.pid)
	if err != nil {
		return res, err
	}
	pub := &http.Client{Timeout: time.Minute}
	defer pub.CloseIdleConnections()
	res.Expected = int64(cfg.Subscribers) * int64(cfg.Messages)
	var payload []byte
	for k := range cfg.Messages {
		if k > 0 && !sleep(ctx, cfg.Interval) {
			return res, ctx.Err()
		}
		payload, err = AppendPayload(payload[:0], Payload{Seq: int64(k), SentAt: time.Now().UnixNano()}, cfg.PayloadSize)
		if err != nil {
			return res, err
		}
		if err := b.proto.publish(ctx, pub, b.url, payload); err != nil {
			return res, fmt.Errorf("publish %d: %w", k, err)
		}
	}
	drainBy := time.Now().Add(cfg.Drain)
	for subs.fresh.Load() < res.Expected && time.Now().Before(drainBy) {
		if !sleep(ctx, 10*time.Millisecond) {
			return res, ctx.Err()
		}
	}
	// The window ends once every subscriber is parked again: each
	// delivery's cost includes reading its re-poll.
	if subs.fresh.Load() >= res.Expected {
		if err := waitParked(ctx, b, cfg.Subscribers, cfg.Drain, subs); err != nil {
			return res, fmt.Errorf("after the fan-out: %w", err)
		}
	}
	to, err := readTreeCost(b.pid)
	if err != nil {
		return res, err
	}
	if counter != nil {
		out, _ := counter.stop()
		counter = nil
		if res.Syscalls, err = parsePerfStatCSV(out); err != nil {
			return res, err
		}
	}
	if recorder != nil {
		out, err := recorder.stop()
		recorder = nil
		if err != nil {
			return res, fmt.Errorf("%w: %s", err, out)
		}
	}
	cost := to.sub(from)
	res.UserSeconds, res.SysSeconds, res.BytesWritten, res.BytesRead, res.Threads = cost.User, cost.Sys, cost.WChar, cost.RChar, to.Threads
	subs.stop()
	res.Received, res.Duplicates = subs.fresh.Load(), subs.duplicates.Load()
	res.TripTime = Summarize(subs.trips())
	res.Errors = subs.errors.snapshot()
	logf("received %d of %d (%d duplicates): CPU %s per delivery, %.1f syscalls, %.0f B written",
		res.Received, res.Expected, res.Duplicates, res.CPUPerDelivery(), res.perDelivery(res.Syscalls[syscallTotal]), res.perDelivery(res.BytesWritten))
	return res, nil
}

// waitParked waits until b says n subscribers wait.
func waitParked(ctx context.Context, b *brokerUnderTest, n int, timeout time.Duration, subs *compareSubscribers) error {
	by := time.Now().Add(timeout)
	for {
		waiting, err := b.waiting(ctx)
		if err != nil {
			return fmt.Errorf("asking how many wait: %w; server log:\n%s", err, b.log())
		}
		if waiting >= int64(n) {
			return nil
		}
		if time.Now().After(by) {
			return fmt.Errorf("%w: %d of %d waiting after %s (errors %v); server log:\n%s",
				ErrNotParked, waiting, n, timeout, subs.errors.snapshot(), b.log())
		}
		if !sleep(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// startFloor starts the floor server: this executable again (see
// floorserver_linux.go and testbed.StartFloor).
func startFloor(scraper *http.Client) (*brokerUnderTest, error) {
	if runtime.GOOS != "linux" {
		return nil, fmt.Errorf("%w: the floor server uses epoll, Linux only", ErrFloor)
	}
	f, err := testbed.StartFloor(testbed.FloorConfig{})
	if err != nil {
		return nil, err
	}
	return &brokerUnderTest{
		url: f.URL, pid: f.PID, version: "floor (one thread, edge-triggered epoll, raw read/write)", proto: floorProtocol{},
		waiting: func(ctx context.Context) (int64, error) { return floorWaiting(ctx, scraper, f.URL) },
		stop:    f.Stop, exited: f.Exited(), log: f.Log,
	}, nil
}

// floorWaiting asks the floor server how many polls wait.
func floorWaiting(ctx context.Context, client *http.Client, url string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/waiting", nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64))
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(string(body), 10, 64)
}

// floorProtocol is the floor server's: GET /sub waits for the next
// publish, whose data is the whole answer's body; POST /pub publishes.
// There is no position: a poll gets the next message.
type floorProtocol struct{}

func (floorProtocol) request(b []byte, host, _ string) []byte {
	return append(b, "GET /sub HTTP/1.1\r\nHost: "+host+"\r\n\r\n"...)
}

func (floorProtocol) answer(resp *http.Response, body []byte, position string) ([][]byte, string, error) {
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("%w: %s", ErrUnexpectedStatus, resp.Status)
	}
	return [][]byte{body}, position, nil
}

func (floorProtocol) publish(ctx context.Context, client *http.Client, base string, payload []byte) error {
	return post(ctx, client, base+"/pub", "application/json", payload, http.StatusCreated)
}

// WriteText writes the report as a table, a column per target, with
// every figure per delivery and its ratio to the floor's.
func (r FloorReport) WriteText(w io.Writer) error {
	var b strings.Builder
	c := r.Config
	fmt.Fprintf(&b, "PushUp per-delivery costs, %s\nmachine: %s\n", r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Machine)
	fmt.Fprintf(&b, "%d long-poll subscribers on one channel, %d messages of %d B %s apart; one client for every target; "+
		"costs from the first publish until every subscriber is parked again\n\n", c.Subscribers, c.Messages, c.PayloadSize, c.Interval)
	var floor *FloorResult
	for i := range r.Results {
		if r.Results[i].Target == "floor" && r.Results[i].Error == "" {
			floor = &r.Results[i]
		}
	}
	ratio := func(v float64, of func(FloorResult) float64) string {
		if floor == nil || of(*floor) == 0 {
			return ""
		}
		return fmt.Sprintf(" (%.2fx)", v/of(*floor))
	}
	rows := [][]string{{""}}
	for _, res := range r.Results {
		rows[0] = append(rows[0], res.Target)
	}
	add := func(name string, cell func(FloorResult) string) {
		rows = append(rows, tableRow(name, r.Results, cell))
	}
	cpu := func(x FloorResult) float64 { return float64(x.CPUPerDelivery()) / 1e3 }
	add("received, duplicates", func(x FloorResult) string { return fmt.Sprintf("%d/%d, %d", x.Received, x.Expected, x.Duplicates) })
	add("CPU per delivery (x floor)", func(x FloorResult) string { return fmt.Sprintf("%.2f us%s", cpu(x), ratio(cpu(x), cpu)) })
	add("  user / sys", func(x FloorResult) string {
		return fmt.Sprintf("%.2f / %.2f us", x.UserSeconds*1e6/float64(max(x.Received, 1)), x.SysSeconds*1e6/float64(max(x.Received, 1)))
	})
	if c.Syscalls {
		all := func(x FloorResult) float64 { return x.perDelivery(x.Syscalls[syscallTotal]) }
		add("syscalls per delivery (x floor)", func(x FloorResult) string { return fmt.Sprintf("%.2f%s", all(x), ratio(all(x), all)) })
		names := map[string]bool{}
		for _, res := range r.Results {
			for n, v := range res.Syscalls {
				if n != syscallTotal && res.perDelivery(v) >= 0.01 {
					names[n] = true
				}
			}
		}
		sorted := make([]string, 0, len(names))
		for n := range names {
			sorted = append(sorted, n)
		}
		sort.Strings(sorted)
		for _, n := range sorted {
			add("  "+n, func(x FloorResult) string { return fmt.Sprintf("%.2f", x.perDelivery(x.Syscalls[n])) })
		}
	}
	wr := func(x FloorResult) float64 { return x.perDelivery(x.BytesWritten) }
	add("bytes written per delivery", func(x FloorResult) string { return fmt.Sprintf("%.0f B%s", wr(x), ratio(wr(x), wr)) })
	add("bytes read per delivery", func(x FloorResult) string {
		if x.BytesRead == 0 && x.Syscalls["recvfrom"] > 0 {
			return "n/a (recvfrom)" // rchar counts read(2), not recvfrom(2)
		}
		return fmt.Sprintf("%.0f B", x.perDelivery(x.BytesRead))
	})
	add("trip time p50 / p99", func(x FloorResult) string { return ms(x.TripTime.P50) + " / " + ms(x.TripTime.P99) })
	perSub := func(a, b int64) string { return fmt.Sprintf("%.0f B", float64(b-a)/float64(max(c.Subscribers, 1))) }
	add("RSS per waiting subscriber", func(x FloorResult) string { return perSub(x.BaselineRSS, x.ParkedRSS) })
	add("PSS per waiting subscriber", func(x FloorResult) string { return perSub(x.BaselinePSS, x.ParkedPSS) })
	add("kernel TCP buffers per subscriber", func(x FloorResult) string { return perSub(x.SocketMemBefore, x.SocketMemParked) })
	add("kernel slab per subscriber", func(x FloorResult) string { return perSub(x.SlabBefore, x.SlabParked) })
	add("threads", func(x FloorResult) string { return strconv.Itoa(x.Threads) })
	add("subscriber errors", func(x FloorResult) string { return fmt.Sprint(x.Errors) })
	b.WriteString(alignColumns(rows))
	b.WriteString("kernel memory is machine wide (TCP buffers: /proc/net/sockstat; slab: /proc/meminfo): both ends of each loopback connection, and whatever else runs\n")
	for _, res := range r.Results {
		if res.Error != "" {
			fmt.Fprintf(&b, "FAILED %s: %s\n", res.Target, res.Error)
		}
		if res.Profile != "" {
			fmt.Fprintf(&b, "%s profile: perf report -i %s\n", res.Target, res.Profile)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// alignColumns lays rows out in left-aligned columns.
func alignColumns(rows [][]string) string {
	var widths []int
	for _, row := range rows {
		for i, cell := range row {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], len(cell))
		}
	}
	var b strings.Builder
	for _, row := range rows {
		for i, cell := range row {
			fmt.Fprintf(&b, "%-*s  ", widths[i], cell)
		}
		b.WriteString("\n")
	}
	return b.String()
}
