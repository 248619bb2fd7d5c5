package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDefaultParses(t *testing.T) {
	c, err := Parse([]byte(Default))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster.Nodes != 4 || c.Model.Kind != "logistic" || c.Data.Format != "synthetic" || c.Output.Dir != "runs/demo" {
		t.Fatalf("%+v", c)
	}
}

func TestExamplesParse(t *testing.T) {
	files, _ := filepath.Glob("../examples/*.yaml")
	for _, f := range files {
		if _, err := Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"unknown key", "name: x\nmodel: {kind: linear}\ndata: {format: csv, train: a.csv}\noptimizer: {lr2: 1}\n", "field lr2 not found"},
		{"misspelled top key", "nmae: x\n", "line 1: field nmae not found"},
		{"bad kind", "model: {kind: tree}\ndata: {train: a.csv}\n", `model.kind: "tree"`},
		{"no train file", "model: {kind: linear}\n", "data.train: missing"},
		{"mlp without hidden", "model: {kind: mlp}\ndata: {train: a.csv}\n", "model.hidden"},
		{"steps and epochs", "model: {kind: linear}\ndata: {train: a.csv}\ntraining: {steps: 3, epochs: 2}\n", "not both"},
		{"bad duration", "model: {kind: linear}\ndata: {train: a.csv}\ncluster: {timeout: soon}\n", `"soon" is not a duration`},
		{"bad lr", "model: {kind: linear}\ndata: {train: a.csv}\noptimizer: {lr: -1}\n", "optimizer.lr"},
		{"synthetic without spec", "model: {kind: linear}\ndata: {format: synthetic}\n", "data.synthetic: missing"},
		{"bad task", "model: {kind: linear}\ndata: {synthetic: {task: x, samples: 3, features: 2}}\n", "data.synthetic.task"},
		{"wrong type", "model: {kind: linear}\ndata: {train: a.csv}\ntraining: {steps: many}\n", "cannot unmarshal"},
	} {
		_, err := Parse([]byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

func TestLoadNamesFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "train.yaml")
	os.WriteFile(p, []byte("bogus: 1\n"), 0o644)
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("got %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestDigest(t *testing.T) {
	a, _ := Parse([]byte(Default))
	b, _ := Parse([]byte(Default + "output: {dir: elsewhere}\n"))
	if a.Digest() != b.Digest() {
		t.Fatal("the output directory changed the digest")
	}
	c, _ := Parse([]byte(strings.Replace(Default, "lr: 0.05", "lr: 0.06", 1)))
	if a.Digest() == c.Digest() {
		t.Fatal("the learning rate did not change the digest")
	}
}

func TestLoadResolvesDataPaths(t *testing.T) {
	c, err := Load("../examples/houses.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Data.Train.String() != "../examples/data/houses.csv" || c.Data.Test.String() != "../examples/data/houses_test.csv" {
		t.Fatalf("paths %q %q", c.Data.Train, c.Data.Test)
	}
}
