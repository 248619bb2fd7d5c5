package train

import (
	"math"
	"slices"
	"strings"
	"testing"
)

var optGrads = [][]float64{{1, -2, 0.5}, {0.3, 0.1, -4}, {-1, 2, 2}}

func newOpt(t *testing.T, spec OptimizerSpec) Optimizer {
	t.Helper()
	o, err := NewOptimizer(spec, 3)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestSGDStep(t *testing.T) {
	o := newOpt(t, OptimizerSpec{Kind: OptSGD, LR: 0.1})
	theta := []float64{1, 2, 3}
	o.Step(theta, optGrads[0])
	want := []float64{1 - 0.1*1, 2 - 0.1*-2, 3 - 0.1*0.5}
	if !slices.Equal(theta, want) {
		t.Errorf("θ = %v, want θ - lr·g = %v", theta, want)
	}
}

// Reference implementations, written the textbook way.
func refMomentum(lr, mu float64, grads [][]float64, theta []float64) {
	v := make([]float64, len(theta))
	for _, g := range grads {
		for i := range theta {
			v[i] = mu*v[i] + g[i]
			theta[i] -= lr * v[i]
		}
	}
}

func refAdam(lr, b1, b2, eps float64, grads [][]float64, theta []float64) {
	m, v := make([]float64, len(theta)), make([]float64, len(theta))
	for t, g := range grads {
		for i := range theta {
			m[i] = b1*m[i] + (1-b1)*g[i]
			v[i] = b2*v[i] + (1-b2)*g[i]*g[i]
			mh := m[i] / (1 - math.Pow(b1, float64(t+1)))
			vh := v[i] / (1 - math.Pow(b2, float64(t+1)))
			theta[i] -= lr * mh / (math.Sqrt(vh) + eps)
		}
	}
}

func TestOptimizersMatchReference(t *testing.T) {
	for _, c := range []struct {
		spec OptimizerSpec
		ref  func(theta []float64)
	}{
		{OptimizerSpec{Kind: OptMomentum, LR: 0.1}, func(th []float64) { refMomentum(0.1, 0.9, optGrads, th) }},
		{OptimizerSpec{Kind: OptMomentum, LR: 0.05, Momentum: 0.5}, func(th []float64) { refMomentum(0.05, 0.5, optGrads, th) }},
		{OptimizerSpec{Kind: OptAdam, LR: 0.01}, func(th []float64) { refAdam(0.01, 0.9, 0.999, 1e-8, optGrads, th) }},
		{OptimizerSpec{Kind: OptAdam, LR: 0.2, Beta1: 0.5, Beta2: 0.9, Epsilon: 1e-3}, func(th []float64) { refAdam(0.2, 0.5, 0.9, 1e-3, optGrads, th) }},
	} {
		o := newOpt(t, c.spec)
		theta, want := []float64{1, 2, 3}, []float64{1, 2, 3}
		for _, g := range optGrads {
			o.Step(theta, g)
		}
		c.ref(want)
		if e := relErr(theta, want); e > 1e-14 {
			t.Errorf("%+v: θ = %v after 3 steps, reference %v", c.spec, theta, want)
		}
	}
}

func TestOptimizerStateRoundTrip(t *testing.T) {
	for _, kind := range []string{OptSGD, OptMomentum, OptAdam} {
		spec := OptimizerSpec{Kind: kind, LR: 0.1}
		a := newOpt(t, spec)
		theta := []float64{1, 2, 3}
		a.Step(theta, optGrads[0])
		a.Step(theta, optGrads[1])
		b := newOpt(t, spec)
		if err := b.SetState(slices.Clone(a.State())); err != nil {
			t.Fatalf("%s: SetState: %v", kind, err)
		}
		theta2 := slices.Clone(theta)
		a.Step(theta, optGrads[2])
		b.Step(theta2, optGrads[2])
		if !slices.Equal(theta, theta2) {
			t.Errorf("%s: θ %v after SetState, want %v", kind, theta2, theta)
		}
		if err := b.SetState(make([]float64, len(a.State())+1)); err == nil || !strings.Contains(err.Error(), kind) {
			t.Errorf("%s: SetState of a state one too long: %v", kind, err)
		}
	}
}

func TestOptimizerStepDoesNotAllocate(t *testing.T) {
	for _, kind := range []string{OptSGD, OptMomentum, OptAdam} {
		o := newOpt(t, OptimizerSpec{Kind: kind, LR: 0.1})
		theta := []float64{1, 2, 3}
		if n := testing.AllocsPerRun(20, func() { o.Step(theta, optGrads[0]) }); n != 0 {
			t.Errorf("%s: Step: %v allocations per run, want 0", kind, n)
		}
	}
}

func TestNewOptimizerErrors(t *testing.T) {
	for _, c := range []struct {
		spec OptimizerSpec
		want string
	}{
		{OptimizerSpec{Kind: "rmsprop", LR: 0.1}, `unknown kind "rmsprop"`},
		{OptimizerSpec{Kind: OptSGD}, "lr 0"},
		{OptimizerSpec{Kind: OptMomentum, LR: 0.1, Momentum: 1}, "momentum 1"},
		{OptimizerSpec{Kind: OptAdam, LR: 0.1, Beta2: 1.5}, "beta2 1.5"},
	} {
		if _, err := NewOptimizer(c.spec, 3); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewOptimizer(%+v) = %v, want an error containing %q", c.spec, err, c.want)
		}
	}
}

func TestWithDefaults(t *testing.T) {
	got := OptimizerSpec{Kind: OptAdam, LR: 1}.WithDefaults()
	want := OptimizerSpec{Kind: OptAdam, LR: 1, Momentum: 0.9, Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-8}
	if got != want {
		t.Errorf("WithDefaults = %+v, want %+v", got, want)
	}
}
