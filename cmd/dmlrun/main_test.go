package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dmlrun/dmlrun/bench"
)

// dmlrunBin is the binary under test, built once by TestMain.
var dmlrunBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dmlrun-test-")
	if err != nil {
		panic(err)
	}
	dmlrunBin = filepath.Join(dir, "dmlrun")
	build := exec.Command("go", "build", "-race", "-o", dmlrunBin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building dmlrun:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// dmlrun runs the binary with a deadline and returns its output and error.
func dmlrun(t *testing.T, timeout time.Duration, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, dmlrunBin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("dmlrun %v did not finish in %v\nstderr:\n%s", args, timeout, e.String())
	}
	return o.String(), e.String(), err
}

// TestBenchAllReduceProcesses runs real sweeps with one process per rank over
// loopback TCP, for n = 2, 3, 4, and checks that every element of every size
// is exact and that all ranks hold identical bytes.
func TestBenchAllReduceProcesses(t *testing.T) {
	for _, tc := range []struct {
		n     int
		extra []string
	}{
		{2, nil},
		{3, []string{"-dtype", "float64", "-op", "max", "-algo", "ring", "-chunk", "4K"}},
		{4, []string{"-op", "min", "-algo", "rd"}},
		{4, []string{"-small", "1K", "-chunk", "64K"}},
	} {
		t.Run(fmt.Sprintf("n=%d/%s", tc.n, strings.Join(tc.extra, " ")), func(t *testing.T) {
			jsonFile := filepath.Join(t.TempDir(), "rows.json")
			args := append([]string{"bench", "allreduce", "-np", strconv.Itoa(tc.n), "-min-bytes", "4",
				"-max-bytes", "3M", "-factor", "7", "-iters", "3", "-warmup", "1", "-json", jsonFile}, tc.extra...)
			out, errOut, err := dmlrun(t, 2*time.Minute, args...)
			if err != nil {
				t.Fatalf("%v: %v\nstdout:\n%s\nstderr:\n%s", args, err, out, errOut)
			}
			if !strings.Contains(out, "# Avg bus bandwidth") || !strings.Contains(out, "busbw(GB/s)") {
				t.Fatalf("table missing:\n%s", out)
			}
			b, err := os.ReadFile(jsonFile)
			if err != nil {
				t.Fatal(err)
			}
			var res bench.Result
			if err := json.Unmarshal(b, &res); err != nil {
				t.Fatal(err)
			}
			if len(res.Rows) != 7 { // 4, 28, 196, ..., 4*7^6; 4*7^7 > 3M
				t.Fatalf("%d rows, want 7", len(res.Rows))
			}
			for _, r := range res.Rows {
				if r.Wrong != 0 || !r.Identical || r.TimeUS <= 0 {
					t.Fatalf("row %+v", r)
				}
			}
		})
	}
}

// TestBenchRankKilled kills one worker mid-sweep: the launcher must fail
// within seconds with an error naming the dead rank, and leave no worker
// behind.
func TestBenchRankKilled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, dmlrunBin, "bench", "allreduce", "-np", "3", "-min-bytes", "64M",
		"-max-bytes", "64M", "-iters", "1000", "-warmup", "0", "-timeout", "5m")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The header line is printed once all workers are connected.
	buf := make([]byte, 256)
	if _, err := stdout.Read(buf); err != nil {
		t.Fatalf("no table header: %v; stderr:\n%s", err, stderr.String())
	}
	workers := children(cmd.Process.Pid)
	if len(workers) != 3 {
		t.Fatalf("found %d workers, want 3", len(workers))
	}
	victim := workers[1]
	killedAt := time.Now()
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = bytes.NewBuffer(nil).ReadFrom(stdout) }()
	err = cmd.Wait()
	took := time.Since(killedAt)
	if err == nil {
		t.Fatal("launcher exited 0 although a rank was killed")
	}
	if took > 15*time.Second {
		t.Fatalf("launcher took %v to notice the dead rank", took)
	}
	if !strings.Contains(stderr.String(), "killed by signal") {
		t.Fatalf("stderr does not name the killed rank:\n%s", stderr.String())
	}
	for _, pid := range workers {
		if syscall.Kill(pid, 0) == nil && !isZombie(pid) {
			t.Errorf("worker %d still running after the launcher exited", pid)
		}
	}
}

// children lists the child processes of pid.
func children(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			if p, err := strconv.Atoi(s); err == nil {
				out = append(out, p)
			}
		}
	}
	return out
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] == "Z"
}
