package data

import (
	"fmt"
	"math"
	"sync/atomic"
)

// Task names: what a label means. They are the values of SyntheticSpec.Task
// and of a model's output, and what train.Model.Task returns.
const (
	TaskRegression = "regression" // Y is a real-valued target
	TaskBinary     = "binary"     // Y is 0 or 1
	TaskMulticlass = "multiclass" // Y is a class index 0..K-1
)

// Table holds a contiguous run of rows of a data set, rows First ..
// First+Len()-1: usually one virtual shard. Features are dense and row-major,
// as float64 in X or, for data.dtype float32, as float32 in X32 (the other
// is nil). Storage is sized exactly when the table is made; nothing is kept
// per row but the values.
//
//	buf := make([]float64, t.Features)
//	x, y := t.RowTo(i, buf), t.Y[i] // i is a local index, 0 <= i < t.Len()
type Table struct {
	Source       string    // file path(s) or "synthetic", for error messages
	Features     int       // number of feature columns
	FeatureNames []string  // one name per feature column (shared between tables: do not modify)
	First        int       // global index of local row 0
	X            []float64 // Len()*Features values, row-major; nil when X32 holds them
	X32          []float32 // the same values as float32 (data.dtype float32); nil otherwise
	Y            []float64 // label per row: target, or class index 0..K-1

	locate func(row int) string // names a global row for an error message; nil: "source: row N"
	over32 atomic.Int64         // 1 + the first value stored that float32 cannot hold (index into X32); 0: none
}

// NewTable returns a table for rows first..first+rows-1 with its storage
// allocated: float64 features, or float32 when f32 is set.
func NewTable(source string, names []string, first, rows int, f32 bool) *Table {
	t := &Table{Source: source, Features: len(names), FeatureNames: names, First: first, Y: make([]float64, rows)}
	if f32 {
		t.X32 = make([]float32, rows*len(names))
	} else {
		t.X = make([]float64, rows*len(names))
	}
	return t
}

// Len returns the number of rows the table holds.
func (t *Table) Len() int { return len(t.Y) }

// Float32 reports whether the features are stored as float32.
func (t *Table) Float32() bool { return t.X32 != nil }

// Bytes returns the bytes the table's values take in memory.
func (t *Table) Bytes() int64 { return int64(len(t.X))*8 + int64(len(t.X32))*4 + int64(len(t.Y))*8 }

// Row returns the features of local row i as a view into X. It panics for a
// float32 table: use RowTo, which works for both.
func (t *Table) Row(i int) []float64 {
	if t.X == nil && t.X32 != nil {
		panic("data: Row on a float32 table: use RowTo")
	}
	return t.X[i*t.Features : (i+1)*t.Features : (i+1)*t.Features]
}

// RowTo returns the features of local row i: a view into X for a float64
// table, or the float32 values converted into buf (Features long) otherwise.
// It does not allocate.
func (t *Table) RowTo(i int, buf []float64) []float64 {
	if t.X32 == nil {
		return t.Row(i)
	}
	x := t.X32[i*t.Features : (i+1)*t.Features]
	buf = buf[:len(x)]
	for j, v := range x {
		buf[j] = float64(v)
	}
	return buf
}

// set stores feature j of local row i.
func (t *Table) set(i, j int, v float64) {
	if t.X32 != nil {
		k := i*t.Features + j
		t.X32[k] = float32(v)
		if v > math.MaxFloat32 || v < -math.MaxFloat32 {
			t.noteOver32(k)
		}
	} else {
		t.X[i*t.Features+j] = v
	}
}

// noteOver32 remembers that value k of X32 overflowed, keeping the first
// (pieces of one table may be parsed side by side).
func (t *Table) noteOver32(k int) {
	for {
		old := t.over32.Load()
		if old != 0 && old <= int64(k)+1 || t.over32.CompareAndSwap(old, int64(k)+1) {
			return
		}
	}
}

// checkFloat32 reports a value that a float32 table could not hold.
func (t *Table) checkFloat32() error {
	k := int(t.over32.Load())
	if k == 0 {
		return nil
	}
	i, j := (k-1)/t.Features, (k-1)%t.Features
	return fmt.Errorf("%s: feature %q: a value beyond ±3.4e38 does not fit data.dtype float32", t.where(i), t.FeatureNames[j])
}

// finishTables checks tables that a reader filled.
func finishTables(tables []*Table) error {
	for _, t := range tables {
		if err := t.checkFloat32(); err != nil {
			return err
		}
	}
	return nil
}

// where names local row i for an error message: "data.csv:17" when the
// source can find the line again, else "synthetic: row 16".
func (t *Table) where(i int) string {
	if t.locate != nil {
		return t.locate(t.First + i)
	}
	return fmt.Sprintf("%s: row %d", t.Source, t.First+i)
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
	return fmt.Errorf("data: unknown task %q (want %s, %s or %s)", task, TaskRegression, TaskBinary, TaskMulticlass)
}

// AddMoments adds the per-feature sums over the table's rows into out, which
// must have 2*Features+1 elements: [Σx_j for each j, Σx_j² for each j, row
// count]. Summed over tables and nodes (allreduce), they give MeanStd of the
// whole data set.
func (t *Table) AddMoments(out []float64) {
	f := t.Features
	if len(out) != 2*f+1 {
		panic(fmt.Sprintf("data: AddMoments: out has %d elements, want 2*%d+1", len(out), f))
	}
	buf := make([]float64, f)
	for i := range t.Len() {
		for j, x := range t.RowTo(i, buf) {
			out[j] += x
			out[f+j] += x * x
		}
	}
	out[2*f] += float64(t.Len())
}

// MeanStd turns moments [Σx (F), Σx² (F), n] (see Table.AddMoments) into the
// per-feature mean and population standard deviation. A feature whose variance
// is at rounding level (a constant column) gets std 0; with no rows, mean and
// std are all 0. The one-pass formula Σx²/n - mean² loses about
// log10(mean²/var) of the 16 digits: plenty for scaling features.
func MeanStd(moments []float64) (mean, std []float64) {
	if len(moments)%2 != 1 {
		panic(fmt.Sprintf("data: MeanStd: %d moments, want 2*features+1", len(moments)))
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
		panic(fmt.Sprintf("data: Standardize: %d means and %d stds for %d features", len(mean), len(std), t.Features))
	}
	buf := make([]float64, t.Features)
	for i := range t.Len() {
		x := t.RowTo(i, buf)
		for j := range x {
			s := std[j]
			if s == 0 {
				s = 1
			}
			t.set(i, j, (x[j]-mean[j])/s)
		}
	}
}
