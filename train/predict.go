package train

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// PredictCSV reads a CSV file in the training format and writes one line per
// row to w: the predicted value (regression), the probability of label 1
// (binary), or the class probabilities separated by commas (multiclass),
// each as Go's shortest round-trip float. Columns are matched to the model's
// features by name, so a label column (or any other extra column) is
// ignored; a missing feature column is an error that names it.
func (f *ModelFile) PredictCSV(m Model, path string, w io.Writer) error {
	csv, err := OpenCSVUnlabeled(path)
	if err != nil {
		return err
	}
	t, err := csv.Read(nil)
	if err != nil {
		return err
	}
	col := make(map[string]int, t.Features)
	for j, name := range t.FeatureNames {
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
			return fmt.Errorf("%s: no column %q, which the model needs (its features: %s)", path, name, strings.Join(f.FeatureNames, ", "))
		}
		idx[j] = c
	}
	bw := bufio.NewWriter(w)
	x := make([]float64, f.Shape.Features)
	out := make([]float64, m.Outputs())
	var line []byte
	for i := range t.Len() {
		row := t.Row(i)
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
	return bw.Flush()
}
