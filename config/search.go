package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Search is a grid of candidate models trained side by side in one run and
// judged on the validation data (data.validation or
// training.validation_fraction):
//
//	search:
//	  optimizer.lr: [0.001, 0.01, 0.1]
//	  model.l2: [0, 0.001]
//	  metric: accuracy        # default r2 (regression) or accuracy
//
// Every key but metric names a setting of the job and lists its values; the
// candidates are every combination (Candidates). The best is saved as
// model.json, every candidate's scores in search.csv.
type Search struct {
	Metric string        `json:"metric"`
	Grid   []SearchParam `json:"grid"` // in key order
}

// SearchParam is one key of the grid and its values, as written in the
// file (numbers keep their spelling; model.hidden values are lists).
type SearchParam struct {
	Key    string   `json:"key"`
	Values []string `json:"values"`
}

// SearchKeys are the settings a search may vary.
var SearchKeys = []string{"model.hidden", "model.l2", "optimizer.kind", "optimizer.lr", "optimizer.schedule"}

// SearchMetrics are the scores a search may judge on; loss is the only one
// for which lower is better.
var SearchMetrics = []string{"r2", "accuracy", "loss", "macro_f1", "auc"}

// MaxCandidates bounds a search's grid: every candidate's θ and optimizer
// state live on every node and ride in every step's allreduce.
const MaxCandidates = 256

// UnmarshalYAML reads the search block: metric and a list per grid key.
func (s *Search) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: search: want a map from a setting (%s) to its list of values", n.Line, strings.Join(SearchKeys, ", "))
	}
	*s = Search{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := "search." + k.Value
		switch {
		case k.Value == "metric":
			if v.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: %s: want one of %s", v.Line, key, strings.Join(SearchMetrics, ", "))
			}
			s.Metric = v.Value
			continue
		case !slices.Contains(SearchKeys, k.Value):
			return fmt.Errorf("line %d: %s: not a setting a search can vary (%s, or metric)", k.Line, key, strings.Join(SearchKeys, ", "))
		case slices.ContainsFunc(s.Grid, func(p SearchParam) bool { return p.Key == k.Value }):
			return fmt.Errorf("line %d: %s: listed twice", k.Line, key)
		case v.Kind != yaml.SequenceNode || len(v.Content) == 0:
			return fmt.Errorf("line %d: %s: want a list of values, e.g. [0.001, 0.01]", v.Line, key)
		}
		p := SearchParam{Key: k.Value}
		for _, e := range v.Content {
			val, err := searchValue(k.Value, e)
			if err != nil {
				return fmt.Errorf("line %d: %s: %w", e.Line, key, err)
			}
			p.Values = append(p.Values, val)
		}
		s.Grid = append(s.Grid, p)
	}
	slices.SortFunc(s.Grid, func(a, b SearchParam) int { return strings.Compare(a.Key, b.Key) })
	return nil
}

// searchValue checks one value of key's list and returns its text.
func searchValue(key string, e *yaml.Node) (string, error) {
	if key == "model.hidden" {
		var h []int
		if e.Kind != yaml.SequenceNode || e.Decode(&h) != nil {
			return "", fmt.Errorf("want a list of layer widths per candidate, e.g. [[16], [32, 16]]")
		}
		return hiddenString(h), nil
	}
	if e.Kind != yaml.ScalarNode {
		return "", fmt.Errorf("want a list of plain values")
	}
	if key == "model.l2" || key == "optimizer.lr" {
		if _, err := strconv.ParseFloat(e.Value, 64); err != nil {
			return "", fmt.Errorf("%q is not a number", e.Value)
		}
	}
	return e.Value, nil
}

func hiddenString(h []int) string {
	s := make([]string, len(h))
	for i, w := range h {
		s[i] = strconv.Itoa(w)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// Setting is one grid key's value in a candidate.
type Setting struct{ Key, Value string }

// Candidate is one point of the grid: its settings (in key order) and the
// job's configuration with them applied.
type Candidate struct {
	Settings []Setting
	Config   *Config
}

// String names the candidate by its settings, e.g. "model.l2=0 optimizer.lr=0.01".
func (c Candidate) String() string {
	s := make([]string, len(c.Settings))
	for i, x := range c.Settings {
		s[i] = x.Key + "=" + x.Value
	}
	return strings.Join(s, " ")
}

// Candidates returns the models a run trains: one, the job itself, without
// a search; with one, every combination of the grid's values, the last key
// varying fastest. Each candidate's configuration is validated.
func (c *Config) Candidates() ([]Candidate, error) {
	if c.Search == nil {
		return []Candidate{{Config: c}}, nil
	}
	total := 1
	for _, p := range c.Search.Grid {
		total *= len(p.Values)
		if total > MaxCandidates {
			return nil, fmt.Errorf("search: the grid has more than %d candidates", MaxCandidates)
		}
	}
	out := make([]Candidate, 0, total)
	for i := range total {
		cand := Candidate{Config: c.withoutSearch()}
		rest := i
		for k := len(c.Search.Grid) - 1; k >= 0; k-- {
			p := c.Search.Grid[k]
			v := p.Values[rest%len(p.Values)]
			rest /= len(p.Values)
			cand.Settings = append([]Setting{{p.Key, v}}, cand.Settings...)
		}
		for _, s := range cand.Settings {
			cand.Config.apply(s)
		}
		if err := cand.Config.Validate(); err != nil {
			return nil, fmt.Errorf("search: candidate %d (%s): %w", i, cand, err)
		}
		out = append(out, cand)
	}
	return out, nil
}

// withoutSearch is a copy of c for one candidate: the fields a search
// changes are its own, the rest is shared and read only.
func (c *Config) withoutSearch() *Config {
	cp := *c
	cp.Search, cp.candidate = nil, true
	cp.Model.Hidden = slices.Clone(c.Model.Hidden)
	return &cp
}

// apply sets one checked grid value.
func (c *Config) apply(s Setting) {
	switch s.Key {
	case "model.hidden":
		c.Model.Hidden = c.Model.Hidden[:0]
		for _, f := range strings.Fields(strings.Trim(s.Value, "[]")) {
			w, _ := strconv.Atoi(f)
			c.Model.Hidden = append(c.Model.Hidden, w)
		}
	case "model.l2":
		c.Model.L2, _ = strconv.ParseFloat(s.Value, 64)
	case "optimizer.kind":
		c.Optimizer.Kind = s.Value
	case "optimizer.lr":
		lr, _ := strconv.ParseFloat(s.Value, 64)
		if c.Optimizer.Eta0 == c.Optimizer.LR { // eta0 defaults to lr: it follows the candidate's
			c.Optimizer.Eta0 = lr
		}
		c.Optimizer.LR = lr
	case "optimizer.schedule":
		c.Optimizer.Schedule = s.Value
	}
}

// searching reports whether c is a search or one of its candidates.
func (c *Config) searching() bool { return c.Search != nil || c.candidate }

// validateSearch checks what a search needs beyond its candidates: a grid,
// a metric that fits the task, and validation data to judge on.
func (c *Config) validateSearch(bad func(field, format string, args ...any)) {
	s := c.Search
	if s == nil {
		return
	}
	if len(s.Grid) == 0 {
		bad("search", "no setting to vary: list one of %s with its values", strings.Join(SearchKeys, ", "))
	}
	if s.Metric != "" && !slices.Contains(SearchMetrics, s.Metric) {
		bad("search.metric", "%q is not one of %s", s.Metric, strings.Join(SearchMetrics, ", "))
	}
	task := c.Task()
	switch {
	case s.Metric == "r2" && task != "" && task != "regression":
		bad("search.metric", "r2 judges regression; this model is %s (use accuracy, macro_f1 or loss)", task)
	case (s.Metric == "accuracy" || s.Metric == "macro_f1") && task == "regression":
		bad("search.metric", "%s judges classification; this model is a regression (use r2 or loss)", s.Metric)
	case s.Metric == "auc" && task != "" && task != "binary":
		bad("search.metric", "auc needs two classes; this model is %s", task)
	}
	if len(c.Data.Validation) == 0 && c.Training.ValidationFraction == 0 {
		bad("search", "the candidates are judged on validation data: set data.validation (files) or training.validation_fraction (e.g. 0.2)")
	}
}

// Task is what the labels mean, as far as the configuration says:
// regression, binary or multiclass; "" when only the data can tell.
func (c *Config) Task() string {
	switch c.Model.Kind {
	case "linear":
		return "regression"
	case "logistic":
		return "binary"
	case "softmax":
		return "multiclass"
	}
	if c.Model.Output != "" {
		return c.Model.Output
	}
	if c.Data.Format == "synthetic" && c.Data.Synthetic != nil {
		return c.Data.Synthetic.Task
	}
	return ""
}

// SearchMetric is the metric the search judges on: search.metric, or r2 for
// regression and accuracy for classification.
func (c *Config) SearchMetric(task string) string {
	if c.Search != nil && c.Search.Metric != "" {
		return c.Search.Metric
	}
	if task == "regression" {
		return "r2"
	}
	return "accuracy"
}
