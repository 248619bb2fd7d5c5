package plots

import (
	"errors"
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Default size of a training plot, in pixels.
const (
	TrainingWidth  = 1000
	TrainingHeight = 750
)

// Colours of the world-size marks: nodes lost, nodes joined.
var (
	shrinkColor = color.RGBA{200, 30, 30, 255}
	growColor   = color.RGBA{110, 60, 170, 255}
)

// Training is the plot of a run: train and test loss against step in the
// top panel, the test metric in the bottom one (accuracy if the rows have
// it, else R², else MSE; no bottom panel if they have none), and a dashed
// vertical line, in both panels, at each evaluation whose world size
// differs from the one before: red where nodes were lost, purple where
// nodes joined, with a legend entry such as "world size 4→3". The line is
// at the first evaluation that saw the new ring, which is at or after the
// step where the ring changed.
type Training struct {
	Title string // the job's name
	Rows  []MetricsRow
	// Width and Height are the size of the image in pixels; 0 means
	// TrainingWidth and TrainingHeight.
	Width, Height int
}

// PNG draws the plot. Rows should be sorted by step (ReadMetrics sorts
// them). NaN values are left out of their curve; it is an error if no row
// has a finite loss or metric.
func (t Training) PNG() ([]byte, error) {
	w, h, err := size(t.Width, t.Height, TrainingWidth, TrainingHeight)
	if err != nil {
		return nil, fmt.Errorf("training plot: %w", err)
	}
	var panels []*plot.Plot
	loss, err := t.lossPanel()
	if err != nil {
		return nil, fmt.Errorf("training plot: %w", err)
	}
	if loss != nil {
		panels = append(panels, loss)
	}
	metric, err := t.metricPanel()
	if err != nil {
		return nil, fmt.Errorf("training plot: %w", err)
	}
	if metric != nil {
		panels = append(panels, metric)
	}
	if len(panels) == 0 {
		return nil, errors.New("training plot: no finite loss or test metric in any row")
	}
	panels[0].Title.Text = t.Title
	for i, p := range panels {
		t.markWorldSize(p, i == 0)
	}
	out, err := render(w, h, func(c draw.Canvas) {
		grid := make([][]*plot.Plot, len(panels))
		for i, p := range panels {
			grid[i] = []*plot.Plot{p}
		}
		tiles := draw.Tiles{Rows: len(panels), Cols: 1, PadTop: vg.Points(8), PadBottom: vg.Points(6),
			PadLeft: vg.Points(6), PadRight: vg.Points(14), PadY: vg.Points(16)}
		cells := plot.Align(grid, tiles, c)
		for i, p := range panels {
			p.Draw(cells[i][0])
		}
	})
	if err != nil {
		return nil, fmt.Errorf("training plot: %w", err)
	}
	return out, nil
}

// column picks one value of every row, keeping the finite ones.
func (t Training) column(v func(MetricsRow) float64) plotter.XYs {
	var xys plotter.XYs
	for _, r := range t.Rows {
		if y := v(r); finite(y) {
			xys = append(xys, plotter.XY{X: float64(r.Step), Y: y})
		}
	}
	return xys
}

// lossPanel is train and test loss against step, or nil if neither has a
// value. Losses that span two decades or more (a regression's MSE from its
// start) get a log axis (see ticks.go).
func (t Training) lossPanel() (*plot.Plot, error) {
	series := []struct {
		name string
		xys  plotter.XYs
	}{
		{"train loss (batch)", t.column(func(r MetricsRow) float64 { return r.TrainLoss })},
		{"test loss", t.column(func(r MetricsRow) float64 { return r.TestLoss })},
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range series {
		for _, xy := range s.xys {
			lo, hi = math.Min(lo, xy.Y), math.Max(hi, xy.Y)
		}
	}
	if lo > hi {
		return nil, nil
	}
	logY := lo > 0 && hi/lo >= 100
	p := newPlot("", "step", "loss")
	for i, s := range series {
		if len(s.xys) == 0 {
			continue
		}
		if logY {
			for k := range s.xys {
				s.xys[k].Y = math.Log10(s.xys[k].Y)
			}
		}
		c, err := newCurve(s.xys, i, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		c.add(p, s.name)
	}
	if logY {
		p.Y.Tick.Marker = decadeTicks{}
		p.Y.Min, p.Y.Max = decadeRange(lo, hi)
	}
	return p, nil
}

// metricPanel is the test metric against step, or nil if the rows have
// none.
func (t Training) metricPanel() (*plot.Plot, error) {
	for _, m := range []struct {
		label, legend string
		v             func(MetricsRow) float64
		high          bool // higher is better: the legend goes bottom right
	}{
		{"accuracy", "test accuracy", func(r MetricsRow) float64 { return r.TestAccuracy }, true},
		{"R²", "test R²", func(r MetricsRow) float64 { return r.TestR2 }, true},
		{"MSE", "test MSE", func(r MetricsRow) float64 { return r.TestMSE }, false},
	} {
		xys := t.column(m.v)
		if len(xys) == 0 {
			continue
		}
		p := newPlot("", "step", m.label)
		if m.high { // the curve rises: the bottom right stays clear
			p.Legend.Top, p.Legend.YOffs = false, vg.Points(6)
		}
		c, err := newCurve(xys, 2, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.legend, err)
		}
		c.add(p, m.legend)
		return p, nil
	}
	return nil, nil
}

// markWorldSize adds a vertical line at each change of world size between
// consecutive rows, and, with legend, one legend entry per distinct change.
func (t Training) markWorldSize(p *plot.Plot, legend bool) {
	seen := map[string]bool{}
	prev := 0
	for _, r := range t.Rows {
		if r.WorldSize == 0 {
			continue
		}
		if prev != 0 && r.WorldSize != prev {
			col := shrinkColor
			if r.WorldSize > prev {
				col = growColor
			}
			v := vline{x: float64(r.Step), style: draw.LineStyle{Color: col, Width: vg.Points(1.5),
				Dashes: []vg.Length{vg.Points(5), vg.Points(3)}}}
			p.Add(v)
			label := fmt.Sprintf("world size %d→%d", prev, r.WorldSize)
			if legend && !seen[label] {
				seen[label] = true
				p.Legend.Add(label, v)
			}
		}
		prev = r.WorldSize
	}
}
