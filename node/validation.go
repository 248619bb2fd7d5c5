package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/dmlrun/dmlrun/data"
	"github.com/dmlrun/dmlrun/train"
)

// A validation split (training.validation_fraction) holds out the training
// rows whose hash of (seed, global row index) falls below the fraction: a
// function of the row alone, so the split is the same for any number of
// nodes and whichever node holds the row. Batches skip those rows (an epoch
// still walks every row, so a batch holds about (1-f)·B training rows); at
// the end of each epoch the stopping rule judges the validation score
// (accuracy, or R² for regression) instead of the training loss, as
// scikit-learn's early_stopping does.

// isValidation reports whether global row is in the validation split.
func isValidation(seed uint64, row int, fraction float64) bool {
	z := seed ^ 0x6a09e667f3bcc909 + uint64(row)*0x9e3779b97f4a7c15 // splitmix64
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	return float64(z>>11)/(1<<53) < fraction
}

// trainingRows writes into buf the rows of batch that are not validation
// rows, and returns it. buf is reused: it allocates only while it grows.
func (t *trainer) trainingRows(batch []int) []int {
	if t.valFrac == 0 {
		return batch
	}
	t.trainBuf = t.trainBuf[:0]
	for _, r := range batch {
		if !isValidation(uint64(t.cfg.Seed), r, t.valFrac) {
			t.trainBuf = append(t.trainBuf, r)
		}
	}
	return t.trainBuf
}

// buildValidation gathers this node's validation rows: its shards of
// data.validation, or a copy of its split rows out of the training tables
// it holds. After every (re)load of its shards.
func (t *trainer) buildValidation() {
	t.valTables = t.valTables[:0]
	if t.data.val != nil { // data.validation: the shards of it this node holds
		t.valTables = append(t.valTables, t.data.val.Tables()...)
		return
	}
	if t.valFrac == 0 {
		return
	}
	for _, tab := range t.data.train.Tables() {
		v := data.NewTable(tab.Source, tab.FeatureNames, tab.First, 0, tab.Float32())
		f := tab.Features
		for i := range tab.Len() {
			if !isValidation(uint64(t.cfg.Seed), tab.First+i, t.valFrac) {
				continue
			}
			if tab.Float32() {
				v.X32 = append(v.X32, tab.X32[i*f:(i+1)*f]...)
			} else {
				v.X = append(v.X, tab.X[i*f:(i+1)*f]...)
			}
			v.Y = append(v.Y, tab.Y[i])
		}
		t.valTables = append(t.valTables, v)
	}
}

// hasValidation reports whether the run has validation data: a split of
// the training rows, or data.validation.
func (t *trainer) hasValidation() bool { return t.valFrac > 0 || t.data.valSrc != nil }

// validationScores evaluates the candidates that live selects on the
// validation data (one allreduce for all) into their val metrics.
func (t *trainer) validationScores(ctx context.Context, step int, live func(*candidate) bool) error {
	if err := t.evalSums(ctx, t.valTables, func(c *candidate) bool { return !live(c) }); err != nil {
		return fmt.Errorf("validation after step %d: %w", step, err)
	}
	for _, c := range t.cands {
		if !live(c) {
			continue
		}
		if c.val = train.Finish(c.model, c.eval); c.val.N == 0 {
			return errors.New("the validation data holds no rows (training.validation_fraction too small, or data.validation empty)")
		}
	}
	return nil
}

// validationWhat names the validation score the stopping rule judges.
func validationWhat(task string) string {
	if task == train.TaskRegression {
		return "the validation R²"
	}
	return "the validation accuracy"
}
