package plots

import (
	"bytes"
	"fmt"
	"image/color"
	"image/png"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// dpi is the resolution the PNGs are drawn at: a size in pixels is a size
// in points × dpi/72.
const dpi = 96

// Bounds of a figure's size in pixels.
const (
	minPixels = 200
	maxPixels = 8000
)

// Colours of the curves: the Okabe-Ito palette, which stays distinguishable
// for colour-blind readers, in order of use.
var palette = []color.RGBA{
	{0, 114, 178, 255},   // blue
	{230, 159, 0, 255},   // orange
	{0, 158, 115, 255},   // bluish green
	{204, 121, 167, 255}, // reddish purple
	{86, 180, 233, 255},  // sky blue
	{213, 94, 0, 255},    // vermillion
	{0, 0, 0, 255},       // black
	{240, 228, 66, 255},  // yellow
}

// glyphs give each series of a figure its own marker shape too, for print
// in grey.
var glyphs = []draw.GlyphDrawer{draw.CircleGlyph{}, draw.BoxGlyph{}, draw.PyramidGlyph{},
	draw.RingGlyph{}, draw.SquareGlyph{}, draw.TriangleGlyph{}, draw.CrossGlyph{}, draw.PlusGlyph{}}

// size checks a figure's size in pixels, 0 meaning the default, and gives
// it in points.
func size(w, h, defW, defH int) (vg.Length, vg.Length, error) {
	if w == 0 {
		w = defW
	}
	if h == 0 {
		h = defH
	}
	if w < minPixels || w > maxPixels || h < minPixels || h > maxPixels {
		return 0, 0, fmt.Errorf("size %d×%d pixels: want %d to %d each", w, h, minPixels, maxPixels)
	}
	return pixels(w), pixels(h), nil
}

// pixels converts a length in pixels to one in points.
func pixels(n int) vg.Length { return vg.Length(n) * vg.Inch / dpi }

// render draws a figure of w×h points with paint and encodes it as PNG.
// gonum/plot panics rather than fail on some inputs (LogScale over a value
// that is not positive, tiles that do not match in Align); the callers
// avoid those, and a panic that still happens is returned as an error
// rather than taking the process down.
func render(w, h vg.Length, paint func(draw.Canvas)) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("drawing the plot failed: %v", r)
		}
	}()
	c := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(dpi), vgimg.UseBackgroundColor(color.White))
	paint(draw.New(c))
	var buf bytes.Buffer
	// Fastest compression: encoding dominates the cost of a plot, and the
	// default level takes up to twice as long for a file 5% smaller (67 KB
	// against 64 KB for a 1000×750 training plot).
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&buf, c.Image()); err != nil {
		return nil, fmt.Errorf("encoding the PNG: %w", err)
	}
	return buf.Bytes(), nil
}

// newPlot is a plot with the house style: sans-serif text a little larger
// than gonum's default, a grid, and the given title and axis labels.
func newPlot(title, xLabel, yLabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.Padding = vg.Points(8)
	p.X.Label.Text, p.Y.Label.Text = xLabel, yLabel
	p.Title.TextStyle.Font.Size = vg.Points(15)
	for _, s := range []*vg.Length{&p.X.Label.TextStyle.Font.Size, &p.Y.Label.TextStyle.Font.Size, &p.Legend.TextStyle.Font.Size} {
		*s = vg.Points(13)
	}
	p.X.Tick.Label.Font.Size, p.Y.Tick.Label.Font.Size = vg.Points(11), vg.Points(11)
	p.Title.TextStyle.Font.Variant = "Sans"
	p.X.Label.TextStyle.Font.Variant, p.Y.Label.TextStyle.Font.Variant = "Sans", "Sans"
	p.X.Tick.Label.Font.Variant, p.Y.Tick.Label.Font.Variant = "Sans", "Sans"
	p.Legend.TextStyle.Font.Variant = "Sans"
	p.Legend.ThumbnailWidth = vg.Points(24)
	p.Legend.Top = true
	// Into the data area, clear of the frame and the padding above it.
	p.Legend.XOffs, p.Legend.YOffs = -vg.Points(10), -vg.Points(14)
	p.Add(plotter.NewGrid())
	return p
}

// finite reports whether x is a number other than ±Inf.
func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// curve is one series drawn as a line through its points, with a marker at
// each point where there are few enough to tell apart (and always for a
// single point, which a line alone would not show).
type curve struct {
	line   *plotter.Line
	points *plotter.Scatter
}

// newCurve makes the curve of xys (all finite) in colour i of the palette
// with glyph g; dashed lines are for the second round through the palette.
func newCurve(xys plotter.XYs, i int, dashes []vg.Length) (curve, error) {
	l, err := plotter.NewLine(xys)
	if err != nil {
		return curve{}, err
	}
	col := palette[i%len(palette)]
	l.LineStyle = draw.LineStyle{Color: col, Width: vg.Points(2), Dashes: dashes}
	c := curve{line: l}
	if len(xys) <= 60 {
		s, err := plotter.NewScatter(xys)
		if err != nil {
			return curve{}, err
		}
		s.GlyphStyle = draw.GlyphStyle{Color: col, Radius: vg.Points(3), Shape: glyphs[i%len(glyphs)]}
		c.points = s
	}
	return c, nil
}

// add puts the curve on p, with a legend entry name.
func (c curve) add(p *plot.Plot, name string) {
	if c.points == nil {
		p.Add(c.line)
		p.Legend.Add(name, c.line)
		return
	}
	p.Add(c.line, c.points)
	p.Legend.Add(name, c.line, c.points)
}

// vline is a vertical line across the whole data area at x: it marks an
// event, and does not take part in the axis ranges.
type vline struct {
	x     float64
	style draw.LineStyle
}

// Plot implements plot.Plotter.
func (v vline) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	x := trX(v.x)
	if x < c.Min.X || x > c.Max.X {
		return
	}
	c.StrokeLine2(v.style, x, c.Min.Y, x, c.Max.Y)
}

// Thumbnail implements plot.Thumbnailer: a short vertical line.
func (v vline) Thumbnail(c *draw.Canvas) {
	x := (c.Min.X + c.Max.X) / 2
	c.StrokeLine2(v.style, x, c.Min.Y, x, c.Max.Y)
}
