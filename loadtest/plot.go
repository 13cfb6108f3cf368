package loadtest

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Figure is a line chart shaped like one of the paper's figures: a line
// per series (method, model or node count) over a shared x axis (publish
// interval, or concurrent connections).
type Figure struct {
	// Name is the file name without extension, e.g. "fig7-nt".
	Name   string
	Title  string
	XLabel string
	YLabel string
	// LogX draws x on a log scale (connections doubling from 500 to
	// 16,000 sit evenly apart), with a tick at each x of the data.
	LogX bool
	// YMax, if positive, is the least upper bound of the y axis (100 for
	// percentages, so 100% does not fill the whole height).
	YMax float64
	// LegendBottom puts the legend at the bottom left instead of the top
	// left, for lines that run along the top.
	LegendBottom bool
	Series       []FigureSeries
}

// FigureSeries is one line. Points are drawn in the order given; failed
// runs are left out, so a line may have gaps.
type FigureSeries struct {
	Name string
	X, Y []float64
}

// PlotFormats are the image formats Figure.Write can produce.
var PlotFormats = []string{"svg", "png"}

// figureSize is the size of every figure: a paper column's proportions,
// large enough to read on a README page.
const figureWidth, figureHeight = 6 * vg.Inch, 4 * vg.Inch

// Write draws the figure into dir, once per format ("svg", "png"), and
// returns the files written.
func (f Figure) Write(dir string, formats []string) ([]string, error) {
	for _, format := range formats {
		if !slices.Contains(PlotFormats, format) {
			return nil, fmt.Errorf("%w: plot format %q: want one of %v", ErrInvalidConfig, format, PlotFormats)
		}
	}
	p, err := f.plot()
	if err != nil {
		return nil, err
	}
	var files []string
	for _, format := range formats {
		name := filepath.Join(dir, f.Name+"."+format)
		wt, err := p.WriterTo(figureWidth, figureHeight, format)
		if err != nil {
			return files, fmt.Errorf("loadtest: drawing %s: %w", name, err)
		}
		if err := writeFile(name, func(file *os.File) error { _, err := wt.WriteTo(file); return err }); err != nil {
			return files, err
		}
		files = append(files, name)
	}
	return files, nil
}

// plot builds the gonum plot.
func (f Figure) plot() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = f.Title
	p.X.Label.Text = f.XLabel
	p.Y.Label.Text = f.YLabel
	p.Legend.Top = !f.LegendBottom
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	var xs []float64
	ymax := 0.0
	entries := 0
	for i, s := range f.Series {
		if len(s.X) != len(s.Y) {
			return nil, fmt.Errorf("%w: figure %s, series %s: %d x values, %d y values", ErrInvalidConfig, f.Name, s.Name, len(s.X), len(s.Y))
		}
		if len(s.X) == 0 {
			continue
		}
		xys := make(plotter.XYs, len(s.X))
		for j := range s.X {
			xys[j].X, xys[j].Y = s.X[j], s.Y[j]
			xs = append(xs, s.X[j])
			ymax = max(ymax, s.Y[j])
		}
		line, points, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, fmt.Errorf("loadtest: figure %s, series %s: %w", f.Name, s.Name, err)
		}
		line.Color = plotutil.Color(i)
		line.Dashes = plotutil.Dashes(i)
		points.Color = plotutil.Color(i)
		points.Shape = plotutil.Shape(i)
		p.Add(line, points)
		p.Legend.Add(s.Name, line, points)
		entries++
	}
	// Quantities here start at zero; an axis that starts elsewhere
	// exaggerates differences.
	p.Y.Min = 0
	p.Y.Max = max(ymax*1.08, f.YMax*1.05, 1e-9)
	if !f.LegendBottom {
		// The legend sits inside the top left corner; raise the top of
		// the axis so the highest line passes under it, not through it.
		p.Y.Max /= 1 - legendShare(entries)
	}
	if f.LogX && len(xs) > 0 {
		slices.Sort(xs)
		xs = slices.Compact(xs)
		if xs[0] <= 0 {
			return nil, fmt.Errorf("%w: figure %s: log x axis with x = %g", ErrInvalidConfig, f.Name, xs[0])
		}
		p.X.Scale = plot.LogScale{}
		ticks := make(plot.ConstantTicks, len(xs))
		for i, x := range xs {
			ticks[i] = plot.Tick{Value: x, Label: strconv.FormatFloat(x, 'f', -1, 64)}
		}
		p.X.Tick.Marker = ticks
		// A little room either side so the end points are not on the
		// frame.
		p.X.Min, p.X.Max = xs[0]/math.Pow(2, 0.25), xs[len(xs)-1]*math.Pow(2, 0.25)
	}
	return p, nil
}

// legendShare is the fraction of the plotting area's height that a
// legend of n entries takes at the figure's size and gonum's default
// font: about 14 points a row out of about 225 points of data area.
func legendShare(n int) float64 {
	return min(0.5, (14*float64(n)+8)/225)
}

// figureSeries builds the series of a figure from points: one per name
// in series, with the points whose Series it is and for which keep is
// true, in the order of x, failed runs left out.
func figureSeries(points []Point, series []string, keep func(Point) bool, x, y func(Point) float64) []FigureSeries {
	out := make([]FigureSeries, 0, len(series))
	for _, name := range series {
		var ps []Point
		for _, p := range points {
			if p.Series == name && p.OK() && keep(p) {
				ps = append(ps, p)
			}
		}
		slices.SortStableFunc(ps, func(a, b Point) int {
			switch xa, xb := x(a), x(b); {
			case xa < xb:
				return -1
			case xa > xb:
				return 1
			}
			return 0
		})
		s := FigureSeries{Name: name}
		for _, p := range ps {
			s.X = append(s.X, x(p))
			s.Y = append(s.Y, y(p))
		}
		out = append(out, s)
	}
	return out
}
