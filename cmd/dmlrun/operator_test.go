package main

import (
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// operatorJob trains until it is stopped, with an evaluation every 200
// steps (a notice the tests wait for).
const operatorJob = `name: operator
seed: 12
data: {format: synthetic, synthetic: {task: binary, samples: 3001, features: 8, noise: 0.4}}
model: {kind: logistic}
optimizer: {kind: sgd, lr: 0.05}
training: {batch_size: 32, steps: 100000000, eval_every: 200}
cluster: {step_timeout: 30s, stall_warn: 1s, rejoin_timeout: 2s}
`

// startPlain starts `dmlrun -np n cfg` with the default display (no -v).
func startPlain(t *testing.T, n int, cfg string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(dmlrunBin, "-np", fmt.Sprint(n), cfg)
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, &stderr
}

// nodeOfSlot is the pid of the node started for slot among the launcher's
// children.
func nodeOfSlot(t *testing.T, launcher, slot int) int {
	t.Helper()
	for _, pid := range children(launcher) {
		if slotOf(t, pid) == slot {
			return pid
		}
	}
	t.Fatalf("no node of slot %d", slot)
	return 0
}

// TestStallWarningNamesStoppedNode: a SIGSTOPped node stalls the ring; the
// node that waits on it says so (which rank and host, for how long, at which
// step) within cluster.stall_warn, long before step_timeout, on the
// launcher's terminal; after SIGCONT the ring goes on.
func TestStallWarningNamesStoppedNode(t *testing.T) {
	cfg := jobConfig(t, t.TempDir(), operatorJob)
	cmd, stderr := startPlain(t, 3, cfg)
	waitForLog(t, stderr, "step=400 ", time.Minute)
	victim := nodeOfSlot(t, cmd.Process.Pid, 2)
	syscall.Kill(victim, syscall.SIGSTOP)
	stopped := time.Now()
	line := waitForLine(t, stderr, "waiting on recv from rank 2 (host 127.0.0.1, slot 2) for ", 20*time.Second)
	syscall.Kill(victim, syscall.SIGCONT)
	if !regexp.MustCompile(`\[\d\] WARN waiting on recv from rank 2 \(host 127\.0\.0\.1, slot 2\) for \d+s: step \d+, collective #\d+ chunk \d+`).MatchString(line) {
		t.Fatalf("stall line %q", line)
	}
	if el := time.Since(stopped); el > 15*time.Second {
		t.Fatalf("the warning came %v after the stop, want about stall_warn (1s)", el)
	}
	// The ring goes on: a later evaluation arrives, and nobody was lost.
	at := strings.Count(stderr.String(), " eval ")
	deadline := time.Now().Add(time.Minute)
	for strings.Count(stderr.String(), " eval ") <= at+1 {
		if time.Now().After(deadline) {
			t.Fatalf("no evaluation after SIGCONT:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if strings.Contains(stderr.String(), "lost node") {
		t.Fatalf("a stalled node was taken for lost:\n%s", stderr.String())
	}
}

// TestFailureSummaryRootCause: two of three nodes are killed, one after the
// other; the survivor loses quorum and the job fails. Its last lines name
// the first node killed as the root cause (host, rank, signal, time), then
// the rest, and the launcher exits with that node's status: 128+9.
func TestFailureSummaryRootCause(t *testing.T) {
	cfg := jobConfig(t, t.TempDir(), operatorJob)
	cmd, stderr := startPlain(t, 3, cfg)
	waitForLog(t, stderr, "step=400 ", time.Minute)
	syscall.Kill(nodeOfSlot(t, cmd.Process.Pid, 1), syscall.SIGKILL)
	waitForLine(t, stderr, "lost node 1 ", 30*time.Second)
	syscall.Kill(nodeOfSlot(t, cmd.Process.Pid, 2), syscall.SIGKILL)
	err := waitExit(t, cmd, time.Minute, stderr)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 137 {
		t.Fatalf("exit %v, want status 137 (the root cause's SIGKILL):\n%s", err, stderr.String())
	}
	out := stderr.String()
	i := strings.LastIndex(out, "dmlrun: job failed; root cause: ")
	if i < 0 {
		t.Fatalf("no failure summary:\n%s", out)
	}
	summary := out[i:]
	root := regexp.MustCompile(`^dmlrun: job failed; root cause: node 1 \(host 127\.0\.0\.1, rank 1\) was killed by signal 9 \(killed\) at \d\d:\d\d:\d\d\.\d{3}\n`)
	if !root.MatchString(summary) {
		t.Fatalf("the summary does not start with the first node killed:\n%s", summary)
	}
	for _, want := range []string{ // node 2 may be rank 1 of the second ring by then
		`\n  then: node 2 \(host 127\.0\.0\.1, rank \d\) was killed by signal 9`,
		`\n  then: node 0 \(host 127\.0\.0\.1, rank 0\) exited with status 1`, `its last error: .*quorum lost`} {
		if !regexp.MustCompile(want).MatchString(summary) {
			t.Fatalf("the summary lacks %s:\n%s", want, summary)
		}
	}
}

// waitForLine waits until a complete line of log contains sub and returns
// that line.
func waitForLine(t *testing.T, log *syncBuffer, sub string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		s := log.String()
		if i := strings.Index(s, sub); i >= 0 {
			if j := strings.IndexByte(s[i:], '\n'); j >= 0 {
				return s[strings.LastIndexByte(s[:i], '\n')+1 : i+j]
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no line with %q in the log after %v:\n%s", sub, timeout, log.String())
	return ""
}
