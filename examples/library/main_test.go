package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is one process of the example, with its stderr lines.
type proc struct {
	cmd   *exec.Cmd
	out   strings.Builder
	mu    sync.Mutex
	lines []string
	seen  chan string // every stderr line
	done  chan error
}

func start(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), seen: make(chan string, 4096), done: make(chan error, 1)}
	p.cmd.Stdout = &p.out
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill(); <-p.done })
	procs = append(procs, p)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
			select {
			case p.seen <- sc.Text():
			default:
			}
		}
		io.Copy(io.Discard, stderr)
		p.done <- p.cmd.Wait()
		close(p.done)
	}()
	return p
}

// waitLine returns the first stderr line matching re, within timeout.
func (p *proc) waitLine(t *testing.T, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l := <-p.seen:
			if m := re.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-deadline:
			t.Fatalf("no line matching %q within %v:\n%s", re, timeout, logs())
		}
	}
}

// procs are the processes the test started, for logs().
var procs []*proc

// logs returns every process's stderr.
func logs() string {
	var b strings.Builder
	for i, p := range procs {
		fmt.Fprintf(&b, "--- process %d:\n%s\n", i, p.log())
	}
	return b.String()
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// TestKillOneOfFour runs the example as a user would: 4 processes, one
// killed with SIGKILL mid-run; the other three re-form the ring, take over
// its points and finish all the steps with the same centroids, each within
// 0.01 of a true blob center.
func TestKillOneOfFour(t *testing.T) {
	procs = nil
	bin := filepath.Join(t.TempDir(), "kmeans")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	const steps = 400
	common := []string{"-nodes", "4", "-steps", fmt.Sprint(steps), "-points", "800000"}
	first := start(t, bin, append(common, "-bind", "127.0.0.1:0")...)
	addr := first.waitLine(t, regexp.MustCompile(`msg=listening gossip=(\S+)`), 30*time.Second)[1]
	ps := []*proc{first}
	for s := 1; s < 4; s++ {
		ps = append(ps, start(t, bin, append(common, "-slot", fmt.Sprint(s), "-bind", "127.0.0.1:0", "-join", addr)...))
	}
	first.waitLine(t, regexp.MustCompile(`msg=step step=(5\d|[6-9]\d) `), time.Minute) // rank 0 is slot 0 in the first ring
	victim := ps[2]
	syscall.Kill(victim.cmd.Process.Pid, syscall.SIGKILL)

	var results []string
	for i, p := range ps {
		if p == victim {
			continue
		}
		select {
		case err := <-p.done:
			if err != nil {
				t.Fatalf("process %d: %v\n%s", i, err, logs())
			}
		case <-time.After(2 * time.Minute):
			t.Fatalf("process %d still running after 2 minutes:\n%s", i, logs())
		}
		results = append(results, p.out.String())
	}
	if !strings.Contains(first.log(), "ring re-formed") && !strings.Contains(ps[1].log()+ps[3].log(), "ring re-formed") {
		t.Errorf("no survivor re-formed the ring:\n%s", first.log())
	}
	var res struct {
		Step      int          `json:"step"`
		Centroids [][2]float64 `json:"centroids"`
	}
	for i, r := range results {
		if r != results[0] {
			t.Fatalf("survivors disagree:\n%s\n%s", results[0], r)
		}
		if err := json.Unmarshal([]byte(r), &res); err != nil || res.Step != steps {
			t.Fatalf("survivor %d printed %q (%v): want all %d steps", i, r, err, steps)
		}
	}
	for j, c := range res.Centroids {
		want := Centers[j]
		if d := math.Hypot(c[0]-want[0], c[1]-want[1]); d > 0.01 {
			t.Errorf("centroid %d at %v, the blob's center is %v (off by %.3g)", j, c, want, d)
		}
	}
}

func TestMain(m *testing.M) { os.Exit(m.Run()) }
