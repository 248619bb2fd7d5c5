package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dmlrun/dmlrun/plots"
)

// TestJobFaultsStopTheJob: a fault of the job itself, which every node
// would hit, stops the job at once with its cause and a non-zero exit,
// instead of being survived as a lost node: a diverging model (every node
// sees the non-finite sum at the same step; no model.json is written) and an
// output directory that cannot be created.
func TestJobFaultsStopTheJob(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "a-file")
	os.WriteFile(blocker, []byte("x"), 0o644)
	for _, tc := range []struct {
		name, body string
		want       []string
	}{
		{"diverging", `name: div
data: {format: synthetic, synthetic: {task: regression, samples: 2000, features: 5, noise: 0.1}}
model: {kind: linear}
optimizer: {kind: sgd, lr: 100}
training: {batch_size: 64, steps: 5000}
`, []string{"is not finite: the model diverged", "optimizer.lr (now 100)", "stopping the job"}},
		{"unwritable output", `name: out
data: {format: synthetic, synthetic: {task: binary, samples: 200, features: 3}}
model: {kind: logistic}
training: {steps: 5}
output: {dir: ` + filepath.Join(blocker, "out") + `}
`, []string{"a-file"}},
	} {
		cfg := writeConfig(t, dir, tc.body)
		if !strings.Contains(tc.body, "output:") {
			cfg = jobConfig(t, dir, tc.body)
		}
		start := time.Now()
		_, errOut, err := dmlrun(t, time.Minute, "-np", "3", cfg)
		if err == nil {
			t.Fatalf("%s: exit 0\n%s", tc.name, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Fatalf("%s: stderr does not mention %q:\n%s", tc.name, w, errOut)
			}
		}
		if strings.Contains(errOut, "the others go on without it") {
			t.Fatalf("%s: a fault of the job was taken for a lost node:\n%s", tc.name, errOut)
		}
		if el := time.Since(start); el > 30*time.Second {
			t.Fatalf("%s: took %v", tc.name, el)
		}
		out := filepath.Join(dir, "out-"+strings.TrimSuffix(filepath.Base(cfg), ".yaml"))
		if _, err := os.Stat(filepath.Join(out, "model.json")); err == nil {
			t.Fatalf("%s: a model was written", tc.name)
		}
	}
}

// TestRefusedInputs: values a run cannot hold are refused with their cause:
// a class label of 2e9 (classes would be the largest label + 1) and a
// checkpoint at the end of a finished run (nothing left to resume).
func TestRefusedInputs(t *testing.T) {
	dir := t.TempDir()
	labels := filepath.Join(dir, "labels.csv")
	os.WriteFile(labels, []byte("x,y\n1,0\n2,2000000000\n3,1\n"), 0o644)
	cfg := jobConfig(t, dir, "model: {kind: softmax}\ndata: {train: "+labels+"}\n")
	if _, errOut, err := dmlrun(t, time.Minute, "-np", "2", cfg); err == nil || !strings.Contains(errOut, "more than 65536 classes") {
		t.Fatalf("label 2e9: %v\n%s", err, errOut)
	}

	huge := filepath.Join(dir, "huge.csv")
	os.WriteFile(huge, []byte("x,y\n1,0\n"+strings.Repeat("9", 3<<20)+"x,1\n"), 0o644)
	cfg = jobConfig(t, dir, "model: {kind: logistic}\ndata: {train: "+huge+"}\n")
	_, errOut, err := dmlrun(t, time.Minute, "-np", "2", cfg)
	if err == nil || !strings.Contains(errOut, "huge.csv:3") || !strings.Contains(errOut, "is not a number") {
		t.Fatalf("a 3 MiB field: %v\n%.2000s", err, errOut)
	}
	for _, line := range strings.Split(errOut, "\n") {
		if len(line) > 1000 {
			t.Fatalf("a 3 MiB field: a %d-byte line of output: %.200s", len(line), line)
		}
	}

	done := jobConfig(t, dir, `data: {format: synthetic, synthetic: {task: binary, samples: 100, features: 3}}
model: {kind: logistic}
training: {batch_size: 10, steps: 20}
checkpoint: {every: 10}
`)
	if _, errOut, err := dmlrun(t, time.Minute, "-np", "2", done); err != nil {
		t.Fatalf("first run: %v\n%s", err, errOut)
	}
	if _, errOut, err := dmlrun(t, time.Minute, "-np", "2", "-resume", done); err == nil || !strings.Contains(errOut, "outside this run's steps") {
		t.Fatalf("-resume of a finished run: %v\n%s", err, errOut)
	}
}

// TestRankZeroLostAfterLastStep: rank 0 dies after the last step, before it
// writes its outputs; the survivors re-form the ring, the new rank 0 writes
// model.json and training.png, and the job succeeds with θ bitwise equal to an
// uninterrupted run's.
func TestRankZeroLostAfterLastStep(t *testing.T) {
	dir := t.TempDir()
	body := `name: last
seed: 3
data: {format: synthetic, normalize: true, synthetic: {task: binary, samples: 600, features: 4, noise: 0.3}}
model: {kind: logistic}
optimizer: {kind: adam, lr: 0.01}
training: {batch_size: 32, steps: 200, eval_every: 50}
cluster: {rejoin_timeout: 30s}
`
	ref, _ := trainNP(t, 3, jobConfig(t, dir, body))
	cfg := jobConfig(t, dir, body)
	t.Setenv("DMLRUN_FAULT", "before-save:"+filepath.Join(dir, "fault-fired"))
	out, errOut, err := dmlrun(t, 2*time.Minute, "-np", "3", cfg)
	if err != nil {
		t.Fatalf("%v\n%s\n%s", err, out, errOut)
	}
	if !strings.Contains(out, "all 2 nodes hold identical θ") || !strings.Contains(out, "model written to") || !strings.Contains(errOut, "lost node") {
		t.Fatalf("stdout %q\n%s", out, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "fault-fired")); err != nil {
		t.Fatal("the fault did not fire")
	}
	m := readModel(t, cfg)
	if m.Steps != 200 {
		t.Fatalf("%d steps", m.Steps)
	}
	// The new rank 0 draws the plot from the metrics.csv the old one wrote.
	checkPlot(t, filepath.Join(outDir(cfg), "training.png"), plots.TrainingWidth, plots.TrainingHeight)
	for i := range m.Theta {
		if m.Theta[i] != ref.Theta[i] {
			t.Fatalf("θ[%d] = %v, uninterrupted %v", i, m.Theta[i], ref.Theta[i])
		}
	}
}
