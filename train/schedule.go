package train

import (
	"fmt"
	"math"
)

// Learning-rate schedules: the values of Schedule.Kind.
const (
	SchedConstant   = "constant"   // eta0
	SchedInvScaling = "invscaling" // eta0 / t^power_t (scikit-learn's)
	SchedStep       = "step"       // eta0 · gamma^floor((t-1) / step_size)
	SchedCosine     = "cosine"     // eta0 · (1 + cos(π (t-1) / T)) / 2
)

// Schedule is the learning rate as a pure function of the step, so that every
// node applies the same rate at the same step, whatever n and whatever
// failed. t counts steps from 1 (the first update is t = 1); with Warmup W,
// steps 1..W ramp linearly from eta0/W to eta0, and the schedule then runs on
// t - W.
//
//	s := train.Schedule{Kind: train.SchedInvScaling, Eta0: 0.01, PowerT: 0.25}
//	opt.SetLR(s.Rate(step + 1))
type Schedule struct {
	Kind     string  // SchedConstant (""), SchedInvScaling, SchedStep or SchedCosine
	Eta0     float64 // the base rate, > 0
	PowerT   float64 // invscaling's exponent (scikit-learn's default 0.25)
	StepSize int     // step: steps between decays, >= 1
	Gamma    float64 // step: the decay factor, in (0, 1]
	Warmup   int     // steps of linear warm-up, >= 0
	Total    int     // cosine: the run's length in steps, warm-up included
}

// Validate reports the first bad field, naming it.
func (s Schedule) Validate() error {
	switch {
	case !(s.Eta0 > 0) || math.IsInf(s.Eta0, 0):
		return fmt.Errorf("schedule: eta0 %v: want a finite rate > 0", s.Eta0)
	case s.Warmup < 0:
		return fmt.Errorf("schedule: warmup_steps %d is negative", s.Warmup)
	}
	switch s.Kind {
	case "", SchedConstant:
	case SchedInvScaling:
		if !(s.PowerT >= 0) || math.IsInf(s.PowerT, 0) {
			return fmt.Errorf("schedule: power_t %v: want a finite exponent >= 0", s.PowerT)
		}
	case SchedStep:
		if s.StepSize < 1 {
			return fmt.Errorf("schedule: step_size %d: want at least 1 step between decays", s.StepSize)
		}
		if !(s.Gamma > 0 && s.Gamma <= 1) {
			return fmt.Errorf("schedule: gamma %v: want 0 < gamma <= 1", s.Gamma)
		}
	case SchedCosine:
		if s.Total < 1 {
			return fmt.Errorf("schedule: cosine needs the run's length, got %d steps", s.Total)
		}
	default:
		return fmt.Errorf("schedule: unknown kind %q: want %s, %s, %s or %s", s.Kind, SchedConstant, SchedInvScaling, SchedStep, SchedCosine)
	}
	return nil
}

// Rate is the learning rate of update t (t >= 1).
func (s Schedule) Rate(t int) float64 {
	t = max(t, 1)
	if t <= s.Warmup {
		return s.Eta0 * float64(t) / float64(s.Warmup)
	}
	t -= s.Warmup
	switch s.Kind {
	case SchedInvScaling:
		return s.Eta0 / math.Pow(float64(t), s.PowerT)
	case SchedStep:
		return s.Eta0 * math.Pow(s.Gamma, float64((t-1)/s.StepSize))
	case SchedCosine:
		span := max(s.Total-s.Warmup, 1)
		frac := min(float64(t-1)/float64(span), 1)
		return s.Eta0 * (1 + math.Cos(math.Pi*frac)) / 2
	}
	return s.Eta0
}
