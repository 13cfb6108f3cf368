package loadtest

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Report is the outcome of a sweep: every point, the full result of every
// run, and what is needed to read them (the machine, the time scale), plus
// the tables and figures the experiment draws from the points.
type Report struct {
	// Experiment names the sweep ("push-vs-pull", "event-vs-thread",
	// "scale-out").
	Experiment string `json:"experiment"`
	// Command is the command line that ran it, if the caller sets it.
	Command  string        `json:"command,omitempty"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`
	// TimeScale is the factor every interval of the paper was multiplied
	// by; Scaling says what that made of each, in words.
	TimeScale float64 `json:"time_scale"`
	Scaling   string  `json:"scaling"`
	Machine   Machine `json:"machine"`
	// Notes say how to read the figures (definitions, caveats).
	Notes  []string    `json:"notes"`
	Points []Point     `json:"points"`
	Runs   []RunResult `json:"runs"`
	// Tables and Figures are drawn from Points by the experiment.
	Tables  []Table  `json:"tables"`
	Figures []Figure `json:"-"`
}

// Failed returns the points whose run failed.
func (r Report) Failed() []Point {
	var out []Point
	for _, p := range r.Points {
		if !p.OK() {
			out = append(out, p)
		}
	}
	return out
}

// WriteText writes the report for people: what ran where, the tables,
// and why runs failed.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "PushUp %s, %s\n", r.Experiment, r.Started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "machine: %s\n", r.Machine)
	fmt.Fprintf(&b, "time scale: %s\n", r.Scaling)
	fmt.Fprintf(&b, "%d runs in %s", len(r.Points), r.Duration.Round(time.Second))
	if f := r.Failed(); len(f) > 0 {
		fmt.Fprintf(&b, ", %d failed (listed below)", len(f))
	}
	b.WriteString("\n\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	for _, t := range r.Tables {
		if err := t.WriteText(w); err != nil {
			return err
		}
		if _, err := io.WriteString(w, "\n"); err != nil {
			return err
		}
	}
	b.Reset()
	for _, n := range r.Notes {
		b.WriteString("- " + n + "\n")
	}
	for _, p := range r.Points {
		switch {
		case !p.OK():
			fmt.Fprintf(&b, "FAILED %s: %s\n", p.where(), p.Error)
		case p.PublishLatencyMax > slowPublish:
			fmt.Fprintf(&b, "CHECK %s: a publish took %s to be answered: the server was saturated (as -model=thread is with thousands waiting) or the machine stalled; if the model does not explain it, run this cell again\n",
				p.where(), p.PublishLatencyMax.Round(time.Millisecond))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// slowPublish is a publish answer time that, on loopback, says more about
// the machine than about the server, except under -model=thread: even
// 16,000 waiting goroutines are handed their answers in under a second
// here (docs/BENCHMARKS.md), 16,000 waiting threads are not.
const slowPublish = time.Second

// where names a point's place in its sweep; the publish interval is a
// coordinate of push-vs-pull points only.
func (p Point) where() string {
	s := fmt.Sprintf("%s cc=%d", p.Series, p.CC)
	if slices.Contains(Methods, p.Series) {
		s += fmt.Sprintf(" interval=%s", p.PaperInterval)
	}
	return s
}

// WriteMarkdown writes the tables as Markdown, for the README.
func (r Report) WriteMarkdown(w io.Writer) error {
	if _, err := fmt.Fprintf(w, "Machine: %s. Time scale: %s.\n\n", r.Machine, r.Scaling); err != nil {
		return err
	}
	for _, t := range r.Tables {
		if err := t.WriteMarkdown(w); err != nil {
			return err
		}
		if _, err := io.WriteString(w, "\n"); err != nil {
			return err
		}
	}
	return nil
}

// WriteJSON writes the whole report, every run's full result included.
func (r Report) WriteJSON(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// csvHeader names the CSV columns; units are in the names.
var csvHeader = []string{
	"experiment", "series", "model", "mode", "cc", "nodes",
	"paper_interval_s", "publish_interval_s", "poll_interval_s", "messages",
	"nt_bytes_per_interval", "requests_per_interval",
	"mpt_s", "trip_p50_s", "trip_p95_s", "trip_p99_s", "trip_max_s", "trips",
	"rmp_percent", "expected", "received", "duplicates",
	"baseline_rss_bytes", "smu_bytes", "smu_per_subscriber_bytes", "peak_rss_bytes",
	"parked_threads", "peak_threads", "server_cpu_s", "load_tester_cpu_s", "balancer_cpu_s", "balancer_rss_bytes",
	"waiting_min", "waiting_max", "publish_latency_max_s", "errors", "drained", "error",
}

// WriteCSV writes one row per point, failed runs included (with their
// error and empty figures).
func (r Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	secs := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) }
	num := func(f float64, prec int) string { return strconv.FormatFloat(f, 'f', prec, 64) }
	for _, p := range r.Points {
		t := p.TripTime
		row := []string{
			r.Experiment, p.Series, p.Model, string(p.Mode), strconv.Itoa(p.CC), strconv.Itoa(p.Nodes),
			secs(p.PaperInterval), secs(p.PublishInterval), secs(p.PollInterval), strconv.Itoa(p.Messages),
			num(p.NTPerInterval, 1), num(p.RequestsPerInterval, 2),
			secs(t.Mean), secs(t.P50), secs(t.P95), secs(t.P99), secs(t.Max), strconv.Itoa(t.Count),
			num(p.RMP, 3), strconv.FormatInt(p.Expected, 10), strconv.FormatInt(p.Received, 10), strconv.FormatInt(p.Duplicates, 10),
			strconv.FormatInt(p.BaselineRSS, 10), strconv.FormatInt(p.SMU, 10), num(p.SMUPerSubscriber(), 0), strconv.FormatInt(p.PeakRSS, 10),
			strconv.FormatInt(p.ParkedThreads, 10), strconv.FormatInt(p.PeakThreads, 10), num(p.ServerCPUSeconds, 2),
			num(p.LoadTesterCPUSeconds, 2), num(p.BalancerCPUSeconds, 2), strconv.FormatInt(p.BalancerRSS, 10),
			strconv.FormatInt(p.WaitingMin, 10), strconv.FormatInt(p.WaitingMax, 10), secs(p.PublishLatencyMax),
			strconv.FormatInt(p.Errors, 10), strconv.FormatBool(p.Drained), p.Error,
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteFiles writes the report into dir, creating it: <experiment>.txt
// (WriteText), .md (WriteMarkdown), .csv, .json, and each figure in each
// of formats. It returns the files written.
func (r Report) WriteFiles(dir string, formats []string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var files []string
	for _, out := range []struct {
		ext   string
		write func(io.Writer) error
	}{
		{"txt", r.WriteText}, {"md", r.WriteMarkdown}, {"csv", r.WriteCSV}, {"json", r.WriteJSON},
	} {
		name := filepath.Join(dir, r.Experiment+"."+out.ext)
		if err := writeFile(name, func(f *os.File) error { return out.write(f) }); err != nil {
			return files, err
		}
		files = append(files, name)
	}
	for _, f := range r.Figures {
		written, err := f.Write(dir, formats)
		files = append(files, written...)
		if err != nil {
			return files, err
		}
	}
	return files, nil
}

// writeFile creates name, fills it with write and closes it, reporting
// the first error.
func writeFile(name string, write func(*os.File) error) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("loadtest: writing %s: %w", name, err)
	}
	return f.Close()
}
