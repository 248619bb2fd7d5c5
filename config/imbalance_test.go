package config

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestClassWeightParses(t *testing.T) {
	for _, c := range []struct {
		value string
		want  *ClassWeight
	}{
		{"balanced", &ClassWeight{Balanced: true}},
		{"{1: 5, 0: 1}", &ClassWeight{Labels: []LabelWeight{{0, 1}, {1, 5}}}},
		{"{-1: 0.5, +1: 2.5}", &ClassWeight{Labels: []LabelWeight{{-1, 0.5}, {1, 2.5}}}},
		{"{}", &ClassWeight{}},
		{"null", nil},
	} {
		cfg, err := Parse(withKeys(t, kv{"model.class_weight", c.value}))
		if err != nil {
			t.Errorf("%s: %v", c.value, err)
			continue
		}
		if !reflect.DeepEqual(cfg.Model.ClassWeight, c.want) {
			t.Errorf("%s: %+v, want %+v", c.value, cfg.Model.ClassWeight, c.want)
		}
	}
	cfg, err := Parse(withKeys(t, kv{"data.resample", "under"}))
	if err != nil || cfg.Data.Resample != ResampleUnder {
		t.Errorf("data.resample: under: %v %+v", err, cfg)
	}
}

// TestImbalanceDigest: the options change the run digest; leaving them out
// keeps the digest a config without them had.
func TestImbalanceDigest(t *testing.T) {
	digest := func(kvs ...kv) string {
		cfg, err := Parse(withKeys(t, kvs...))
		if err != nil {
			t.Fatal(err)
		}
		return cfg.Digest()
	}
	seen := map[string]string{}
	for _, kvs := range [][]kv{
		nil,
		{{"model.class_weight", "balanced"}},
		{{"model.class_weight", "{0: 1, 1: 5}"}},
		{{"model.class_weight", "{0: 1, 1: 4}"}},
		{{"data.resample", "over"}},
		{{"data.resample", "under"}},
	} {
		d := digest(kvs...)
		if prev, ok := seen[d]; ok {
			t.Errorf("%v has the digest of %v", kvs, prev)
		}
		seen[d] = fmt.Sprint(kvs)
	}
	if digest(kv{"model.class_weight", "{1: 5, 0: 1}"}) != digest(kv{"model.class_weight", "{0: 1, 1.0: 5}"}) {
		t.Error("the same map written in another order (or 1 as 1.0) has another digest")
	}
}

func TestImbalanceErrors(t *testing.T) {
	linear := kv{"model.kind", "linear"}
	softmax := []kv{{"model.kind", "softmax"}, {"data.synthetic.task", "multiclass"}, {"data.synthetic.classes", "3"}}
	for _, c := range []struct {
		set         []kv
		key, reason string
	}{
		{[]kv{linear, {"data.synthetic.task", "regression"}, {"model.class_weight", "balanced"}}, "model.class_weight", "set on a regression model (model.kind linear)"},
		{[]kv{{"model.kind", "mlp"}, {"model.hidden", "[4]"}, {"model.output", "regression"}, {"data.synthetic.task", "regression"}, {"model.class_weight", "{0: 2}"}}, "model.class_weight", "regression model (model.kind mlp)"},
		{[]kv{{"model.kind", "mlp"}, {"model.hidden", "[4]"}, {"data.synthetic.task", "regression"}, {"data.resample", "over"}}, "data.resample", "over on a regression model"},
		{[]kv{linear, {"data.synthetic.task", "regression"}, {"data.resample", "under"}}, "data.resample", "under on a regression model"},
		{[]kv{{"data.resample", "smote"}}, "data.resample", `"smote" is not over or under`},
		{[]kv{{"model.class_weight", "balancd"}}, "model.class_weight", `"balancd": want balanced or a map`},
		{[]kv{{"model.class_weight", "[1, 2]"}}, "model.class_weight", "want balanced or a map"},
		{[]kv{{"model.class_weight", "{yes: 2}"}}, "model.class_weight", `key "yes" is not a label`},
		{[]kv{{"model.class_weight", "{0: 1, 0.0: 2}"}}, "model.class_weight", "label 0 is given twice"},
		{[]kv{{"model.class_weight", "{1: heavy}"}}, "model.class_weight", "the weight of label 1 is not a number"},
		{[]kv{{"model.class_weight", "{1: 0}"}}, "model.class_weight", "the weight of label 1 is 0: want a positive finite number"},
		{[]kv{{"model.class_weight", "{1: -2}"}}, "model.class_weight", "the weight of label 1 is -2"},
		{[]kv{{"model.class_weight", "{1: .inf}"}}, "model.class_weight", "the weight of label 1 is +Inf"},
		{[]kv{{"model.class_weight", "{0: .nan}"}}, "model.class_weight", "the weight of label 0 is NaN"},
		{[]kv{{"model.class_weight", "{2: 3}"}}, "model.class_weight", "label 2 is not a binary label (0/1 or -1/+1)"},
		{[]kv{{"model.class_weight", "{0.5: 3}"}}, "model.class_weight", "label 0.5 is not a class label (an integer)"},
		{[]kv{{"model.class_weight", "{-1: 1, 0: 2}"}}, "model.class_weight", "labels -1 and 0 both name"},
		{append(softmax, kv{"model.class_weight", "{3: 2}"}), "model.class_weight", "label 3 is not a class index of the 3 classes (0..2)"},
		{append(softmax, kv{"model.class_weight", "{-1: 2}"}), "model.class_weight", "label -1 is not a class index (an integer >= 0)"},
	} {
		_, err := Parse(withKeys(t, c.set...))
		line := errorLine(err, c.key)
		if line == "" || !strings.Contains(line, c.reason) {
			t.Errorf("%v: got %v, want a line %q containing %q", c.set, err, c.key+": ", c.reason)
		}
	}
}
