package train

import (
	"fmt"
	"math"
)

// Stopper is scikit-learn's SGD stopping rule (tol, n_iter_no_change): at
// the end of each epoch, the epoch's mean training loss counts as no
// improvement when it is above the best so far minus tol; after patience
// such epochs in a row the run stops. Every input is an allreduced value (the
// batches' losses and row counts), so every node stops at the same step, on
// any number of nodes. Its state travels with θ to a node that is behind or
// joins, and into checkpoints (see AppendState).
type Stopper struct {
	on       bool
	tol      float64
	patience int

	best    float64 // the best epoch loss so far (MaxFloat64 before the first: checkpoints hold finite numbers only)
	bad     int     // epochs in a row without improvement
	sum     float64 // Σ loss·rows of the current epoch's steps
	rows    float64 // Σ rows of the current epoch's steps
	stopped int     // the step the rule stopped at; 0 while it runs
}

// StopperStateLen is the length of a Stopper's state vector.
const StopperStateLen = 5

// NewStopper returns the rule for tol (nil: off) and patience epochs.
func NewStopper(tol *float64, patience int) Stopper {
	s := Stopper{best: math.MaxFloat64, patience: patience}
	if tol != nil {
		s.on, s.tol = true, *tol
	}
	return s
}

// Step adds one step's mean loss over its rows.
func (s *Stopper) Step(loss, rows float64) {
	s.sum += loss * rows
	s.rows += rows
}

// EndEpoch closes the epoch that ends after step done, judged on its mean
// training loss, and reports whether the rule stops the run there, and why.
func (s *Stopper) EndEpoch(done, epoch int) (bool, string) {
	if !s.on || s.rows == 0 {
		return false, ""
	}
	loss := s.sum / s.rows
	s.sum, s.rows = 0, 0
	return s.judge(loss, done, epoch, "the epoch's training loss")
}

// EndEpochOn closes the epoch judged on value (lower is better, e.g. a
// negated validation score) instead of the training loss.
func (s *Stopper) EndEpochOn(value float64, done, epoch int, what string) (bool, string) {
	if !s.on {
		return false, ""
	}
	s.sum, s.rows = 0, 0
	return s.judge(value, done, epoch, what)
}

// judge applies the rule to the epoch's value.
func (s *Stopper) judge(loss float64, done, epoch int, what string) (bool, string) {
	if loss > s.best-s.tol {
		s.bad++
	} else {
		s.bad = 0
	}
	s.best = math.Min(s.best, loss)
	if s.bad < s.patience {
		return false, ""
	}
	s.stopped = done
	return true, fmt.Sprintf("%s did not improve by more than tol=%g for %d epochs in a row (epoch %d: %.6g, best %.6g)",
		what, s.tol, s.patience, epoch, loss, s.best)
}

// AppendState appends the rule's state (best, bad, sum, rows, stopped).
func (s *Stopper) AppendState(dst []float64) []float64 {
	return append(dst, s.best, float64(s.bad), s.sum, s.rows, float64(s.stopped))
}

// SetState restores a state that AppendState wrote.
func (s *Stopper) SetState(v []float64) error {
	if len(v) != StopperStateLen || v[1] < 0 || v[4] < 0 {
		return fmt.Errorf("stopping rule: bad state %v", v)
	}
	s.best, s.bad, s.sum, s.rows, s.stopped = v[0], int(v[1]), v[2], v[3], int(v[4])
	return nil
}

// On reports whether the rule is on (a tol was given).
func (s *Stopper) On() bool { return s.on }

// Stopped is the step the rule stopped at, 0 while it runs.
func (s *Stopper) Stopped() int { return s.stopped }
