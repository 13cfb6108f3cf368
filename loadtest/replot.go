package loadtest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"
)

// ReadReport reads a report written by Report.WriteJSON. Its Figures are
// empty until Redraw.
func ReadReport(rd io.Reader) (Report, error) {
	var r Report
	if err := json.NewDecoder(rd).Decode(&r); err != nil {
		return Report{}, fmt.Errorf("%w: not a report: %w", ErrInvalidConfig, err)
	}
	if len(r.Points) == 0 {
		return Report{}, fmt.Errorf("%w: report of %q has no points", ErrInvalidConfig, r.Experiment)
	}
	return r, nil
}

// Redraw rebuilds the report's tables and figures from its points, as
// the experiment that ran them does, so that a committed run can be drawn
// again (after a change to the figures, or in other formats) without
// being run again. The grid (cc, intervals, series) is the one the points
// cover; the measurements are not touched.
func (r *Report) Redraw() error {
	ccs := distinct(r.Points, func(p Point) int { return p.CC })
	switch r.Experiment {
	case "push-vs-pull":
		cfg := DefaultPushVsPullConfig()
		cfg.TimeScale = r.TimeScale
		cfg.CCs = ccs
		cfg.Intervals = distinct(r.Points, func(p Point) time.Duration { return p.PaperInterval })
		cfg.Methods = seriesIn(r.Points, Methods)
		r.Tables, r.Figures = pushVsPullOutputs(r.Points, cfg)
	case "event-vs-thread":
		cfg := DefaultEventVsThreadConfig()
		cfg.TimeScale = r.TimeScale
		cfg.CCs = ccs
		cfg.Models = seriesIn(r.Points, Models)
		r.Tables, r.Figures = eventVsThreadOutputs(r.Points, cfg)
	case "scale-out":
		cfg := DefaultScaleOutConfig()
		cfg.TimeScale = r.TimeScale
		cfg.CCs = ccs
		cfg.Nodes = distinct(r.Points, func(p Point) int { return p.Nodes })
		r.Tables, r.Figures = scaleOutOutputs(r.Points, cfg)
	default:
		return fmt.Errorf("%w: cannot redraw experiment %q: want push-vs-pull, event-vs-thread or scale-out", ErrInvalidConfig, r.Experiment)
	}
	return nil
}

// distinct returns the values of key over points, sorted, each once.
func distinct[T cmp.Ordered](points []Point, key func(Point) T) []T {
	out := make([]T, 0, len(points))
	for _, p := range points {
		out = append(out, key(p))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// seriesIn returns the names in order that some point's Series is, keeping
// the order the experiment draws them in.
func seriesIn(points []Point, order []string) []string {
	var out []string
	for _, name := range order {
		if slices.ContainsFunc(points, func(p Point) bool { return p.Series == name }) {
			out = append(out, name)
		}
	}
	return out
}
