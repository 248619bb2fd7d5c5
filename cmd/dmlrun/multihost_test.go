package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dmlrun/dmlrun/internal/testbed"
)

// The multi-host tests run dmlrun across network namespaces, each a host
// with its own address and sshd (package testbed). They need root, iproute2
// and openssh-server, and skip with a message otherwise.

const multihostJob = `name: multihost
seed: 9
data: {format: synthetic, normalize: true, synthetic: {task: multiclass, samples: 1203, test_samples: 200, features: 12, classes: 3, noise: 0.2}}
model: {kind: softmax, l2: 0.001}
optimizer: {kind: momentum, lr: 0.05}
training: {batch_size: 64, steps: 120, eval_every: 40}
`

// nodePids lists the dmlrun node processes running in host i's namespace.
func nodePids(b *testbed.Bed, i int) []int { return launchedPids(b, i, "node") }

// launchedPids lists the processes of `dmlrun CMD -launched ...` (a
// launcher's workers) running in host i's namespace.
func launchedPids(b *testbed.Bed, i int, cmd string) []int {
	out, _ := exec.Command("ip", "netns", "pids", b.Hosts[i].NS).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if strings.Contains(string(cmdline), cmd+"\x00-launched") && !isZombie(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestMultihostTrainMatchesLocal: `dmlrun -hosts` from host 0 over ssh to 4
// hosts (one with 2 slots) trains to the same θ as `dmlrun -np 5`, θ is
// identical on every node, and every node's output reaches the launcher.
func TestMultihostTrainMatchesLocal(t *testing.T) {
	b := testbed.New(t, 4, testbed.Options{SSH: true})
	dir := t.TempDir()
	cfg := jobConfig(t, dir, multihostJob)
	hosts := b.HostsFile([]int{1, 2, 1, 1})

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := b.Command(ctx, 0, dmlrunBin, "-hosts", hosts, "-ssh", strings.Join(b.SSH, " "), cfg)
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("dmlrun -hosts: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "all 5 nodes hold identical θ") {
		t.Fatalf("no identical-θ line:\n%s\n%s", stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "[0@10.") { // rank 0's notices, labelled rank@host
		t.Fatalf("no notice from rank 0 at the launcher:\n%s", stderr.String())
	}
	for r, log := range nodeLogs(t, cfg, 5) { // every node's full log reaches the launcher's log files
		if !strings.Contains(log, fmt.Sprintf("rank=%d ", r)) || !strings.Contains(log, "msg=done") {
			t.Fatalf("rank %d's log file:\n%s", r, log)
		}
	}
	remote := readModel(t, cfg)
	local, _ := trainNP(t, 5, cfg)
	if d := relDiff(remote.Theta, local.Theta); d > 1e-9 {
		t.Fatalf("θ across hosts differs from -np 5 by %g", d)
	}
}

// TestMultihostInterrupt: SIGINT to the launcher mid-run stops every remote
// node within 5 s.
func TestMultihostInterrupt(t *testing.T) {
	b := testbed.New(t, 3, testbed.Options{SSH: true})
	cfg := jobConfig(t, t.TempDir(), strings.Replace(multihostJob, "steps: 120", "steps: 100000000", 1))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := b.Command(ctx, 0, dmlrunBin, "-hosts", b.HostsFile(nil), "-ssh", strings.Join(b.SSH, " "), cfg)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitForLog(t, &stderr, "steps=", time.Minute) // training runs on some node
	for i := range b.Hosts {
		if len(nodePids(b, i)) == 0 {
			t.Fatalf("no node running on host %d", i)
		}
	}
	// ip netns exec runs dmlrun as its child (or execs it): signal the group.
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for time.Since(start) < 5*time.Second {
		left := 0
		for i := range b.Hosts {
			left += len(nodePids(b, i))
		}
		if left == 0 {
			t.Logf("every node gone %v after SIGINT", time.Since(start))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nodes still running 5 s after SIGINT:\n%s", stderr.String())
}

// TestMultihostUnreachable: a host that ssh cannot reach gives an error
// naming it, and the nodes already started are stopped.
func TestMultihostUnreachable(t *testing.T) {
	b := testbed.New(t, 2, testbed.Options{SSH: true})
	cfg := jobConfig(t, t.TempDir(), multihostJob)
	hosts := filepath.Join(t.TempDir(), "hosts.txt")
	dead := strings.TrimSuffix(b.Hosts[0].IP, "."+strings.Split(b.Hosts[0].IP, ".")[3]) + ".250" // in the subnet, no one there
	os.WriteFile(hosts, []byte(fmt.Sprintf("%s slots=2\n%s\n%s\n", b.Hosts[0].IP, b.Hosts[1].IP, dead)), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := b.Command(ctx, 0, dmlrunBin, "-hosts", hosts, "-ssh", strings.Join(b.SSH, " "), cfg).CombinedOutput()
	if err == nil {
		t.Fatalf("exit 0 with an unreachable host:\n%s", out)
	}
	if !strings.Contains(string(out), dead) || !strings.Contains(string(out), "exited with status 255") {
		t.Fatalf("the error does not name the unreachable host %s:\n%s", dead, out)
	}
	t.Logf("failed after %v:\n%s", time.Since(start), out)
	for i := range b.Hosts {
		if p := nodePids(b, i); len(p) > 0 {
			t.Fatalf("nodes %v still running on host %d", p, i)
		}
	}
}

// TestMultihostPartition: 5 hosts are cut into 3 and 2. The 3 hold a
// majority of the last ring and go on; the 2 pause (no quorum). After the
// cut heals, the 2 rejoin and all 5 finish with the same θ.
func TestMultihostPartition(t *testing.T) {
	b := testbed.New(t, 5, testbed.Options{SSH: true})
	cfg := jobConfig(t, t.TempDir(), `name: partition
seed: 4
data: {format: synthetic, normalize: true, synthetic: {task: binary, samples: 3001, features: 8, noise: 0.4}}
model: {kind: logistic}
optimizer: {kind: adam, lr: 0.01}
training: {batch_size: 32, steps: 150000, eval_every: 5000}
cluster: {step_timeout: 1s, rejoin_timeout: 90s}
`)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := b.Command(ctx, 0, dmlrunBin, "-hosts", b.HostsFile(nil), "-ssh", strings.Join(b.SSH, " "), cfg)
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitForLog(t, &stderr, "step=5000 ", 2*time.Minute)
	b.Partition([]int{0, 1, 2}, []int{3, 4})
	waitForLog(t, &stderr, "ring recovered", time.Minute) // the majority goes on
	majority := stderr.String()
	time.Sleep(3 * time.Second) // the minority must not train meanwhile
	b.Heal()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr.String())
		}
	case <-ctx.Done():
		t.Fatalf("no end:\n%s", stderr.String())
	}
	if !strings.Contains(majority, "consensus of 3 survivors") {
		t.Fatalf("the majority did not go on as 3:\n%s", majority)
	}
	if strings.Contains(stderr.String(), "consensus of 2 survivors") {
		t.Fatalf("the minority trained on its own:\n%s", stderr.String())
	}
	if !strings.Contains(stdout.String(), "all 5 nodes hold identical θ") {
		t.Fatalf("the 2 did not rejoin:\n%s\n%s", stdout.String(), stderr.String())
	}
}
