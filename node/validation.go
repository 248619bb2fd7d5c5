package node

import (
	"context"
	"fmt"
	"math"

	"github.com/dmlrun/dmlrun/data"
	"github.com/dmlrun/dmlrun/ring"
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

// buildValidation copies this node's validation rows out of the tables it
// holds: after every (re)load of its shards.
func (t *trainer) buildValidation() {
	t.valTables = t.valTables[:0]
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

// validationScore is the ring's score on the validation split, negated so
// that lower is better (the stopping rule's sense).
func (t *trainer) validationScore(ctx context.Context, step int) (float64, error) {
	clear(t.eval)
	for _, tab := range t.valTables {
		train.Evaluate(t.model, t.theta, tab, t.eval)
	}
	if err := t.comm.AllReduce(ctx, t.eval, ring.Sum); err != nil {
		return 0, ringFailure(fmt.Errorf("validation after step %d: %w", step, err))
	}
	m := train.Finish(t.model, t.eval)
	if m.N == 0 {
		return math.MaxFloat64, fmt.Errorf("training.validation_fraction: the validation split holds no rows")
	}
	if t.model.Task() == train.TaskRegression {
		return -m.R2, nil
	}
	return -m.Accuracy, nil
}
