package node

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dmlrun/dmlrun/train"
)

// A search (config.Search) trains its candidates side by side: they share
// every step's batch and its one allreduce (trainer.step), each stops on its
// own rule, and at the end the candidates are scored on the validation data
// (one allreduce for all): the best by search.metric is saved as
// model.json, every candidate's settings and scores as search.csv.

// score is m's value of metric (r2, accuracy, loss, macro_f1 or auc; ""
// means r2 for regression and accuracy otherwise); NaN when m does not
// have it.
func score(m train.Metrics, task, metric string) float64 {
	if metric == "" {
		metric = "accuracy"
		if task == train.TaskRegression {
			metric = "r2"
		}
	}
	switch metric {
	case "r2":
		return m.R2
	case "accuracy":
		return m.Accuracy
	case "loss":
		return m.Loss
	case "macro_f1":
		if m.Class != nil {
			return m.Class.MacroF1
		}
	case "auc":
		if m.Class != nil && m.Class.AUC != nil {
			return *m.Class.AUC
		}
	}
	return math.NaN()
}

// better reports whether score a beats b by metric (a NaN never does).
func better(a, b float64, metric string) bool {
	if math.IsNaN(b) {
		return !math.IsNaN(a)
	}
	if metric == "loss" {
		return a < b
	}
	return a > b
}

// best is the candidate to keep: the job's own model, or the search's best
// on the validation data (ties go to the first in grid order). Every
// candidate that diverged ranks last; if all did, the run fails.
func (t *trainer) best(ctx context.Context) (*candidate, error) {
	if !t.searching() {
		return t.cands[0], nil
	}
	if err := t.validationScores(ctx, t.done, func(*candidate) bool { return true }); err != nil {
		return nil, err
	}
	task := t.cands[0].model.Task()
	metric := t.cfg.SearchMetric(task)
	var top *candidate
	for _, c := range t.cands {
		if !c.diverged && (top == nil || better(score(c.val, task, metric), score(top.val, task, metric), metric)) {
			top = c
		}
	}
	if top == nil {
		return nil, fmt.Errorf("search: every one of the %d candidates diverged (the first: %s, %s); try lower optimizer.lr values or data.normalize: true",
			len(t.cands), t.cands[0].spec, t.cands[0].stopReason)
	}
	t.log.Info("search done", "best", top.id, "settings", top.spec.String(), "validation "+metric, score(top.val, task, metric),
		"candidates", len(t.cands), noticeIf(t.comm().Rank() == 0))
	return top, nil
}

// searchChoice is what model.json says about the kept candidate.
func (t *trainer) searchChoice(c *candidate) *train.SearchChoice {
	task := c.model.Task()
	metric := t.cfg.SearchMetric(task)
	return &train.SearchChoice{Candidate: c.id, Settings: c.spec.String(), Metric: metric, Validation: score(c.val, task, metric), Candidates: len(t.cands)}
}

// stoppedCode says in one word how a candidate ended: "" (it ran to the
// run's end), tol (its stopping rule) or diverged. A function of the state
// that travels with θ, so that any node writes the same search.csv.
func (c *candidate) stoppedCode() string {
	switch {
	case c.diverged:
		return "diverged"
	case c.stop.Stopped() > 0:
		return "tol"
	}
	return ""
}

// searchCSV renders search.csv: a line per candidate with its number, its
// settings (a column per grid key), its steps, how it stopped, its scores
// on the validation data and on the test set (empty without one), and
// whether it is the one kept.
func (t *trainer) searchCSV(best *candidate) []byte {
	task := t.cands[0].model.Task()
	metric := t.cfg.SearchMetric(task)
	var b bytes.Buffer
	cols := []string{"candidate"}
	for _, p := range t.cfg.Search.Grid {
		cols = append(cols, p.Key)
	}
	cols = append(cols, "steps", "stopped", "val_rows", "val_loss")
	if metric != "loss" {
		cols = append(cols, "val_"+metric)
	}
	cols = append(cols, "test_loss")
	if metric != "loss" {
		cols = append(cols, "test_"+metric)
	}
	b.WriteString(strings.Join(append(cols, "best"), ",") + "\n")
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	for _, c := range t.cands {
		row := []string{strconv.Itoa(c.id)}
		for _, s := range c.spec.Settings {
			row = append(row, csvField(s.Value))
		}
		row = append(row, strconv.Itoa(c.steps), c.stoppedCode(), strconv.Itoa(c.val.N), f(c.val.Loss))
		if metric != "loss" {
			row = append(row, f(score(c.val, task, metric)))
		}
		if t.data.test != nil && c.lastMetrics.N > 0 {
			row = append(row, f(c.lastMetrics.Loss))
			if metric != "loss" {
				row = append(row, f(score(c.lastMetrics, task, metric)))
			}
		} else {
			row = append(row, "")
			if metric != "loss" {
				row = append(row, "")
			}
		}
		yes := "0"
		if c == best {
			yes = "1"
		}
		b.WriteString(strings.Join(append(row, yes), ",") + "\n")
	}
	return b.Bytes()
}

// csvField quotes a value that holds a comma or a quote.
func csvField(s string) string {
	if !strings.ContainsAny(s, ",\"\n") {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// saveSearch writes search.csv (rank 0 only) atomically.
func (t *trainer) saveSearch(best *candidate) error {
	path := filepath.Join(t.cfg.Output.Dir, "search.csv")
	if err := writeFileAtomic(path, t.searchCSV(best)); err != nil {
		return fmt.Errorf("saving the search's results: %w", err)
	}
	return nil
}

// noteSearchEval shows one line for a search's evaluation (the lines per
// candidate go to the log file): the best test score so far, and how many
// candidates still train.
func (t *trainer) noteSearchEval(ctx context.Context, level slog.Level, step int) {
	var top *candidate
	training := 0
	for _, c := range t.cands {
		if c.active(step) {
			training++
		}
		if !c.diverged && (top == nil || better(c.lastEval.Value, top.lastEval.Value, c.lastEval.Metric)) {
			top = c
		}
	}
	if top == nil {
		return
	}
	t.log.Log(ctx, level, "eval", "step", step, "best test "+top.lastEval.Metric, top.lastEval.Value, "candidate", top.id,
		"settings", top.spec.String(), "training", fmt.Sprintf("%d of %d", training, len(t.cands)), noticeIf(t.comm().Rank() == 0))
}
