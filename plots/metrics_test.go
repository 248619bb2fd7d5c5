package plots

import (
	"math"
	"strings"
	"testing"
)

// same compares rows, NaN equal to NaN.
func same(a, b []MetricsRow) bool {
	if len(a) != len(b) {
		return false
	}
	eq := func(x, y float64) bool { return x == y || math.IsNaN(x) && math.IsNaN(y) }
	for i := range a {
		x, y := a[i], b[i]
		if x.Step != y.Step || x.WorldSize != y.WorldSize || !eq(x.TrainLoss, y.TrainLoss) || !eq(x.TestLoss, y.TestLoss) ||
			!eq(x.TestMSE, y.TestMSE) || !eq(x.TestR2, y.TestR2) || !eq(x.TestAccuracy, y.TestAccuracy) {
			return false
		}
	}
	return true
}

func TestReadMetrics(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name, csv string
		want      []MetricsRow
	}{
		{"as dmlrun writes it", "step,epoch,train_loss,test_loss,test_mse,test_r2,test_accuracy,world_size,elapsed_s\n" +
			"50,1,0.5,0.4,,,0.9,4,0.1\n100,2,0.25,0.2,,,0.95,3,0.2\n",
			[]MetricsRow{{50, 0.5, 0.4, nan, nan, 0.9, 4, -1}, {100, 0.25, 0.2, nan, nan, 0.95, 3, -1}}},
		{"header only", "step,train_loss\n", nil},
		{"columns by name, in any order, BOM, spaces, extra columns", "\ufeffworld_size, step ,test_r2,future\n2,7,0.5,x\n",
			[]MetricsRow{{7, nan, nan, nan, 0.5, nan, 2, -1}}},
		{"NaN and empty cells", "step,train_loss,test_loss,world_size\n1,NaN,,\n", []MetricsRow{{1, nan, nan, nan, nan, nan, 0, -1}}},
		{"appended after a failure and a resume: sorted, last write wins", "step,train_loss,world_size\n" +
			"10,1,4\n20,2,4\n30,3,4\n20,2.5,3\n30,3.5,3\n40,4,3\n",
			[]MetricsRow{{10, 1, nan, nan, nan, nan, 4, -1}, {20, 2.5, nan, nan, nan, nan, 3, -1}, {30, 3.5, nan, nan, nan, nan, 3, -1}, {40, 4, nan, nan, nan, nan, 3, -1}}},
	} {
		got, err := ReadMetrics(strings.NewReader(tc.csv))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !same(got, tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestReadMetricsErrors(t *testing.T) {
	for _, tc := range []struct{ name, csv, want string }{
		{"empty", "", "empty file, no header"},
		{"no step column", "epoch,train_loss\n1,2\n", "no step column"},
		{"torn line", "step,train_loss,world_size\n10,1,4\n20,2\n", "line 3"},
		{"step not a number", "step,train_loss\n10,1\nten,2\n", `line 3: column step: "ten" is not a step number`},
		{"value not a number", "step,train_loss\n10,abc\n", `line 2: column train_loss: "abc" is not a number`},
		{"negative world size", "step,world_size\n10,-1\n", `column world_size: "-1"`},
	} {
		_, err := ReadMetrics(strings.NewReader(tc.csv))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}
