package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"time"
	"unsafe"

	"github.com/dmlrun/dmlrun/config"
	"github.com/dmlrun/dmlrun/data"
	"github.com/dmlrun/dmlrun/elastic"
	"github.com/dmlrun/dmlrun/jobmetrics"
	"github.com/dmlrun/dmlrun/jobprogress"
	"github.com/dmlrun/dmlrun/jobtrace"
	"github.com/dmlrun/dmlrun/ring"
	"github.com/dmlrun/dmlrun/train"
)

// digestEvery is how often (in steps) the nodes compare a digest of θ.
const digestEvery = 50

// trainer runs the step loop of one node, following the global-batch
// semantics of DESIGN.md: step k of epoch e uses rows P_e[kB:(k+1)B] of a
// permutation drawn from (seed, e); each node sums the gradients of the batch
// rows it owns; one allreduce of [Σ gradients, Σ loss, count] gives every node
// the gradient of the whole batch. θ changes only after a complete allreduce.
// It runs on an elastic.Group (ring.go): the Group re-forms the ring after a
// failure, brings the members behind to the same state and calls stepOnce
// again.
type trainer struct {
	cfg      *config.Config
	log      *slog.Logger        // with this node's name and rank
	base     *slog.Logger        // without them (the name changes when the others evicted this node)
	name     func() string       // this node's gossip name (nil in tests)
	c        *elastic.Comm       // the current ring's communicator (Resize sets it)
	prom     *jobmetrics.Metrics // nil without Options.Metrics
	tl       *jobtrace.Recorder  // nil without a timeline
	progress *jobprogress.Progress
	onStart  func()
	resume   bool // -resume: the job's first ring goes on from a checkpoint
	bench    bool // Options.DataBench

	cands      []*candidate  // the models trained: one, or a search's grid (candidate.go)
	lastRows   float64       // the last step's global batch rows
	valFrac    float64       // training.validation_fraction
	trainBuf   []int         // a batch's training rows (without the validation split)
	valTables  []*data.Table // this node's validation rows
	recoveries int           // ring failures recovered from

	data *nodeData
	v    []float64 // per candidate [Σ grad (P), Σ loss], then the count
	eval []float64 // evaluation sums, per candidate

	sched                  *data.Schedule
	resample               *data.Resampler // data.resample: the class-balanced epochs (nil: sched)
	steps, perEpoch, batch int             // steps: the run's, the longest candidate's (runSteps)
	owned                  data.Batch      // this node's rows of the current batch, by shard
	metrics                *metricsWriter
	stats                  *StepStats
	done                   int  // steps applied to θ (-1: no state yet)
	evalNext               bool // evaluate after the next step (the ring changed)

	sc       stepContext
	started  time.Time        // when the step loop began (zero before)
	loss     float64          // the last step's batch loss
	ring     elastic.Ring     // the ring formed last
	prev     []elastic.Member // the last ring this node stepped in (nil: none yet)
	left     error            // why it left that ring, until the next one is resized
	fresh    bool             // the ring being resized is the job's first: its members agree on the data
	failedAt time.Time        // when the ring last failed, until the new ring completes a step
	result   *Result          // once the run ended
}

// comm is the current ring's communicator.
func (t *trainer) comm() *elastic.Comm { return t.c }

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
	t.v, t.eval = make([]float64, vlen+1), make([]float64, elen)
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
	cnt := len(t.v) - 1
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
	t1 := time.Now()
	if err := t.comm().AllReduce(sc.reset(t.cfg.Cluster.StepTimeout.Duration), ring.Sum, t.v); err != nil {
		return 0, fmt.Errorf("step %d: %w", step, err)
	}
	t2 := time.Now()
	t.stats.add(t1.Sub(t0), t2.Sub(t1))
	t.tl.Step(step+1, t0, t1, t.owned.Len())
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
	t.stats.Samples += int64(count)
	t.prom.Step(t.done, t0, t2.Sub(t1), t.owned.Len(), loss)
	return loss, nil
}

// stepOnce is what the Group calls over and over: one step and what
// follows it (stopping rule, checkpoint, θ check, evaluation); once the
// run's steps are done, the outputs, then elastic.ErrStop. A collective
// that fails leaves θ as it was before the step: the Group re-forms the
// ring and calls again.
func (t *trainer) stepOnce(ctx context.Context, c *elastic.Comm) error {
	t.sc.Context = ctx
	sc, stepTimeout := &t.sc, t.cfg.Cluster.StepTimeout.Duration
	if t.started.IsZero() {
		t.begin()
		if t.bench {
			return t.benchData(ctx)
		}
	}
	if t.done >= t.steps {
		return t.finish(sc.reset(stepTimeout))
	}
	var err error
	if t.loss, err = t.step(sc, t.done); err != nil {
		return err
	}
	t.progress.Stepped(t.done, t.loss, t.stats.Samples)
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
		return t.evaluate(sc.reset(stepTimeout), t.done, t.loss, time.Since(t.started))
	}
	return nil
}

// begin starts the step loop, in the first ring this node steps in.
func (t *trainer) begin() {
	t.started = time.Now()
	task := t.cands[0].model.Task()
	attrs := []any{"task", task, "loss", lossName(task), "classes", t.data.classes, "rows", t.data.rows, "own rows", t.data.train.Len(), "rows read", t.data.read,
		"read in", t.data.readTook.Round(time.Millisecond), "data bytes", t.data.train.Bytes(), "params", t.paramsLen(),
		"batch", t.batch, "steps", t.steps, "steps per epoch", t.perEpoch}
	if t.searching() {
		attrs = append(attrs, "candidates", len(t.cands), "search metric", t.cfg.SearchMetric(task))
	}
	t.log.Info("training", append(attrs, noticeIf(t.comm().Rank() == 0))...)
	if t.onStart != nil {
		t.onStart()
	}
	t.progress.SetRun(t.steps, t.perEpoch)
	t.progress.SetPhase(jobprogress.PhaseTraining)
}

// finish picks the model to keep (a search's best on the validation data)
// and has rank 0 close metrics.csv and write model.json (and search.csv);
// then the Group confirms at a barrier that every node got here (a node
// that sees it fail, because rank 0 died before it could confirm its
// outputs, re-forms the ring, whose new rank 0 writes them again).
func (t *trainer) finish(ctx context.Context) error {
	t.progress.SetPhase(jobprogress.PhaseSaving)
	t.stats.Wall = time.Since(t.started)
	best, err := t.best(ctx)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(floatBytes(best.theta))
	res := &Result{Steps: t.steps, Stats: t.stats, Rank: t.c.Rank(), Size: t.c.Size(), ThetaSHA256: hex.EncodeToString(sum[:]),
		Eval: best.lastEval, Stopped: best.stopReason, Recoveries: t.recoveries}
	if t.searching() {
		res.Best = best.spec.String()
	}
	t.log.Info("done", "steps", t.steps, "loss", t.loss, "theta sha256", res.ThetaSHA256)
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
	t.result = res
	return elastic.ErrStop
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
	t.prom.Paused(time.Since(t.failedAt))
	if t.comm().Rank() == 0 {
		t.log.Info("first step of the new ring done", "step", t.done, "world size", t.comm().Size(),
			"paused", time.Since(t.failedAt).Round(time.Millisecond))
	}
	t.tl.Recovered(t.done, t.comm().Size())
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
		return fmt.Errorf("evaluation after step %d: %w", step, err)
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
			t.prom.Eval(m, reg)
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
		return fmt.Errorf("θ check after step %d: %w", step, err)
	}
	var bad []string
	ms := t.comm().Members()
	for r, x := range d {
		if x != d[0] {
			bad = append(bad, ms[r].String())
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("after step %d θ differs from rank 0's (%s) on: %v", step, ms[0], bad)
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
		if c.active(t.done-1) && c.stop.On() {
			c.stop.Step(c.loss, t.lastRows)
			on = true
		}
	}
	if !on || t.done%t.perEpoch != 0 {
		return nil
	}
	epoch := t.done / t.perEpoch
	live := func(c *candidate) bool { return c.active(t.done-1) && c.stop.On() }
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
			stop, why = c.stop.EndEpochOn(-score(c.val, c.model.Task(), ""), t.done, epoch, validationWhat(c.model.Task())+" (negated)")
		} else {
			stop, why = c.stop.EndEpoch(t.done, epoch)
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
