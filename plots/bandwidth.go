package plots

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Default size of a bandwidth plot, in pixels.
const (
	BandwidthWidth  = 1000
	BandwidthHeight = 650
)

// Series is one system's measurements: BusBW[i] (GB/s, 1e9 bytes a second)
// at message size Bytes[i].
type Series struct {
	Name  string
	Bytes []int64
	BusBW []float64
}

// Bandwidth is a plot of bus bandwidth against message size, both axes
// logarithmic, one line per series.
type Bandwidth struct {
	Title  string
	Series []Series
	// Width and Height are the size of the image in pixels; 0 means
	// BandwidthWidth and BandwidthHeight.
	Width, Height int
}

// PNG draws the plot. Points that a log axis cannot show (a size or a
// bandwidth that is zero, negative or not a number) are left out, and a
// series with none left has no line. It is an error if the lengths of a
// series disagree or if no series has a point to draw.
func (b Bandwidth) PNG() ([]byte, error) {
	w, h, err := size(b.Width, b.Height, BandwidthWidth, BandwidthHeight)
	if err != nil {
		return nil, fmt.Errorf("bandwidth plot: %w", err)
	}
	p := newPlot(b.Title, "message size (bytes)", "bus bandwidth (GB/s)")
	p.Legend.Left, p.Legend.XOffs = true, vg.Points(10) // busbw grows with size: top left stays clear
	ylo, yhi := math.Inf(1), math.Inf(-1)
	drawn := 0
	for i, s := range b.Series {
		if len(s.Bytes) != len(s.BusBW) {
			return nil, fmt.Errorf("bandwidth plot: series %q has %d sizes but %d bandwidths", s.Name, len(s.Bytes), len(s.BusBW))
		}
		var xys plotter.XYs
		for j, x := range s.Bytes {
			if y := s.BusBW[j]; x > 0 && y > 0 && finite(y) {
				xys = append(xys, plotter.XY{X: math.Log2(float64(x)), Y: math.Log10(y)})
				ylo, yhi = math.Min(ylo, y), math.Max(yhi, y)
			}
		}
		if len(xys) == 0 {
			continue
		}
		var dashes []vg.Length
		if i >= len(palette) {
			dashes = []vg.Length{vg.Points(6), vg.Points(3)}
		}
		c, err := newCurve(xys, i, dashes)
		if err != nil {
			return nil, fmt.Errorf("bandwidth plot: series %q: %w", s.Name, err)
		}
		name := s.Name
		if name == "" {
			name = fmt.Sprintf("series %d", i+1)
		}
		c.add(p, name)
		drawn++
	}
	if drawn == 0 {
		return nil, errors.New("bandwidth plot: no positive bandwidth at a positive size to draw")
	}
	// Both axes are logarithmic (see ticks.go): sizes padded by half a
	// power of two on each side, so that end points stay off the frame and
	// a single size still spans a range; bandwidths widened to whole decades.
	p.X.Tick.Marker, p.Y.Tick.Marker = byteTicks{}, decadeTicks{}
	p.X.Min, p.X.Max = p.X.Min-0.5, p.X.Max+0.5
	p.Y.Min, p.Y.Max = decadeRange(ylo, yhi)
	out, err := render(w, h, func(c draw.Canvas) { p.Draw(draw.Crop(c, vg.Points(6), -vg.Points(14), vg.Points(6), -vg.Points(8))) })
	if err != nil {
		return nil, fmt.Errorf("bandwidth plot: %w", err)
	}
	return out, nil
}
