package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmlrun/dmlrun/train"
)

// stoppingJob has no steps or epochs: tol decides, within max_epochs.
const stoppingJob = `name: stopping
seed: 21
data: {format: synthetic, synthetic: {task: binary, samples: 1201, features: 5, noise: 0.3}}
model: {kind: logistic}
optimizer: {kind: sgd, lr: 0.5, schedule: invscaling, power_t: 0.5}
training: {batch_size: 50, tol: 0.001, n_iter_no_change: 3, max_epochs: 200}
`

// TestEarlyStoppingSameForAnyN: scikit-learn's tol rule stops a run on 1
// node and on 3 at the same step with the same θ, and model.json says why.
func TestEarlyStoppingSameForAnyN(t *testing.T) {
	dir := t.TempDir()
	one, _ := trainNP(t, 1, jobConfig(t, dir, stoppingJob))
	three, _ := trainNP(t, 3, jobConfig(t, dir, stoppingJob))
	const perEpoch = 25 // ceil(1201 / 50)
	if one.Steps >= 200*perEpoch || one.Steps%perEpoch != 0 || !strings.Contains(one.Stopped, "did not improve by more than tol=0.001 for 3 epochs") {
		t.Fatalf("1 node: %d steps, stopped %q: want an early stop at an epoch's end", one.Steps, one.Stopped)
	}
	sameStop(t, three, one)
}

// TestEarlyStoppingThroughFailure: a node killed mid-run does not move the
// stop: the survivors stop at the step and with the θ of an undisturbed run
// (the rule's state travels with θ).
func TestEarlyStoppingThroughFailure(t *testing.T) {
	dir := t.TempDir()
	body := strings.Replace(stoppingJob, "training: {", "training: {eval_every: 25, ", 1)
	ref, _ := trainNP(t, 1, jobConfig(t, dir, body))
	cfg := jobConfig(t, dir, body)
	killSlotAt(t, 3, cfg, "step=50 ", 1)
	sameStop(t, readModel(t, cfg), ref)
}

// TestEarlyStoppingOnValidation: with validation_fraction the rule judges
// the held-out score; the split and so the stop are the same on 1 node and 3.
func TestEarlyStoppingOnValidation(t *testing.T) {
	dir := t.TempDir()
	body := strings.Replace(stoppingJob, "training: {", "training: {validation_fraction: 0.2, ", 1)
	one, _ := trainNP(t, 1, jobConfig(t, dir, body))
	three, _ := trainNP(t, 3, jobConfig(t, dir, body))
	if !strings.Contains(one.Stopped, "the validation accuracy (negated) did not improve") {
		t.Fatalf("1 node: %d steps, stopped %q", one.Steps, one.Stopped)
	}
	sameStop(t, three, one)
}

// sameStop fails t unless got stopped at want's step, for want's reason,
// with want's θ (within 1e-9).
func sameStop(t *testing.T, got, want *train.ModelFile) {
	t.Helper()
	if got.Steps != want.Steps || got.Stopped != want.Stopped {
		t.Fatalf("stopped at step %d (%q), the reference at %d (%q)", got.Steps, got.Stopped, want.Steps, want.Stopped)
	}
	if d := relDiff(got.Theta, want.Theta); d > 1e-9 {
		t.Fatalf("θ differs from the reference's by %g", d)
	}
}

// TestEarlyStoppingOnValidationFiles: with data.validation the rule judges
// the score on those files (each node reads its shards of them); the stop is
// the same on 1 node and 3.
func TestEarlyStoppingOnValidationFiles(t *testing.T) {
	dir := t.TempDir()
	var paths [2]string
	for i, rows := range []int{601, 203} {
		sub := filepath.Join(dir, []string{"train", "val"}[i])
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		paths[i], _, _ = writeCSV(t, sub, rows, 4, uint64(i+3))
	}
	body := "name: valfiles\nseed: 3\ndata: {train: " + paths[0] + ", validation: " + paths[1] + `}
model: {kind: linear}
optimizer: {kind: sgd, lr: 0.02}
training: {batch_size: 20, tol: 0.0001, n_iter_no_change: 2, max_epochs: 100}
`
	one, _ := trainNP(t, 1, jobConfig(t, dir, body))
	three, _ := trainNP(t, 3, jobConfig(t, dir, body))
	if one.Steps >= 100*31 || !strings.Contains(one.Stopped, "the validation R² (negated) did not improve") {
		t.Fatalf("1 node: %d steps, stopped %q", one.Steps, one.Stopped)
	}
	sameStop(t, three, one)
}
