package train_test

import (
	"fmt"

	"github.com/dmlrun/dmlrun/train"
)

// One process playing both nodes of a two-node ring: the sum of the two local
// vectors stands for the allreduce.
func Example() {
	data := train.SyntheticSpec{Task: train.TaskBinary, Samples: 2000, Features: 5, Noise: 0.1, Seed: 1}
	s := train.NewSharding(data.NumRows(), 0)
	parts := s.Assign(2)
	var tables []*train.Table
	for _, p := range parts {
		t, err := train.Synthetic(data, p.Owns) // each node generates its own rows
		if err != nil {
			panic(err)
		}
		tables = append(tables, t)
	}
	m, err := train.NewModel(train.ModelSpec{Kind: train.KindLogistic, L2: 1e-4}, data.Features, 2)
	if err != nil {
		panic(err)
	}
	opt, err := train.NewOptimizer(train.OptimizerSpec{Kind: train.OptAdam, LR: 0.05}, m.NumParams())
	if err != nil {
		panic(err)
	}
	P := m.NumParams()
	theta, g := make([]float64, P), make([]float64, P)
	v, sum := make([]float64, P+2), make([]float64, P+2)
	m.Init(theta)
	sched := train.NewSchedule(7, s.Rows(), 100)
	var local []int
	for step := range 10 * sched.StepsPerEpoch() {
		_, _, batch := sched.Batch(step)
		clear(sum)
		for r, p := range parts { // on node r
			local, _ = p.LocalRows(tables[r], batch, local)
			clear(v)
			v[P] = m.LossGrad(theta, tables[r], local, v[:P])
			v[P+1] = float64(len(local))
			for i := range v {
				sum[i] += v[i] // allreduce(sum)
			}
		}
		for i := range g {
			g[i] = sum[i] / sum[P+1]
		}
		m.Regularize(theta, g)
		opt.Step(theta, g)
	}
	sums, all := make([]float64, train.EvalLen(m)), make([]float64, train.EvalLen(m))
	for _, t := range tables {
		train.Evaluate(m, theta, t, sums)
		for i := range sums {
			all[i] += sums[i] // allreduce(sum)
		}
	}
	fmt.Printf("accuracy > 0.95: %v\n", train.Finish(m, all).Accuracy > 0.95)
	// Output: accuracy > 0.95: true
}
