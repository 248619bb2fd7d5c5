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
	cands      []*candidate  // the models trained: one, or a search's grid (candidate.go)
	lastRows   float64       // the last step's global batch rows
	valFrac    float64       // training.validation_fraction
	trainBuf   []int         // a batch's training rows (without the validation split)
	valTables  []*data.Table // this node's validation rows
	recoveries int           // ring failures recovered from
	cfg        *config.Config
	log        *slog.Logger

	data *nodeData
	v    []float64 // per candidate [Σ grad (P), Σ loss], then [count, a node joined]
	eval []float64 // evaluation sums, per candidate

	sched                  *data.Schedule
	resample               *data.Resampler // data.resample: the class-balanced epochs (nil: sched)
	steps, perEpoch, batch int             // steps: the run's, the longest candidate's (runSteps)
	owned                  data.Batch      // this node's rows of the current batch, by shard
	metrics                *metricsWriter
	stats                  *StepStats
	done                   int  // steps applied to θ (-1: a joiner without state yet)
	evalNext               bool // evaluate after the next step (the ring changed)
	reformNext             bool // a node saw a new member: grow the ring after this step
	seenGen                uint64
	failedAt               time.Time // when the ring last failed, until the new ring completes a step
}

// comm is the current ring's communicator (the worker's: recovery replaces
// it).
func (t *trainer) comm() *Comm { return t.w.comm }

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
	t := &trainer{w: w, cfg: w.cfg, log: w.log.With("rank", w.comm.Rank()), data: d}
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

// build makes the models, the optimizers, θ and the schedule once the
// data's shape (features, classes) is known: one candidate, or one per point
// of a search's grid.
func (t *trainer) build() error {
	cfg, d := t.cfg, t.data
	specs, err := cfg.Candidates()
	if err != nil {
		return err
	}
	cw, err := classWeights(cfg, d)
	if err != nil {
		return err
	}
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
	t.cands = make([]*candidate, len(specs))
	vlen, elen := 0, 0
	for i, spec := range specs {
		c, err := newCandidate(i, spec, d, cw, t.steps)
		if err != nil {
			return err
		}
		c.seg = vlen
		vlen += c.model.NumParams() + 1
		elen += train.EvalLen(c.model)
		t.cands[i] = c
	}
	t.v, t.eval = make([]float64, vlen+2), make([]float64, elen)
	for i, off := 0, 0; i < len(t.cands); i++ {
		c := t.cands[i]
		n := train.EvalLen(c.model)
		c.eval, off = t.eval[off:off+n:off+n], off+n
	}
	t.valFrac = cfg.Training.ValidationFraction
	t.trainBuf = make([]int, 0, t.batch)
	t.owned = data.Batch{}
	t.stats = newStepStats(t.steps)
	return nil
}

// openMetrics gives rank 0 (whichever node that is now) the metrics file.
func (t *trainer) openMetrics(appendTo bool) error {
	if t.comm().Rank() != 0 || t.metrics != nil {
		return nil
	}
	var err error
	t.metrics, err = newMetricsWriter(t.cfg.Output.Dir, appendTo, t.data.classes, t.searching())
	return err
}

// step runs one training step and returns the batch loss (a search's: the
// lowest of its candidates'). It allocates nothing.
func (t *trainer) step(sc *stepContext, step int) (float64, error) {
	cnt := len(t.v) - 2
	t0 := time.Now()
	if err := t.ownBatch(step); err != nil {
		return 0, err
	}
	clear(t.v)
	for _, c := range t.cands {
		if !c.active(step) {
			continue // a candidate that stopped: its segment stays 0
		}
		P := len(c.theta)
		for _, g := range t.owned.Groups { // shard by shard, in row order
			t.v[c.seg+P] += c.model.LossGrad(c.theta, g.T, g.Rows, t.v[c.seg:c.seg+P])
		}
	}
	t.v[cnt] = float64(t.owned.Len())
	if t.wantsReform() { // rides on the step's allreduce: every node learns it at the same step
		t.v[cnt+1] = 1
	}
	t1 := time.Now()
	if err := t.comm().AllReduce(sc.reset(t.cfg.Cluster.StepTimeout.Duration), ring.Sum, t.v); err != nil {
		return 0, ringFailure(fmt.Errorf("step %d: %w", step, err))
	}
	t2 := time.Now()
	t.stats.add(t1.Sub(t0), t2.Sub(t1))
	t.w.tl.step(step+1, t0, t1, t.owned.Len())
	count := t.v[cnt]
	if count == 0 && t.valFrac > 0 { // every row of this batch is held out: nothing to learn
		t.done, t.lastRows = step+1, 0
		return 0, nil
	}
	if count == 0 {
		return 0, fmt.Errorf("step %d: the batch is empty", step)
	}
	loss := math.Inf(1)
	for _, c := range t.cands {
		if !c.active(step) {
			continue
		}
		if ok, what := c.applyStep(t.v[c.seg:c.seg+len(c.theta)+1], count, step); !ok {
			if !t.searching() {
				return 0, t.diverged(step, what)
			}
			c.diverge(step, what) // a search goes on with the others
			t.log.Warn("candidate diverged", "candidate", c.id, "settings", c.spec.String(), "step", step+1, "reason", c.stopReason,
				noticeIf(t.comm().Rank() == 0))
			continue
		}
		loss = math.Min(loss, c.loss)
	}
	t.done = step + 1
	t.steps = t.runSteps()
	t.lastRows = count
	t.reformNext = t.v[cnt+1] > 0
	t.stats.Samples += int64(count)
	t.w.prom.step(t.done, t0, t2.Sub(t1), t.owned.Len(), loss)
	return loss, nil
}

func (t *trainer) run(ctx context.Context) (*Result, error) {
	sc := &stepContext{Context: ctx}
	stepTimeout := t.cfg.Cluster.StepTimeout.Duration
	start := time.Now()
	task := t.cands[0].model.Task()
	attrs := []any{"task", task, "loss", lossName(task), "classes", t.data.classes, "rows", t.data.rows, "own rows", t.data.train.Len(), "rows read", t.data.read,
		"read in", t.data.readTook.Round(time.Millisecond), "data bytes", t.data.train.Bytes(), "params", t.paramsLen(),
		"batch", t.batch, "steps", t.steps, "steps per epoch", t.perEpoch}
	if t.searching() {
		attrs = append(attrs, "candidates", len(t.cands), "search metric", t.cfg.SearchMetric(task))
	}
	t.log.Info("training", append(attrs, noticeIf(t.comm().Rank() == 0))...)
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
			if err := t.applyStoppingRule(sc.reset(stepTimeout)); err != nil {
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
	res := &Result{Steps: t.steps, Stats: t.stats}
	for { // the lowest rank writes the outputs; if it dies doing so, the next one does
		err := t.finish(sc.reset(stepTimeout), res, loss)
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

// finish picks the model to keep (a search's best on the validation data),
// has rank 0 close metrics.csv and write model.json (and search.csv), then
// waits for every node at a barrier: a node that sees the barrier fail (rank
// 0 died before it could confirm its outputs) re-forms the ring, whose new
// rank 0 writes them again.
func (t *trainer) finish(ctx context.Context, res *Result, loss float64) error {
	best, err := t.best(ctx)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(floatBytes(best.theta))
	res.ThetaSHA256, res.Eval, res.Stopped, res.Recoveries = hex.EncodeToString(sum[:]), best.lastEval, best.stopReason, t.recoveries
	if t.searching() {
		res.Best = best.spec.String()
	}
	t.log.Info("done", "steps", t.steps, "loss", loss, "theta sha256", res.ThetaSHA256)
	if t.metrics != nil {
		faultPoint("before-save")
		if err := t.metrics.Close(); err != nil {
			return err
		}
		t.metrics = nil
		if t.searching() {
			if err := t.saveSearch(best); err != nil {
				return err
			}
		}
		if err := t.saveModel(best); err != nil {
			return err
		}
		res.Model = filepath.Join(t.cfg.Output.Dir, "model.json")
	}
	if err := t.comm().Barrier(ctx); err != nil {
		return ringFailure(fmt.Errorf("confirming the outputs after the last step: %w", err))
	}
	res.Rank, res.Size = t.comm().Rank(), t.comm().Size()
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
	if t.comm().Rank() == 0 {
		t.log.Info("first step of the new ring done", "step", t.done, "world size", t.comm().Size(),
			"paused", time.Since(t.failedAt).Round(time.Millisecond))
	}
	t.w.tl.recovered(t.done, t.comm().Size())
	t.failedAt = time.Time{}
}

// evaluate computes every candidate's held-out (or, without one, training)
// metrics summed over all nodes (one allreduce), logs them, and has rank 0
// append them to metrics.csv.
func (t *trainer) evaluate(ctx context.Context, step int, trainLoss float64, elapsed time.Duration) error {
	set := t.data.test
	if set == nil {
		set = t.data.train
	}
	if err := t.evalSums(ctx, set.Tables(), nil); err != nil {
		return ringFailure(fmt.Errorf("evaluation after step %d: %w", step, err))
	}
	level := slog.LevelDebug // every node computes the same numbers: rank 0 shows them
	if t.comm().Rank() == 0 {
		level = slog.LevelInfo
	}
	reg := t.cands[0].model.Task() == train.TaskRegression
	for _, c := range t.cands {
		m := train.Finish(c.model, c.eval)
		if m.N == 0 {
			return nil
		}
		loss := trainLoss
		if t.searching() {
			loss = c.loss
		}
		t.noteClasses(c, step, m)
		metric, value := "accuracy", m.Accuracy
		if reg {
			metric, value = "r2", m.R2
		}
		c.lastEval = Eval{Step: step, TrainLoss: loss, TestLoss: m.Loss, Metric: metric, Value: value}
		attrs := []any{"step", step, "train loss", loss, "test loss", m.Loss}
		if reg {
			attrs = append(attrs, "mse", m.MSE)
		}
		attrs = append(attrs, metric, value)
		if t.searching() {
			attrs = append([]any{"candidate", c.id, "settings", c.spec.String()}, attrs...)
		} else {
			attrs = append(attrs, noticeIf(t.comm().Rank() == 0))
			t.w.prom.eval(m, reg)
		}
		t.log.Log(ctx, level, "eval", attrs...)
		if t.metrics != nil {
			cand := -1
			if t.searching() {
				cand = c.id
			}
			if err := t.metrics.write(step, (step-1)/t.perEpoch, loss, m, reg, t.comm().Size(), elapsed, cand); err != nil {
				return err
			}
		}
	}
	if t.searching() {
		t.noteSearchEval(ctx, level, step)
	}
	return nil
}

// evalSums fills every candidate's evaluation sums over tables, with one
// allreduce for all of them; skip (if set) leaves a candidate out (its sums
// stay 0).
func (t *trainer) evalSums(ctx context.Context, tables []*data.Table, skip func(*candidate) bool) error {
	clear(t.eval)
	for _, c := range t.cands {
		if skip != nil && skip(c) {
			continue
		}
		for _, tab := range tables {
			train.Evaluate(c.model, c.theta, tab, c.eval)
		}
	}
	return t.comm().AllReduce(ctx, ring.Sum, t.eval)
}

// checkSameTheta compares a digest of θ across nodes (an allgather of one
// number per rank) and names the nodes that differ from rank 0.
func (t *trainer) checkSameTheta(ctx context.Context, step int) error {
	n := t.comm().Size()
	d := make([]float64, n) // once every digestEvery steps: not the hot path
	d[t.comm().Rank()] = t.thetaDigest()
	if err := t.comm().AllGather(ctx, d); err != nil {
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

// applyStoppingRule feeds the step's losses to each candidate's stopping
// rule and, at the end of an epoch where a rule stops its candidate, makes
// this step the candidate's last; when the last candidate stops, the θ
// check, the final evaluation and the outputs follow as at a planned end.
// With validation data the rules judge the validation score (one allreduce
// for all candidates at each epoch's end).
func (t *trainer) applyStoppingRule(ctx context.Context) error {
	on := false
	for _, c := range t.cands {
		if c.active(t.done-1) && c.stop.on {
			c.stop.step(c.loss, t.lastRows)
			on = true
		}
	}
	if !on || t.done%t.perEpoch != 0 {
		return nil
	}
	epoch := t.done / t.perEpoch
	live := func(c *candidate) bool { return c.active(t.done-1) && c.stop.on }
	if t.hasValidation() {
		if err := t.validationScores(ctx, t.done, live); err != nil {
			return err
		}
	}
	for _, c := range t.cands {
		if !live(c) {
			continue
		}
		var stop bool
		var why string
		if t.hasValidation() {
			stop, why = c.stop.endEpochOn(-score(c.val, c.model.Task(), ""), t.done, epoch, validationWhat(c.model.Task())+" (negated)")
		} else {
			stop, why = c.stop.endEpoch(t.done, epoch)
		}
		if !stop {
			continue
		}
		c.steps, c.stopReason = t.done, why
		attrs := []any{"step", t.done, "epoch", epoch, "reason", why}
		if t.searching() {
			attrs = append([]any{"candidate", c.id, "settings", c.spec.String()}, attrs...)
		}
		t.log.Info("stopping early", append(attrs, noticeIf(t.comm().Rank() == 0))...)
	}
	t.steps = t.runSteps()
	return nil
}
