package config

import (
	"strings"
	"testing"
)

const searchBase = `
data: {format: synthetic, synthetic: {task: binary, samples: 100, features: 3}}
model: {kind: logistic}
optimizer: {kind: sgd, lr: 0.1}
training: {steps: 10, validation_fraction: 0.2}
`

func TestSearchCandidates(t *testing.T) {
	cfg, err := Parse([]byte(searchBase + "search: {optimizer.lr: [0.001, 0.01, 0.1], model.l2: [0, 1e-3], metric: loss}\n"))
	if err != nil {
		t.Fatal(err)
	}
	cands, err := cfg.Candidates()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{ // keys sorted, the last varying fastest
		"model.l2=0 optimizer.lr=0.001", "model.l2=0 optimizer.lr=0.01", "model.l2=0 optimizer.lr=0.1",
		"model.l2=1e-3 optimizer.lr=0.001", "model.l2=1e-3 optimizer.lr=0.01", "model.l2=1e-3 optimizer.lr=0.1",
	}
	if len(cands) != len(want) {
		t.Fatalf("%d candidates, want %d", len(cands), len(want))
	}
	for i, c := range cands {
		if c.String() != want[i] {
			t.Errorf("candidate %d: %s, want %s", i, c, want[i])
		}
		if c.Config.Search != nil || c.Config.Optimizer.Eta0 != c.Config.Optimizer.LR {
			t.Errorf("candidate %d: search %v, eta0 %v lr %v: want no search and eta0 following lr", i, c.Config.Search, c.Config.Optimizer.Eta0, c.Config.Optimizer.LR)
		}
	}
	if got := cands[4].Config; got.Model.L2 != 1e-3 || got.Optimizer.LR != 0.01 || cfg.Optimizer.LR != 0.1 || cfg.Model.L2 != 0 {
		t.Errorf("candidate 4: l2 %v lr %v (job: l2 %v lr %v)", got.Model.L2, got.Optimizer.LR, cfg.Model.L2, cfg.Optimizer.LR)
	}
	if cfg.SearchMetric("binary") != "loss" {
		t.Errorf("metric %q", cfg.SearchMetric("binary"))
	}

	mlp, err := Parse([]byte(`
data: {format: synthetic, synthetic: {task: regression, samples: 100, features: 3}}
model: {kind: mlp, hidden: [4]}
training: {steps: 10, validation_fraction: 0.2}
search: {model.hidden: [[8], [16, 4]], optimizer.kind: [sgd, adam], optimizer.schedule: [constant, invscaling]}
`))
	if err != nil {
		t.Fatal(err)
	}
	cands, err = mlp.Candidates()
	if err != nil {
		t.Fatal(err)
	}
	if len(cands) != 8 || cands[7].String() != "model.hidden=[16 4] optimizer.kind=adam optimizer.schedule=invscaling" ||
		len(cands[7].Config.Model.Hidden) != 2 || cands[7].Config.Model.Hidden[1] != 4 || len(mlp.Model.Hidden) != 1 {
		t.Errorf("mlp grid: %d candidates, last %s hidden %v (job's %v)", len(cands), cands[len(cands)-1], cands[len(cands)-1].Config.Model.Hidden, mlp.Model.Hidden)
	}
	if mlp.SearchMetric("regression") != "r2" {
		t.Errorf("default metric %q", mlp.SearchMetric("regression"))
	}
	single, _ := Parse([]byte(strings.Replace(searchBase, "validation_fraction: 0.2", "", 1)))
	if c, err := single.Candidates(); err != nil || len(c) != 1 || c[0].Config != single {
		t.Errorf("no search: %v %v", c, err)
	}
}

func TestSearchErrors(t *testing.T) {
	for _, tc := range []struct{ search, want string }{
		{"search: [1, 2]", "search: want a map"},
		{"search: {model.kind: [linear]}", "search.model.kind: not a setting a search can vary"},
		{"search: {optimizer.lr: 0.1}", "search.optimizer.lr: want a list of values"},
		{"search: {optimizer.lr: []}", "search.optimizer.lr: want a list of values"},
		{"search: {optimizer.lr: [fast]}", `"fast" is not a number`},
		{"search: {model.hidden: [4, 8]}", "want a list of layer widths per candidate"},
		{"search: {optimizer.kind: [[sgd]]}", "want a list of plain values"},
		{"search: {metric: loss}", "search: no setting to vary"},
		{"search: {optimizer.lr: [0.1], metric: f2}", `search.metric: "f2" is not one of`},
		{"search: {optimizer.lr: [0.1], metric: r2}", "r2 judges regression; this model is binary"},
		{"search: {optimizer.kind: [sgd, rmsprop]}", `search: candidate 1 (optimizer.kind=rmsprop): optimizer.kind: "rmsprop" is not sgd`},
		{"search: {optimizer.lr: [0.1, -1]}", "candidate 1 (optimizer.lr=-1): optimizer.lr: -1: want a positive learning rate"},
		{"search: {model.hidden: [[4]]}", "candidate 0 (model.hidden=[4]): model.hidden: only an mlp has hidden layers"},
		{"search: {optimizer.lr: [0.1, 0.2], optimizer.lr: [0.3]}", "listed twice"},
	} {
		_, err := Parse([]byte(searchBase + tc.search + "\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.search, err, tc.want)
		}
	}
	_, err := Parse([]byte(strings.Replace(searchBase, "validation_fraction: 0.2", "", 1) + "search: {optimizer.lr: [0.1]}\n"))
	if err == nil || !strings.Contains(err.Error(), "set data.validation (files) or training.validation_fraction") {
		t.Errorf("search without validation data: %v", err)
	}
	_, err = Parse([]byte(strings.Replace(searchBase, "format: synthetic, ", "train: a.csv, validation: v.csv, ", 1)))
	if err == nil || !strings.Contains(err.Error(), "data.validation: set data.validation or training.validation_fraction, not both") {
		t.Errorf("both validations: %v", err)
	}
}
