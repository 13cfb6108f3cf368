package loadtest

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// samplePoints is a small push-vs-pull grid: two cc, two intervals, two
// methods, one failed run.
func samplePoints() []Point {
	var out []Point
	for _, cc := range []int{10, 100} {
		for _, iv := range []time.Duration{10 * time.Second, 20 * time.Second} {
			for _, m := range []string{MethodCP, MethodELP} {
				model, mode := methodSetup(m)
				p := Point{Series: m, Model: model, Mode: mode, CC: cc, Nodes: 1, PaperInterval: iv,
					PublishInterval: iv / 10, Messages: 5, RMP: 100, Drained: true}
				p.NTPerInterval = float64(cc) * 127
				if m == MethodCP {
					p.NTPerInterval *= iv.Seconds()
				}
				p.TripTime.Mean = time.Duration(cc) * time.Millisecond
				out = append(out, p)
			}
		}
	}
	out[len(out)-1].Error = "loadtest: pushupd: exited during the run"
	return out
}

func TestPointFill(t *testing.T) {
	r := RunResult{
		WindowTraffic:  Traffic{Total: 50_000, Requests: 500},
		TripTime:       LatencySummary{Count: 40, Mean: 30 * time.Millisecond},
		Delivery:       Delivery{Expected: 40, Received: 39, Duplicates: 1, RMP: 97.5},
		Memory:         Memory{BaselineRSS: 10 << 20, ParkedRSS: 12 << 20, PeakRSS: 13 << 20},
		Threads:        Threads{Baseline: 7, Parked: 18, Peak: 19},
		CPU:            CPU{PublishSeconds: 0.25},
		PublishLatency: LatencySummary{Max: 3 * time.Second},
		Errors:         map[string]int64{"read_timeout": 2, "status_503": 1},
		Timeline:       Timeline{Drained: true},
	}
	p := Point{CC: 8, Messages: 5}
	p.fill(r)
	assert.InDelta(t, 10_000, p.NTPerInterval, 1e-9, "50,000 bytes over 5 intervals")
	assert.InDelta(t, 100, p.RequestsPerInterval, 1e-9)
	assert.Equal(t, 30*time.Millisecond, p.TripTime.Mean)
	assert.Equal(t, 97.5, p.RMP)
	assert.Equal(t, int64(1), p.Duplicates)
	assert.Equal(t, int64(12<<20), p.SMU)
	assert.InDelta(t, float64(2<<20)/8, p.SMUPerSubscriber(), 1e-9)
	assert.Equal(t, int64(18), p.ParkedThreads)
	assert.Equal(t, int64(19), p.PeakThreads)
	assert.Equal(t, int64(3), p.Errors)
	assert.Equal(t, 3*time.Second, p.PublishLatencyMax)
	assert.True(t, p.Drained)

	var none Point
	none.fill(RunResult{})
	assert.Zero(t, none.NTPerInterval, "no window, no NT per interval")
	assert.Zero(t, none.SMUPerSubscriber())
}

func TestPivotTableText(t *testing.T) {
	points := samplePoints()
	tab := pivotTable(points, "NT (KB)", []int{10, 100}, func(cc int) string { return "cc=" + itoa(cc) },
		[]string{MethodCP, MethodMLP, MethodELP}, []time.Duration{10 * time.Second, 20 * time.Second},
		func(d time.Duration) string { return d.String() },
		func(p Point) int { return p.CC }, func(p Point) time.Duration { return p.PaperInterval },
		func(p Point) string { return ftoa(p.NTPerInterval / 1000) })
	var b bytes.Buffer
	require.NoError(t, tab.WriteText(&b))
	assert.Equal(t, `NT (KB)
cc=10    10s     20s
  CP    12.7    25.4
  MLP      -       -
  ELP    1.3     1.3
cc=100   10s     20s
  CP     127     254
  MLP      -       -
  ELP   12.7  failed
`, b.String())

	b.Reset()
	require.NoError(t, tab.WriteMarkdown(&b))
	assert.Equal(t, `**NT (KB)**

|  |  | 10s | 20s |
|---|---|---|---|
| cc=10 | CP | 12.7 | 25.4 |
| cc=10 | MLP | - | - |
| cc=10 | ELP | 1.3 | 1.3 |
| cc=100 | CP | 127 | 254 |
| cc=100 | MLP | - | - |
| cc=100 | ELP | 12.7 | failed |
`, b.String())
}

func TestSingleGroupTableMarkdown(t *testing.T) {
	tab := Table{Title: "RMP (%)", Columns: []string{"500", "1000"}, Groups: []TableGroup{{Label: "cc", Rows: []TableRow{
		{Name: "event", Cells: []string{"100.00", "100.00"}},
	}}}, Notes: []string{"a note"}}
	var b bytes.Buffer
	require.NoError(t, tab.WriteMarkdown(&b))
	assert.Equal(t, "**RMP (%)**\n\n| cc | 500 | 1000 |\n|---|---|---|\n| event | 100.00 | 100.00 |\n\na note\n", b.String())
	b.Reset()
	require.NoError(t, tab.WriteText(&b))
	assert.Equal(t, "RMP (%)\ncc          500    1000\n  event  100.00  100.00\n  a note\n", b.String())
}

func TestReportCSVAndJSON(t *testing.T) {
	rep := Report{Experiment: "push-vs-pull", TimeScale: 0.1, Points: samplePoints()}
	var b bytes.Buffer
	require.NoError(t, rep.WriteCSV(&b))
	rows, err := csv.NewReader(&b).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 1+len(rep.Points))
	assert.Equal(t, csvHeader, rows[0])
	col := func(name string) int {
		for i, h := range csvHeader {
			if h == name {
				return i
			}
		}
		t.Fatalf("no column %s", name)
		return -1
	}
	first := rows[1]
	assert.Equal(t, "CP", first[col("series")])
	assert.Equal(t, "10", first[col("cc")])
	assert.Equal(t, "10", first[col("paper_interval_s")])
	assert.Equal(t, "1", first[col("publish_interval_s")])
	assert.Equal(t, "12700.0", first[col("nt_bytes_per_interval")])
	assert.Equal(t, "0.01", first[col("mpt_s")])
	assert.Equal(t, "100.000", first[col("rmp_percent")])
	assert.Empty(t, first[col("error")])
	assert.Contains(t, rows[len(rows)-1][col("error")], "exited during the run")
	for _, r := range rows {
		assert.Len(t, r, len(csvHeader))
	}

	b.Reset()
	require.NoError(t, rep.WriteJSON(&b))
	var back Report
	require.NoError(t, json.Unmarshal(b.Bytes(), &back))
	assert.Equal(t, rep.Points, back.Points)
	assert.Equal(t, 0.1, back.TimeScale)
	assert.Len(t, rep.Failed(), 1)
}

func TestReportText(t *testing.T) {
	cfg := DefaultPushVsPullConfig()
	cfg.CCs = []int{10, 100}
	cfg.Intervals = []time.Duration{10 * time.Second, 20 * time.Second}
	cfg.Methods = []string{MethodCP, MethodELP}
	cfg.TimeScale = 0.1
	rep := Report{Experiment: "push-vs-pull", Points: samplePoints(), Scaling: cfg.scaling(), Duration: 90 * time.Second,
		Notes: []string{"NT is ..."}}
	rep.Points[0].PublishLatencyMax = 2849 * time.Millisecond
	rep.Tables, rep.Figures = pushVsPullOutputs(rep.Points, cfg)
	var b bytes.Buffer
	require.NoError(t, rep.WriteText(&b))
	out := b.String()
	assert.Contains(t, out, "time scale: 0.1: every interval x 0.1; publish every 1s/2s (paper 10s/20s), client pull every 100ms (paper 1s), long polls held 5s (paper 50s)")
	assert.Contains(t, out, "8 runs in 1m30s, 1 failed")
	assert.Contains(t, out, "Table 1: Network traffic per publish interval (KB), by publish interval (intervals run x 0.1)\ncc=10")
	assert.Contains(t, out, "Table 2: Mean publish trip time (s)")
	assert.Contains(t, out, "  ELP   0.100  failed\n")
	assert.Contains(t, out, "- NT is ...\n")
	assert.Contains(t, out, "FAILED ELP cc=100 interval=20s: loadtest: pushupd: exited during the run\n")
	assert.Contains(t, out, "CHECK CP cc=10 interval=10s: a publish took 2.849s to be answered")

	require.Len(t, rep.Figures, 2)
	nt := rep.Figures[0]
	assert.Equal(t, "fig7-nt", nt.Name)
	assert.Contains(t, nt.Title, "cc=100", "figures 7 and 8 are at the largest cc")
	require.Len(t, nt.Series, 2)
	assert.Equal(t, FigureSeries{Name: "CP", X: []float64{10, 20}, Y: []float64{127, 254}}, nt.Series[0])
	assert.Equal(t, FigureSeries{Name: "ELP", X: []float64{10}, Y: []float64{12.7}}, nt.Series[1], "the failed run is left out")
}

func TestFigureWrite(t *testing.T) {
	dir := t.TempDir()
	f := Figure{Name: "fig9-smu", Title: "Server memory usage", XLabel: "concurrent connections", YLabel: "MiB", LogX: true,
		Series: []FigureSeries{
			{Name: "event", X: []float64{500, 1000, 2000}, Y: []float64{14, 14.5, 15}},
			{Name: "thread", X: []float64{500, 1000, 2000}, Y: []float64{40, 70, 130}},
			{Name: "goroutine"}, // every run failed: no line, no error
		}}
	files, err := f.Write(dir, []string{"svg", "png"})
	require.NoError(t, err)
	assert.Equal(t, []string{filepath.Join(dir, "fig9-smu.svg"), filepath.Join(dir, "fig9-smu.png")}, files)

	svg, err := os.ReadFile(files[0])
	require.NoError(t, err)
	assert.Contains(t, string(svg), "<svg")
	assert.Contains(t, string(svg), "</svg>")
	for _, s := range []string{"Server memory usage", "thread", "2000"} {
		assert.Contains(t, string(svg), s)
	}

	pf, err := os.Open(files[1])
	require.NoError(t, err)
	defer pf.Close()
	img, err := png.Decode(pf)
	require.NoError(t, err, "a valid PNG")
	assert.Equal(t, 576, img.Bounds().Dx(), "6 inches at 96 dpi")
	assert.Equal(t, 384, img.Bounds().Dy())

	_, err = f.Write(dir, []string{"gif"})
	assert.ErrorIs(t, err, ErrInvalidConfig)
	f.Series[0].Y = f.Series[0].Y[:1]
	_, err = f.Write(dir, []string{"svg"})
	assert.ErrorIs(t, err, ErrInvalidConfig)
}

// TestFigureLegendHeadroom: a legend at the top left must not sit on the
// highest line, so the y axis rises above it by the legend's share.
func TestFigureLegendHeadroom(t *testing.T) {
	series := []FigureSeries{
		{Name: "CP", X: []float64{10, 50}, Y: []float64{100, 100}},
		{Name: "MLP", X: []float64{10, 50}, Y: []float64{5, 5}},
		{Name: "ELP", X: []float64{10, 50}, Y: []float64{5, 5}},
	}
	top, err := Figure{Name: "top", Series: series}.plot()
	require.NoError(t, err)
	share := legendShare(3)
	assert.InDelta(t, 0.22, share, 0.01)
	assert.InDelta(t, 108/(1-share), top.Y.Max, 1e-9, "the line at 100 ends below the legend's bottom edge")
	assert.Less(t, 100.0, top.Y.Max*(1-share))

	bottom, err := Figure{Name: "bottom", Series: series, YMax: 100, LegendBottom: true}.plot()
	require.NoError(t, err)
	assert.InDelta(t, 108, bottom.Y.Max, 1e-9, "a legend at the bottom needs no room at the top")
	assert.InDelta(t, 0.5, legendShare(100), 1e-9, "capped: the data keep half the height")
}

func TestReportWriteFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "results", "push-vs-pull")
	cfg := DefaultPushVsPullConfig()
	cfg.CCs = []int{10, 100}
	rep := Report{Experiment: "push-vs-pull", Points: samplePoints()}
	rep.Tables, rep.Figures = pushVsPullOutputs(rep.Points, cfg)
	files, err := rep.WriteFiles(dir, []string{"svg"})
	require.NoError(t, err)
	var names []string
	for _, f := range files {
		st, err := os.Stat(f)
		require.NoError(t, err)
		assert.Positive(t, st.Size(), f)
		names = append(names, filepath.Base(f))
	}
	assert.Equal(t, []string{"push-vs-pull.txt", "push-vs-pull.md", "push-vs-pull.csv", "push-vs-pull.json",
		"fig7-nt.svg", "fig8-mpt.svg"}, names)
}

func TestTimeScale(t *testing.T) {
	assert.NoError(t, checkTimeScale(1))
	assert.NoError(t, checkTimeScale(0.02))
	for _, bad := range []float64{0, -1, 1.5} {
		assert.ErrorIs(t, checkTimeScale(bad), ErrInvalidConfig, "%g", bad)
	}
	assert.Equal(t, 500*time.Millisecond, scaled(50*time.Second, 0.01))
	assert.Equal(t, 333333*time.Microsecond, scaled(time.Second, 1.0/3))
	assert.Equal(t, 16*time.Second, roundEstimate(16400*time.Millisecond))
	assert.Equal(t, 27*time.Minute, roundEstimate(26*time.Minute+40*time.Second))
}

func TestPushVsPullRuns(t *testing.T) {
	cfg := DefaultPushVsPullConfig()
	cfg.TimeScale = 0.1
	cfg.ServerArgs = []string{"-gc-percent", "100"}
	runs := cfg.runs("/bin/pushupd")
	require.Len(t, runs, 3*5*3, "cc x interval x method")
	byName := map[string]sweepRun{}
	for _, r := range runs {
		byName[r.rc.Name] = r
		require.NoError(t, r.rc.Validate(), r.rc.Name)
	}
	cp := byName["CP cc=1000 interval=30s"]
	assert.Equal(t, ModePull, cp.rc.Subscribers.Mode)
	assert.Equal(t, 100*time.Millisecond, cp.rc.Subscribers.PollInterval, "1 s x 0.1")
	assert.False(t, cp.rc.WaitParked)
	assert.Equal(t, 3*time.Second, cp.rc.Publishers[0].Interval)
	assert.Equal(t, 15*time.Second, cp.rc.TrafficWindow, "5 whole intervals")
	assert.Equal(t, []string{"-model", "event", "-gc-percent", "100"}, cp.rc.Server.Daemons[0].Args, "extra flags last")
	mlp := byName["MLP cc=1000 interval=30s"]
	assert.Equal(t, ModeLongPoll, mlp.rc.Subscribers.Mode)
	assert.Equal(t, 5*time.Second, mlp.rc.Subscribers.PollInterval, "50 s x 0.1")
	assert.True(t, mlp.rc.WaitParked)
	assert.Equal(t, []string{"-model", "thread", "-max-threads", "10000", "-gc-percent", "100"}, mlp.rc.Server.Daemons[0].Args)
	assert.Equal(t, Point{Series: "MLP", Model: "thread", Mode: ModeLongPoll, CC: 1000, Nodes: 1, PaperInterval: 30 * time.Second,
		PublishInterval: 3 * time.Second, PollInterval: 5 * time.Second, Messages: 5}, mlp.point)
	assert.Equal(t, "event", byName["ELP cc=10 interval=10s"].point.Model)
	assert.Greater(t, estimateDuration(runs), 45*(cfg.WarmUp+15*500*time.Millisecond), "at least the publish windows")
}

func TestEventVsThreadRuns(t *testing.T) {
	cfg := DefaultEventVsThreadConfig()
	runs := cfg.runs("/bin/pushupd")
	require.Len(t, runs, 6*3)
	last := runs[len(runs)-1]
	assert.Equal(t, "thread cc=16000", last.rc.Name)
	assert.Equal(t, []string{"-model", "thread", "-max-threads", "17024"}, last.rc.Server.Daemons[0].Args)
	assert.Equal(t, 50*time.Second, last.rc.Subscribers.PollInterval)
	assert.True(t, last.rc.WaitParked)
	for _, r := range runs {
		require.NoError(t, r.rc.Validate(), r.rc.Name)
	}
}

func TestSweepsRefuseBadSettingsBeforeStarting(t *testing.T) {
	ctx := context.Background()
	evt := DefaultEventVsThreadConfig()
	evt.Pushupd = "/nonexistent/pushupd" // never reached
	evt.CCs = []int{500, 1 << 30}
	_, err := RunEventVsThread(ctx, evt)
	require.ErrorIs(t, err, ErrTooManyConnections)
	assert.Contains(t, err.Error(), "at most", "says how many fit")

	evt = DefaultEventVsThreadConfig()
	evt.Pushupd = "/nonexistent/pushupd"
	evt.Models = []string{"threads"}
	_, err = RunEventVsThread(ctx, evt)
	require.ErrorIs(t, err, ErrInvalidConfig)

	pvp := DefaultPushVsPullConfig()
	pvp.Pushupd = "/nonexistent/pushupd"
	pvp.TimeScale = 0
	_, err = RunPushVsPull(ctx, pvp)
	require.ErrorIs(t, err, ErrInvalidConfig)
	pvp.TimeScale = 1
	pvp.Methods = []string{"push"}
	_, err = RunPushVsPull(ctx, pvp)
	require.ErrorIs(t, err, ErrInvalidConfig)
	pvp = DefaultPushVsPullConfig()
	pvp.Pushupd = "/nonexistent/pushupd"
	pvp.ServerArgs = []string{"-gc-percent", "50", "--model=goroutine"}
	_, err = RunPushVsPull(ctx, pvp)
	require.ErrorIs(t, err, ErrInvalidConfig, "each point's model is the experiment's")
	assert.Contains(t, err.Error(), "-model")
}

func TestExperimentRunAllGoesOnAfterAFailure(t *testing.T) {
	bad := DefaultRunConfig() // no binary: fails at once
	bad.Name = "bad"
	bad.Server.Daemons[0].Binary = ""
	invalid := bad
	invalid.Name = "invalid"
	invalid.Publishers = nil
	e := Experiment{Name: "x", Runs: []RunConfig{bad, invalid}}
	var started []int
	res, errs := e.RunAll(context.Background(), func(i int) { started = append(started, i) })
	assert.Equal(t, []int{0, 1}, started, "the second run ran although the first failed")
	require.Len(t, res, 2)
	assert.ErrorIs(t, errs[0], ErrInvalidConfig)
	assert.ErrorIs(t, errs[1], ErrInvalidConfig)
	assert.Contains(t, errs[1].Error(), `run "invalid"`)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, errs = e.RunAll(ctx, nil)
	assert.True(t, errors.Is(errs[0], context.Canceled))
	assert.Contains(t, errs[1].Error(), "not started")
}

func itoa(n int) string { return strconv.Itoa(n) }

// ftoa rounds to one decimal, as the NT table does, without trailing
// zeros.
func ftoa(f float64) string { return strconv.FormatFloat(math.Round(f*10)/10, 'f', -1, 64) }
