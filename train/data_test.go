package train

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestSyntheticRowsArePure(t *testing.T) {
	for _, spec := range []SyntheticSpec{
		{Task: TaskRegression, Samples: 50, Features: 3, Noise: 0.1, Seed: 1},
		{Task: TaskBinary, Samples: 50, Features: 3, Noise: 0.1, Seed: 2},
		{Task: TaskMulticlass, Samples: 50, Features: 3, Classes: 4, Noise: 0.1, Seed: 3},
	} {
		all, err := Synthetic(spec, nil)
		if err != nil {
			t.Fatal(err)
		}
		if all.Len() != spec.NumRows() {
			t.Fatalf("%s: %d rows, want %d", spec.Task, all.Len(), spec.NumRows())
		}
		for _, i := range []int{0, 17, 49} {
			one, err := Synthetic(spec, func(r int) bool { return r == i })
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(one.Rows, []int{i}) || !slices.Equal(one.Row(0), all.Row(i)) || one.Y[0] != all.Y[i] {
				t.Errorf("%s row %d alone: %v %v, among all: %v %v", spec.Task, i, one.Row(0), one.Y, all.Row(i), all.Y[i])
			}
		}
		seen := map[float64]int{}
		for _, y := range all.Y {
			seen[y]++
		}
		if err := all.PrepareLabels(spec.Task, spec.NumClasses()); err != nil {
			t.Errorf("%s: labels: %v", spec.Task, err)
		}
		if spec.Task != TaskRegression && len(seen) < 2 {
			t.Errorf("%s: only labels %v", spec.Task, seen)
		}
		other := spec
		other.Seed++
		diff, _ := Synthetic(other, nil)
		if slices.Equal(diff.X, all.X) || slices.Equal(diff.Y, all.Y) && spec.Task == TaskRegression {
			t.Errorf("%s: seeds %d and %d give the same data", spec.Task, spec.Seed, other.Seed)
		}
		shifted := spec
		shifted.Offset, shifted.Samples = 10, 5
		test, _ := Synthetic(shifted, nil)
		if !slices.Equal(test.Row(0), all.Row(10)) {
			t.Errorf("%s: Offset 10 row 0 is not row 10", spec.Task)
		}
	}
	if _, err := Synthetic(SyntheticSpec{Task: TaskMulticlass, Samples: 5, Features: 2, Classes: 1}, nil); err == nil ||
		!strings.Contains(err.Error(), "classes 1") {
		t.Errorf("multiclass with 1 class: %v", err)
	}
}

func TestMomentsOverHalves(t *testing.T) {
	spec := SyntheticSpec{Task: TaskRegression, Samples: 101, Features: 3, Seed: 9}
	all, _ := Synthetic(spec, nil)
	for j := range all.Rows { // feature 2 constant, feature 1 shifted
		all.X[j*3+2] = 5
		all.X[j*3+1] += 1000
	}
	lo, hi := &Table{Features: 3}, &Table{Features: 3}
	n := 40
	lo.Rows, lo.X = all.Rows[:n], all.X[:n*3]
	hi.Rows, hi.X = all.Rows[n:], all.X[n*3:]
	a, b, m := make([]float64, 7), make([]float64, 7), make([]float64, 7)
	lo.Moments(a)
	hi.Moments(b)
	all.Moments(m)
	for i := range a {
		a[i] += b[i]
	}
	mean1, std1 := MeanStd(a)
	mean2, std2 := MeanStd(m)
	// Feature 1 (mean 1000, std 1) loses digits to Σx²/n - mean²: 1e-9.
	if relErr(mean1, mean2) > 1e-12 || relErr(std1[:1], std2[:1]) > 1e-12 || relErr(std1, std2) > 1e-9 {
		t.Errorf("halves: mean %v std %v; all: mean %v std %v", mean1, std1, mean2, std2)
	}
	if std2[2] != 0 || mean2[2] != 5 {
		t.Errorf("constant feature: mean %v std %v, want 5 and 0", mean2[2], std2[2])
	}
	all.Standardize(mean2, std2)
	all.Moments(m)
	mean, std := MeanStd(m)
	for j := range 2 {
		if math.Abs(mean[j]) > 1e-9 || math.Abs(std[j]-1) > 1e-9 {
			t.Errorf("feature %d after Standardize: mean %v std %v", j, mean[j], std[j])
		}
	}
	if mean[2] != 0 {
		t.Errorf("constant feature after Standardize: mean %v, want 0", mean[2])
	}
}
