package node

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dmlrun/dmlrun/config"
	"github.com/dmlrun/dmlrun/elastic"
	"github.com/dmlrun/dmlrun/ring"
	"github.com/dmlrun/dmlrun/train"
)

// runTrainers runs every trainer to the end, concurrently, and returns
// their results (nil and an error for one that failed).
func runTrainers(trs []*trainer) ([]*Result, []error) {
	res := make([]*Result, len(trs))
	errs := make([]error, len(trs))
	done := make(chan int, len(trs))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i, tr := range trs {
		go func() {
			res[i], errs[i] = runOn(ctx, tr, tr.c)
			done <- i
		}()
	}
	for range trs {
		<-done
	}
	return res, errs
}

// searchJobs are the searches that TestSearchEqualsEachCandidateAlone runs:
// each with stopping on the validation split, and one with a candidate
// that diverges.
var searchJobs = []struct{ name, yaml string }{
	{"logistic: lr, l2 and optimizer, tol on the validation split", `
data: {format: synthetic, normalize: true, synthetic: {task: binary, samples: 3000, test_samples: 500, features: 8, noise: 0.8}}
model: {kind: logistic}
optimizer: {kind: sgd, lr: 0.1}
training: {batch_size: 100, tol: 0.002, n_iter_no_change: 2, max_epochs: 25, validation_fraction: 0.25}
search: {optimizer.lr: [0.02, 0.5], model.l2: [0, 0.05], optimizer.kind: [sgd, adam]}
`},
	{"linear: a diverging lr and two schedules", `
data: {format: synthetic, synthetic: {task: regression, samples: 2000, test_samples: 300, features: 6, noise: 0.3}}
model: {kind: linear}
optimizer: {kind: sgd, lr: 0.01}
training: {batch_size: 50, epochs: 3, eval_every: 25, validation_fraction: 0.2}
search: {optimizer.lr: [0.001, 0.05, 40], optimizer.schedule: [constant, invscaling], metric: loss}
`},
	{"mlp: hidden layers, multiclass, macro-F1", `
data: {format: synthetic, normalize: true, synthetic: {task: multiclass, classes: 3, samples: 1500, test_samples: 300, features: 5, noise: 0.5}}
model: {kind: mlp, hidden: [4]}
optimizer: {kind: adam, lr: 0.01}
training: {batch_size: 64, tol: 0.001, n_iter_no_change: 2, max_epochs: 8, validation_fraction: 0.2}
search: {model.hidden: [[4], [8, 4]], metric: macro_f1}
`},
}

// TestSearchEqualsEachCandidateAlone: a search's candidates, trained side by
// side on 2 nodes, end exactly as each trained alone on 1 node (θ within
// 1e-9, the same steps and the same way of stopping, a divergence at the
// same step); search.csv scores each on the validation split as its lone
// run scores; the best by the metric is kept in model.json.
func TestSearchEqualsEachCandidateAlone(t *testing.T) {
	for _, job := range searchJobs {
		t.Run(job.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(job.yaml))
			if err != nil {
				t.Fatal(err)
			}
			trs, err := startTrainersOf(t, startComms(t, 2, testConfig()), cfg)
			if err != nil {
				t.Fatal(err)
			}
			res, errs := runTrainers(trs)
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			if res[0].ThetaSHA256 != res[1].ThetaSHA256 || res[0].Best == "" {
				t.Fatalf("results differ or name no best: %+v %+v", res[0], res[1])
			}
			specs, _ := cfg.Candidates()
			rows := readSearchCSV(t, filepath.Join(trs[0].cfg.Output.Dir, "search.csv"))
			if len(rows) != len(specs) {
				t.Fatalf("search.csv has %d candidates, want %d", len(rows), len(specs))
			}
			metric := cfg.SearchMetric(trs[0].cands[0].model.Task())
			bestRow, bestScore := -1, math.NaN()
			stops := map[string]int{}
			for i, spec := range specs {
				got := trs[0].cands[i]
				alone := aloneRun(t, spec.Config)
				stops[got.stoppedCode()]++
				if got.stoppedCode() == "diverged" {
					if alone.err == nil || !strings.Contains(alone.err.Error(), "step "+strconv.Itoa(got.steps+1)+":") {
						t.Errorf("%s diverged at step %d in the search; alone: %v", spec, got.steps+1, alone.err)
					}
					continue
				}
				if alone.err != nil {
					t.Fatalf("%s alone: %v", spec, alone.err)
				}
				a := alone.tr.cands[0]
				if got.steps != a.steps || got.stoppedCode() != a.stoppedCode() {
					t.Errorf("%s: %d steps (%q) in the search, %d (%q) alone", spec, got.steps, got.stoppedCode(), a.steps, a.stoppedCode())
				}
				for j := range a.theta {
					if d := math.Abs(got.theta[j] - a.theta[j]); d > 1e-9*math.Max(1, math.Abs(a.theta[j])) {
						t.Fatalf("%s: θ[%d] = %v in the search, %v alone", spec, j, got.theta[j], a.theta[j])
					}
				}
				if err := alone.tr.validationScores(context.Background(), a.steps, func(*candidate) bool { return true }); err != nil {
					t.Fatal(err)
				}
				want := score(a.val, a.model.Task(), metric)
				col := "val_" + metric
				if metric == "loss" {
					col = "val_loss"
				}
				v, err := strconv.ParseFloat(rows[i][col], 64)
				if err != nil || math.Abs(v-want) > 1e-9*math.Max(1, math.Abs(want)) {
					t.Errorf("%s: search.csv %s = %q, alone %v", spec, col, rows[i][col], want)
				}
				if bestRow < 0 || better(want, bestScore, metric) {
					bestRow, bestScore = i, want
				}
			}
			t.Logf("stopped: %v; best %d (%s) %s %v", stops, bestRow, specs[bestRow], metric, bestScore)
			if rows[bestRow]["best"] != "1" {
				t.Errorf("search.csv marks another best than candidate %d: %v", bestRow, rows)
			}
			var mf train.ModelFile
			b, err := os.ReadFile(filepath.Join(trs[0].cfg.Output.Dir, "model.json"))
			if err == nil {
				err = json.Unmarshal(b, &mf)
			}
			if err != nil || mf.Search == nil || mf.Search.Candidate != bestRow || mf.Search.Settings != specs[bestRow].String() || mf.Steps != trs[0].cands[bestRow].steps {
				t.Fatalf("model.json: %v, search %+v steps %d; want candidate %d", err, mf.Search, mf.Steps, bestRow)
			}
			for j, x := range trs[0].cands[bestRow].theta {
				if mf.Theta[j] != x {
					t.Fatalf("model.json θ[%d] = %v, the best candidate's %v", j, mf.Theta[j], x)
				}
			}
		})
	}
}

type aloneResult struct {
	tr  *trainer
	err error
}

// aloneRun trains the job cfg on one node.
func aloneRun(t *testing.T, cfg *config.Config) aloneResult {
	t.Helper()
	trs, err := startTrainersOf(t, startComms(t, 1, testConfig()), cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, errs := runTrainers(trs)
	return aloneResult{trs[0], errs[0]}
}

// readSearchCSV reads search.csv into a map per line, by column name.
func readSearchCSV(t *testing.T, path string) []map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil || len(recs) < 1 {
		t.Fatalf("%s: %v", path, err)
	}
	var out []map[string]string
	for _, r := range recs[1:] {
		m := map[string]string{}
		for i, c := range recs[0] {
			m[c] = r[i]
		}
		out = append(out, m)
	}
	return out
}

// countingTracer counts the allreduces of a Comm.
type countingTracer struct{ allreduces atomic.Int64 }

func (c *countingTracer) Begin(s ring.Span) {
	if s == ring.SpanAllReduce {
		c.allreduces.Add(1)
	}
}
func (c *countingTracer) End(ring.Span, uint64, error) {}

// TestSearchOneAllreducePerStep: 8 candidates (of two sizes) cost one
// allreduce per step, of all their vectors together (TestStepLoopDoesNotAllocate
// runs a search too).
func TestSearchOneAllreducePerStep(t *testing.T) {
	tracers := []*countingTracer{{}, {}}
	comms := startCommsWith(t, 2, testConfig(), func(r int, c *elastic.CommConfig) { c.Ring.Tracer = tracers[r] }, nil)
	trs, err := startTrainersOn(t, comms, `
data: {format: synthetic, normalize: true, synthetic: {task: binary, samples: 4000, features: 20, noise: 0.5}}
model: {kind: mlp, hidden: [8], output: binary}
optimizer: {kind: sgd, lr: 0.05}
training: {batch_size: 64, steps: 1000, validation_fraction: 0.1}
search: {optimizer.lr: [0.01, 0.1], optimizer.kind: [sgd, adam], model.hidden: [[8], [16, 4]]}
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(trs[0].cands) != 8 {
		t.Fatalf("%d candidates", len(trs[0].cands))
	}
	want := 1
	for _, c := range trs[0].cands {
		want += c.model.NumParams() + 1
	}
	if len(trs[0].v) != want {
		t.Errorf("step vector of %d values, want %d (Σ params+1 per candidate, count)", len(trs[0].v), want)
	}
	for _, tc := range tracers {
		tc.allreduces.Store(0)
	}
	const steps = 60
	errs := parallel(comms, func(c *elastic.Comm) error {
		tr := trs[c.Rank()]
		sc := &stepContext{Context: context.Background()}
		for s := range steps {
			if _, err := tr.step(sc, s); err != nil {
				return err
			}
		}
		return nil
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for r, tc := range tracers {
		if got := tc.allreduces.Load(); got != steps {
			t.Errorf("rank %d: %d allreduces in %d steps of 8 candidates, want one a step", r, got, steps)
		}
	}
}
