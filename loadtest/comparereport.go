package loadtest

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// Verdict is one of issue 12's targets checked on a side-by-side run.
type Verdict struct {
	// Target says what is wanted, e.g. "CPU per delivery <= 0.9x Nchan".
	Target string `json:"target"`
	// Measured is the figure the run gave, e.g. "1.74x (46.7 / 26.8 µs)".
	Measured string `json:"measured"`
	// Status is VerdictPass, VerdictMiss, or VerdictUnknown when the run
	// lacks a figure it needs (a target not run or failed, wrk skipped).
	Status string `json:"status"`
}

// Verdict statuses.
const (
	VerdictPass    = "PASS"
	VerdictMiss    = "MISS"
	VerdictUnknown = "n/a"
)

// Issue 12's targets, as fractions.
const (
	targetCPUvsNchan    = 0.9
	targetCPUvsFloor    = 1.5
	targetP99vsNchan    = 0.8
	targetCachedVsNchan = 1.2
	targetRSSPerParked  = 600 // bytes
	targetPeakToParked  = 1.2
)

// byTarget returns the row of target that did not fail, if any.
func byTarget(results []CompareResult, target string) (CompareResult, bool) {
	for _, r := range results {
		if r.Target == target && r.Error == "" {
			return r, true
		}
	}
	return CompareResult{}, false
}

// cpuMicros is a row's CPU per delivery in µs.
func cpuMicros(r CompareResult) float64 { return float64(r.CPUPerDelivery()) / 1e3 }

// cachedRate is a row's cached-subscribe rate, and whether it has one.
func cachedRate(r CompareResult) (float64, bool) {
	if r.Cached == nil || r.Cached.Skipped != "" || r.Cached.RequestsPerSecond <= 0 {
		return 0, false
	}
	return r.Cached.RequestsPerSecond, true
}

// Verdicts checks issue 12's targets on PushUp's row against Nchan's and
// the floor's: CPU per delivery at most 0.9x Nchan's and 1.5x the
// floor's, trip time p99 at most 0.8x Nchan's, cached-subscribe rate at
// least 1.2x Nchan's, RSS per parked subscriber at most 600 B, peak RSS in
// the fan-out at most 1.2x parked, every message received once. A target
// whose figures the run lacks is VerdictUnknown.
func Verdicts(results []CompareResult) []Verdict {
	pu, okP := byTarget(results, "pushup")
	nc, okN := byTarget(results, "nchan")
	fl, okF := byTarget(results, "floor")
	var out []Verdict
	// relative checks pushup's figure against other's: at most (or, with
	// atLeast, at least) limit times it.
	relative := func(target string, ok bool, mine, other float64, unit string, limit float64, atLeast bool) {
		v := Verdict{Target: target, Status: VerdictUnknown}
		if ok && okP && other > 0 {
			r := mine / other
			v.Measured = fmt.Sprintf("%.2fx (%s / %s)", r, trim(mine, unit), trim(other, unit))
			v.Status = passIf(r <= limit)
			if atLeast {
				v.Status = passIf(r >= limit)
			}
		}
		out = append(out, v)
	}
	relative("CPU per delivery <= 0.9x Nchan", okN, cpuMicros(pu), cpuMicros(nc), "µs", targetCPUvsNchan, false)
	relative("CPU per delivery <= 1.5x floor", okF, cpuMicros(pu), cpuMicros(fl), "µs", targetCPUvsFloor, false)
	relative("trip time p99 <= 0.8x Nchan", okN, float64(pu.TripTime.P99)/1e6, float64(nc.TripTime.P99)/1e6, "ms", targetP99vsNchan, false)
	pr, okPR := cachedRate(pu)
	nr, okNR := cachedRate(nc)
	relative("cached subscribe >= 1.2x Nchan", okN && okPR && okNR, pr, nr, "req/s", targetCachedVsNchan, true)

	v := Verdict{Target: "RSS per parked subscriber <= 600 B", Status: VerdictUnknown}
	if okP {
		perSub := parkedRSS(pu)
		v.Measured = fmt.Sprintf("%.0f B (from the baseline: %.0f B)", perSub, pu.RSSPerSubscriber())
		v.Status = passIf(perSub <= targetRSSPerParked)
	}
	out = append(out, v)
	v = Verdict{Target: "peak RSS in fan-out <= 1.2x parked", Status: VerdictUnknown}
	if okP {
		v.Measured = fmt.Sprintf("%.2fx", pu.PeakToParked())
		v.Status = passIf(pu.PeakToParked() <= targetPeakToParked)
	}
	out = append(out, v)
	v = Verdict{Target: "100% received, 0 duplicates", Status: VerdictUnknown}
	if okP {
		v.Measured = fmt.Sprintf("%d/%d, %d duplicates", pu.Received, pu.Expected, pu.Duplicates)
		v.Status = passIf(pu.Expected > 0 && pu.Received == pu.Expected && pu.Duplicates == 0)
	}
	return append(out, v)
}

// parkedRSS is the RSS per parked subscriber the verdict reads: the
// marginal figure (the second half's growth) when there is one, else the
// growth from the baseline.
func parkedRSS(r CompareResult) float64 {
	if r.HalfRSS > 0 {
		return r.MarginalRSSPerSubscriber()
	}
	return r.RSSPerSubscriber()
}

func passIf(ok bool) string {
	if ok {
		return VerdictPass
	}
	return VerdictMiss
}

// trim formats v with unit, with fewer decimals as it grows.
func trim(v float64, unit string) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.0f %s", v, unit)
	case v >= 10:
		return fmt.Sprintf("%.1f %s", v, unit)
	}
	return fmt.Sprintf("%.2f %s", v, unit)
}

// ratioPairs are the ratio table's columns: numerator and denominator.
var ratioPairs = [][2]string{{"pushup", "nchan"}, {"pushup", "floor"}, {"nchan", "floor"}}

// ratioRows are the figures the ratio table divides, lower is better for
// all but the cached rate.
var ratioRows = []struct {
	name  string
	value func(CompareResult) (float64, bool)
}{
	{"CPU per delivery", func(r CompareResult) (float64, bool) { return cpuMicros(r), r.Received > 0 }},
	{"  user", func(r CompareResult) (float64, bool) {
		return r.UserSeconds / float64(max(r.Received, 1)), r.Received > 0
	}},
	{"  sys", func(r CompareResult) (float64, bool) {
		return r.SysSeconds / float64(max(r.Received, 1)), r.Received > 0
	}},
	{"system calls per delivery", func(r CompareResult) (float64, bool) {
		n, ok := r.Syscalls[syscallTotal]
		return r.perDelivery(n), ok
	}},
	{"bytes written per delivery", func(r CompareResult) (float64, bool) { return r.perDelivery(r.BytesWritten), r.Received > 0 }},
	{"trip time p50", func(r CompareResult) (float64, bool) { return float64(r.TripTime.P50), r.TripTime.Count > 0 }},
	{"trip time p99", func(r CompareResult) (float64, bool) { return float64(r.TripTime.P99), r.TripTime.Count > 0 }},
	{"RSS per parked subscriber (marginal)", func(r CompareResult) (float64, bool) { return parkedRSS(r), r.ParkedRSS > 0 }},
	{"peak RSS in fan-out / parked", func(r CompareResult) (float64, bool) { return r.PeakToParked(), r.PeakRSS > 0 }},
	{"cached subscribe rate (higher is better)", cachedRate},
}

// ratioTable lays out ratioRows for the pairs of ratioPairs whose two
// targets both ran; nil if no pair did.
func ratioTable(results []CompareResult) [][]string {
	head := []string{"ratios"}
	var pairs [][2]CompareResult
	for _, p := range ratioPairs {
		a, okA := byTarget(results, p[0])
		b, okB := byTarget(results, p[1])
		if okA && okB {
			head = append(head, targetTitle(p[0])+" / "+targetTitle(p[1]))
			pairs = append(pairs, [2]CompareResult{a, b})
		}
	}
	if len(pairs) == 0 {
		return nil
	}
	rows := [][]string{head}
	for _, rr := range ratioRows {
		row := []string{rr.name}
		for _, p := range pairs {
			a, okA := rr.value(p[0])
			b, okB := rr.value(p[1])
			if !okA || !okB || b == 0 {
				row = append(row, "-")
				continue
			}
			row = append(row, fmt.Sprintf("%.2fx", a/b))
		}
		rows = append(rows, row)
	}
	return rows
}

// targetTitle is a target's name in tables.
func targetTitle(t string) string {
	switch t {
	case "pushup":
		return "PushUp"
	case "nchan":
		return "Nchan"
	}
	return t
}

// WriteText writes the report: a column per target with every figure per
// delivery or per subscriber, the ratios between targets, and issue 12's
// targets checked.
func (r CompareReport) WriteText(w io.Writer) error {
	var b strings.Builder
	c := r.Config
	fmt.Fprintf(&b, "PushUp compare, %s\nmachine: %s\n", r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Machine)
	if c.Transport == TransportSSE {
		fmt.Fprintf(&b, "%d server-sent event streams on one channel, %d messages of %d B %s apart; one client for every target\n",
			c.Subscribers, c.Messages, c.PayloadSize, c.Interval)
	} else {
		fmt.Fprintf(&b, "%d long-poll subscribers on one channel, %d messages of %d B %s apart, holds of %s; one client for every target\n",
			c.Subscribers, c.Messages, c.PayloadSize, c.Interval, c.Hold)
	}
	b.WriteString("fan-out costs from the first publish until every subscriber waits again; memory once settled, before and after parking\n\n")
	rows := [][]string{{""}}
	for _, res := range r.Results {
		rows[0] = append(rows[0], res.Target)
	}
	add := func(name string, cell func(CompareResult) string) {
		rows = append(rows, tableRow(name, r.Results, cell))
	}
	perSub := func(x CompareResult, a, b int64) string { return fmt.Sprintf("%.0f B", x.perSubscriber(a, b)) }
	add("version", func(x CompareResult) string { return x.Version })
	add("load average (1 min) at fan-out", func(x CompareResult) string { return strconv.FormatFloat(x.LoadAverage, 'f', 2, 64) })
	add("received, duplicates", func(x CompareResult) string {
		return fmt.Sprintf("%d/%d (%.2f%%), %d", x.Received, x.Expected, x.RMP, x.Duplicates)
	})
	add("CPU per delivery", func(x CompareResult) string { return fmt.Sprintf("%.2f µs", cpuMicros(x)) })
	add("  user / sys", func(x CompareResult) string {
		return fmt.Sprintf("%.2f / %.2f µs", x.UserSeconds*1e6/float64(max(x.Received, 1)), x.SysSeconds*1e6/float64(max(x.Received, 1)))
	})
	if c.Syscalls {
		add("system calls per delivery", func(x CompareResult) string { return fmt.Sprintf("%.2f", x.perDelivery(x.Syscalls[syscallTotal])) })
		for _, n := range syscallNames(r.Results) {
			add("  "+n, func(x CompareResult) string { return fmt.Sprintf("%.2f", x.perDelivery(x.Syscalls[n])) })
		}
	}
	add("bytes written per delivery", func(x CompareResult) string { return fmt.Sprintf("%.0f B", x.perDelivery(x.BytesWritten)) })
	add("bytes read per delivery", func(x CompareResult) string {
		if x.BytesRead == 0 && x.Syscalls["recvfrom"] > 0 {
			return "n/a (recvfrom)" // rchar counts read(2), not recvfrom(2)
		}
		return fmt.Sprintf("%.0f B", x.perDelivery(x.BytesRead))
	})
	add("trip time p50 / p99", func(x CompareResult) string { return ms(x.TripTime.P50) + " / " + ms(x.TripTime.P99) })
	add("slowest publish answer", func(x CompareResult) string { return ms(x.PublishLatencyMax) })
	add("load tester CPU, same window", func(x CompareResult) string { return fmt.Sprintf("%.2f s", x.ClientCPUSeconds) })
	add("RSS baseline -> half -> all parked", func(x CompareResult) string {
		s := mib(x.BaselineRSS) + " -> " + mib(x.HalfRSS) + " -> " + mib(x.ParkedRSS)
		if !x.Settled {
			s += " (not settled)"
		}
		return s
	})
	add("RSS per parked subscriber", func(x CompareResult) string { return perSub(x, x.BaselineRSS, x.ParkedRSS) })
	add("  marginal: second half's growth", func(x CompareResult) string {
		return fmt.Sprintf("%.0f B (%s -> %s)", x.MarginalRSSPerSubscriber(), mib(x.HalfRSS), mib(x.ParkedRSS))
	})
	add("PSS per parked subscriber", func(x CompareResult) string { return perSub(x, x.BaselinePSS, x.ParkedPSS) })
	add("peak RSS in fan-out / parked", func(x CompareResult) string { return fmt.Sprintf("%s = %.2fx", mib(x.PeakRSS), x.PeakToParked()) })
	add("kernel: TCP sockets per subscriber", func(x CompareResult) string {
		return fmt.Sprintf("%.2f", x.perSubscriber(x.KernelBefore.TCPSockets, x.KernelParked.TCPSockets))
	})
	add("  TCP buffers (sockstat) per subscriber", func(x CompareResult) string {
		return perSub(x, x.KernelBefore.TCPBuffers, x.KernelParked.TCPBuffers)
	})
	add("  socket slab caches per subscriber", func(x CompareResult) string {
		if x.KernelParked.SocketSlab == 0 {
			return "n/a (no /proc/slabinfo)"
		}
		return perSub(x, x.KernelBefore.SocketSlab, x.KernelParked.SocketSlab)
	})
	add("  all slab per subscriber", func(x CompareResult) string { return perSub(x, x.KernelBefore.Slab, x.KernelParked.Slab) })
	add("processes / threads", func(x CompareResult) string { return fmt.Sprintf("%d / %d", x.Processes, x.Threads) })
	if c.Cached.Duration > 0 && c.Transport == TransportLongPoll {
		add(fmt.Sprintf("cached subscribe (wrk -t%d -c%d -d%s)", c.Cached.Threads, c.Cached.Connections, c.Cached.Duration), func(x CompareResult) string {
			switch {
			case x.Cached == nil:
				return "-"
			case x.Cached.Skipped != "":
				return "skipped"
			}
			return fmt.Sprintf("%.0f req/s", x.Cached.RequestsPerSecond)
		})
		add("  broker CPU, bytes per request", func(x CompareResult) string {
			if x.Cached == nil || x.Cached.Requests == 0 {
				return "-"
			}
			n := float64(x.Cached.Requests)
			return fmt.Sprintf("%.2f µs, %.0f B", x.Cached.CPUSeconds*1e6/n, float64(x.Cached.BytesWritten)/n)
		})
		add("  not 200, socket errors", func(x CompareResult) string {
			if x.Cached == nil || x.Cached.Skipped != "" {
				return "-"
			}
			return fmt.Sprintf("%d, %d", x.Cached.Non2xx, x.Cached.SocketErrors)
		})
	}
	add("subscriber errors", func(x CompareResult) string { return fmt.Sprint(x.Errors) })
	b.WriteString(alignColumns(rows))
	b.WriteString("kernel memory is machine wide (sockstat, /proc/slabinfo: TCP, sock_inode_cache, filp, eventpoll_epi; /proc/meminfo Slab): both ends of each loopback connection, and whatever else runs\n")
	for _, res := range r.Results {
		if res.Cached != nil && res.Cached.Skipped != "" {
			fmt.Fprintf(&b, "cached subscribe on %s skipped: %s\n", res.Target, res.Cached.Skipped)
		}
	}
	if ratios := ratioTable(r.Results); ratios != nil {
		b.WriteString("\n")
		b.WriteString(alignColumns(ratios))
	}
	if len(r.Verdicts) > 0 {
		b.WriteString("\nissue 12's targets, PushUp's figures\n")
		vrows := make([][]string, 0, len(r.Verdicts))
		for _, v := range r.Verdicts {
			vrows = append(vrows, []string{v.Target, v.Measured, v.Status})
		}
		b.WriteString(alignColumns(vrows))
	}
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

// syscallNames are the system calls any target made at least once per
// hundred deliveries, sorted.
func syscallNames(results []CompareResult) []string {
	names := map[string]bool{}
	for _, res := range results {
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
	return sorted
}

// alignColumns lays rows out in left-aligned columns.
func alignColumns(rows [][]string) string {
	var widths []int
	for _, row := range rows {
		for i, cell := range row {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], len([]rune(cell)))
		}
	}
	var b strings.Builder
	for _, row := range rows {
		for i, cell := range row {
			b.WriteString(cell)
			if i < len(row)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-len([]rune(cell))+2))
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}
