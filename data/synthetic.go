package data

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
)

// SyntheticSpec describes a generated data set. Features are N(0,1); the
// labels come from a hidden "true" model drawn from Seed alone:
//
//	regression: y = x·w + b + Noise*N(0,1)
//	binary:     y = 1 if x·w + b + Noise*N(0,1) > 0, else 0
//	multiclass: y = argmax_k (x·w_k + b_k + Noise*N(0,1))
//
// Row i is a pure function of the spec and i, so every node can generate just
// its own rows. Give a test set the same spec with Offset = Samples of the
// training set (and Samples = the test size): same hidden model, new rows.
type SyntheticSpec struct {
	Task     string  // TaskRegression, TaskBinary or TaskMulticlass
	Samples  int     // number of rows
	Features int     // number of features
	Classes  int     // multiclass: number of classes (>= 2); binary: 0 or 2
	Noise    float64 // standard deviation of the label noise
	Seed     uint64  // draws the hidden model and, with the row index, each row
	Offset   int     // row i is generated as sample Offset+i
}

// NumRows returns the number of rows the spec generates.
func (s SyntheticSpec) NumRows() int { return s.Samples }

// NumClasses returns the number of classes the labels take: 2 for binary,
// Classes for multiclass, 0 for regression.
func (s SyntheticSpec) NumClasses() int {
	switch s.Task {
	case TaskBinary:
		return 2
	case TaskMulticlass:
		return s.Classes
	}
	return 0
}

// Validate reports the first field of the spec that is out of range.
func (s SyntheticSpec) Validate() error {
	switch {
	case s.Task != TaskRegression && s.Task != TaskBinary && s.Task != TaskMulticlass:
		return fmt.Errorf("synthetic: task %q: want %s, %s or %s", s.Task, TaskRegression, TaskBinary, TaskMulticlass)
	case s.Samples < 0:
		return fmt.Errorf("synthetic: samples %d is negative", s.Samples)
	case s.Features < 1:
		return fmt.Errorf("synthetic: features %d: need at least 1", s.Features)
	case s.Task == TaskMulticlass && s.Classes < 2:
		return fmt.Errorf("synthetic: multiclass with classes %d: need at least 2", s.Classes)
	case s.Task == TaskBinary && s.Classes != 0 && s.Classes != 2:
		return fmt.Errorf("synthetic: binary with classes %d: binary has 2", s.Classes)
	case s.Task == TaskRegression && s.Classes != 0:
		return fmt.Errorf("synthetic: regression with classes %d: regression has none", s.Classes)
	case s.Noise < 0 || s.Noise != s.Noise:
		return fmt.Errorf("synthetic: noise %v: want a standard deviation >= 0", s.Noise)
	case s.Offset < 0:
		return fmt.Errorf("synthetic: offset %d is negative", s.Offset)
	}
	return nil
}

// Stream constants keep the random streams of different uses apart.
const (
	streamRows    = 0x5ca1ab1e_0000_0001
	streamWeights = 0x5ca1ab1e_0000_0002
	streamMLP     = 0x5ca1ab1e_0000_0003
	streamPerm    = 0x5ca1ab1e_0000_0004
	streamSample  = 0x5ca1ab1e_0000_0005 // resampled epochs (resample.go)
)

// mix is the splitmix64 finalizer: it spreads a seed over all 64 bits.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// Synthetic generates rows first..first+rows-1 of spec as one table.
//
//	spec := data.SyntheticSpec{Task: data.TaskBinary, Samples: 10000, Features: 20, Noise: 0.1, Seed: 7}
//	t, err := data.Synthetic(spec, 0, spec.Samples, false)
func Synthetic(spec SyntheticSpec, first, rows int, f32 bool) (*Table, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if first < 0 || rows < 0 || first+rows > spec.Samples {
		return nil, fmt.Errorf("synthetic: rows %d..%d: the spec has %d", first, first+rows-1, spec.Samples)
	}
	f := spec.Features
	k := 1 // number of hidden linear scores
	if spec.Task == TaskMulticlass {
		k = spec.Classes
	}
	// The hidden model: k weight vectors (f each), then k biases.
	rw := rand.New(rand.NewPCG(mix(spec.Seed^streamWeights), 0))
	w := make([]float64, k*f+k)
	for i := range w {
		w[i] = rw.NormFloat64()
	}
	if spec.Task != TaskRegression {
		for i := k * f; i < len(w); i++ {
			w[i] *= 0.5 // keep the classes roughly balanced
		}
	}
	t := NewTable("synthetic", spec.FeatureNames(), first, rows, f32)
	src := rand.NewPCG(0, 0)
	r := rand.New(src)
	rowSeed := mix(spec.Seed ^ streamRows)
	x := make([]float64, f)
	for i := range rows {
		src.Seed(rowSeed, uint64(spec.Offset+first+i))
		for j := range x {
			x[j] = r.NormFloat64()
			t.set(i, j, x[j])
		}
		best, label := 0.0, 0
		for c := range k {
			s := w[k*f+c] + spec.Noise*r.NormFloat64()
			for j, xj := range x {
				s += w[c*f+j] * xj
			}
			if c == 0 || s > best {
				best, label = s, c
			}
		}
		var y float64
		switch spec.Task {
		case TaskRegression:
			y = best
		case TaskMulticlass:
			y = float64(label)
		case TaskBinary:
			if best > 0 {
				y = 1
			}
		}
		t.Y[i] = y
	}
	return t, nil
}

// FeatureNames returns "x1" .. "xF".
func (s SyntheticSpec) FeatureNames() []string {
	names := make([]string, s.Features)
	for j := range names {
		names[j] = "x" + strconv.Itoa(j+1)
	}
	return names
}

// syntheticSource is a SyntheticSpec as a Source: every shard is generated
// on demand.
type syntheticSource struct {
	spec  SyntheticSpec
	s     Sharding
	names []string
	f32   bool
}

// NewSynthetic returns the generator as a Source of V virtual shards
// (shards <= 0: DefaultShards).
func NewSynthetic(spec SyntheticSpec, shards int, f32 bool) (Source, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	return &syntheticSource{spec: spec, s: NewSharding(spec.Samples, shards), names: spec.FeatureNames(), f32: f32}, nil
}

func (g *syntheticSource) Name() string           { return "synthetic" }
func (g *syntheticSource) Rows() int              { return g.spec.Samples }
func (g *syntheticSource) FeatureNames() []string { return g.names }
func (g *syntheticSource) Sharding() Sharding     { return g.s }

func (g *syntheticSource) ReadShards(ctx context.Context, shards []int) ([]*Table, error) {
	return readParallel(ctx, g.s, shards, func(v int) (*Table, error) {
		lo, hi := g.s.ShardRows(v)
		t, err := Synthetic(g.spec, lo, hi-lo, g.f32)
		if t != nil {
			t.FeatureNames = g.names
		}
		return t, err
	})
}
