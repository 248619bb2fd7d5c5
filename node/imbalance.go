package node

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/dmlrun/dmlrun/config"
	"github.com/dmlrun/dmlrun/data"
	"github.com/dmlrun/dmlrun/elastic"
	"github.com/dmlrun/dmlrun/ring"
	"github.com/dmlrun/dmlrun/train"
)

// Class imbalance (model.class_weight, data.resample) needs the number of
// training rows of each class, a global fact: the nodes allreduce their
// counts once, when the first ring has read all the rows (loadData), and a
// node that joins later receives them with the data's shape
// (shareDataShape). Re-sharding never changes them. With data.resample the
// counts are kept per virtual shard (V×K), which is what data.Resampler
// needs to draw the same epochs on every node; otherwise per class (K).
// Rows of the validation split (training.validation_fraction) are not
// training rows: they count in neither, and no resampled epoch holds them.

// maxShardClassCounts bounds V×K, the per-shard class counts of
// data.resample (2^24: 128 MiB in one allreduce).
const maxShardClassCounts = 1 << 24

// wantsClassCounts reports whether the config needs the class counts.
func wantsClassCounts(cfg *config.Config) bool {
	return cfg.Model.ClassWeight != nil || cfg.Data.Resample != ""
}

// classCountsLen returns the length of d.classCounts for cfg.
func (d *nodeData) classCountsLen(cfg *config.Config) int {
	if cfg.Data.Resample != "" {
		return d.trainSrc.Sharding().Shards() * d.classes
	}
	return d.classes
}

// countClasses sets d.classCounts from tables, the training shards this node
// read for the first ring (all rows are read by some node), with one
// allreduce.
func (d *nodeData) countClasses(ctx context.Context, c *elastic.Comm, cfg *config.Config, tables []*data.Table) error {
	if !wantsClassCounts(cfg) {
		return nil
	}
	if d.classes == 0 {
		return fmt.Errorf("model.class_weight and data.resample apply to classification; the model is a regression")
	}
	s := d.trainSrc.Sharding()
	if n := int64(s.Shards()) * int64(d.classes); cfg.Data.Resample != "" && n > maxShardClassCounts {
		return fmt.Errorf("data.resample: %d classes × %d virtual shards = %d class counts, above the limit of %d", d.classes, s.Shards(), n, maxShardClassCounts)
	}
	counts := make([]float64, d.classCountsLen(cfg))
	skip := validationSkip(cfg)
	if cfg.Data.Resample != "" {
		if err := data.ShardClassCounts(s, tables, d.classes, counts, skip); err != nil {
			return err
		}
	} else {
		for _, t := range tables {
			for i, y := range t.Y {
				if skip == nil || !skip(t.First+i) {
					counts[int(y)]++
				}
			}
		}
	}
	if err := c.AllReduce(ctx, ring.Sum, counts); err != nil {
		return fmt.Errorf("counting the rows of each class: %w", err)
	}
	d.classCounts = counts
	return nil
}

// validationSkip says which rows the validation split holds out (nil: none).
func validationSkip(cfg *config.Config) func(row int) bool {
	f := cfg.Training.ValidationFraction
	if f == 0 {
		return nil
	}
	return func(row int) bool { return isValidation(cfg.Seed, row, f) }
}

// shareClassCounts broadcasts the class counts from root (after the
// classes, see shareDataShape).
func (t *trainer) shareClassCounts(ctx context.Context, root int) error {
	if !wantsClassCounts(t.cfg) {
		return nil
	}
	buf := make([]float64, t.data.classCountsLen(t.cfg))
	if t.comm().Rank() == root {
		copy(buf, t.data.classCounts)
	}
	if err := t.comm().Broadcast(ctx, root, buf); err != nil {
		return err
	}
	t.data.classCounts = buf
	return nil
}

// classTotals returns the training rows of each class.
func (d *nodeData) classTotals() []float64 {
	if len(d.classCounts) == d.classes {
		return d.classCounts
	}
	tot := make([]float64, d.classes)
	for i, n := range d.classCounts {
		tot[i%d.classes] += n
	}
	return tot
}

// classWeights returns the class weights of model.class_weight for the
// model (nil without). A map's labels are those of the data: class indices,
// and for a binary model -1 for class 0; a label no training row has is an
// error naming the key.
func classWeights(cfg *config.Config, d *nodeData) ([]float64, error) {
	cw := cfg.Model.ClassWeight
	if cw == nil {
		return nil, nil
	}
	if len(d.classCounts) != d.classCountsLen(cfg) {
		return nil, fmt.Errorf("model.class_weight: this node has %d class counts, want %d (they come with the data's shape)", len(d.classCounts), d.classCountsLen(cfg))
	}
	tot := d.classTotals()
	if cw.Balanced {
		return train.BalancedWeights(tot), nil
	}
	w := make([]float64, d.classes)
	for i := range w {
		w[i] = 1
	}
	for _, l := range cw.Labels {
		c := int(l.Label)
		if d.task == train.TaskBinary && l.Label == -1 {
			c = 0
		}
		if float64(c) != l.Label && !(d.task == train.TaskBinary && l.Label == -1) || c < 0 || c >= d.classes || tot[c] == 0 {
			return nil, fmt.Errorf("model.class_weight: label %v is not a label of the training data %s (its labels: %s)", l.Label, d.trainSrc.Name(), labelList(d.task, tot))
		}
		w[c] = l.Weight
	}
	return w, nil
}

// labelList names the labels that have training rows.
func labelList(task string, tot []float64) string {
	var l []string
	for c, n := range tot {
		if n > 0 {
			s := strconv.Itoa(c)
			if task == train.TaskBinary && c == 0 {
				s = "0 (or -1)"
			}
			l = append(l, s)
		}
	}
	return strings.Join(l, ", ")
}

// setupImbalance sets up data.resample's schedule: the resampler, the steps
// per epoch and the batch size of the log line. It says once (rank 0, a
// notice) what the imbalance options make of the class counts.
func (t *trainer) setupImbalance() error {
	if !wantsClassCounts(t.cfg) {
		return nil
	}
	attrs := []any{"rows per class", t.data.classTotals()}
	if w, _ := classWeights(t.cfg, t.data); w != nil {
		attrs = append(attrs, "class weights", w)
	}
	if mode := t.cfg.Data.Resample; mode != "" {
		r, err := data.NewResampler(t.cfg.Seed, mode, t.data.trainSrc.Sharding(), t.data.classes, t.data.classCounts, t.cfg.Training.BatchSize, validationSkip(t.cfg))
		if err != nil {
			return fmt.Errorf("data.resample: %w", err)
		}
		t.resample, t.perEpoch, t.batch = r, r.StepsPerEpoch(), r.BatchSize()
		attrs = append(attrs, "resample", mode, "rows per epoch", r.EpochRows(), "steps per epoch", t.perEpoch)
	}
	t.log.Info("class balance", append(attrs, noticeIf(t.comm() != nil && t.comm().Rank() == 0))...)
	return nil
}

// ownBatch writes this node's rows of step's global batch into t.owned: of
// the epoch's permutation without the validation split, or with
// data.resample of its resampled sequence (which holds no validation row).
// It allocates nothing once the buffers have grown.
func (t *trainer) ownBatch(step int) error {
	var rows []int
	if t.resample != nil {
		var err error
		if rows, err = t.resample.Batch(step, t.data.train, t.data.part.OwnsShard); err != nil {
			return err
		}
	} else {
		_, _, rows = t.sched.Batch(step)
		rows = t.trainingRows(rows)
	}
	return t.data.train.Batch(rows, t.data.part.OwnsShard, &t.owned)
}

// noteClasses keeps an evaluation's metrics for model.json and, for
// classification, logs the per-class scores (rank 0, into its log file).
func (t *trainer) noteClasses(c *candidate, step int, m train.Metrics) {
	c.lastMetrics = m
	r := m.Class
	if r == nil || t.comm().Rank() != 0 || t.searching() {
		return
	}
	auc := "n/a"
	if r.AUC != nil {
		auc = strconv.FormatFloat(*r.AUC, 'g', 6, 64)
	}
	t.log.Info("class metrics", "step", step, "macro f1", r.MacroF1, "auc", auc, "precision", r.Precision, "recall", r.Recall, "support", r.Support)
}
