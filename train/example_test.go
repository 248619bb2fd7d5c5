package train_test

import (
	"context"
	"fmt"

	"github.com/dmlrun/dmlrun/data"
	"github.com/dmlrun/dmlrun/train"
)

// One process playing both nodes of a two-node ring: the sum of the two local
// vectors stands for the allreduce.
func Example() {
	spec := data.SyntheticSpec{Task: data.TaskBinary, Samples: 2000, Features: 5, Noise: 0.1, Seed: 1}
	src, err := data.NewSynthetic(spec, 0, false)
	if err != nil {
		panic(err)
	}
	s := src.Sharding()
	parts := s.Assign(2)
	var held []*data.Held
	for _, p := range parts {
		h, err := data.ReadPart(context.Background(), src, p) // each node reads its own shards
		if err != nil {
			panic(err)
		}
		held = append(held, h)
	}
	m, err := train.NewModel(train.ModelSpec{Kind: train.KindLogistic, L2: 1e-4}, spec.Features, 2)
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
	sched := data.NewSchedule(7, s.Rows(), 100)
	var local data.Batch
	for step := range 10 * sched.StepsPerEpoch() {
		_, _, batch := sched.Batch(step)
		clear(sum)
		for r, p := range parts { // on node r
			held[r].Batch(batch, p.OwnsShard, &local)
			clear(v)
			for _, g := range local.Groups { // shard by shard
				v[P] += m.LossGrad(theta, g.T, g.Rows, v[:P])
			}
			v[P+1] = float64(local.Len())
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
	all := make([]float64, train.EvalLen(m))
	for _, h := range held {
		for _, t := range h.Tables() {
			train.Evaluate(m, theta, t, all) // adds; then allreduce(sum) over nodes
		}
	}
	fmt.Printf("accuracy > 0.95: %v\n", train.Finish(m, all).Accuracy > 0.95)
	// Output: accuracy > 0.95: true
}
