package node

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dmlrun/dmlrun/plots"
	"github.com/dmlrun/dmlrun/train"
)

// TestSaveTrainingPlot writes metrics.csv with the real writer (a rank 0
// that fails after two evaluations, and the next that appends), then draws
// training.png from it.
func TestSaveTrainingPlot(t *testing.T) {
	for _, reg := range []bool{false, true} {
		dir := t.TempDir()
		for i, world := range []int{3, 2} {
			m, err := newMetricsWriter(dir, i > 0, 2, false)
			if err != nil {
				t.Fatal(err)
			}
			for s := range 2 {
				step := 10 * (2*i + s + 1)
				e := train.Metrics{Loss: 1 / float64(step), MSE: 2 / float64(step), R2: 0.5, Accuracy: 0.8}
				if err := m.write(step, 1, 1.1/float64(step), e, reg, world, time.Second, -1); err != nil {
					t.Fatal(err)
				}
			}
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
		}
		path, err := saveTrainingPlot(dir, "job", -1)
		if err != nil {
			t.Fatal(err)
		}
		if path != filepath.Join(dir, "training.png") {
			t.Fatalf("plot written to %s", path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if sz := img.Bounds().Size(); sz.X != plots.TrainingWidth || sz.Y != plots.TrainingHeight {
			t.Fatalf("%s is %v pixels", path, sz)
		}
		if left, _ := filepath.Glob(filepath.Join(dir, ".training.png.tmp-*")); len(left) > 0 {
			t.Fatalf("temporary files left: %v", left)
		}
	}
}

// TestSaveTrainingPlotErrors: a missing or malformed metrics.csv is an
// error that names the plot and the file it comes from.
func TestSaveTrainingPlotErrors(t *testing.T) {
	for _, tc := range []struct {
		name, metrics string // metrics: "" for no file
		want          []string
	}{
		{"no metrics.csv", "", []string{"training.png", "metrics.csv", "no such file"}},
		{"malformed", "step,train_loss\n10,x\n", []string{"drawing", "training.png from", "metrics.csv", `line 2: column train_loss: "x"`}},
		{"no rows", "step,train_loss\n", []string{"training.png", "no finite loss"}},
	} {
		dir := t.TempDir()
		if tc.metrics != "" {
			if err := os.WriteFile(filepath.Join(dir, "metrics.csv"), []byte(tc.metrics), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		_, err := saveTrainingPlot(dir, "job", -1)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v, want an error containing %q", tc.name, err, w)
			}
		}
		if _, serr := os.Stat(filepath.Join(dir, "training.png")); serr == nil {
			t.Errorf("%s: training.png written although drawing failed", tc.name)
		}
	}
}
