package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dmlrun/dmlrun/plots"
)

// writeImbalancedCSV writes rows rows of 4 features and a label of len(probs)
// classes drawn with those probabilities, the features shifted by the class,
// with labels written as given (e.g. -1/1).
func writeImbalancedCSV(t *testing.T, path string, rows int, probs []float64, labels []string, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 8))
	var b strings.Builder
	b.WriteString("f0,f1,f2,f3,label\n")
	for range rows {
		u, c := r.Float64(), 0
		for c < len(probs)-1 && u >= probs[c] {
			u -= probs[c]
			c++
		}
		for j := range 4 {
			fmt.Fprintf(&b, "%.3f,", r.NormFloat64()+0.8*float64(c)*float64(j%2))
		}
		b.WriteString(labels[c] + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// imbalancedData writes a binary (-1/+1, 12% positive) and a 3-class
// (70/22/8%) training and test set into dir.
func imbalancedData(t *testing.T, dir string) (binTrain, binTest, multiTrain, multiTest string) {
	t.Helper()
	binTrain, binTest = filepath.Join(dir, "bin.csv"), filepath.Join(dir, "bin-test.csv")
	multiTrain, multiTest = filepath.Join(dir, "multi.csv"), filepath.Join(dir, "multi-test.csv")
	writeImbalancedCSV(t, binTrain, 401, []float64{0.88, 0.12}, []string{"-1", "1"}, 1)
	writeImbalancedCSV(t, binTest, 150, []float64{0.88, 0.12}, []string{"-1", "1"}, 2)
	writeImbalancedCSV(t, multiTrain, 353, []float64{0.7, 0.22, 0.08}, []string{"0", "1", "2"}, 3)
	writeImbalancedCSV(t, multiTest, 120, []float64{0.7, 0.22, 0.08}, []string{"0", "1", "2"}, 4)
	return
}

// evalJSON is the part of model.json the tests read.
type evalJSON struct {
	Eval struct {
		Step      int       `json:"step"`
		Set       string    `json:"set"`
		Rows      int       `json:"rows"`
		Accuracy  *float64  `json:"accuracy"`
		MacroF1   float64   `json:"macro_f1"`
		AUC       *float64  `json:"auc"`
		Precision []float64 `json:"precision"`
		Recall    []float64 `json:"recall"`
		Support   []int     `json:"support"`
		Confusion [][]int   `json:"confusion"`
	} `json:"eval"`
}

// TestImbalanceSameForAnyN: class weights (balanced and a map, -1/+1 labels
// too) and over- and under-sampling give the same θ on 1 and 3 nodes, for
// logistic, softmax and mlps; metrics.csv has the class columns, and model.json the final
// scores with a confusion matrix that adds up to the test rows.
func TestImbalanceSameForAnyN(t *testing.T) {
	dir := t.TempDir()
	binTrain, binTest, multiTrain, multiTest := imbalancedData(t, dir)
	bin := fmt.Sprintf("{train: %s, test: %s, label: label, normalize: true", binTrain, binTest)
	multi := fmt.Sprintf("{train: %s, test: %s, label: label, normalize: true", multiTrain, multiTest)
	for _, c := range []struct {
		name, data, model string
		classes           int
	}{
		{"logistic-balanced", bin + "}", "{kind: logistic, class_weight: balanced}", 2},
		{"softmax-map", multi + "}", "{kind: softmax, l2: 0.001, class_weight: {1: 2, 2: 5}}", 3},
		{"logistic-over", bin + ", resample: over}", "{kind: logistic}", 2},
		{"softmax-under", multi + ", resample: under}", "{kind: softmax}", 3},
		{"mlp-under-map", bin + ", resample: under}", "{kind: mlp, hidden: [5], activation: tanh, output: binary, class_weight: {-1: 1, 1: 3}}", 2},
		{"mlp-over-balanced", multi + ", resample: over}", "{kind: mlp, hidden: [6], output: multiclass, class_weight: balanced}", 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := jobConfig(t, dir, fmt.Sprintf(`name: %s
seed: 3
data: %s
model: %s
optimizer: {kind: adam, lr: 0.02}
training: {batch_size: 24, epochs: 3, eval_every: 10}
`, c.name, c.data, c.model))
			one, _ := trainNP(t, 1, cfg)
			oneEval := readEval(t, cfg)
			three, _ := trainNP(t, 3, cfg)
			if d := relDiff(three.Theta, one.Theta); d > 1e-9 {
				t.Fatalf("θ on 3 nodes differs from 1 node by %g", d)
			}
			ev := readEval(t, cfg)
			if ev.Eval.Step != three.Steps || ev.Eval.Set != "test" || ev.Eval.Accuracy == nil || len(ev.Eval.Precision) != c.classes {
				t.Fatalf("model.json eval %+v", ev.Eval)
			}
			var total, diag int
			for i, row := range ev.Eval.Confusion {
				sum := 0
				for j, n := range row {
					sum += n
					if i == j {
						diag += n
					}
				}
				if sum != ev.Eval.Support[i] {
					t.Errorf("confusion row %d adds up to %d, support %d", i, sum, ev.Eval.Support[i])
				}
				total += sum
			}
			if len(ev.Eval.Confusion) != c.classes || total != ev.Eval.Rows || math.Abs(float64(diag)/float64(total)-*ev.Eval.Accuracy) > 1e-12 {
				t.Errorf("confusion %v: %d rows, %d right; model.json says %d rows, accuracy %v", ev.Eval.Confusion, total, diag, ev.Eval.Rows, *ev.Eval.Accuracy)
			}
			if (c.classes == 2) != (ev.Eval.AUC != nil) {
				t.Errorf("AUC %v for %d classes", ev.Eval.AUC, c.classes)
			}
			// The counts are the same on any number of nodes: so are the scores.
			if fmt.Sprint(ev.Eval.Confusion) != fmt.Sprint(oneEval.Eval.Confusion) || ev.Eval.MacroF1 != oneEval.Eval.MacroF1 {
				t.Errorf("3 nodes: confusion %v macro-F1 %v; 1 node: %v %v", ev.Eval.Confusion, ev.Eval.MacroF1, oneEval.Eval.Confusion, oneEval.Eval.MacroF1)
			}
			checkMetricsCSV(t, cfg, c.classes, ev.Eval.MacroF1)
		})
	}
}

func readEval(t *testing.T, cfg string) evalJSON {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(outDir(cfg), "model.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e evalJSON
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	return e
}

// checkMetricsCSV checks metrics.csv's header (the fixed columns first, then
// the class columns) and that its last line's macro_f1 is model.json's.
func checkMetricsCSV(t *testing.T, cfg string, classes int, macroF1 float64) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(outDir(cfg), "metrics.csv"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	want := "step,epoch,train_loss,test_loss,test_mse,test_r2,test_accuracy,world_size,elapsed_s,macro_f1,auc"
	for c := range classes {
		want += fmt.Sprintf(",precision_%d,recall_%d,f1_%d", c, c, c)
	}
	if lines[0] != want {
		t.Fatalf("metrics.csv header %q, want %q", lines[0], want)
	}
	last := strings.Split(lines[len(lines)-1], ",")
	if len(last) != strings.Count(want, ",")+1 || last[9] != fmt.Sprint(macroF1) {
		t.Errorf("last line %q: want %d fields, macro_f1 %v", lines[len(lines)-1], strings.Count(want, ",")+1, macroF1)
	}
	if rows, err := plots.ReadMetrics(strings.NewReader(string(b))); err != nil || len(rows) != len(lines)-1 {
		t.Errorf("plots.ReadMetrics: %d rows, %v", len(rows), err)
	}
}

// TestResampleThroughFailure: with over-sampling and balanced weights, a node
// killed mid-run restarts and joins again (it receives the class counts with
// the data's shape; the others' resamplers order the shards they gain), and
// all 3 finish: θ equals the uninterrupted run's on 1 node.
func TestResampleThroughFailure(t *testing.T) {
	dir := t.TempDir()
	binTrain, binTest, _, _ := imbalancedData(t, dir)
	const steps, every = 6000, 100
	job := fmt.Sprintf(`name: resample-fail
seed: 5
data: {train: %s, test: %s, label: label, normalize: true, resample: over}
model: {kind: logistic, l2: 0.001, class_weight: balanced}
optimizer: {kind: adam, lr: 0.01}
training: {batch_size: 16, steps: %d, eval_every: %d}
cluster: {rejoin_timeout: 30s}
`, binTrain, binTest, steps, every)
	ref, _ := trainNP(t, 1, jobConfig(t, dir, job))
	cfg := jobConfig(t, dir, job)
	cmd := exec.Command(dmlrunBin, "-np", "3", "-max-restarts", "1", cfg)
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitForLog(t, &stderr, fmt.Sprintf("step=%d ", 2*every), time.Minute)
	syscall.Kill(children(cmd.Process.Pid)[1], syscall.SIGKILL)
	if err := waitExit(t, cmd, 2*time.Minute, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "restarting it (1 of 1)") || !strings.Contains(stdout.String(), "all 3 nodes hold identical θ") {
		t.Fatalf("stdout %q\n%s", stdout.String(), stderr.String())
	}
	m := readModel(t, cfg)
	if m.Steps != steps {
		t.Fatalf("%d steps done, want %d", m.Steps, steps)
	}
	if d := relDiff(m.Theta, ref.Theta); d > 1e-9 {
		t.Fatalf("θ differs from the uninterrupted run by %g", d)
	}
}

// TestImbalanceConfigErrors: dmlrun refuses the options on a regression
// model, naming the key, before it starts any node.
func TestImbalanceConfigErrors(t *testing.T) {
	dir := t.TempDir()
	data, _, _ := writeCSV(t, dir, 20, 2, 1)
	for _, c := range []struct{ set, want string }{
		{"model: {kind: linear, class_weight: balanced}\ndata: {train: %s, label: target}\n", "model.class_weight: set on a regression model"},
		{"model: {kind: linear}\ndata: {train: %s, label: target, resample: under}\n", "data.resample: under on a regression model"},
	} {
		cfg := jobConfig(t, dir, fmt.Sprintf(c.set, data))
		_, errOut, err := dmlrun(t, time.Minute, "-np", "2", cfg)
		if err == nil || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: %v\n%s", c.want, err, errOut)
		}
	}
}
