package jobprogress

import (
	"testing"
	"time"
)

func TestProgress(t *testing.T) {
	var none *Progress // every hook is a no-op on nil
	none.SetPhase(PhaseTraining)
	none.SetRun(10, 5)
	none.Stepped(1, 0.5, 8)
	if s := none.Snapshot(); s != (Snapshot{}) {
		t.Fatalf("nil Progress: %+v", s)
	}

	p := new(Progress)
	changed := p.Changed()
	p.SetRun(100, 30)
	if s := p.Snapshot(); s.HasLoss || s.Steps != 100 || s.Epoch != 1 || s.Phase != PhaseGathering {
		t.Fatalf("before the first step: %+v", s)
	}
	p.SetRing(2, 4)
	select {
	case <-changed:
	default:
		t.Fatal("a ring change did not signal Changed")
	}
	p.SetPhase(PhaseTraining)
	before := time.Now()
	p.Stepped(61, 0.25, 640)
	s := p.Snapshot()
	want := Snapshot{Phase: PhaseTraining, Step: 61, Steps: 100, Epoch: 3, Loss: 0.25, HasLoss: true, Samples: 640, World: 4, Rank: 2}
	got := s
	got.LastStep, got.TrainingSince = time.Time{}, time.Time{}
	if got != want {
		t.Fatalf("snapshot %+v, want %+v", got, want)
	}
	if s.LastStep.Before(before) || s.TrainingSince.IsZero() {
		t.Fatalf("times: last step %v, training since %v", s.LastStep, s.TrainingSince)
	}
	for _, tc := range []struct {
		ph   Phase
		want string
	}{{PhaseLoading, "loading rows"}, {PhaseRecovering, "recovering"}, {PhaseDone, "done"}, {Phase(42), "unknown"}} {
		if got := tc.ph.String(); got != tc.want {
			t.Errorf("Phase(%d) = %q, want %q", tc.ph, got, tc.want)
		}
	}
}
