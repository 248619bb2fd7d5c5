package main

import (
	"strings"
	"syscall"
	"testing"
	"time"
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
	if three.Steps != one.Steps || three.Stopped != one.Stopped {
		t.Fatalf("3 nodes stopped at step %d (%q), 1 node at %d (%q)", three.Steps, three.Stopped, one.Steps, one.Stopped)
	}
	if d := relDiff(three.Theta, one.Theta); d > 1e-9 {
		t.Fatalf("θ on 3 nodes differs from 1 node by %g", d)
	}
}

// TestEarlyStoppingThroughFailure: a node killed mid-run does not move the
// stop: the survivors stop at the step and with the θ of an undisturbed run
// (the rule's state travels with θ).
func TestEarlyStoppingThroughFailure(t *testing.T) {
	dir := t.TempDir()
	body := strings.Replace(stoppingJob, "training: {", "training: {eval_every: 25, ", 1)
	ref, _ := trainNP(t, 1, jobConfig(t, dir, body))
	cfg := jobConfig(t, dir, body)
	cmd, stdout, stderr := startJob(t, 3, cfg)
	waitForLog(t, stderr, "step=50 ", time.Minute)
	syscall.Kill(nodeOfSlot(t, cmd.Process.Pid, 1), syscall.SIGKILL)
	if err := waitExit(t, cmd, 2*time.Minute, stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "all 2 nodes hold identical θ") {
		t.Fatalf("stdout %q\n%s", stdout.String(), stderr.String())
	}
	m := readModel(t, cfg)
	if m.Steps != ref.Steps || m.Stopped != ref.Stopped {
		t.Fatalf("stopped at step %d (%q) through a failure, %d (%q) without", m.Steps, m.Stopped, ref.Steps, ref.Stopped)
	}
	if d := relDiff(m.Theta, ref.Theta); d > 1e-9 {
		t.Fatalf("θ differs from the undisturbed run by %g", d)
	}
}
