package train

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/dmlrun/dmlrun/data"
)

// Predict reads every row of src (opened with data.Spec.Unlabeled, so that
// every column is a candidate feature) and writes one line per row to w, in
// row order: the predicted value (regression), the probability of label 1
// (binary), or the class probabilities separated by commas (multiclass),
// each as Go's shortest round-trip float. Columns are matched to the model's
// features by name, so a label column (or any other extra column) is
// ignored; a missing feature column is an error that names it. It reads
// one virtual shard at a time.
//
//	src, err := data.Open(ctx, data.Spec{Paths: []string{"new.csv"}, Unlabeled: true})
//	err = f.Predict(ctx, m, src, os.Stdout)
func (f *ModelFile) Predict(ctx context.Context, m Model, src data.Source, w io.Writer) error {
	return f.PredictShards(ctx, m, src, src.Sharding().Part(0, 1).Shards(), w)
}

// PredictShards is Predict of the rows of the given virtual shards of src
// (ascending), as a node that owns them writes its share: the outputs of
// the parts of src.Sharding().Assign(n), one after the other, are byte for
// byte what Predict writes. The feature columns are checked even when
// shards is empty.
func (f *ModelFile) PredictShards(ctx context.Context, m Model, src data.Source, shards []int, w io.Writer) error {
	col := make(map[string]int, len(src.FeatureNames()))
	for j, name := range src.FeatureNames() {
		col[name] = j
	}
	idx := make([]int, f.Shape.Features)
	for j := range idx {
		name := fmt.Sprintf("f%d", j+1)
		if j < len(f.FeatureNames) {
			name = f.FeatureNames[j]
		}
		c, ok := col[name]
		if !ok {
			return fmt.Errorf("%s: no column %q, which the model needs (its features: %s)", src.Name(), name, strings.Join(f.FeatureNames, ", "))
		}
		idx[j] = c
	}
	bw := bufio.NewWriter(w)
	x := make([]float64, f.Shape.Features)
	buf := make([]float64, len(src.FeatureNames()))
	out := make([]float64, m.Outputs())
	var line []byte
	for _, v := range shards {
		ts, err := src.ReadShards(ctx, []int{v})
		if err != nil {
			return err
		}
		t := ts[0]
		for i := range t.Len() {
			row := t.RowTo(i, buf)
			for j, c := range idx {
				x[j] = row[c]
			}
			f.Standardize(x)
			m.Predict(f.Theta, x, out)
			line = line[:0]
			for k, v := range out {
				if k > 0 {
					line = append(line, ',')
				}
				line = strconv.AppendFloat(line, v, 'g', -1, 64)
			}
			line = append(line, '\n')
			if _, err := bw.Write(line); err != nil {
				return err
			}
		}
	}
	return bw.Flush()
}
