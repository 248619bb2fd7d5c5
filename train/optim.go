package train

import (
	"fmt"
	"math"
)

// Optimizer kinds: the values of OptimizerSpec.Kind.
const (
	OptSGD      = "sgd"      // θ -= lr·g
	OptMomentum = "momentum" // v = μv + g; θ -= lr·v (heavy ball, as PyTorch)
	OptAdam     = "adam"     // Kingma & Ba, with bias correction
)

// OptimizerSpec says which optimizer to build. Zero fields other than Kind and
// LR take the defaults of WithDefaults.
type OptimizerSpec struct {
	Kind     string  // OptSGD, OptMomentum or OptAdam
	LR       float64 // learning rate, > 0
	Momentum float64 // μ of momentum; default 0.9
	Beta1    float64 // adam; default 0.9
	Beta2    float64 // adam; default 0.999
	Epsilon  float64 // adam; default 1e-8
}

// WithDefaults returns the spec with its zero fields set to the defaults:
// momentum 0.9, beta1 0.9, beta2 0.999, epsilon 1e-8.
func (s OptimizerSpec) WithDefaults() OptimizerSpec {
	if s.Momentum == 0 {
		s.Momentum = 0.9
	}
	if s.Beta1 == 0 {
		s.Beta1 = 0.9
	}
	if s.Beta2 == 0 {
		s.Beta2 = 0.999
	}
	if s.Epsilon == 0 {
		s.Epsilon = 1e-8
	}
	return s
}

// Optimizer updates θ from the averaged gradient, in place. Its whole state
// is one flat vector, for state transfer to a joining node and checkpoints.
//
// Updates round every product explicitly (float64 conversions), so the
// compiler fuses nothing into FMA instructions: nodes on different
// architectures compute the same θ from the same gradient.
type Optimizer interface {
	// Step applies one update with gradient grad to θ. It does not allocate.
	Step(theta, grad []float64)
	// SetLR sets the learning rate of the next steps (a Schedule's Rate).
	SetLR(lr float64)
	// State returns the optimizer's state: nothing for sgd, the velocity
	// (P) for momentum, [t, m (P), v (P)] for adam. It is a view that the next
	// Step changes: copy it to keep it.
	State() []float64
	// SetState replaces the state with a copy of s, which must come from
	// State of an optimizer of the same kind and size.
	SetState(s []float64) error
}

// NewOptimizer builds the optimizer of spec (after WithDefaults) for nparams
// parameters.
//
//	opt, err := train.NewOptimizer(train.OptimizerSpec{Kind: train.OptAdam, LR: 1e-3}, m.NumParams())
//	opt.Step(theta, g)
func NewOptimizer(spec OptimizerSpec, nparams int) (Optimizer, error) {
	spec = spec.WithDefaults()
	switch {
	case !(spec.LR > 0) || math.IsInf(spec.LR, 0):
		return nil, fmt.Errorf("optimizer: lr %v: want a finite learning rate > 0", spec.LR)
	case nparams < 0:
		return nil, fmt.Errorf("optimizer: %d parameters", nparams)
	}
	switch spec.Kind {
	case OptSGD:
		return &sgd{lr: spec.LR, n: nparams}, nil
	case OptMomentum:
		if !(spec.Momentum > 0 && spec.Momentum < 1) {
			return nil, fmt.Errorf("optimizer: momentum %v: want 0 < momentum < 1", spec.Momentum)
		}
		return &momentum{lr: spec.LR, mu: spec.Momentum, v: make([]float64, nparams)}, nil
	case OptAdam:
		switch {
		case !(spec.Beta1 > 0 && spec.Beta1 < 1):
			return nil, fmt.Errorf("optimizer: beta1 %v: want 0 < beta1 < 1", spec.Beta1)
		case !(spec.Beta2 > 0 && spec.Beta2 < 1):
			return nil, fmt.Errorf("optimizer: beta2 %v: want 0 < beta2 < 1", spec.Beta2)
		case !(spec.Epsilon > 0):
			return nil, fmt.Errorf("optimizer: epsilon %v: want > 0", spec.Epsilon)
		}
		return &adam{spec: spec, n: nparams, state: make([]float64, 1+2*nparams)}, nil
	}
	return nil, fmt.Errorf("optimizer: unknown kind %q: want %s, %s or %s", spec.Kind, OptSGD, OptMomentum, OptAdam)
}

func checkStep(kind string, n int, theta, grad []float64) {
	if len(theta) != n || len(grad) != n {
		panic(fmt.Sprintf("train: %s Step: θ has %d and grad %d elements, the optimizer has %d parameters", kind, len(theta), len(grad), n))
	}
}

func setState(kind string, dst, src []float64) error {
	if len(src) != len(dst) {
		return fmt.Errorf("optimizer: %s state has %d values, this one needs %d", kind, len(src), len(dst))
	}
	copy(dst, src)
	return nil
}

type sgd struct {
	lr float64
	n  int
}

func (o *sgd) Step(theta, grad []float64) {
	checkStep(OptSGD, o.n, theta, grad)
	for i, g := range grad {
		theta[i] -= float64(o.lr * g)
	}
}

func (o *sgd) SetLR(lr float64) { o.lr = lr }

func (o *sgd) State() []float64 { return []float64{} }

func (o *sgd) SetState(s []float64) error { return setState(OptSGD, nil, s) }

type momentum struct {
	lr, mu float64
	v      []float64
}

func (o *momentum) Step(theta, grad []float64) {
	checkStep(OptMomentum, len(o.v), theta, grad)
	for i, g := range grad {
		o.v[i] = float64(o.mu*o.v[i]) + g
		theta[i] -= float64(o.lr * o.v[i])
	}
}

func (o *momentum) SetLR(lr float64) { o.lr = lr }

func (o *momentum) State() []float64 { return o.v }

func (o *momentum) SetState(s []float64) error { return setState(OptMomentum, o.v, s) }

type adam struct {
	spec  OptimizerSpec
	n     int
	state []float64 // [t, m (n), v (n)]
}

func (o *adam) Step(theta, grad []float64) {
	checkStep(OptAdam, o.n, theta, grad)
	o.state[0]++
	t := o.state[0]
	m, v := o.state[1:1+o.n], o.state[1+o.n:]
	b1, b2 := o.spec.Beta1, o.spec.Beta2
	c1 := 1 - math.Pow(b1, t) // bias corrections
	c2 := 1 - math.Pow(b2, t)
	for i, g := range grad {
		m[i] = float64(b1*m[i]) + float64((1-b1)*g)
		v[i] = float64(b2*v[i]) + float64(float64((1-b2)*g)*g)
		mhat := m[i] / c1
		vhat := v[i] / c2
		theta[i] -= float64(o.spec.LR*mhat) / (math.Sqrt(vhat) + o.spec.Epsilon)
	}
}

func (o *adam) SetLR(lr float64) { o.spec.LR = lr }

func (o *adam) State() []float64 { return o.state }

func (o *adam) SetState(s []float64) error {
	if len(s) > 0 && (s[0] < 0 || s[0] != math.Trunc(s[0])) {
		return fmt.Errorf("optimizer: adam state: step count %v is not an integer >= 0", s[0])
	}
	return setState(OptAdam, o.state, s)
}
