package train

import (
	"math"
	"strings"
	"testing"
)

// Each schedule against its formula, written out here by hand.
func TestScheduleRate(t *testing.T) {
	const eta0 = 0.5
	for _, tc := range []struct {
		name string
		s    Schedule
		want func(t int) float64
	}{
		{"constant", Schedule{Kind: SchedConstant, Eta0: eta0}, func(int) float64 { return eta0 }},
		{"default kind is constant", Schedule{Eta0: eta0}, func(int) float64 { return eta0 }},
		// scikit-learn: eta = eta0 / pow(t, power_t), t the update count from 1.
		{"invscaling", Schedule{Kind: SchedInvScaling, Eta0: eta0, PowerT: 0.25},
			func(t int) float64 { return eta0 / math.Pow(float64(t), 0.25) }},
		{"invscaling power 1", Schedule{Kind: SchedInvScaling, Eta0: eta0, PowerT: 1},
			func(t int) float64 { return eta0 / float64(t) }},
		{"step", Schedule{Kind: SchedStep, Eta0: eta0, StepSize: 3, Gamma: 0.5},
			func(t int) float64 { return eta0 * math.Pow(0.5, float64((t-1)/3)) }},
		{"cosine", Schedule{Kind: SchedCosine, Eta0: eta0, Total: 9},
			func(t int) float64 { return eta0 * (1 + math.Cos(math.Pi*math.Min(float64(t-1)/9, 1))) / 2 }},
		{"warm-up then step", Schedule{Kind: SchedStep, Eta0: eta0, StepSize: 2, Gamma: 0.1, Warmup: 4},
			func(t int) float64 {
				if t <= 4 {
					return eta0 * float64(t) / 4
				}
				return eta0 * math.Pow(0.1, float64((t-4-1)/2))
			}},
		{"warm-up then cosine", Schedule{Kind: SchedCosine, Eta0: eta0, Warmup: 2, Total: 10},
			func(t int) float64 {
				if t <= 2 {
					return eta0 * float64(t) / 2
				}
				return eta0 * (1 + math.Cos(math.Pi*math.Min(float64(t-3)/8, 1))) / 2
			}},
	} {
		if err := tc.s.Validate(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for step := 1; step <= 12; step++ {
			if got, want := tc.s.Rate(step), tc.want(step); math.Abs(got-want) > 1e-15*want {
				t.Errorf("%s: Rate(%d) = %v, want %v", tc.name, step, got, want)
			}
		}
	}
	if r := (Schedule{Kind: SchedCosine, Eta0: 1, Total: 5}).Rate(6); r != 0 {
		t.Errorf("cosine past its end: %v, want 0", r)
	}
}

func TestScheduleValidate(t *testing.T) {
	for _, tc := range []struct {
		s    Schedule
		want string
	}{
		{Schedule{Kind: "linear", Eta0: 1}, `unknown kind "linear"`},
		{Schedule{Eta0: 0}, "eta0 0"},
		{Schedule{Eta0: math.Inf(1)}, "eta0 +Inf"},
		{Schedule{Kind: SchedStep, Eta0: 1, Gamma: 0.5}, "step_size 0"},
		{Schedule{Kind: SchedStep, Eta0: 1, StepSize: 1, Gamma: 1.5}, "gamma 1.5"},
		{Schedule{Kind: SchedInvScaling, Eta0: 1, PowerT: math.NaN()}, "power_t NaN"},
		{Schedule{Kind: SchedCosine, Eta0: 1}, "cosine needs the run's length"},
		{Schedule{Eta0: 1, Warmup: -1}, "warmup_steps -1"},
	} {
		if err := tc.s.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.s, err, tc.want)
		}
	}
}

// SetLR changes the rate of the next step, for every optimizer.
func TestOptimizerSetLR(t *testing.T) {
	for _, kind := range []string{OptSGD, OptMomentum, OptAdam} {
		a, _ := NewOptimizer(OptimizerSpec{Kind: kind, LR: 0.1}, 2)
		b, _ := NewOptimizer(OptimizerSpec{Kind: kind, LR: 0.7}, 2)
		a.SetLR(0.7)
		ta, tb := []float64{1, 2}, []float64{1, 2}
		a.Step(ta, []float64{0.3, -0.2})
		b.Step(tb, []float64{0.3, -0.2})
		if ta[0] != tb[0] || ta[1] != tb[1] {
			t.Errorf("%s: θ %v after SetLR(0.7), want %v", kind, ta, tb)
		}
	}
}
