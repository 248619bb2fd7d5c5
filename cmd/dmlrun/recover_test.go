package main

import (
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

const recoverJob = `name: recover
seed: 11
data: {format: synthetic, normalize: true, synthetic: {task: binary, samples: 3001, test_samples: 300, features: 8, noise: 0.4}}
model: {kind: logistic, l2: 0.001}
optimizer: {kind: adam, lr: 0.01}
training: {batch_size: 32, steps: %d, eval_every: %d}
cluster: {rejoin_timeout: %s}
`

// startJob starts `dmlrun -np n cfg` and returns it with its stderr.
func startJob(t *testing.T, n int, cfg string) (*exec.Cmd, *syncBuffer, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(dmlrunBin, "-np", fmt.Sprint(n), "-v", cfg) // -v: every node's lines, which the tests read
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, &stdout, &stderr
}

// killSlotAt runs `dmlrun -np n cfg`, kills the node of slot with SIGKILL
// once the log shows key, and fails t unless the job then succeeds with
// n-1 nodes holding the same θ. It returns the job's stdout and stderr.
func killSlotAt(t *testing.T, n int, cfg, key string, slot int) (stdout, stderr *syncBuffer) {
	t.Helper()
	cmd, stdout, stderr := startJob(t, n, cfg)
	waitForLog(t, stderr, key, time.Minute)
	syscall.Kill(nodeOfSlot(t, cmd.Process.Pid, slot), syscall.SIGKILL)
	if err := waitExit(t, cmd, 2*time.Minute, stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if want := fmt.Sprintf("all %d nodes hold identical θ", n-1); !strings.Contains(stdout.String(), want) {
		t.Fatalf("no %q after the kill:\nstdout %q\n%s", want, stdout.String(), stderr.String())
	}
	return stdout, stderr
}

func waitExit(t *testing.T, cmd *exec.Cmd, timeout time.Duration, log *syncBuffer) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		t.Fatalf("job still running after %v:\n%s", timeout, log.String())
	}
	return nil
}

// TestKillRandomNode: kill -9 of a random node at a random step, for 10
// seeds: the survivors finish every step, hold identical θ, and θ equals the
// uninterrupted run's within 1e-9 (the global batch does not depend on the
// number of nodes).
func TestKillRandomNode(t *testing.T) {
	dir := t.TempDir()
	const steps, every = 4000, 200
	ref, _ := trainNP(t, 1, jobConfig(t, dir, fmt.Sprintf(recoverJob, steps, every, "30s")))
	for seed := range 10 {
		rng := rand.New(rand.NewPCG(uint64(seed), 7))
		cfg := jobConfig(t, dir, fmt.Sprintf(recoverJob, steps, every, "30s"))
		cmd, stdout, stderr := startJob(t, 4, cfg)
		at := every * (1 + rng.IntN(steps/every-4)) // an evaluation point, then kill
		waitForLog(t, stderr, fmt.Sprintf("step=%d ", at), time.Minute)
		nodes := children(cmd.Process.Pid)
		if len(nodes) != 4 {
			t.Fatalf("seed %d: %d nodes", seed, len(nodes))
		}
		victim := nodes[rng.IntN(len(nodes))]
		syscall.Kill(victim, syscall.SIGKILL)
		if err := waitExit(t, cmd, 2*time.Minute, stderr); err != nil {
			t.Fatalf("seed %d: %v\n%s", seed, err, stderr.String())
		}
		if !strings.Contains(stdout.String(), "all 3 nodes hold identical θ") || !strings.Contains(stderr.String(), "lost node") {
			t.Fatalf("seed %d: stdout %q\n%s", seed, stdout.String(), stderr.String())
		}
		m := readModel(t, cfg)
		if m.Steps != steps {
			t.Fatalf("seed %d: %d steps done, want %d", seed, m.Steps, steps)
		}
		if d := relDiff(m.Theta, ref.Theta); d > 1e-9 {
			t.Fatalf("seed %d: θ differs from the uninterrupted run by %g", seed, d)
		}
	}
}

// TestKillTwoOfFive: two of five nodes killed at once; the three go on.
func TestKillTwoOfFive(t *testing.T) {
	dir := t.TempDir()
	cfg := jobConfig(t, dir, fmt.Sprintf(recoverJob, 4000, 200, "30s"))
	cmd, stdout, stderr := startJob(t, 5, cfg)
	waitForLog(t, stderr, "step=600 ", time.Minute)
	nodes := children(cmd.Process.Pid)
	syscall.Kill(nodes[1], syscall.SIGKILL)
	syscall.Kill(nodes[3], syscall.SIGKILL)
	if err := waitExit(t, cmd, 2*time.Minute, stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "all 3 nodes hold identical θ") {
		t.Fatalf("stdout %q\n%s", stdout.String(), stderr.String())
	}
	if m := readModel(t, cfg); m.Steps != 4000 {
		t.Fatalf("%d steps done", m.Steps)
	}
}

// TestBelowQuorum: killing two of three leaves one node, which is not more
// than half of the last ring: it pauses for rejoin_timeout, then exits with
// the quorum error, and so does the job.
func TestBelowQuorum(t *testing.T) {
	dir := t.TempDir()
	cfg := jobConfig(t, dir, fmt.Sprintf(recoverJob, 100000000, 200, "2s"))
	cmd, _, stderr := startJob(t, 3, cfg)
	waitForLog(t, stderr, "step=400 ", time.Minute)
	nodes := children(cmd.Process.Pid)
	syscall.Kill(nodes[0], syscall.SIGKILL)
	syscall.Kill(nodes[2], syscall.SIGKILL)
	start := time.Now()
	err := waitExit(t, cmd, time.Minute, stderr)
	if err == nil {
		t.Fatal("exit 0 without quorum")
	}
	if !strings.Contains(stderr.String(), "quorum lost") {
		t.Fatalf("no quorum error:\n%s", stderr.String())
	}
	if el := time.Since(start); el < 2*time.Second {
		t.Fatalf("gave up after %v, before rejoin_timeout", el)
	}
}

// TestResumeBitwise: the whole cluster is killed after a checkpoint; -resume
// with the same number of nodes ends bitwise equal to an uninterrupted run.
func TestResumeBitwise(t *testing.T) {
	dir := t.TempDir()
	const body = `name: resume
seed: 5
data: {format: synthetic, normalize: true, synthetic: {task: multiclass, samples: 2001, features: 6, classes: 3, noise: 0.2}}
model: {kind: softmax, l2: 0.001}
optimizer: {kind: adam, lr: 0.01}
training: {batch_size: 16, steps: 6000, eval_every: 500}
checkpoint: {every: 250}
`
	ref, _ := trainNP(t, 3, jobConfig(t, dir, body))

	cfg := jobConfig(t, dir, body)
	cmd, _, stderr := startJob(t, 3, cfg)
	waitForLog(t, stderr, "step=1500 ", time.Minute)
	for _, pid := range children(cmd.Process.Pid) { // the whole cluster dies at once
		syscall.Kill(pid, syscall.SIGKILL)
	}
	cmd.Process.Kill()
	cmd.Wait()

	out, errOut, err := dmlrun(t, 2*time.Minute, "-np", "3", "-resume", cfg)
	if err != nil || !strings.Contains(errOut, "resumed from checkpoint") {
		t.Fatalf("-resume: %v\n%s\n%s", err, out, errOut)
	}
	i := strings.Index(errOut, "resumed from checkpoint")
	var at int
	fmt.Sscanf(errOut[i:][strings.Index(errOut[i:], "step=")+5:], "%d", &at)
	if at < 1500 || at >= 6000 {
		t.Fatalf("resumed at step %d; the first run was killed after step 1500", at)
	}
	got := readModel(t, cfg)
	if got.Steps != 6000 {
		t.Fatalf("%d steps done", got.Steps)
	}
	for i := range got.Theta {
		if got.Theta[i] != ref.Theta[i] {
			t.Fatalf("θ[%d] = %v after -resume, %v uninterrupted: not bitwise equal", i, got.Theta[i], ref.Theta[i])
		}
	}
}

// startNode starts one hand-started `dmlrun node` (secret from the
// environment) and returns it with its stderr.
func startNode(t *testing.T, cfg string, slot int, join string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	args := []string{"node", "-local", "-bind", "127.0.0.1:0", "-slot", fmt.Sprint(slot)}
	if join != "" {
		args = append(args, "-join", join)
	}
	cmd := exec.Command(dmlrunBin, append(args, cfg)...)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, &stderr
}

// thetaOf returns the θ digest a node logged when it finished.
func thetaOf(t *testing.T, log *syncBuffer) string {
	t.Helper()
	s := log.String()
	i := strings.Index(s, `"theta sha256"=`)
	if i < 0 {
		t.Fatalf("no final θ in the log:\n%s", s)
	}
	return strings.Fields(s[i+len(`"theta sha256"=`):])[0]
}

// TestNodeJoinsMidRun: three nodes train; a fourth started with -join
// enters at a step boundary, receives θ and the optimizer state, and ends
// with the same θ as the others, which equals the uninterrupted run's.
func TestNodeJoinsMidRun(t *testing.T) {
	t.Setenv("DMLRUN_SECRET", "join-test-0123456789abcdef")
	dir := t.TempDir()
	body := fmt.Sprintf(recoverJob, 20000, 2000, "30s") + "cluster: {nodes: 3}\n"
	body = strings.Replace(body, "cluster: {rejoin_timeout: 30s}\n", "", 1)
	ref, _ := trainNP(t, 1, jobConfig(t, dir, body))
	cfg := jobConfig(t, dir, body)
	first, log0 := startNode(t, cfg, 0, "")
	gossip := waitForLog(t, log0, "gossip=", 20*time.Second)
	var nodes []*exec.Cmd
	var logs []*syncBuffer
	for slot := 1; slot <= 2; slot++ {
		c, l := startNode(t, cfg, slot, gossip)
		nodes, logs = append(nodes, c), append(logs, l)
	}
	waitForLog(t, log0, "step=2000 ", time.Minute)
	joiner, logJ := startNode(t, cfg, 3, gossip)
	nodes, logs = append(append([]*exec.Cmd{first}, nodes...), joiner), append(append([]*syncBuffer{log0}, logs...), logJ)
	for i, c := range nodes {
		if err := waitExit(t, c, 2*time.Minute, logs[i]); err != nil {
			t.Fatalf("node %d: %v\n%s", i, err, logs[i].String())
		}
	}
	if !strings.Contains(logJ.String(), "joined the ring") || !strings.Contains(log0.String(), "ring re-formed") {
		t.Fatalf("no join in the logs:\n%s", logJ.String())
	}
	want := thetaOf(t, log0)
	for i, l := range logs {
		if got := thetaOf(t, l); got != want {
			t.Fatalf("node %d ends with θ %s, node 0 with %s", i, got, want)
		}
	}
	if d := relDiff(readModel(t, cfg).Theta, ref.Theta); d > 1e-9 {
		t.Fatalf("θ differs from the uninterrupted run by %g", d)
	}
}

// TestStoppedNodeEvictedAndBack: a node stopped (SIGSTOP) for longer than
// the step timeout is evicted; the others go on; after SIGCONT it notices,
// drops its stale state, rejoins, and the run ends with every node holding
// the same θ.
func TestStoppedNodeEvictedAndBack(t *testing.T) {
	dir := t.TempDir()
	// Long enough that the others are still training when it comes back.
	body := strings.Replace(fmt.Sprintf(recoverJob, 200000, 5000, "30s"), "cluster: {rejoin_timeout: 30s}", "cluster: {rejoin_timeout: 30s, step_timeout: 1s}", 1)
	cfg := jobConfig(t, dir, body)
	cmd, stdout, stderr := startJob(t, 4, cfg)
	waitForLog(t, stderr, "step=5000 ", time.Minute)
	victim := children(cmd.Process.Pid)[2]
	syscall.Kill(victim, syscall.SIGSTOP)
	waitForLog(t, stderr, "ring recovered", 30*time.Second) // the others went on without it
	time.Sleep(2 * time.Second)                             // stopped well past the step timeout and gossip's suspicion
	syscall.Kill(victim, syscall.SIGCONT)
	if err := waitExit(t, cmd, 2*time.Minute, stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "all 4 nodes hold identical θ") {
		t.Fatalf("the stopped node did not come back:\n%s\n%s", stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), `joined="127.0.0.1-`) {
		t.Fatalf("no re-formed ring took the stopped node back:\n%s", stderr.String())
	}
	if m := readModel(t, cfg); m.Steps != 200000 {
		t.Fatalf("%d steps", m.Steps)
	}
}

// TestMaxRestarts: with -max-restarts 1 a killed node is started again,
// joins the running ring, and the job ends with every node (the restarted
// one too) holding the same θ.
func TestMaxRestarts(t *testing.T) {
	dir := t.TempDir()
	cfg := jobConfig(t, dir, fmt.Sprintf(recoverJob, 100000, 5000, "30s"))
	cmd := exec.Command(dmlrunBin, "-np", "3", "-max-restarts", "1", cfg)
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitForLog(t, &stderr, "step=5000 ", time.Minute)
	syscall.Kill(children(cmd.Process.Pid)[1], syscall.SIGKILL)
	if err := waitExit(t, cmd, 2*time.Minute, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	for _, want := range []string{"restarting it (1 of 1)", "joined the ring"} {
		if !strings.Contains(stderr.String(), want) {
			t.Fatalf("no %q:\n%s", want, stderr.String())
		}
	}
	if !strings.Contains(stdout.String(), "all 3 nodes hold identical θ") {
		t.Fatalf("stdout %q\n%s", stdout.String(), stderr.String())
	}
}
