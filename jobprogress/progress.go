package jobprogress

import (
	"math"
	"sync/atomic"
	"time"
)

// Phase is what a node is doing, as a progress display names it.
type Phase int32

// The phases of a run, in the order a run goes through them (a recovery goes
// back from Training to Recovering and forward again).
const (
	PhaseGathering  Phase = iota // waiting for the other nodes
	PhaseLoading                 // reading its rows
	PhaseTraining                // in the step loop
	PhaseRecovering              // re-forming the ring after a failure or a join
	PhaseSaving                  // writing the outputs after the last step
	PhaseDone
)

var phaseNames = [...]string{"gathering nodes", "loading rows", "training", "recovering", "saving", "done"}

func (p Phase) String() string {
	if p >= 0 && int(p) < len(phaseNames) {
		return phaseNames[p]
	}
	return "unknown"
}

// Progress is a live view of one node's run. The node stores into it with
// atomic writes (the step loop allocates nothing); anyone may read a
// Snapshot at any time, e.g. to send it to a launcher twice a second.
//
//	p := new(jobprogress.Progress)
//	go node.Run(ctx, node.Options{Progress: p, ...})
//	s := p.Snapshot() // s.Step of s.Steps, s.Loss, ...
//
// Its methods do nothing on a nil *Progress.
type Progress struct {
	phase                    atomic.Int32
	step, steps, perEpoch    atomic.Int64
	samples, world, rank     atomic.Int64
	loss                     atomic.Uint64 // float64 bits; NaN until the first step
	lastStepNanos, startedAt atomic.Int64
	changed                  chan struct{} // a phase or ring change, for Changed
}

// Changed is signalled when the phase or the ring changes, so that a
// reporter can send those at once rather than at its next tick.
func (p *Progress) Changed() <-chan struct{} {
	if p.changed == nil {
		p.changed = make(chan struct{}, 1)
	}
	return p.changed
}

func (p *Progress) notify() {
	if p.changed != nil {
		select {
		case p.changed <- struct{}{}:
		default:
		}
	}
}

// Snapshot is what a Progress holds at one moment.
type Snapshot struct {
	Phase         Phase     `json:"phase"`
	Step          int       `json:"step"`  // steps completed
	Steps         int       `json:"steps"` // steps of the whole run
	Epoch         int       `json:"epoch"` // the epoch the next step is in, from 1
	Loss          float64   `json:"loss"`  // the last step's train loss, when HasLoss
	HasLoss       bool      `json:"has_loss"`
	Samples       int64     `json:"samples"`
	World         int       `json:"world"` // ring size
	Rank          int       `json:"rank"`
	LastStep      time.Time `json:"last_step"`
	TrainingSince time.Time `json:"training_since"`
}

// SetPhase records what the node does now.
func (p *Progress) SetPhase(ph Phase) {
	if p != nil {
		p.phase.Store(int32(ph))
		p.notify()
	}
}

// SetRun records the run's length once it is known.
func (p *Progress) SetRun(steps, perEpoch int) {
	if p == nil {
		return
	}
	p.steps.Store(int64(steps))
	p.perEpoch.Store(int64(max(perEpoch, 1)))
	p.loss.Store(math.Float64bits(math.NaN()))
}

// SetRing records this node's place in the current ring.
func (p *Progress) SetRing(rank, size int) {
	if p != nil {
		p.rank.Store(int64(rank))
		p.world.Store(int64(size))
		p.notify()
	}
}

// Stepped records a completed step.
func (p *Progress) Stepped(done int, loss float64, samples int64) {
	if p == nil {
		return
	}
	now := time.Now().UnixNano()
	p.startedAt.CompareAndSwap(0, now)
	p.step.Store(int64(done))
	p.loss.Store(math.Float64bits(loss))
	p.samples.Store(samples)
	p.lastStepNanos.Store(now)
}

// Snapshot reads the current values.
func (p *Progress) Snapshot() Snapshot {
	if p == nil {
		return Snapshot{}
	}
	s := Snapshot{Phase: Phase(p.phase.Load()), Step: int(p.step.Load()), Steps: int(p.steps.Load()),
		Samples: p.samples.Load(), World: int(p.world.Load()), Rank: int(p.rank.Load())}
	if l := math.Float64frombits(p.loss.Load()); !math.IsNaN(l) && !math.IsInf(l, 0) {
		s.Loss, s.HasLoss = l, true
	}
	if pe := p.perEpoch.Load(); pe > 0 {
		s.Epoch = int(int64(s.Step)/pe) + 1
	}
	if n := p.lastStepNanos.Load(); n > 0 {
		s.LastStep = time.Unix(0, n)
	}
	if n := p.startedAt.Load(); n > 0 {
		s.TrainingSince = time.Unix(0, n)
	}
	return s
}
