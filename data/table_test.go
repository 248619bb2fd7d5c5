package data

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"
)

var syntheticSpecs = []SyntheticSpec{
	{Task: TaskRegression, Samples: 50, Features: 3, Noise: 0.1, Seed: 1},
	{Task: TaskBinary, Samples: 50, Features: 3, Noise: 0.1, Seed: 2},
	{Task: TaskMulticlass, Samples: 50, Features: 3, Classes: 4, Noise: 0.1, Seed: 3},
}

func TestSyntheticRowsArePure(t *testing.T) {
	for _, spec := range syntheticSpecs {
		t.Run(spec.Task, func(t *testing.T) {
			all, err := Synthetic(spec, 0, spec.Samples, false)
			if err != nil {
				t.Fatal(err)
			}
			if all.Len() != spec.NumRows() || all.First != 0 || all.Features != spec.Features || len(all.X) != spec.Samples*spec.Features || all.X32 != nil {
				t.Fatalf("%d rows from %d, %d features, %d values; want %d rows from 0, %d features",
					all.Len(), all.First, all.Features, len(all.X), spec.NumRows(), spec.Features)
			}
			if !slices.Equal(all.FeatureNames, []string{"x1", "x2", "x3"}) {
				t.Errorf("feature names %v", all.FeatureNames)
			}
			for _, i := range []int{0, 17, 49} {
				one, err := Synthetic(spec, i, 1, false)
				if err != nil {
					t.Fatal(err)
				}
				if one.First != i || one.Len() != 1 || !slices.Equal(one.Row(0), all.Row(i)) || one.Y[0] != all.Y[i] {
					t.Errorf("row %d alone: first %d, %v %v; among all: %v %v", i, one.First, one.Row(0), one.Y, all.Row(i), all.Y[i])
				}
			}
			for _, r := range []struct{ first, rows int }{{0, 0}, {0, 50}, {10, 5}, {49, 1}, {3, 40}} {
				sub, err := Synthetic(spec, r.first, r.rows, false)
				if err != nil {
					t.Fatalf("rows %d+%d: %v", r.first, r.rows, err)
				}
				end := r.first + r.rows
				if sub.First != r.first || !slices.Equal(sub.X, all.X[r.first*spec.Features:end*spec.Features]) || !slices.Equal(sub.Y, all.Y[r.first:end]) {
					t.Errorf("rows %d+%d differ from the same rows of the whole", r.first, r.rows)
				}
				f32, err := Synthetic(spec, r.first, r.rows, true)
				if err != nil {
					t.Fatal(err)
				}
				if !f32.Float32() || f32.X != nil || len(f32.X32) != len(sub.X) || !slices.Equal(f32.Y, sub.Y) {
					t.Fatalf("rows %d+%d as float32: X %d X32 %d values, labels equal %v", r.first, r.rows, len(f32.X), len(f32.X32), slices.Equal(f32.Y, sub.Y))
				}
				for k, x := range sub.X {
					if f32.X32[k] != float32(x) {
						t.Fatalf("rows %d+%d: float32 value %d is %v, want float32(%v)", r.first, r.rows, k, f32.X32[k], x)
					}
				}
				buf := make([]float64, spec.Features)
				for i := range f32.Len() {
					if !closeTo(f32.RowTo(i, buf), sub.Row(i), true) || !slices.Equal(sub.RowTo(i, buf), sub.Row(i)) {
						t.Fatalf("rows %d+%d: RowTo(%d) differs from Row", r.first, r.rows, i)
					}
				}
			}
			for _, r := range []struct{ first, rows int }{{-1, 2}, {0, -1}, {45, 6}, {50, 1}} {
				if _, err := Synthetic(spec, r.first, r.rows, false); err == nil {
					t.Errorf("rows %d+%d of %d: no error", r.first, r.rows, spec.Samples)
				}
			}

			// The source: one table per virtual shard, the rows of the whole.
			src, err := NewSynthetic(spec, 7, false)
			if err != nil {
				t.Fatal(err)
			}
			s := src.Sharding()
			if src.Rows() != spec.Samples || s.Rows() != spec.Samples || s.Shards() != 7 || !slices.Equal(src.FeatureNames(), all.FeatureNames) {
				t.Fatalf("source of %d rows in %d shards, names %v", src.Rows(), s.Shards(), src.FeatureNames())
			}
			shards := []int{0, 2, 3, 6}
			tables, err := src.ReadShards(context.Background(), shards)
			if err != nil {
				t.Fatal(err)
			}
			if len(tables) != len(shards) {
				t.Fatalf("ReadShards(%v): %d tables", shards, len(tables))
			}
			for k, tab := range tables {
				lo, hi := s.ShardRows(shards[k])
				if s.ShardOfTable(tab) != shards[k] || !slices.Equal(tab.X, all.X[lo*spec.Features:hi*spec.Features]) || !slices.Equal(tab.Y, all.Y[lo:hi]) {
					t.Errorf("shard %d: rows %d+%d, not rows %d..%d of the whole", shards[k], tab.First, tab.Len(), lo, hi-1)
				}
			}
			if _, err := src.ReadShards(context.Background(), []int{3, 2}); err == nil {
				t.Error("ReadShards of descending shards: no error")
			}

			seen := map[float64]int{}
			for _, y := range all.Y {
				seen[y]++
			}
			if err := all.PrepareLabels(spec.Task, spec.NumClasses()); err != nil {
				t.Errorf("labels: %v", err)
			}
			if spec.Task != TaskRegression && len(seen) < 2 {
				t.Errorf("only labels %v", seen)
			}
			other := spec
			other.Seed++
			diff, _ := Synthetic(other, 0, other.Samples, false)
			if slices.Equal(diff.X, all.X) || slices.Equal(diff.Y, all.Y) && spec.Task == TaskRegression {
				t.Errorf("seeds %d and %d give the same data", spec.Seed, other.Seed)
			}
			shifted := spec
			shifted.Offset, shifted.Samples = 10, 5
			test, _ := Synthetic(shifted, 0, shifted.Samples, false)
			if !slices.Equal(test.Row(0), all.Row(10)) || test.Y[4] != all.Y[14] {
				t.Errorf("Offset 10 row 0 is not row 10")
			}
		})
	}
}

func TestSyntheticValidate(t *testing.T) {
	ok := SyntheticSpec{Task: TaskRegression, Samples: 5, Features: 2}
	for _, c := range []struct {
		name string
		edit func(*SyntheticSpec)
		want string // "" for valid
	}{
		{"regression", func(s *SyntheticSpec) {}, ""},
		{"binary", func(s *SyntheticSpec) { s.Task = TaskBinary }, ""},
		{"binary of 2 classes", func(s *SyntheticSpec) { s.Task, s.Classes = TaskBinary, 2 }, ""},
		{"multiclass", func(s *SyntheticSpec) { s.Task, s.Classes = TaskMulticlass, 3 }, ""},
		{"no rows", func(s *SyntheticSpec) { s.Samples = 0 }, ""},
		{"unknown task", func(s *SyntheticSpec) { s.Task = "ranking" }, `task "ranking"`},
		{"no task", func(s *SyntheticSpec) { s.Task = "" }, `task ""`},
		{"negative samples", func(s *SyntheticSpec) { s.Samples = -1 }, "samples -1"},
		{"no features", func(s *SyntheticSpec) { s.Features = 0 }, "features 0"},
		{"multiclass of 1 class", func(s *SyntheticSpec) { s.Task, s.Classes = TaskMulticlass, 1 }, "classes 1"},
		{"multiclass without classes", func(s *SyntheticSpec) { s.Task = TaskMulticlass }, "classes 0"},
		{"binary of 3 classes", func(s *SyntheticSpec) { s.Task, s.Classes = TaskBinary, 3 }, "classes 3"},
		{"regression with classes", func(s *SyntheticSpec) { s.Classes = 2 }, "classes 2"},
		{"negative noise", func(s *SyntheticSpec) { s.Noise = -0.5 }, "noise -0.5"},
		{"NaN noise", func(s *SyntheticSpec) { s.Noise = math.NaN() }, "noise NaN"},
		{"negative offset", func(s *SyntheticSpec) { s.Offset = -3 }, "offset -3"},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec := ok
			c.edit(&spec)
			errs := map[string]error{"Validate": spec.Validate()}
			_, errs["Synthetic"] = Synthetic(spec, 0, 0, false)
			_, errs["NewSynthetic"] = NewSynthetic(spec, 0, false)
			for what, err := range errs {
				switch {
				case c.want == "" && err != nil:
					t.Errorf("%s(%+v): %v", what, spec, err)
				case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "synthetic: ")):
					t.Errorf("%s(%+v): error %v, want one naming %q", what, spec, err, c.want)
				}
			}
		})
	}
}

// momentsRelErr returns the largest relative difference between a and b.
func momentsRelErr(a, b []float64) float64 {
	e := 0.0
	for i := range a {
		e = max(e, math.Abs(a[i]-b[i])/max(math.Abs(b[i]), 1e-300))
	}
	return e
}

func TestMomentsOverHalves(t *testing.T) {
	spec := SyntheticSpec{Task: TaskRegression, Samples: 101, Features: 3, Seed: 9}
	all, _ := Synthetic(spec, 0, spec.Samples, false)
	lo, _ := Synthetic(spec, 0, 40, false)
	hi, _ := Synthetic(spec, 40, spec.Samples-40, false)
	for _, tab := range []*Table{all, lo, hi} { // feature 2 constant, feature 1 shifted
		for i := range tab.Len() {
			tab.X[i*3+2] = 5
			tab.X[i*3+1] += 1000
		}
	}
	m := make([]float64, 7)
	halves := make([]float64, 7)
	lo.AddMoments(halves)
	hi.AddMoments(halves)
	all.AddMoments(m)
	if halves[6] != 101 || m[6] != 101 {
		t.Errorf("row counts: halves %v, all %v, want 101", halves[6], m[6])
	}
	mean1, std1 := MeanStd(halves)
	mean2, std2 := MeanStd(m)
	// Feature 1 (mean 1000, std 1) loses digits to Σx²/n - mean²: 1e-9.
	if momentsRelErr(mean1, mean2) > 1e-12 || momentsRelErr(std1[:1], std2[:1]) > 1e-12 || momentsRelErr(std1, std2) > 1e-9 {
		t.Errorf("halves: mean %v std %v; all: mean %v std %v", mean1, std1, mean2, std2)
	}
	if std2[2] != 0 || mean2[2] != 5 {
		t.Errorf("constant feature: mean %v std %v, want 5 and 0", mean2[2], std2[2])
	}

	// AddMoments adds (it does not clear): twice the table gives twice the
	// sums, up to rounding.
	twice := slices.Clone(m)
	all.AddMoments(twice)
	for i := range m {
		if math.Abs(twice[i]-2*m[i]) > 1e-12*math.Abs(2*m[i]) {
			t.Errorf("AddMoments into its own sums: moment %d is %v, want %v", i, twice[i], 2*m[i])
		}
	}

	all.Standardize(mean2, std2)
	after := make([]float64, 7)
	all.AddMoments(after)
	mean, std := MeanStd(after)
	for j := range 2 {
		if math.Abs(mean[j]) > 1e-9 || math.Abs(std[j]-1) > 1e-9 {
			t.Errorf("feature %d after Standardize: mean %v std %v", j, mean[j], std[j])
		}
	}
	if mean[2] != 0 {
		t.Errorf("constant feature after Standardize: mean %v, want 0", mean[2])
	}

	// No rows: mean and std 0.
	if mean, std := MeanStd(make([]float64, 7)); slices.ContainsFunc(append(mean, std...), func(x float64) bool { return x != 0 }) {
		t.Errorf("MeanStd of no rows: mean %v std %v", mean, std)
	}
}

func TestStandardizeFloat32(t *testing.T) {
	spec := SyntheticSpec{Task: TaskRegression, Samples: 200, Features: 3, Seed: 4}
	t64, _ := Synthetic(spec, 0, spec.Samples, false)
	t32, _ := Synthetic(spec, 0, spec.Samples, true)
	m64, m32 := make([]float64, 7), make([]float64, 7)
	t64.AddMoments(m64)
	t32.AddMoments(m32)
	if momentsRelErr(m32, m64) > 1e-5 {
		t.Errorf("moments of float32 table %v, of float64 %v", m32, m64)
	}
	mean, std := MeanStd(m32)
	std[2] = 0 // a constant column's std: divide by 1
	before := slices.Clone(t32.X32)
	t32.Standardize(mean, std)
	if t32.X != nil || len(t32.X32) != len(before) {
		t.Fatalf("after Standardize: X %d values, X32 %d, want X32 %d", len(t32.X), len(t32.X32), len(before))
	}
	for k, x := range before {
		j := k % 3
		s := std[j]
		if s == 0 {
			s = 1
		}
		if want := float32((float64(x) - mean[j]) / s); t32.X32[k] != want {
			t.Fatalf("value %d (feature %d): %v, want %v", k, j, t32.X32[k], want)
		}
	}
	after := make([]float64, 7)
	t32.AddMoments(after)
	mean, std = MeanStd(after)
	for j := range 2 {
		if math.Abs(mean[j]) > 1e-6 || math.Abs(std[j]-1) > 1e-6 {
			t.Errorf("feature %d after Standardize: mean %v std %v", j, mean[j], std[j])
		}
	}
}

func TestPrepareLabels(t *testing.T) {
	spec := SyntheticSpec{Task: TaskRegression, Samples: 20, Features: 1, Seed: 5}
	for _, c := range []struct {
		name    string
		task    string
		classes int
		y       []float64 // labels of rows 10..13
		want    []float64 // after, when no error
		wantErr string
	}{
		{name: "regression keeps any label", task: TaskRegression, y: []float64{-1, 2.5, 1e9, 0}, want: []float64{-1, 2.5, 1e9, 0}},
		{name: "binary 0/1", task: TaskBinary, y: []float64{0, 1, 1, 0}, want: []float64{0, 1, 1, 0}},
		{name: "binary -1/+1", task: TaskBinary, y: []float64{-1, 1, -1, 1}, want: []float64{0, 1, 0, 1}},
		{name: "binary 2", task: TaskBinary, y: []float64{0, 1, 2, 0}, wantErr: "synthetic: row 12: label 2 is not a binary label"},
		{name: "binary 0.5", task: TaskBinary, y: []float64{0.5, 1, 0, 0}, wantErr: "synthetic: row 10: label 0.5 is not a binary label"},
		{name: "multiclass", task: TaskMulticlass, classes: 3, y: []float64{0, 2, 1, 0}, want: []float64{0, 2, 1, 0}},
		{name: "multiclass any classes", task: TaskMulticlass, y: []float64{0, 7, 1, 0}, want: []float64{0, 7, 1, 0}},
		{name: "multiclass fraction", task: TaskMulticlass, classes: 3, y: []float64{0, 1, 0, 2.5}, wantErr: "synthetic: row 13: label 2.5 is not a class index (0..2)"},
		{name: "multiclass too large", task: TaskMulticlass, classes: 3, y: []float64{0, 3, 0, 1}, wantErr: "synthetic: row 11: label 3 is not a class index (0..2)"},
		{name: "multiclass negative", task: TaskMulticlass, y: []float64{0, 1, -1, 1}, wantErr: "synthetic: row 12: label -1 is not a class index (an integer >= 0)"},
		{name: "multiclass NaN", task: TaskMulticlass, classes: 3, y: []float64{math.NaN(), 1, 0, 1}, wantErr: "synthetic: row 10: label NaN is not a class index"},
		{name: "unknown task", task: "ranking", y: []float64{0, 1, 0, 1}, wantErr: `unknown task "ranking"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			tab, err := Synthetic(spec, 10, 4, false)
			if err != nil {
				t.Fatal(err)
			}
			copy(tab.Y, c.y)
			err = tab.PrepareLabels(c.task, c.classes)
			switch {
			case c.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Errorf("PrepareLabels(%s, %d) of %v: error %v, want %q", c.task, c.classes, c.y, err, c.wantErr)
				}
			case err != nil:
				t.Errorf("PrepareLabels(%s, %d) of %v: %v", c.task, c.classes, c.y, err)
			case !slices.Equal(tab.Y, c.want):
				t.Errorf("PrepareLabels(%s, %d) of %v: labels %v, want %v", c.task, c.classes, c.y, tab.Y, c.want)
			}
		})
	}
}
