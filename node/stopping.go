package node

import (
	"fmt"
	"math"
)

// stopper is scikit-learn's SGD stopping rule (tol, n_iter_no_change): at
// the end of each epoch, the epoch's mean training loss counts as no
// improvement when it is above the best so far minus tol; after patience
// such epochs in a row the run stops. Every input is an allreduced value (the
// batches' losses and row counts), so every node stops at the same step, on
// any number of nodes. Its state travels with θ to a node that is behind or
// joins, and into checkpoints (see appendState).
type stopper struct {
	on       bool
	tol      float64
	patience int

	best    float64 // the best epoch loss so far (MaxFloat64 before the first: checkpoints hold finite numbers only)
	bad     int     // epochs in a row without improvement
	sum     float64 // Σ loss·rows of the current epoch's steps
	rows    float64 // Σ rows of the current epoch's steps
	stopped int     // the step the rule stopped at; 0 while it runs
}

// stopStateLen is the length of a stopper's state vector.
const stopStateLen = 5

func newStopper(tol *float64, patience int) stopper {
	s := stopper{best: math.MaxFloat64, patience: patience}
	if tol != nil {
		s.on, s.tol = true, *tol
	}
	return s
}

// step adds one step's mean loss over its rows.
func (s *stopper) step(loss, rows float64) {
	s.sum += loss * rows
	s.rows += rows
}

// endEpoch closes the epoch that ends after step done and reports whether
// the rule stops the run there, and why.
func (s *stopper) endEpoch(done, epoch int) (bool, string) {
	if !s.on || s.rows == 0 {
		return false, ""
	}
	loss := s.sum / s.rows
	s.sum, s.rows = 0, 0
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
	return true, fmt.Sprintf("the epoch's training loss did not improve by more than tol=%g for %d epochs in a row (epoch %d: %.6g, best %.6g)",
		s.tol, s.patience, epoch, loss, s.best)
}

// appendState appends the rule's state (best, bad, sum, rows, stopped).
func (s *stopper) appendState(dst []float64) []float64 {
	return append(dst, s.best, float64(s.bad), s.sum, s.rows, float64(s.stopped))
}

// setState restores a state that appendState wrote.
func (s *stopper) setState(v []float64) error {
	if len(v) != stopStateLen || v[1] < 0 || v[4] < 0 {
		return fmt.Errorf("stopping rule: bad state %v", v)
	}
	s.best, s.bad, s.sum, s.rows, s.stopped = v[0], int(v[1]), v[2], v[3], int(v[4])
	return nil
}
