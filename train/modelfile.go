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
