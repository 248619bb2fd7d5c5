package plots

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"strings"
	"testing"

	"gonum.org/v1/plot"
)

// checkPNG decodes b and checks its size and that it shows something: many
// colours (anti-aliased lines and text), a good share of pixels that are
// not the white background, and at least 20 pixels of each colour in want
// (the curves). It returns how many pixels each colour has.
func checkPNG(t *testing.T, b []byte, w, h int, want ...color.RGBA) map[color.RGBA]int {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if got := img.Bounds().Size(); got.X != w || got.Y != h {
		t.Fatalf("image is %d×%d pixels, want %d×%d", got.X, got.Y, w, h)
	}
	rgba, ok := img.(*image.RGBA)
	if !ok {
		rgba = image.NewRGBA(img.Bounds())
		draw.Draw(rgba, rgba.Bounds(), img, img.Bounds().Min, draw.Src)
	}
	colours := map[color.RGBA]int{}
	for i := 0; i+3 < len(rgba.Pix); i += 4 {
		p := rgba.Pix[i : i+4 : i+4]
		colours[color.RGBA{p[0], p[1], p[2], p[3]}]++
	}
	if len(colours) < 50 {
		t.Errorf("only %d distinct colours: a blank or nearly blank image", len(colours))
	}
	bg := colours[color.RGBA{255, 255, 255, 255}]
	if share := 1 - float64(bg)/float64(w*h); share < 0.01 {
		t.Errorf("only %.1f%% of the pixels are not background", 100*share)
	}
	for _, c := range want {
		if colours[c] < 20 {
			t.Errorf("colour %v: %d pixels, want at least 20 (the curve is missing)", c, colours[c])
		}
	}
	return colours
}

// metricsCSV builds a metrics.csv of n evaluations every 10 steps, a
// decaying loss, and the given world size at each row (the last one
// repeating); cls chooses accuracy, else MSE and R².
func metricsCSV(n int, cls bool, world ...int) string {
	var b strings.Builder
	b.WriteString("step,epoch,train_loss,test_loss,test_mse,test_r2,test_accuracy,world_size,elapsed_s\n")
	for i := range n {
		step := 10 * (i + 1)
		l := 0.6*math.Exp(-float64(step)/80) + 0.1
		ws := world[min(i, len(world)-1)]
		if cls {
			fmt.Fprintf(&b, "%d,1,%g,%g,,,%g,%d,%.3f\n", step, l, 0.9*l, 1-l/2, ws, float64(i)/10)
		} else {
			mse := 1000*math.Exp(-float64(step)/20) + 0.5 // three decades: a log axis
			fmt.Fprintf(&b, "%d,1,%g,%g,%g,%g,,%d,%.3f\n", step, mse, 0.9*mse, 0.9*mse, 1-l, ws, float64(i)/10)
		}
	}
	return b.String()
}

func readRows(t *testing.T, csv string) []MetricsRow {
	t.Helper()
	rows, err := ReadMetrics(strings.NewReader(csv))
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestTrainingPNG(t *testing.T) {
	const header = "step,epoch,train_loss,test_loss,test_mse,test_r2,test_accuracy,world_size,elapsed_s\n"
	trainLoss, testLoss, metric := palette[0], palette[1], palette[2]
	for _, tc := range []struct {
		name          string
		csv           string
		width, height int
		want          []color.RGBA // colours that must be drawn
		absent        []color.RGBA // colours that must not be
	}{
		{name: "classification, a node lost and one back", csv: metricsCSV(40, true, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4),
			want: []color.RGBA{trainLoss, testLoss, metric, shrinkColor, growColor}},
		{name: "regression, log loss axis, R²", csv: metricsCSV(30, false, 2), want: []color.RGBA{trainLoss, testLoss, metric},
			absent: []color.RGBA{shrinkColor, growColor}},
		{name: "one row", csv: header + "400,3,0.107,0.0947,,,0.961,4,2.5\n", want: []color.RGBA{trainLoss, testLoss, metric}},
		{name: "no test metric", csv: header + "10,1,0.6,,,,,2,0.1\n20,1,0.5,,,,,2,0.2\n30,1,0.45,,,,,2,0.3\n",
			want: []color.RGBA{trainLoss}, absent: []color.RGBA{testLoss, metric}},
		{name: "NaN and empty cells", csv: header + "10,1,NaN,0.6,,,0.5,2,0.1\n20,1,0.5,,,,NaN,2,0.2\n30,1,0.45,0.4,,,0.7,,0.3\n40,1,+Inf,0.3,,,0.8,1,0.4\n",
			want: []color.RGBA{trainLoss, testLoss, metric, shrinkColor}},
		{name: "only a metric", csv: header + "10,1,,,,,0.5,2,0.1\n20,1,,,,,0.6,2,0.2\n", want: []color.RGBA{metric}, absent: []color.RGBA{trainLoss}},
		{name: "small", csv: metricsCSV(5, true, 1), width: 400, height: 300, want: []color.RGBA{trainLoss, metric}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Training{Title: "job " + tc.name, Rows: readRows(t, tc.csv), Width: tc.width, Height: tc.height}.PNG()
			if err != nil {
				t.Fatal(err)
			}
			w, h := tc.width, tc.height
			if w == 0 {
				w, h = TrainingWidth, TrainingHeight
			}
			colours := checkPNG(t, b, w, h, tc.want...)
			for _, c := range tc.absent {
				if n := colours[c]; n > 0 {
					t.Errorf("colour %v drawn (%d pixels) though its curve has no data", c, n)
				}
			}
		})
	}
}

func TestTrainingPNGErrors(t *testing.T) {
	allNaN := readRows(t, "step,train_loss,test_loss,test_accuracy\n10,NaN,,\n20,,NaN,\n")
	for _, tc := range []struct {
		name string
		tr   Training
		want string
	}{
		{"no rows", Training{}, "no finite loss or test metric"},
		{"only NaN", Training{Rows: allNaN}, "no finite loss or test metric"},
		{"too small", Training{Rows: allNaN, Width: 10, Height: 10}, "size 10×10 pixels"},
		{"too large", Training{Rows: allNaN, Width: 100000}, "size 100000×750 pixels"},
	} {
		_, err := tc.tr.PNG()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

func TestBandwidthPNG(t *testing.T) {
	sizes := []int64{8, 64, 512, 4096, 32768, 262144, 2097152}
	bw := []float64{0.001, 0.008, 0.06, 0.3, 0.9, 1.5, 1.7}
	scaled := func(f float64) []float64 {
		out := make([]float64, len(bw))
		for i, v := range bw {
			out[i] = v * f
		}
		return out
	}
	var many []Series
	for i := range len(palette) + 2 {
		many = append(many, Series{Name: fmt.Sprint("n=", i), Bytes: sizes, BusBW: scaled(1 + float64(i)/10)})
	}
	for _, tc := range []struct {
		name   string
		series []Series
		want   []color.RGBA
	}{
		{"three systems", []Series{{"dmlrun", sizes, bw}, {"Open MPI", sizes, scaled(0.8)}, {"gloo", sizes, scaled(0.5)}},
			[]color.RGBA{palette[0], palette[1], palette[2]}},
		{"a single system", []Series{{"dmlrun n=2", sizes, bw}}, []color.RGBA{palette[0]}},
		{"one point", []Series{{"dmlrun", []int64{1 << 20}, []float64{1.2}}}, []color.RGBA{palette[0]}},
		{"bad points left out", []Series{{"dmlrun", []int64{8, 64, 512, 4096, 0}, []float64{0, math.NaN(), 0.5, 0.7, 1}},
			{"nothing left", []int64{8}, []float64{-1}}, {"", sizes, scaled(2)}}, []color.RGBA{palette[0], palette[2]}},
		{"more series than colours", many, palette[:3]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Bandwidth{Title: tc.name, Series: tc.series}.PNG()
			if err != nil {
				t.Fatal(err)
			}
			checkPNG(t, b, BandwidthWidth, BandwidthHeight, tc.want...)
		})
	}
}

func TestBandwidthPNGErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    Bandwidth
		want string
	}{
		{"no series", Bandwidth{}, "no positive bandwidth"},
		{"no positive point", Bandwidth{Series: []Series{{"x", []int64{8, 16}, []float64{0, math.Inf(1)}}}}, "no positive bandwidth"},
		{"lengths differ", Bandwidth{Series: []Series{{"gloo", []int64{8, 16}, []float64{1}}}}, `series "gloo" has 2 sizes but 1 bandwidths`},
		{"bad size", Bandwidth{Width: -1, Series: []Series{{"x", []int64{8}, []float64{1}}}}, "size -1×650"},
	} {
		_, err := tc.b.PNG()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

// TestLossAxis: a loss over two decades or more gets a log axis, labelled
// in losses at powers of ten; a narrower one keeps a linear axis.
func TestLossAxis(t *testing.T) {
	for _, tc := range []struct {
		name string
		csv  string
		log  bool
	}{
		{"regression from a large MSE", metricsCSV(30, false, 1), true},
		{"classification", metricsCSV(30, true, 1), false},
		{"a loss of zero", "step,train_loss\n1,10\n2,0\n", false},
	} {
		p, err := Training{Rows: readRows(t, tc.csv)}.lossPanel()
		if err != nil {
			t.Fatal(err)
		}
		_, isLog := p.Y.Tick.Marker.(decadeTicks)
		if isLog != tc.log {
			t.Errorf("%s: log axis %v, want %v", tc.name, isLog, tc.log)
		}
		if isLog && (p.Y.Min != math.Floor(p.Y.Min) || p.Y.Max != math.Ceil(p.Y.Max)) {
			t.Errorf("%s: log axis from %g to %g: want whole decades", tc.name, p.Y.Min, p.Y.Max)
		}
	}
}

func TestTicks(t *testing.T) {
	labels := func(ticks []plot.Tick) string {
		var l []string
		for _, t := range ticks {
			if t.Label != "" {
				l = append(l, t.Label)
			}
		}
		return strings.Join(l, " ")
	}
	for _, tc := range []struct {
		name   string
		ticker plot.Ticker
		lo, hi float64
		want   string
	}{
		{"decades", decadeTicks{}, -3, 1, "0.001 0.01 0.1 1 10"},
		{"one decade", decadeTicks{}, 0, 1, "1 10"},
		{"bytes 8 B to 64 MiB, every third power", byteTicks{}, 2.5, 26.5, "8 B 64 B 512 B 4 KiB 32 KiB 256 KiB 2 MiB 16 MiB"},
		{"bytes, one size", byteTicks{}, 19.5, 20.5, "1 MiB"},
		{"bytes, few", byteTicks{}, 9, 12, "512 B 1 KiB 2 KiB 4 KiB"},
		{"empty range", byteTicks{}, 1, 0, ""},
		{"NaN", decadeTicks{}, math.NaN(), 1, ""},
	} {
		if got := labels(tc.ticker.Ticks(tc.lo, tc.hi)); got != tc.want {
			t.Errorf("%s: labels %q, want %q", tc.name, got, tc.want)
		}
	}
	if n := len(decadeTicks{}.Ticks(-1, 1)); n != 19 { // 0.1..0.9, 1..9, 10
		t.Errorf("%d ticks from 0.1 to 10, want 19", n)
	}
}
