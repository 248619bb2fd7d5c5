package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"time"
	"unsafe"

	"github.com/dmlrun/dmlrun/config"
	"github.com/dmlrun/dmlrun/data"
	"github.com/dmlrun/dmlrun/ring"
	"github.com/dmlrun/dmlrun/train"
)

// digestEvery is how often (in steps) the nodes compare a digest of θ.
const digestEvery = 50

// errNewMember is the "failure" that grows the ring: a node joined.
var errNewMember = errors.New("a node joined: growing the ring")

// trainer runs the step loop of one node, following the global-batch
// semantics of DESIGN.md: step k of epoch e uses rows P_e[kB:(k+1)B] of a
// permutation drawn from (seed, e); each node sums the gradients of the batch
// rows it owns; one allreduce of [Σ gradients, Σ loss, count] gives every node
// the gradient of the whole batch. θ changes only after a complete allreduce.
type trainer struct {
	w          *worker
	lastEval   Eval           // the last evaluation, for the run's summary
	rate       train.Schedule // the learning rate against the step
	stop       stopper        // scikit-learn's tol / n_iter_no_change rule
	stopReason string         // why the rule stopped the run ("" when it ran to the end)
	lastRows   float64        // the last step's global batch rows
	valFrac    float64        // training.validation_fraction
	trainBuf   []int          // a batch's training rows (without the validation split)
	valTables  []*data.Table  // this node's validation rows
	recoveries int            // ring failures recovered from
	comm       *Comm          // w.comm: the current ring
	cfg        *config.Config
	log        *slog.Logger

	data  *nodeData
	model train.Model
	opt   train.Optimizer
	theta []float64
	v     []float64 // [Σ grad (P), Σ loss, count]
	eval  []float64 // evaluation sums

	sched                  *data.Schedule
	resample               *data.Resampler // data.resample: the class-balanced epochs (nil: sched)
	lastMetrics            train.Metrics   // the last evaluation's metrics, for model.json
	steps, perEpoch, batch int
	owned                  data.Batch // this node's rows of the current batch, by shard
	metrics                *metricsWriter
	stats                  *StepStats
	done                   int  // steps applied to θ (-1: a joiner without state yet)
	evalNext               bool // evaluate after the next step (the ring changed)
	reformNext             bool // a node saw a new member: grow the ring after this step
	seenGen                uint64
	failedAt               time.Time // when the ring last failed, until the new ring completes a step
}

// wantsReform reports whether gossip shows a live member of this job that is
// not in the ring (a joiner, or a node back from a failure). It looks at the
// member list only when the membership changed, so a step allocates nothing.
func (t *trainer) wantsReform() bool {
	mem := t.w.mem
	if mem == nil || mem.Generation() == t.seenGen {
		return false
	}
	t.seenGen = mem.Generation()
	for _, m := range mem.Members() {
		if !slices.ContainsFunc(t.w.members, func(x Member) bool { return x.Name == m.Name }) {
			return true
		}
	}
	return false
}

func newTrainer(ctx context.Context, w *worker) (*trainer, error) {
	w.progress.setPhase(PhaseLoading)
	if err := checkOutputDir(w.cfg.Output.Dir); err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, w.cfg.Cluster.Timeout.Duration)
	defer cancel()
	d, err := loadData(sctx, w.comm, w.members, w.cfg, nil)
	if err != nil {
		return nil, err
	}
	w.tl.dataLoaded(d)
	t := &trainer{w: w, comm: w.comm, cfg: w.cfg, log: w.log.With("rank", w.comm.Rank()), data: d}
	if err := t.build(); err != nil {
		return nil, err
	}
	// No node starts training (and so none counts as lost later) before
	// every node has read its rows: a node that cannot fails the start.
	if err := w.comm.Barrier(sctx); err != nil {
		return nil, ringFailure(fmt.Errorf("waiting for every node to load its data (did another node fail? see its lines): %w", err))
	}
	if err := t.openMetrics(w.resume); err != nil {
		return nil, err
	}
	t.buildValidation()
	return t, nil
}

// newJoiner is the trainer of a node that joins a running ring: it has no
// rows, model or state yet; resume brings all three from the ring.
func newJoiner(ctx context.Context, w *worker) (*trainer, error) {
	if err := checkOutputDir(w.cfg.Output.Dir); err != nil {
		return nil, err
	}
	d, err := probeData(ctx, w.cfg)
	if err != nil {
		return nil, err
	}
	return &trainer{w: w, cfg: w.cfg, log: w.log, data: d, done: -1}, nil
}

// build makes the model, the optimizer, θ and the schedule once the data's
// shape (features, classes) is known.
func (t *trainer) build() error {
	cfg, d := t.cfg, t.data
	spec := train.ModelSpec{Kind: cfg.Model.Kind, Hidden: cfg.Model.Hidden, Activation: cfg.Model.Activation, L2: cfg.Model.L2, Seed: cfg.Seed}
	if spec.Kind == train.KindMLP {
		spec.Output = d.task
	}
	cw, err := classWeights(cfg, d)
	if err != nil {
		return err
	}
	spec.ClassWeight = cw
	m, err := train.NewModel(spec, d.features, d.classes)
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	o := cfg.Optimizer
	opt, err := train.NewOptimizer(train.OptimizerSpec{Kind: o.Kind, LR: o.LR, Momentum: o.Momentum, Beta1: o.Beta1, Beta2: o.Beta2, Epsilon: o.Epsilon}.WithDefaults(), m.NumParams())
	if err != nil {
		return fmt.Errorf("optimizer: %w", err)
	}
	t.model, t.opt = m, opt
	t.theta, t.v = make([]float64, m.NumParams()), make([]float64, m.NumParams()+3)
	m.Init(t.theta)
	t.batch = cfg.Training.BatchSize
	if t.batch <= 0 || t.batch > d.rows {
		t.batch = d.rows // full batch: plain gradient descent
	}
	t.sched = data.NewSchedule(cfg.Seed, d.rows, cfg.Training.BatchSize)
	t.perEpoch = t.sched.StepsPerEpoch()
	if err := t.setupImbalance(); err != nil { // data.resample: other epochs (imbalance.go)
		return err
	}
	t.steps = cfg.Training.Steps
	if t.steps == 0 {
		t.steps = cfg.Training.Epochs * t.perEpoch
	}
	t.rate = train.Schedule{Kind: o.Schedule, Eta0: o.Eta0, PowerT: o.PowerT, StepSize: o.StepSize, Gamma: o.Gamma,
		Warmup: o.WarmupSteps, Total: t.steps}
	if err := t.rate.Validate(); err != nil {
		return fmt.Errorf("optimizer: %w", err)
	}
	t.stop = newStopper(cfg.Training.Tol, cfg.Training.NIterNoChange)
	t.valFrac = cfg.Training.ValidationFraction
	t.trainBuf = make([]int, 0, t.batch)
	t.owned = data.Batch{}
	t.eval = make([]float64, train.EvalLen(m))
	t.stats = newStepStats(t.steps)
	return nil
}

// openMetrics gives rank 0 (whichever node that is now) the metrics file.
func (t *trainer) openMetrics(appendTo bool) error {
	if t.comm.Rank() != 0 || t.metrics != nil {
		return nil
	}
	var err error
	t.metrics, err = newMetricsWriter(t.cfg.Output.Dir, appendTo, t.data.classes)
	return err
}

// step runs one training step and returns the batch loss. It allocates
// nothing.
func (t *trainer) step(sc *stepContext, step int) (float64, error) {
	P := t.model.NumParams()
	t0 := time.Now()
	if err := t.ownBatch(step); err != nil {
		return 0, err
	}
	clear(t.v)
	for _, g := range t.owned.Groups { // shard by shard, in row order
		t.v[P] += t.model.LossGrad(t.theta, g.T, g.Rows, t.v[:P])
	}
	t.v[P+1] = float64(t.owned.Len())
	if t.wantsReform() { // rides on the step's allreduce: every node learns it at the same step
		t.v[P+2] = 1
	}
	t1 := time.Now()
	if err := t.comm.AllReduce(sc.reset(t.cfg.Cluster.StepTimeout.Duration), t.v, ring.Sum); err != nil {
		return 0, ringFailure(fmt.Errorf("step %d: %w", step, err))
	}
	t2 := time.Now()
	t.stats.add(t1.Sub(t0), t2.Sub(t1))
	t.w.tl.step(step+1, t0, t1, t.owned.Len())
	count := t.v[P+1]
	if count == 0 && t.valFrac > 0 { // every row of this batch is held out: nothing to learn
		t.done, t.lastRows = step+1, 0
		return 0, nil
	}
	if count == 0 {
		return 0, fmt.Errorf("step %d: the batch is empty", step)
	}
	if !finite(t.v[:P+1]) { // allreduced: every node stops here, at the same step
		return 0, t.diverged(step, "the loss or the gradient")
	}
	g := t.v[:P]
	for i := range g {
		g[i] /= count
	}
	loss := t.v[P]/count + t.model.Regularize(t.theta, g)
	t.opt.SetLR(t.rate.Rate(step + 1)) // a function of the step alone: the same on every node
	t.opt.Step(t.theta, g)             // θ changes only after a complete allreduce
	if !finite(t.theta) || math.IsInf(loss, 0) {
		return 0, t.diverged(step, "θ")
	}
	t.done = step + 1
	t.lastRows = count
	t.reformNext = t.v[P+2] > 0
	t.stats.Samples += int64(count)
	t.w.prom.step(t.done, t0, t2.Sub(t1), t.owned.Len(), loss)
	return loss, nil
}

func (t *trainer) run(ctx context.Context) (*Result, error) {
	P := t.model.NumParams()
	sc := &stepContext{Context: ctx}
	stepTimeout := t.cfg.Cluster.StepTimeout.Duration
	start := time.Now()
	t.log.Info("training", "task", t.model.Task(), "loss", lossName(t.model.Task()), "classes", t.data.classes, "rows", t.data.rows, "own rows", t.data.train.Len(), "rows read", t.data.read,
		"read in", t.data.readTook.Round(time.Millisecond), "data bytes", t.data.train.Bytes(), "params", P,
		"batch", t.batch, "steps", t.steps, "steps per epoch", t.perEpoch, noticeIf(t.comm.Rank() == 0))
	if t.w.resume {
		if err := t.resumeFromCheckpoint(sc.reset(stepTimeout)); err != nil {
			return nil, err
		}
	}
	if t.w.mem != nil {
		if err := t.w.mem.SetTraining(); err != nil {
			return nil, err
		}
		t.seenGen = t.w.mem.Generation()
	}
	if t.w.onStart != nil {
		t.w.onStart()
	}
	t.w.progress.setRun(t.steps, t.perEpoch)
	t.w.progress.setPhase(PhaseTraining)
	var loss float64
	for t.done < t.steps {
		err := func() error {
			var err error
			if loss, err = t.step(sc, t.done); err != nil {
				return err
			}
			t.w.progress.stepped(t.done, loss, t.stats.Samples)
			if err := t.applyStoppingRule(sc.reset(stepTimeout), loss); err != nil {
				return err
			}
			if !t.failedAt.IsZero() {
				t.firstStepAfterRecovery()
			}
			if k := t.cfg.Checkpoint.Every; k > 0 && t.done%k == 0 {
				if err := t.saveCheckpoint(); err != nil {
					return err
				}
			}
			if t.done%digestEvery == 0 || t.done == t.steps {
				if err := t.checkSameTheta(sc.reset(stepTimeout), t.done); err != nil {
					return err
				}
			}
			if ev := t.cfg.Training.EvalEvery; (ev > 0 && t.done%ev == 0) || t.done == t.steps || t.evalNext {
				t.evalNext = false
				return t.evaluate(sc.reset(stepTimeout), t.done, loss, time.Since(start))
			}
			return nil
		}()
		if err == nil && t.reformNext {
			t.reformNext = false
			err = ringFailure(errNewMember)
		}
		if err == nil {
			continue
		}
		if !isRingFailure(err) {
			return nil, err
		}
		if err := t.recover(ctx, err); err != nil {
			return nil, err
		}
	}
	t.stats.Wall = time.Since(start)
	t.w.progress.setPhase(PhaseSaving)
	sum := sha256.Sum256(floatBytes(t.theta))
	res := &Result{Rank: t.comm.Rank(), Size: t.comm.Size(), Steps: t.steps, ThetaSHA256: hex.EncodeToString(sum[:]), Stats: t.stats,
		Eval: t.lastEval, Recoveries: t.recoveries, Stopped: t.stopReason}
	t.log.Info("done", "steps", t.steps, "loss", loss, "theta sha256", res.ThetaSHA256)
	for { // the lowest rank writes the outputs; if it dies doing so, the next one does
		err := t.finish(sc.reset(stepTimeout), res)
		if err == nil {
			t.w.progress.setPhase(PhaseDone)
			return res, nil
		}
		if !isRingFailure(err) {
			return nil, err
		}
		if err := t.recover(ctx, err); err != nil {
			return nil, err
		}
	}
}

// finish has rank 0 close metrics.csv and write model.json, then waits for
// every node at a barrier: a node that sees the barrier fail (rank 0 died
// before it could confirm its outputs) re-forms the ring, whose new rank 0
// writes them again.
func (t *trainer) finish(ctx context.Context, res *Result) error {
	if t.metrics != nil {
		faultPoint("before-save")
		if err := t.metrics.Close(); err != nil {
			return err
		}
		t.metrics = nil
		if err := t.saveModel(); err != nil {
			return err
		}
		res.Model = filepath.Join(t.cfg.Output.Dir, "model.json")
	}
	if err := t.comm.Barrier(ctx); err != nil {
		return ringFailure(fmt.Errorf("confirming the outputs after the last step: %w", err))
	}
	res.Rank, res.Size = t.comm.Rank(), t.comm.Size()
	return nil
}

// finite reports whether every element of v is a finite number.
func finite(v []float64) bool {
	var s float64
	for _, x := range v {
		s += x - x // NaN for NaN and ±Inf, else 0
	}
	return s == 0
}

// diverged is the error of a run whose numbers left the finite range: a
// fault of the job (every node sees it at the same step), not of a node.
func (t *trainer) diverged(step int, what string) error {
	return fmt.Errorf("step %d: %s is not finite: the model diverged; try a lower optimizer.lr (now %g) or data.normalize: true%s",
		step+1, what, t.cfg.Optimizer.LR, t.keptNote())
}

// keptNote says where the last finite θ is, when checkpoints are on.
func (t *trainer) keptNote() string {
	if t.cfg.Checkpoint.Every <= 0 {
		return ""
	}
	return fmt.Sprintf("; the last checkpoint (%s) holds the last finite θ saved", t.checkpointPath())
}

// firstStepAfterRecovery reports, once per recovery, how long training
// stood still: from the failure to the first step the new ring completed.
func (t *trainer) firstStepAfterRecovery() {
	t.w.prom.paused(time.Since(t.failedAt))
	if t.comm.Rank() == 0 {
		t.log.Info("first step of the new ring done", "step", t.done, "world size", t.comm.Size(),
			"paused", time.Since(t.failedAt).Round(time.Millisecond))
	}
	t.w.tl.recovered(t.done, t.comm.Size())
	t.failedAt = time.Time{}
}

// evaluate computes the held-out (or, without one, training) metrics summed
// over all nodes, logs them, and has rank 0 append them to metrics.csv.
func (t *trainer) evaluate(ctx context.Context, step int, trainLoss float64, elapsed time.Duration) error {
	set := t.data.test
	if set == nil {
		set = t.data.train
	}
	clear(t.eval)
	for _, tab := range set.Tables() {
		train.Evaluate(t.model, t.theta, tab, t.eval)
	}
	if err := t.comm.AllReduce(ctx, t.eval, ring.Sum); err != nil {
		return ringFailure(fmt.Errorf("evaluation after step %d: %w", step, err))
	}
	m := train.Finish(t.model, t.eval)
	if m.N == 0 {
		return nil
	}
	t.noteClasses(step, m)
	t.w.prom.eval(m, t.model.Task() == train.TaskRegression)
	level := slog.LevelDebug // every node computes the same numbers: rank 0 shows them
	if t.comm.Rank() == 0 {
		level = slog.LevelInfo
	}
	shown := noticeIf(t.comm.Rank() == 0)
	if t.model.Task() == train.TaskRegression {
		t.log.Log(ctx, level, "eval", "step", step, "train loss", trainLoss, "test loss", m.Loss, "mse", m.MSE, "r2", m.R2, shown)
		t.lastEval = Eval{Step: step, TrainLoss: trainLoss, TestLoss: m.Loss, Metric: "r2", Value: m.R2}
	} else {
		t.log.Log(ctx, level, "eval", "step", step, "train loss", trainLoss, "test loss", m.Loss, "accuracy", m.Accuracy, shown)
		t.lastEval = Eval{Step: step, TrainLoss: trainLoss, TestLoss: m.Loss, Metric: "accuracy", Value: m.Accuracy}
	}
	if t.metrics != nil {
		return t.metrics.write(step, (step-1)/t.perEpoch, trainLoss, m, t.model.Task() == train.TaskRegression, t.comm.Size(), elapsed)
	}
	return nil
}

// checkSameTheta compares a digest of θ across nodes (an allgather of one
// number per rank) and names the nodes that differ from rank 0.
func (t *trainer) checkSameTheta(ctx context.Context, step int) error {
	n := t.comm.Size()
	d := make([]float64, n) // once every digestEvery steps: not the hot path
	d[t.comm.Rank()] = digest53(floatBytes(t.theta))
	if err := t.comm.AllGather(ctx, d); err != nil {
		return ringFailure(fmt.Errorf("θ check after step %d: %w", step, err))
	}
	var bad []string
	for r, x := range d {
		if x != d[0] {
			bad = append(bad, t.w.members[r].String())
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("after step %d θ differs from rank 0's (%s) on: %v", step, t.w.members[0], bad)
	}
	return nil
}

func floatBytes(v []float64) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v)*8)
}

// lossName names the loss a task trains on, for the log.
func lossName(task string) string {
	switch task {
	case train.TaskBinary:
		return "binary cross-entropy"
	case train.TaskMulticlass:
		return "cross-entropy"
	}
	return "mse"
}

// applyStoppingRule feeds the step's loss to the stopping rule and, at the
// end of an epoch where the rule stops, makes this step the last: the θ
// check, the final evaluation and the outputs follow as at a planned end.
// With a validation split the rule judges the validation score (one
// allreduce at each epoch's end).
func (t *trainer) applyStoppingRule(ctx context.Context, loss float64) error {
	t.stop.step(loss, t.lastRows)
	if !t.stop.on || t.done%t.perEpoch != 0 {
		return nil
	}
	epoch := t.done / t.perEpoch
	var stop bool
	var why string
	if t.valFrac > 0 {
		v, err := t.validationScore(ctx, t.done)
		if err != nil {
			return err
		}
		what := "the validation accuracy"
		if t.model.Task() == train.TaskRegression {
			what = "the validation R²"
		}
		stop, why = t.stop.endEpochOn(v, t.done, epoch, what+" (negated)")
	} else {
		stop, why = t.stop.endEpoch(t.done, epoch)
	}
	if stop {
		t.steps, t.stopReason = t.done, why
		t.log.Info("stopping early", "step", t.done, "epoch", epoch, "reason", why, noticeIf(t.comm.Rank() == 0))
	}
	return nil
}

// stateLen is the length of the state that travels with θ: the optimizer's
// and the stopping rule's.
func (t *trainer) stateLen() int { return len(t.opt.State()) + stopStateLen }

// appendState appends the optimizer's state, then the stopping rule's.
func (t *trainer) appendState(dst []float64) []float64 {
	return t.stop.appendState(append(dst, t.opt.State()...))
}

// setState restores a state that appendState wrote (on another node, or in
// a checkpoint); a rule that had stopped the run stops it here too.
func (t *trainer) setState(s []float64) error {
	if len(s) != t.stateLen() {
		return fmt.Errorf("state has %d values, this run needs %d", len(s), t.stateLen())
	}
	n := len(s) - stopStateLen
	if err := t.opt.SetState(s[:n]); err != nil {
		return err
	}
	if err := t.stop.setState(s[n:]); err != nil {
		return err
	}
	if t.stop.stopped > 0 {
		t.steps = t.stop.stopped
	}
	return nil
}
