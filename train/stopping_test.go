package train

import (
	"math"
	"testing"
)

// refStop is scikit-learn's rule written out: the epoch (from 1) at which
// it stops, or 0.
func refStop(losses []float64, tol float64, patience int) int {
	best, bad := math.Inf(1), 0
	for e, l := range losses {
		if l > best-tol {
			bad++
		} else {
			bad = 0
		}
		best = math.Min(best, l)
		if bad >= patience {
			return e + 1
		}
	}
	return 0
}

func TestStopper(t *testing.T) {
	for _, tc := range []struct {
		name     string
		losses   []float64 // one per epoch
		tol      float64
		patience int
		want     int // the epoch it stops after; 0: never
	}{
		{"keeps improving", []float64{1, 0.5, 0.25, 0.12, 0.06}, 1e-3, 2, 0},
		{"plateau", []float64{1, 0.5, 0.4999, 0.4998, 0.4997}, 1e-3, 3, 5},
		{"an improvement resets the count", []float64{1, 0.9995, 0.5, 0.4999, 0.4998}, 1e-3, 2, 5},
		{"worse counts too", []float64{1, 2, 3}, 0, 2, 3},
		{"patience 1", []float64{1, 1}, 0.01, 1, 2},
		{"equal is an improvement with tol 0", []float64{1, 1, 1}, 0, 1, 0},
		{"negative tol demands nothing", []float64{1, 1.05, 1.08}, -0.1, 1, 0},
	} {
		if want := refStop(tc.losses, tc.tol, tc.patience); want != tc.want {
			t.Fatalf("%s: the reference stops at %d, the table says %d", tc.name, want, tc.want)
		}
		tol := tc.tol
		s := NewStopper(&tol, tc.patience)
		got := 0
		for e, l := range tc.losses {
			s.Step(l, 10) // two steps of an epoch, same mean
			s.Step(l, 30)
			if stop, why := s.EndEpoch((e+1)*2, e+1); stop {
				got = e + 1
				if why == "" {
					t.Errorf("%s: no reason", tc.name)
				}
				break
			}
		}
		if got != tc.want {
			t.Errorf("%s: stopped after epoch %d, want %d", tc.name, got, tc.want)
		}
	}
	off := NewStopper(nil, 1)
	off.Step(1, 1)
	if stop, _ := off.EndEpoch(1, 1); stop {
		t.Error("a rule without tol stopped")
	}
}

// The state round-trips, also mid-epoch, and stays finite (checkpoints).
func TestStopperState(t *testing.T) {
	tol := 1e-3
	a := NewStopper(&tol, 3)
	st := a.AppendState(nil)
	for _, v := range st {
		if math.IsInf(v, 0) || math.IsNaN(v) {
			t.Fatalf("fresh state %v is not finite", st)
		}
	}
	a.Step(0.5, 8)
	a.EndEpoch(4, 1)
	a.Step(0.7, 8)
	b := NewStopper(&tol, 3)
	if err := b.SetState(a.AppendState(nil)); err != nil {
		t.Fatal(err)
	}
	if b.best != a.best || b.bad != a.bad || b.sum != a.sum || b.rows != a.rows || b.stopped != a.stopped {
		t.Fatalf("restored %+v, want %+v", b, a)
	}
	if err := b.SetState([]float64{1, 2}); err == nil {
		t.Fatal("a short state was taken")
	}
}
