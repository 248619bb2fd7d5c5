package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dmlrun/dmlrun/plots"
	"github.com/dmlrun/dmlrun/train"
)

func TestMetricsColumns(t *testing.T) {
	auc := 0.875
	binary := train.Metrics{N: 10, Loss: 0.25, Accuracy: 0.75, Class: &train.ClassReport{
		Precision: []float64{0.5, 1}, Recall: []float64{1, 0.5}, F1: []float64{2.0 / 3, 2.0 / 3}, MacroF1: 2.0 / 3, AUC: &auc}}
	multi := train.Metrics{N: 10, Loss: 0.5, Accuracy: 0.5, Class: &train.ClassReport{
		Precision: []float64{0.5, 0, 1}, Recall: []float64{1, 0, 0.25}, F1: []float64{2.0 / 3, 0, 0.4}, MacroF1: 0.3}}
	reg := train.Metrics{N: 10, Loss: 2, MSE: 2, R2: 0.5}
	const fixed = "step,epoch,train_loss,test_loss,test_mse,test_r2,test_accuracy,world_size,elapsed_s,macro_f1,auc"
	for _, c := range []struct {
		name    string
		classes int
		m       train.Metrics
		header  string
		line    string
	}{
		{"binary", 2, binary, fixed + ",precision_0,recall_0,f1_0,precision_1,recall_1,f1_1",
			"10,1,0.3,0.25,,,0.75,3,1.500,0.6666666666666666,0.875,0.5,1,0.6666666666666666,1,0.5,0.6666666666666666"},
		{"multiclass", 3, multi, fixed + ",precision_0,recall_0,f1_0,precision_1,recall_1,f1_1,precision_2,recall_2,f1_2",
			"10,1,0.3,0.5,,,0.5,3,1.500,0.3,,0.5,1,0.6666666666666666,0,0,0,1,0.25,0.4"},
		{"regression", 0, reg, fixed, "10,1,0.3,2,2,0.5,,3,1.500,,"},
		{"many classes", train.MaxConfusionClasses + 1, train.Metrics{N: 1, Class: &train.ClassReport{MacroF1: 1}}, fixed, "10,1,0.3,0,,,0,3,1.500,1,"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			w, err := newMetricsWriter(dir, false, c.classes, false)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.write(10, 1, 0.3, c.m, c.classes == 0, 3, 1500*time.Millisecond, -1); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(filepath.Join(dir, "metrics.csv"))
			if want := c.header + "\n" + c.line + "\n"; string(b) != want {
				t.Errorf("metrics.csv\n%s\nwant\n%s", b, want)
			}
		})
	}
}

// TestMetricsAppendKeepsHeader: a writer appending to a metrics.csv (a new
// rank 0, a resumed run) writes the columns of its header, so that every
// line has the header's fields, even a header of an older version.
func TestMetricsAppendKeepsHeader(t *testing.T) {
	dir := t.TempDir()
	old := "step,epoch,train_loss,test_loss,test_mse,test_r2,test_accuracy,world_size,elapsed_s\n10,0,0.5,0.5,,,0.5,2,0.100\n"
	if err := os.WriteFile(filepath.Join(dir, "metrics.csv"), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := newMetricsWriter(dir, true, 2, false)
	if err != nil {
		t.Fatal(err)
	}
	m := train.Metrics{N: 4, Loss: 0.25, Accuracy: 0.75, Class: &train.ClassReport{Precision: []float64{1, 1}, Recall: []float64{1, 1}, F1: []float64{1, 1}}}
	if err := w.write(20, 1, 0.25, m, false, 1, time.Second, -1); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "metrics.csv"))
	if want := old + "20,1,0.25,0.25,,,0.75,1,1.000\n"; string(b) != want {
		t.Errorf("metrics.csv\n%s\nwant\n%s", b, want)
	}
	rows, err := plots.ReadMetrics(strings.NewReader(string(b)))
	if err != nil || len(rows) != 2 || rows[1].TestAccuracy != 0.75 {
		t.Errorf("read back: %+v, %v", rows, err)
	}
}
