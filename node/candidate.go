package node

import (
	"fmt"
	"hash/fnv"
	"math"

	"github.com/dmlrun/dmlrun/config"
	"github.com/dmlrun/dmlrun/train"
)

// candidate is one model that a run trains: the job's own, or one point of
// a search's grid (config.Candidates). All candidates share the data, each
// step's batch and the step's one allreduce; each has its own model,
// optimizer, θ, learning-rate schedule and stopping rule, so K candidates
// trained side by side follow exactly the trajectories they would follow
// alone.
type candidate struct {
	id         int
	spec       config.Candidate
	model      train.Model
	opt        train.Optimizer
	theta      []float64
	rate       train.Schedule // the learning rate against the step
	stop       train.Stopper  // scikit-learn's tol / n_iter_no_change rule
	steps      int            // its last step: the run's, or where its rule (or divergence) stopped it
	stopReason string         // why it stopped before the run's end ("" when it did not)
	diverged   bool           // a search's candidate whose numbers left the finite range (its θ is reset)
	seg        int            // where its [Σ grad, Σ loss] starts in the step vector
	eval       []float64      // its slice of the trainer's evaluation sums
	loss       float64        // its last step's batch loss

	lastEval    Eval          // its last evaluation (on the test set, or the training set without one)
	lastMetrics train.Metrics // the metrics of that evaluation, for model.json
	val         train.Metrics // a search's final validation metrics
}

// active reports whether the candidate takes part in step (0-based).
func (c *candidate) active(step int) bool { return step < c.steps }

// newCandidate builds candidate id's model, optimizer and θ for data of
// the given shape, trained for steps steps.
func newCandidate(id int, spec config.Candidate, d *nodeData, classWeight []float64, steps int) (*candidate, error) {
	cfg := spec.Config
	ms := train.ModelSpec{Kind: cfg.Model.Kind, Hidden: cfg.Model.Hidden, Activation: cfg.Model.Activation, L2: cfg.Model.L2, Seed: cfg.Seed,
		ClassWeight: classWeight}
	if ms.Kind == train.KindMLP {
		ms.Output = d.task
	}
	m, err := train.NewModel(ms, d.features, d.classes)
	if err != nil {
		return nil, fmt.Errorf("model%s: %w", candLabel(spec), err)
	}
	o := cfg.Optimizer
	opt, err := train.NewOptimizer(train.OptimizerSpec{Kind: o.Kind, LR: o.LR, Momentum: o.Momentum, Beta1: o.Beta1, Beta2: o.Beta2, Epsilon: o.Epsilon}.WithDefaults(), m.NumParams())
	if err != nil {
		return nil, fmt.Errorf("optimizer%s: %w", candLabel(spec), err)
	}
	c := &candidate{id: id, spec: spec, model: m, opt: opt, theta: make([]float64, m.NumParams()), steps: steps,
		rate: train.Schedule{Kind: o.Schedule, Eta0: o.Eta0, PowerT: o.PowerT, StepSize: o.StepSize, Gamma: o.Gamma, Warmup: o.WarmupSteps, Total: steps},
		stop: train.NewStopper(cfg.Training.Tol, cfg.Training.NIterNoChange)}
	if err := c.rate.Validate(); err != nil {
		return nil, fmt.Errorf("optimizer%s: %w", candLabel(spec), err)
	}
	m.Init(c.theta)
	return c, nil
}

// label names a search's candidate in an error (" of candidate
// optimizer.lr=0.1"), nothing for the job's own model.
func candLabel(s config.Candidate) string {
	if len(s.Settings) == 0 {
		return ""
	}
	return " of candidate " + s.String()
}

// applyStep turns the candidate's allreduced segment (Σ grad, Σ loss) of
// step into an update of θ, for a batch of count rows. It returns false
// when the numbers left the finite range (what says which); θ is then
// unchanged or, if the update made it non-finite, no longer valid.
func (c *candidate) applyStep(seg []float64, count float64, step int) (ok bool, what string) {
	P := len(c.theta)
	if !finite(seg) { // allreduced: every node sees it at the same step
		return false, "the loss or the gradient"
	}
	g := seg[:P]
	for i := range g {
		g[i] /= count
	}
	c.loss = seg[P]/count + c.model.Regularize(c.theta, g)
	c.opt.SetLR(c.rate.Rate(step + 1)) // a function of the step alone: the same on every node
	c.opt.Step(c.theta, g)             // θ changes only after a complete allreduce
	if !finite(c.theta) || math.IsInf(c.loss, 0) {
		return false, "θ"
	}
	return true, ""
}

// diverge stops a search's candidate whose numbers left the finite range at
// step (0-based, not applied): its θ and optimizer state go back to their
// start, so that checkpoints and transfers stay finite, and the search
// ranks it last.
func (c *candidate) diverge(step int, what string) {
	c.diverged, c.steps = true, step
	c.stopReason = fmt.Sprintf("diverged at step %d (%s not finite)", step+1, what)
	c.model.Init(c.theta)
	_ = c.opt.SetState(make([]float64, len(c.opt.State())))
}

// candStateLen is the length of a candidate's state beyond θ: the
// optimizer's, the stopping rule's and the divergence flag.
func (c *candidate) stateLen() int { return len(c.opt.State()) + train.StopperStateLen + 1 }

func (c *candidate) appendState(dst []float64) []float64 {
	dst = c.stop.AppendState(append(dst, c.opt.State()...))
	flag := 0.0
	if c.diverged {
		flag = float64(c.steps) + 1 // the step it diverged at, 1-based
	}
	return append(dst, flag)
}

// setState restores what appendState wrote; a candidate that had stopped
// (by its rule or by diverging) stops here too.
func (c *candidate) setState(s []float64) error {
	if len(s) != c.stateLen() {
		return fmt.Errorf("state%s has %d values, this run needs %d", candLabel(c.spec), len(s), c.stateLen())
	}
	n := len(c.opt.State())
	if err := c.opt.SetState(s[:n]); err != nil {
		return err
	}
	if err := c.stop.SetState(s[n : n+train.StopperStateLen]); err != nil {
		return err
	}
	switch flag := s[n+train.StopperStateLen]; {
	case flag < 0 || flag != math.Trunc(flag):
		return fmt.Errorf("state%s: bad divergence flag %v", candLabel(c.spec), flag)
	case flag > 0:
		c.diverged, c.steps = true, int(flag)-1
		if c.stopReason == "" {
			c.stopReason = fmt.Sprintf("diverged at step %d", c.steps+1)
		}
	case c.stop.Stopped() > 0:
		c.steps = c.stop.Stopped()
		if c.stopReason == "" {
			c.stopReason = fmt.Sprintf("the stopping rule stopped it at step %d", c.steps)
		}
	}
	return nil
}

// paramsLen is the length of every candidate's θ together.
func (t *trainer) paramsLen() int {
	n := 0
	for _, c := range t.cands {
		n += len(c.theta)
	}
	return n
}

// appendTheta appends every candidate's θ, in candidate order.
func (t *trainer) appendTheta(dst []float64) []float64 {
	for _, c := range t.cands {
		dst = append(dst, c.theta...)
	}
	return dst
}

// setTheta restores what appendTheta wrote.
func (t *trainer) setTheta(src []float64) {
	for _, c := range t.cands {
		src = src[copy(c.theta, src):]
	}
}

// stateLen is the length of the state that travels with θ (to a node that
// is behind or joins, and into checkpoints): every candidate's.
func (t *trainer) stateLen() int {
	n := 0
	for _, c := range t.cands {
		n += c.stateLen()
	}
	return n
}

// appendState appends every candidate's state, in candidate order.
func (t *trainer) appendState(dst []float64) []float64 {
	for _, c := range t.cands {
		dst = c.appendState(dst)
	}
	return dst
}

// setState restores a state that appendState wrote (on another node, or in
// a checkpoint).
func (t *trainer) setState(s []float64) error {
	if len(s) != t.stateLen() {
		return fmt.Errorf("state has %d values, this run needs %d", len(s), t.stateLen())
	}
	for _, c := range t.cands {
		n := c.stateLen()
		if err := c.setState(s[:n]); err != nil {
			return err
		}
		s = s[n:]
	}
	t.steps = t.runSteps()
	return nil
}

// runSteps is the run's last step: that of the candidate that trains
// longest.
func (t *trainer) runSteps() int {
	n := 0
	for _, c := range t.cands {
		n = max(n, c.steps)
	}
	return n
}

// thetaDigest is a digest of every candidate's θ that allreduce compares
// exactly.
func (t *trainer) thetaDigest() float64 {
	h := fnv.New64a()
	for _, c := range t.cands {
		h.Write(floatBytes(c.theta))
	}
	return float64(h.Sum64() >> 11)
}

// searching reports whether the run trains a search's candidates.
func (t *trainer) searching() bool { return t.cfg.Search != nil }
