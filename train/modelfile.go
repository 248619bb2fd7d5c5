package train

import (
	"encoding/json"
	"fmt"
	"os"
)

// ModelFile is the content of model.json: everything needed to predict with
// a trained model, and to check where it came from.
type ModelFile struct {
	Shape        Shape     `json:"shape"`
	Theta        []float64 `json:"theta"`
	FeatureNames []string  `json:"feature_names,omitempty"`
	Label        string    `json:"label,omitempty"`
	Mean         []float64 `json:"mean,omitempty"` // standardization, applied before the model
	Std          []float64 `json:"std,omitempty"`
	Steps        int       `json:"steps_done"`
	RunDigest    string    `json:"run_digest"`
	ThetaSHA256  string    `json:"theta_sha256"`
	// Stopped says why training stopped before its planned end (the
	// training.tol rule), "" when it ran to the end.
	Stopped string `json:"stopped_early,omitempty"`
	// Eval is the run's last evaluation (written by dmlrun; optional).
	Eval *EvalReport `json:"eval,omitempty"`
	// Search, in a search's model.json, says which candidate this is and
	// why it was kept (every candidate's scores are in search.csv).
	Search *SearchChoice `json:"search,omitempty"`
}

// SearchChoice is the candidate a search kept: the best by Metric on the
// validation data.
type SearchChoice struct {
	Candidate  int     `json:"candidate"`  // its line in search.csv
	Settings   string  `json:"settings"`   // e.g. "model.l2=0 optimizer.lr=0.01"
	Metric     string  `json:"metric"`     // r2, accuracy, loss, macro_f1 or auc
	Validation float64 `json:"validation"` // its score by Metric
	Candidates int     `json:"candidates"` // how many the search trained
}

// EvalReport is an evaluation as model.json keeps it: the scores of
// Metrics, those of the other task left out. For classification it holds
// the ClassReport's fields too (precision, recall, f1, support, macro_f1,
// auc, confusion).
type EvalReport struct {
	Step     int      `json:"step"`
	Set      string   `json:"set"` // "test", or "train" without a test set
	Rows     int      `json:"rows"`
	Loss     float64  `json:"loss"`
	MSE      *float64 `json:"mse,omitempty"`
	R2       *float64 `json:"r2,omitempty"`
	Accuracy *float64 `json:"accuracy,omitempty"`
	*ClassReport
}

// Report returns m as model.json keeps it, for the evaluation after step
// on set.
func (m Metrics) Report(step int, set string) *EvalReport {
	r := &EvalReport{Step: step, Set: set, Rows: m.N, Loss: m.Loss, ClassReport: m.Class}
	if m.Class != nil {
		r.Accuracy = &m.Accuracy
	} else {
		r.MSE, r.R2 = &m.MSE, &m.R2
	}
	return r
}

// ReadModelFile reads and checks a model.json.
func ReadModelFile(path string) (*ModelFile, Model, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("model: %w", err)
	}
	var f ModelFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, nil, fmt.Errorf("model %s: %w", path, err)
	}
	m, err := LoadModel(f.Shape, f.Theta)
	if err != nil {
		return nil, nil, fmt.Errorf("model %s: %w", path, err)
	}
	if f.Mean != nil && (len(f.Mean) != f.Shape.Features || len(f.Std) != f.Shape.Features) {
		return nil, nil, fmt.Errorf("model %s: standardization has %d/%d values for %d features", path, len(f.Mean), len(f.Std), f.Shape.Features)
	}
	return &f, m, nil
}

// Standardize applies the saved standardization to one row, in place.
func (f *ModelFile) Standardize(x []float64) {
	if f.Mean == nil {
		return
	}
	for j := range x {
		s := f.Std[j]
		if s == 0 {
			s = 1
		}
		x[j] = (x[j] - f.Mean[j]) / s
	}
}
