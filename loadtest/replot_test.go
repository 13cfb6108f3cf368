package loadtest

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRedrawMatchesTheRun: a report written as JSON and read back draws
// the same tables and figures the experiment drew, for each experiment.
func TestRedrawMatchesTheRun(t *testing.T) {
	pvp := DefaultPushVsPullConfig()
	pvp.TimeScale = 0.2
	pvp.CCs = []int{10, 100}
	pvp.Intervals = []time.Duration{10 * time.Second, 20 * time.Second}
	pvp.Methods = []string{MethodCP, MethodELP}

	var evtPoints []Point
	for _, cc := range []int{500, 1000} {
		for i, m := range []string{"event", "thread"} {
			evtPoints = append(evtPoints, Point{Series: m, Model: m, Mode: ModeLongPoll, CC: cc, Nodes: 1, Messages: 5,
				RMP: 100, SMU: int64(cc*(i+1)) << 10, TripTime: LatencySummary{Mean: time.Duration(cc) * time.Microsecond}})
		}
	}
	evtPoints[3].Error = "loadtest: pushupd: exited during the run"
	evt := DefaultEventVsThreadConfig()
	evt.CCs = []int{500, 1000}
	evt.Models = []string{"event", "thread"}

	so := DefaultScaleOutConfig()
	so.Nodes, so.CCs = []int{1, 2}, []int{500, 1000}

	for _, tc := range []struct {
		experiment string
		points     []Point
		draw       func([]Point) ([]Table, []Figure)
	}{
		{"push-vs-pull", samplePoints(), func(ps []Point) ([]Table, []Figure) { return pushVsPullOutputs(ps, pvp) }},
		{"event-vs-thread", evtPoints, func(ps []Point) ([]Table, []Figure) { return eventVsThreadOutputs(ps, evt) }},
		{"scale-out", scaleOutPoints(), func(ps []Point) ([]Table, []Figure) { return scaleOutOutputs(ps, so) }},
	} {
		t.Run(tc.experiment, func(t *testing.T) {
			rep := Report{Experiment: tc.experiment, TimeScale: 1, Points: tc.points}
			if tc.experiment == "push-vs-pull" {
				rep.TimeScale = pvp.TimeScale
			}
			rep.Tables, rep.Figures = tc.draw(rep.Points)
			var buf bytes.Buffer
			require.NoError(t, rep.WriteJSON(&buf))

			back, err := ReadReport(&buf)
			require.NoError(t, err)
			assert.Empty(t, back.Figures, "figures are not in the JSON")
			back.Tables = nil
			require.NoError(t, back.Redraw())
			assert.Equal(t, rep.Tables, back.Tables)
			assert.Equal(t, rep.Figures, back.Figures)
		})
	}
}

func TestReadReportRefusesWhatIsNotOne(t *testing.T) {
	for _, in := range []string{"", "not json", `{"experiment":"push-vs-pull"}`} {
		_, err := ReadReport(strings.NewReader(in))
		assert.ErrorIs(t, err, ErrInvalidConfig, "%q", in)
	}
	rep := Report{Experiment: "fanout", Points: []Point{{CC: 1}}}
	assert.ErrorIs(t, rep.Redraw(), ErrInvalidConfig)
}
