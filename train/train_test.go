package train

import (
	"context"
	"math"
	"reflect"
	"testing"

	"github.com/dmlrun/dmlrun/data"
)

// simulate trains on spec as nodes nodes would: each builds its own table and
// model, the local vectors are summed (the allreduce), and every node applies
// the same update. It returns θ after steps steps and the last loss.
func simulate(t *testing.T, nodes int, spec data.SyntheticSpec, ms ModelSpec, ospec OptimizerSpec, batch, steps int) ([]float64, float64) {
	t.Helper()
	src, err := data.NewSynthetic(spec, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	s := src.Sharding()
	parts := s.Assign(nodes)
	held := make([]*data.Held, nodes)
	models := make([]Model, nodes)
	moments := make([]float64, 2*spec.Features+1)
	for r, p := range parts {
		if held[r], err = data.ReadPart(context.Background(), src, p); err != nil {
			t.Fatal(err)
		}
		for _, tab := range held[r].Tables() {
			tab.AddMoments(moments)
		}
		if models[r], err = NewModel(ms, spec.Features, spec.NumClasses()); err != nil {
			t.Fatal(err)
		}
	}
	mean, std := data.MeanStd(moments)
	for _, h := range held {
		for _, tab := range h.Tables() {
			tab.Standardize(mean, std)
		}
	}
	P := models[0].NumParams()
	theta, g, sum := make([]float64, P), make([]float64, P), make([]float64, P+2)
	models[0].Init(theta)
	opt, err := NewOptimizer(ospec, P)
	if err != nil {
		t.Fatal(err)
	}
	sched := data.NewSchedule(42, s.Rows(), batch)
	v := make([]float64, P+2)
	var local data.Batch
	var loss float64
	for step := range steps {
		_, _, b := sched.Batch(step)
		clear(sum)
		for r, p := range parts {
			if err := held[r].Batch(b, p.OwnsShard, &local); err != nil {
				t.Fatal(err)
			}
			clear(v)
			for _, g := range local.Groups {
				v[P] += models[r].LossGrad(theta, g.T, g.Rows, v[:P])
			}
			v[P+1] = float64(local.Len())
			for i := range v {
				sum[i] += v[i]
			}
		}
		for i := range g {
			g[i] = sum[i] / sum[P+1]
		}
		loss = sum[P]/sum[P+1] + models[0].Regularize(theta, g)
		opt.Step(theta, g)
	}
	return theta, loss
}

func TestTrajectoryDoesNotDependOnNodes(t *testing.T) {
	for _, c := range []struct {
		name  string
		data  data.SyntheticSpec
		model ModelSpec
		opt   OptimizerSpec
		batch int
	}{
		{"linear full batch", data.SyntheticSpec{Task: TaskRegression, Samples: 300, Features: 4, Noise: 0.1, Seed: 1},
			ModelSpec{Kind: KindLinear}, OptimizerSpec{Kind: OptSGD, LR: 0.1}, 0},
		{"logistic minibatch", data.SyntheticSpec{Task: TaskBinary, Samples: 300, Features: 4, Noise: 0.1, Seed: 2},
			ModelSpec{Kind: KindLogistic, L2: 1e-3}, OptimizerSpec{Kind: OptMomentum, LR: 0.1}, 64},
		{"mlp softmax adam", data.SyntheticSpec{Task: TaskMulticlass, Samples: 300, Features: 4, Classes: 3, Noise: 0.1, Seed: 3},
			ModelSpec{Kind: KindMLP, Hidden: []int{8}, Output: TaskMulticlass, L2: 1e-4, Seed: 3}, OptimizerSpec{Kind: OptAdam, LR: 0.01}, 50},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, loss0 := simulate(t, 1, c.data, c.model, c.opt, c.batch, 1)
			base, loss := simulate(t, 1, c.data, c.model, c.opt, c.batch, 60)
			if !(loss < loss0) {
				t.Errorf("loss %v after 60 steps, %v after 1: not learning", loss, loss0)
			}
			for _, n := range []int{2, 3, 7} {
				theta, _ := simulate(t, n, c.data, c.model, c.opt, c.batch, 60)
				if e := relErr(theta, base); e > 1e-9 {
					t.Errorf("%d nodes: θ differs from 1 node by %.3g (relative)", n, e)
				}
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	lin, _ := NewModel(ModelSpec{Kind: KindLinear}, 1, 0)
	tab := &Table{Features: 1, X: []float64{0, 1, 2, 3}, Y: []float64{1, 2, 2, 5}}
	theta := []float64{1, 1} // ŷ = x + 1: errors 0, 0, -1, -1
	sums := make([]float64, EvalLen(lin))
	Evaluate(lin, theta, tab, sums)
	got := Finish(lin, sums)
	// SST = Σy² - (Σy)²/n = 34 - 100/4 = 9; SSE = 2.
	want := Metrics{N: 4, Loss: 0.5, MSE: 0.5, R2: 1 - 2.0/9}
	if math.Abs(got.R2-want.R2) > 1e-15 || got.N != want.N || got.Loss != want.Loss || got.MSE != want.MSE {
		t.Errorf("regression metrics %+v, want %+v", got, want)
	}

	soft, _ := NewModel(ModelSpec{Kind: KindSoftmax}, 1, 3)
	// Class scores z_k = w_k x + b_k with w = (0, 0, 0), b = (0, 1, 2): always class 2.
	theta = []float64{0, 0, 0, 0, 1, 2}
	tab.Y = []float64{2, 2, 0, 1}
	sums = make([]float64, EvalLen(soft))
	Evaluate(soft, theta, tab, sums)
	got = Finish(soft, sums)
	lse := math.Log(1 + math.E + math.E*math.E)
	wantLoss := ((lse-2)*2 + (lse - 0) + (lse - 1)) / 4
	if got.Accuracy != 0.5 || got.N != 4 || math.Abs(got.Loss-wantLoss) > 1e-15 {
		t.Errorf("classification metrics %+v, want accuracy 0.5, loss %v", got, wantLoss)
	}

	// Sums of two halves finish like the sums of all.
	a, b := make([]float64, EvalLen(soft)), make([]float64, EvalLen(soft))
	Evaluate(soft, theta, &Table{Features: 1, X: tab.X[:2], Y: tab.Y[:2]}, a)
	Evaluate(soft, theta, &Table{Features: 1, X: tab.X[2:], Y: tab.Y[2:]}, b)
	for i := range a {
		a[i] += b[i]
	}
	if halves := Finish(soft, a); !reflect.DeepEqual(halves, got) {
		t.Errorf("halves %+v, all %+v", halves, got)
	}
}
