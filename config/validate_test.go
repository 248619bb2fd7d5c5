package config

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// kv is one key of train.yaml, dotted (data.synthetic.noise), and the YAML
// text of its value.
type kv struct{ key, value string }

// withKeys returns config.Default with each key set (replaced, or added to
// its mapping) to the YAML value given.
func withKeys(t *testing.T, kvs ...kv) []byte {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(Default), &doc); err != nil {
		t.Fatal(err)
	}
	for _, p := range kvs {
		var v yaml.Node
		if err := yaml.Unmarshal([]byte(p.value), &v); err != nil {
			t.Fatalf("%s: %v", p.value, err)
		}
		m := doc.Content[0]
		parts := strings.Split(p.key, ".")
		for i, k := range parts {
			var found *yaml.Node
			for j := 0; j+1 < len(m.Content); j += 2 {
				if m.Content[j].Value == k {
					found = m.Content[j+1]
				}
			}
			last := i == len(parts)-1
			if found == nil {
				found = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
				if last {
					found = v.Content[0]
				}
				m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, found)
			} else if last {
				*found = *v.Content[0]
			}
			m = found
		}
	}
	b, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// errorLine returns the line of err (a join of errors, one per line) that
// starts with key, or "".
func errorLine(err error, key string) string {
	if err == nil {
		return ""
	}
	for _, l := range strings.Split(err.Error(), "\n") {
		if strings.HasPrefix(l, key+": ") {
			return l
		}
	}
	return ""
}

func TestValidateBadValues(t *testing.T) {
	mlp := kv{"model.kind", "mlp"}
	multiclass := kv{"data.synthetic.task", "multiclass"}
	const notFinite = "is not a finite number"
	type row struct {
		set         []kv
		key, reason string
	}
	var rows []row
	// Every float: NaN and both infinities, then its range.
	for _, key := range []string{"optimizer.lr", "model.l2", "optimizer.momentum", "optimizer.beta1", "optimizer.beta2", "optimizer.epsilon", "data.synthetic.noise"} {
		for v, reason := range map[string]string{".nan": "NaN " + notFinite, ".inf": "+Inf " + notFinite, "-.inf": "-Inf " + notFinite, ".NaN": "NaN " + notFinite, "+.Inf": "+Inf " + notFinite} {
			rows = append(rows, row{[]kv{{key, v}}, key, reason})
		}
	}
	rows = append(rows, []row{
		{[]kv{{"optimizer.lr", "-1"}}, "optimizer.lr", "-1: want a positive learning rate"},
		{[]kv{{"model.l2", "-0.5"}}, "model.l2", "-0.5 is negative"},
		{[]kv{{"optimizer.momentum", "1"}}, "optimizer.momentum", "1: want 0 <= momentum < 1"},
		{[]kv{{"optimizer.momentum", "-0.1"}}, "optimizer.momentum", "-0.1: want 0 <= momentum < 1"},
		{[]kv{{"optimizer.beta1", "1"}}, "optimizer.beta1", "1: want 0 <= beta1 < 1"},
		{[]kv{{"optimizer.beta2", "-0.1"}}, "optimizer.beta2", "-0.1: want 0 <= beta2 < 1"},
		{[]kv{{"optimizer.epsilon", "-1e-8"}}, "optimizer.epsilon", "-1e-08: want a positive epsilon"},
		{[]kv{{"data.synthetic.noise", "-0.1"}}, "data.synthetic.noise", "-0.1 is negative"},

		// Sizes too large.
		{[]kv{{"training.steps", "2000000000000"}}, "training.steps", "2000000000000 is above the limit of 1000000000 (10^9 steps)"},
		{[]kv{{"training.steps", "0"}, {"training.epochs", "1000000001"}}, "training.epochs", "1000000001 is above the limit of 1000000000 (10^9 epochs)"},
		{[]kv{{"training.batch_size", "2147483649"}}, "training.batch_size", "2147483649 is above the limit of 2147483648 (2^31 rows in a global batch)"},
		{[]kv{{"training.eval_every", "1000000001"}}, "training.eval_every", "1000000001 is above the limit of 1000000000"},
		{[]kv{{"training.steps", "-1"}}, "training.steps", "-1 is negative"},
		{[]kv{{"training.steps", "0"}, {"training.epochs", "-1"}}, "training.epochs", "-1 is negative"},
		{[]kv{mlp, {"model.hidden", "[8, 65537]"}}, "model.hidden[1]", "65537 is above the limit of 65536 (2^16 units in a layer)"},
		{[]kv{mlp, {"model.hidden", "[8, 0]"}}, "model.hidden[1]", "0: want at least 1"},
		{[]kv{mlp, {"model.hidden", "[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"}}, "model.hidden", "17 is above the limit of 16 (16 hidden layers)"},
		{[]kv{mlp, {"model.hidden", "[65536, 65536]"}}, "model.hidden", "[65536 65536] has 4296278016 weights from data.synthetic.features through the hidden layers to model.classes, above the limit of 268435456"},
		{[]kv{mlp, {"model.hidden", "[65536]"}, {"model.classes", "8192"}}, "model.hidden", "above the limit of 268435456"},
		{[]kv{{"model.classes", "65537"}}, "model.classes", "65537 is above the limit of 65536 (2^16 classes)"},
		{[]kv{{"model.classes", "-1"}}, "model.classes", "-1 is negative"},
		{[]kv{{"data.synthetic.samples", "2147483649"}}, "data.synthetic.samples", "2147483649 is above the limit of 2147483648 (2^31 rows)"},
		{[]kv{{"data.synthetic.test_samples", "2147483649"}}, "data.synthetic.test_samples", "2147483649 is above the limit of 2147483648 (2^31 rows)"},
		{[]kv{{"data.synthetic.samples", "2147483648"}, {"data.synthetic.features", "1"}}, "data.synthetic.samples", "samples + test_samples = 2147487648 rows is above the limit of 2147483648"},
		{[]kv{{"data.synthetic.samples", "300000000"}}, "data.synthetic.features", "(samples + test_samples) * features = 6000080000 values is above the limit of 4294967296 (2^32 values, 32 GiB as float64: the generated tables must fit in memory)"},
		{[]kv{{"data.synthetic.features", "1048577"}}, "data.synthetic.features", "1048577 is above the limit of 1048576 (2^20 features)"},
		{[]kv{multiclass, {"data.synthetic.classes", "65537"}}, "data.synthetic.classes", "65537 is above the limit of 65536 (2^16 classes)"},
		{[]kv{multiclass, {"data.synthetic.classes", "65536"}, {"data.synthetic.features", "8192"}}, "data.synthetic.classes", "classes * features = 536870912 weights"},
		{[]kv{multiclass, {"data.synthetic.classes", "1"}}, "data.synthetic.classes", "1: want at least 2"},
		{[]kv{{"data.synthetic.classes", "3"}}, "data.synthetic.classes", "3: a binary task has 2 classes"},
		{[]kv{{"cluster.nodes", "4097"}}, "cluster.nodes", "4097 is above the limit of 4096 (4096 nodes)"},
		{[]kv{{"cluster.min_nodes", "4097"}}, "cluster.min_nodes", "4097 is above the limit of 4096 (4096 nodes)"},
		{[]kv{{"checkpoint.every", "1000000001"}}, "checkpoint.every", "1000000001 is above the limit of 1000000000"},
		{[]kv{{"checkpoint.every", "-1"}}, "checkpoint.every", "-1 is negative"},
		{[]kv{{"cluster.timeout", "25h"}}, "cluster.timeout", "25h0m0s is above the limit of 24h"},
		{[]kv{{"cluster.step_timeout", "1000000h"}}, "cluster.step_timeout", "1000000h0m0s is above the limit of 24h"},
		{[]kv{{"cluster.rejoin_timeout", "24h1s"}}, "cluster.rejoin_timeout", "24h0m1s is above the limit of 24h"},
		{[]kv{{"cluster.timeout", "-1s"}}, "cluster.timeout", "-1s: want a positive duration"},
		{[]kv{{"data.format", "csv"}, {"data.train", "x.csv"}, {"data.synthetic", "null"}, {"model.kind", "mlp"}}, "model.output", "an mlp on data files must be told what its labels are"},
		{[]kv{{"training.validation_fraction", "1"}, {"training.tol", "0.001"}}, "training.validation_fraction", "1: want 0 <= fraction < 1"},
		{[]kv{{"training.validation_fraction", "0.1"}}, "training.validation_fraction", "set training.tol or a search block too"},
		{[]kv{{"training.tol", ".nan"}}, "training.tol", "NaN is not a finite number"},
		{[]kv{{"training.n_iter_no_change", "-1"}}, "training.n_iter_no_change", "-1: want at least 1 epoch"},
		{[]kv{{"optimizer.schedule", "linear"}}, "optimizer.schedule", `"linear" is not constant, invscaling, step or cosine`},
		{[]kv{{"optimizer.schedule", "step"}}, "optimizer.step_size", "0: the step schedule needs the steps between decays"},
		{[]kv{{"optimizer.gamma", "2"}}, "optimizer.gamma", "2: want 0 < gamma <= 1"},
		{[]kv{{"optimizer.power_t", "-1"}}, "optimizer.power_t", "-1 is negative"},
		{[]kv{{"optimizer.eta0", "-0.1"}}, "optimizer.eta0", "-0.1: want a positive learning rate"},
		{[]kv{{"optimizer.warmup_steps", "-3"}}, "optimizer.warmup_steps", "-3 is negative"},
		{[]kv{{"cluster.frame_mac", "yes"}}, "cluster.frame_mac", `"yes": want auto, on or off`},
		{[]kv{{"cluster.frame_mac", "off"}, {"cluster.encrypt", "true"}}, "cluster.encrypt", "true with cluster.frame_mac: off"},
	}...)
	for _, r := range rows {
		name := fmt.Sprint(r.set)
		doc := withKeys(t, r.set...)
		_, err := Parse(doc)
		line := errorLine(err, r.key)
		if line == "" || !strings.Contains(line, r.reason) {
			t.Errorf("%s: got %v, want a line %q containing %q\n%s", name, err, r.key+": ", r.reason, doc)
		}
	}
}

// At each limit the job still parses.
func TestValidateAtLimits(t *testing.T) {
	mlp := kv{"model.kind", "mlp"}
	for _, set := range [][]kv{
		{{"training.steps", "1000000000"}},
		{{"training.steps", "0"}, {"training.epochs", "1000000000"}},
		{{"training.batch_size", "2147483648"}},
		{{"training.eval_every", "1000000000"}},
		{{"checkpoint.every", "1000000000"}},
		{mlp, {"model.hidden", "[65536]"}},
		{mlp, {"model.hidden", "[16384, 16383]"}, {"data.synthetic.features", "1"}},
		{mlp, {"model.hidden", "[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"}},
		{{"model.classes", "65536"}},
		{{"data.synthetic.samples", "2147479648"}, {"data.synthetic.features", "1"}},
		{{"data.synthetic.samples", "214744364"}},
		{{"data.synthetic.samples", "1"}, {"data.synthetic.features", "1048576"}},
		{{"data.synthetic.task", "multiclass"}, {"data.synthetic.classes", "65536"}, {"data.synthetic.features", "4096"}},
		{{"cluster.nodes", "4096"}, {"cluster.min_nodes", "4096"}},
		{{"cluster.nodes", "2"}, {"cluster.min_nodes", "3"}}, // -np may raise nodes
		{{"cluster.timeout", "24h"}, {"cluster.step_timeout", "24h"}, {"cluster.rejoin_timeout", "24h"}},
		{{"cluster.frame_mac", "on"}, {"cluster.encrypt", "true"}},
		{{"cluster.frame_mac", "off"}},
		{{"optimizer.momentum", "0.999"}, {"optimizer.beta1", "0"}, {"optimizer.beta2", "0.999"}, {"optimizer.epsilon", "0"}, {"model.l2", "0"}, {"data.synthetic.noise", "0"}},
	} {
		if _, err := Parse(withKeys(t, set...)); err != nil {
			t.Errorf("%v: %v", set, err)
		}
	}
}

// All the bad keys are reported at once, one line each.
func TestValidateReportsAll(t *testing.T) {
	doc := withKeys(t,
		kv{"optimizer.lr", ".nan"}, kv{"optimizer.beta1", ".inf"}, kv{"optimizer.beta2", "-.inf"},
		kv{"training.steps", "2000000000000"}, kv{"cluster.nodes", "100000"}, kv{"data.synthetic.noise", ".nan"})
	_, err := Parse(doc)
	keys := []string{"data.synthetic.noise", "optimizer.lr", "optimizer.beta1", "optimizer.beta2", "training.steps", "cluster.nodes"}
	for _, k := range keys {
		if errorLine(err, k) == "" {
			t.Errorf("no line for %s in\n%v", k, err)
		}
	}
	if err != nil && strings.Count(err.Error(), "\n")+1 != len(keys) {
		t.Errorf("want %d lines, got\n%v", len(keys), err)
	}
}

func TestDefaultAndExamplesStillParse(t *testing.T) {
	if _, err := Parse([]byte(Default)); err != nil {
		t.Fatalf("config.Default: %v", err)
	}
	if _, err := Parse(withKeys(t)); err != nil {
		t.Fatalf("config.Default re-encoded: %v", err)
	}
	files, err := filepath.Glob("../examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, f := range files {
		if _, err := Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
