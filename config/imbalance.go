package config

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"

	"gopkg.in/yaml.v3"
)

// ClassWeight is model.class_weight: how much each class's training rows
// weigh in the loss and the gradient (classification only).
//
//	model: {kind: logistic, class_weight: balanced}        # n / (classes × count of the class)
//	model: {kind: softmax, class_weight: {0: 1, 2: 5}}     # by label; unlisted labels weigh 1
//
// Labels are written as the data give them: class indices 0..K-1, and for a
// binary model 0/1 or -1/+1 (-1 and 0 name the same class). Whether every
// label has training rows is checked once the data are read.
type ClassWeight struct {
	Balanced bool          // "balanced": scikit-learn's n_samples / (n_classes × count_c)
	Labels   []LabelWeight // the map, sorted by label
}

// LabelWeight is one entry of a class_weight map.
type LabelWeight struct {
	Label  float64
	Weight float64
}

// UnmarshalYAML takes "balanced" or a map from label to weight.
func (w *ClassWeight) UnmarshalYAML(n *yaml.Node) error {
	const key = "model.class_weight"
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Value != "balanced" {
			return fmt.Errorf("%s: line %d: %q: want balanced or a map from label to weight, e.g. {0: 1, 1: 5}", key, n.Line, n.Value)
		}
		*w = ClassWeight{Balanced: true}
		return nil
	case yaml.MappingNode:
		*w = ClassWeight{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			var text string
			if err := k.Decode(&text); err != nil {
				return fmt.Errorf("%s: line %d: a key is not a label", key, k.Line)
			}
			label, err := strconv.ParseFloat(text, 64)
			if err != nil || math.IsNaN(label) || math.IsInf(label, 0) {
				return fmt.Errorf("%s: line %d: key %q is not a label (a number, as in the data)", key, k.Line, text)
			}
			var weight float64
			if err := v.Decode(&weight); err != nil {
				return fmt.Errorf("%s: line %d: the weight of label %v is not a number", key, v.Line, label)
			}
			if slices.ContainsFunc(w.Labels, func(l LabelWeight) bool { return l.Label == label }) {
				return fmt.Errorf("%s: line %d: label %v is given twice", key, k.Line, label)
			}
			w.Labels = append(w.Labels, LabelWeight{label, weight})
		}
		slices.SortFunc(w.Labels, func(a, b LabelWeight) int { return cmpFloat(a.Label, b.Label) })
		return nil
	}
	return fmt.Errorf("%s: line %d: want balanced or a map from label to weight, e.g. {0: 1, 1: 5}", key, n.Line)
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// MarshalJSON writes "balanced" or the map (for the run digest).
func (w ClassWeight) MarshalJSON() ([]byte, error) {
	if w.Balanced {
		return json.Marshal("balanced")
	}
	m := map[string]float64{}
	for _, l := range w.Labels {
		m[strconv.FormatFloat(l.Label, 'g', -1, 64)] = l.Weight
	}
	return json.Marshal(m)
}

// Resampling modes: the values of data.resample.
const (
	ResampleOver  = "over"  // every class repeated up to the largest class's count
	ResampleUnder = "under" // every class cut down to the smallest class's count
)

// validateImbalance checks model.class_weight and data.resample.
func (c *Config) validateImbalance(bad func(field, format string, args ...any)) {
	task := c.Task()
	if r := c.Data.Resample; r != "" {
		switch {
		case r != ResampleOver && r != ResampleUnder:
			bad("data.resample", "%q is not over or under", r)
		case task == "regression":
			bad("data.resample", "%s on a regression model (model.kind %s): resampling balances classes, so it needs a classification model", r, c.Model.Kind)
		}
	}
	w := c.Model.ClassWeight
	if w == nil {
		return
	}
	const key = "model.class_weight"
	if task == "regression" {
		bad(key, "set on a regression model (model.kind %s): class weights apply to logistic, softmax and classification mlps", c.Model.Kind)
		return
	}
	classes := c.Model.Classes // 0: from the data, checked once they are read
	if s := c.Data.Synthetic; classes == 0 && s != nil && c.Data.Format == "synthetic" && task == "multiclass" {
		classes = s.Classes
	}
	for _, l := range w.Labels {
		switch {
		case !(l.Weight > 0) || math.IsInf(l.Weight, 0):
			bad(key, "the weight of label %v is %v: want a positive finite number", l.Label, l.Weight)
		case l.Label != math.Trunc(l.Label):
			bad(key, "label %v is not a class label (an integer)", l.Label)
		case task == "binary" && l.Label != -1 && l.Label != 0 && l.Label != 1:
			bad(key, "label %v is not a binary label (0/1 or -1/+1)", l.Label)
		case task != "binary" && l.Label < 0:
			bad(key, "label %v is not a class index (an integer >= 0)", l.Label)
		case task != "binary" && classes > 0 && l.Label >= float64(classes):
			bad(key, "label %v is not a class index of the %d classes (0..%d)", l.Label, classes, classes-1)
		}
	}
	if task == "binary" && slices.ContainsFunc(w.Labels, func(l LabelWeight) bool { return l.Label == -1 }) &&
		slices.ContainsFunc(w.Labels, func(l LabelWeight) bool { return l.Label == 0 }) {
		bad(key, "labels -1 and 0 both name a binary model's negative class: give one")
	}
}
