package main

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dmlrun/dmlrun/plots"
)

// TestCheckPlotFlag: -plot is checked before a benchmark runs, in both
// commands that take it.
func TestCheckPlotFlag(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "d.png"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{"", ""},
		{filepath.Join(dir, "bw.png"), ""},
		{filepath.Join(dir, "BW.PNG"), ""},
		{"relative.png", ""},
		{filepath.Join(dir, "bw.jpg"), "must end in .png"},
		{filepath.Join(dir, "bw"), "must end in .png"},
		{filepath.Join(dir, "d.png"), "is a directory"},
		{filepath.Join(dir, "missing", "bw.png"), "no such file or directory"},
		{filepath.Join(file, "bw.png"), "is not a directory"},
	} {
		for _, parse := range []func([]string) error{
			func(a []string) error { _, _, err := parseBenchAllReduce(a, &bytes.Buffer{}); return err },
			func(a []string) error { _, _, err := parseBenchCompare(a, &bytes.Buffer{}); return err },
		} {
			err := parse([]string{"-plot", tc.path})
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("-plot %q: %v", tc.path, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "-plot")):
				t.Errorf("-plot %q: %v, want an error naming -plot and saying %q", tc.path, err, tc.want)
			}
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".dmlrun-probe-*")); len(left) > 0 {
		t.Errorf("probe files left: %v", left)
	}
}

// checkPlot decodes the PNG at path and checks its size and that it shows
// something: many colours, and a curve in the first colour of the palette.
func checkPlot(t *testing.T, path string, w, h int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if sz := img.Bounds().Size(); sz != (image.Point{X: w, Y: h}) {
		t.Fatalf("%s is %d×%d pixels, want %d×%d", path, sz.X, sz.Y, w, h)
	}
	curve := color.RGBA{0, 114, 178, 255} // the first curve's colour
	colours, onCurve := map[color.RGBA]bool{}, 0
	for y := range h {
		for x := range w {
			c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			colours[c] = true
			if c == curve {
				onCurve++
			}
		}
	}
	if len(colours) < 50 || onCurve < 20 {
		t.Fatalf("%s: %d colours, %d pixels of the first curve: blank or nearly", path, len(colours), onCurve)
	}
}

// TestBenchAllReducePlot: a short real sweep draws its plot.
func TestBenchAllReducePlot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bw.png")
	out, errOut, err := dmlrun(t, 2*time.Minute, "bench", "allreduce", "-np", "2", "-min-bytes", "8", "-max-bytes", "64K",
		"-iters", "3", "-warmup", "1", "-plot", path)
	if err != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	if !strings.Contains(out, "# plot written to "+path) {
		t.Errorf("stdout does not say where the plot went:\n%s", out)
	}
	checkPlot(t, path, plots.BandwidthWidth, plots.BandwidthHeight)
}
