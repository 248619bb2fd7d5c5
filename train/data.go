package train

import (
	"fmt"
	"math"
)

// Task names: what a label means. They are the values of SyntheticSpec.Task
// and ModelSpec.Output, and what Model.Task returns.
const (
	TaskRegression = "regression" // Y is a real-valued target
	TaskBinary     = "binary"     // Y is 0 or 1
	TaskMulticlass = "multiclass" // Y is a class index 0..K-1
)

// Table holds the rows of a data set that one node parsed: their global row
// indices, their features (dense, row-major) and their labels.
//
//	t, err := f.Read(part.Owns) // only this node's rows
//	x, y := t.Row(i), t.Y[i]    // i is a local index, 0 <= i < t.Len()
type Table struct {
	Source       string    // file path or "synthetic", for error messages
	Features     int       // number of feature columns
	FeatureNames []string  // one name per feature column
	Rows         []int     // global row index of each held row, ascending
	X            []float64 // len(Rows)*Features values, row-major
	Y            []float64 // label per held row: target, or class index 0..K-1

	lines []int // 1-based source line of each held row; nil if none
}

// Len returns the number of rows the table holds.
func (t *Table) Len() int { return len(t.Rows) }

// Row returns the features of local row i (a view into X, not a copy).
func (t *Table) Row(i int) []float64 {
	return t.X[i*t.Features : (i+1)*t.Features : (i+1)*t.Features]
}

// where names local row i for an error message: "data.csv:17" when the source
// line is known, else "synthetic: row 16".
func (t *Table) where(i int) string {
	if t.lines != nil {
		return fmt.Sprintf("%s:%d", t.Source, t.lines[i])
	}
	return fmt.Sprintf("%s: row %d", t.Source, t.Rows[i])
}

// MaxLabel returns the largest label the table holds, or -Inf if it holds no
// rows. A node can allreduce it (max) to learn the number of classes of a file,
// MaxLabel+1, after PrepareLabels(TaskMulticlass, 0).
func (t *Table) MaxLabel() float64 {
	m := math.Inf(-1)
	for _, y := range t.Y {
		m = max(m, y)
	}
	return m
}

// PrepareLabels checks the labels for a task and brings them to the form the
// models expect. Regression accepts any label. Binary accepts 0/1 and -1/+1 and
// maps -1 to 0. Multiclass accepts integers 0..classes-1 (classes <= 0: any
// integer >= 0). The error names the row, e.g.
// `data.csv:17: label 2.5 is not a class index (0..2)`.
func (t *Table) PrepareLabels(task string, classes int) error {
	switch task {
	case TaskRegression:
		return nil
	case TaskBinary:
		for i, y := range t.Y {
			switch y {
			case -1:
				t.Y[i] = 0
			case 0, 1:
			default:
				return fmt.Errorf("%s: label %v is not a binary label (0/1 or -1/+1)", t.where(i), y)
			}
		}
		return nil
	case TaskMulticlass:
		for i, y := range t.Y {
			if y < 0 || y != math.Trunc(y) || (classes > 0 && y >= float64(classes)) {
				if classes > 0 {
					return fmt.Errorf("%s: label %v is not a class index (0..%d)", t.where(i), y, classes-1)
				}
				return fmt.Errorf("%s: label %v is not a class index (an integer >= 0)", t.where(i), y)
			}
		}
		return nil
	}
	return fmt.Errorf("train: unknown task %q (want %s, %s or %s)", task, TaskRegression, TaskBinary, TaskMulticlass)
}

// Moments writes the per-feature sums over the held rows into out, which must
// have 2*Features+1 elements: [Σx_j for each j, Σx_j² for each j, row count].
// Summed over nodes (allreduce), they give MeanStd of the whole data set.
func (t *Table) Moments(out []float64) {
	f := t.Features
	if len(out) != 2*f+1 {
		panic(fmt.Sprintf("train: Moments: out has %d elements, want 2*%d+1", len(out), f))
	}
	clear(out)
	for i := range t.Rows {
		for j, x := range t.Row(i) {
			out[j] += x
			out[f+j] += x * x
		}
	}
	out[2*f] = float64(len(t.Rows))
}

// MeanStd turns moments [Σx (F), Σx² (F), n] (see Table.Moments) into the
// per-feature mean and population standard deviation. A feature whose variance
// is at rounding level (a constant column) gets std 0; with no rows, mean and
// std are all 0. The one-pass formula Σx²/n - mean² loses about
// log10(mean²/var) of the 16 digits: plenty for scaling features.
func MeanStd(moments []float64) (mean, std []float64) {
	if len(moments)%2 != 1 {
		panic(fmt.Sprintf("train: MeanStd: %d moments, want 2*features+1", len(moments)))
	}
	f := len(moments) / 2
	n := moments[2*f]
	mean, std = make([]float64, f), make([]float64, f)
	if n <= 0 {
		return mean, std
	}
	for j := range f {
		m := moments[j] / n
		sq := moments[f+j] / n
		v := sq - m*m
		if v <= 8*0x1p-52*sq { // cancellation noise, not spread
			v = 0
		}
		mean[j], std[j] = m, math.Sqrt(v)
	}
	return mean, std
}

// Standardize replaces every feature x_j by (x_j-mean[j])/std[j], treating a
// std of 0 as 1. Apply the training set's mean and std to the test set too.
func (t *Table) Standardize(mean, std []float64) {
	if len(mean) != t.Features || len(std) != t.Features {
		panic(fmt.Sprintf("train: Standardize: %d means and %d stds for %d features", len(mean), len(std), t.Features))
	}
	for i := range t.Rows {
		x := t.Row(i)
		for j := range x {
			s := std[j]
			if s == 0 {
				s = 1
			}
			x[j] = (x[j] - mean[j]) / s
		}
	}
}
