package main

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dmlrun/dmlrun/plots"
	"github.com/dmlrun/dmlrun/train"
)

// writeCSV writes a regression data set with an uneven number of rows
// (101: not divisible by 2, 3 or 4) and returns its rows.
func writeCSV(t *testing.T, dir string, rows, features int, seed uint64) (path string, x [][]float64, y []float64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	var b strings.Builder
	for j := range features {
		fmt.Fprintf(&b, "f%d,", j)
	}
	b.WriteString("target\n")
	for range rows {
		row := make([]float64, features)
		yi := 0.5
		for j := range row {
			row[j] = math.Round(rng.NormFloat64()*1000) / 1000
			yi += float64(j+1) * row[j]
			fmt.Fprintf(&b, "%v,", row[j])
		}
		yi = math.Round((yi+rng.NormFloat64()*0.1)*1000) / 1000
		fmt.Fprintf(&b, "%v\n", yi)
		x, y = append(x, row), append(y, yi)
	}
	path = filepath.Join(dir, "data.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, x, y
}

func writeConfig(t *testing.T, dir, text string) string {
	t.Helper()
	p := filepath.Join(dir, fmt.Sprintf("train-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// trainNP runs `dmlrun -np n cfg` and returns the saved model.
func trainNP(t *testing.T, n int, cfg string) (*train.ModelFile, string) {
	t.Helper()
	out, errOut, err := dmlrun(t, 2*time.Minute, "-np", fmt.Sprint(n), cfg)
	if err != nil {
		t.Fatalf("dmlrun -np %d: %v\nstdout:\n%s\nstderr:\n%s", n, err, out, errOut)
	}
	if !strings.Contains(out, fmt.Sprintf("all %d nodes hold identical θ (sha256 ", n)) {
		t.Fatalf("no identical-θ line for %d nodes:\n%s\n%s", n, out, errOut)
	}
	// Every run draws its training plot beside the model, and says so.
	plot := filepath.Join(outDir(cfg), "training.png")
	checkPlot(t, plot, plots.TrainingWidth, plots.TrainingHeight)
	if !strings.Contains(errOut, "plot="+plot) {
		t.Fatalf("the saved line does not name %s:\n%s", plot, errOut)
	}
	return readModel(t, cfg), errOut
}

// outDir is the output directory jobConfig gives cfg.
func outDir(cfg string) string {
	return filepath.Join(filepath.Dir(cfg), "out-"+strings.TrimSuffix(filepath.Base(cfg), ".yaml"))
}

// nodeLogs reads the n log files (<output.dir>/logs/rank-N.log) the
// launcher wrote for a job of cfg.
func nodeLogs(t *testing.T, cfg string, n int) []string {
	t.Helper()
	logs := make([]string, n)
	for i := range n {
		b, err := os.ReadFile(filepath.Join(outDir(cfg), "logs", fmt.Sprintf("rank-%d.log", i)))
		if err != nil {
			t.Fatal(err)
		}
		logs[i] = string(b)
	}
	return logs
}

func readModel(t *testing.T, cfg string) *train.ModelFile {
	t.Helper()
	f, _, err := train.ReadModelFile(filepath.Join(outDir(cfg), "model.json"))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func relDiff(a, b []float64) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(a[i]-b[i])/math.Max(1, math.Abs(b[i])))
	}
	return d
}

// TestFullBatchMatchesReference: linear regression by full-batch gradient
// descent on n = 1..4 nodes equals a plain single-process implementation.
func TestFullBatchMatchesReference(t *testing.T) {
	dir := t.TempDir()
	data, x, y := writeCSV(t, dir, 101, 3, 1)
	const steps, lr = 60, 0.05

	// The reference: θ = [w, b], MSE loss, gradient (2/N) Xᵀ(Xθ-y).
	w, b := make([]float64, 3), 0.0
	for range steps {
		gw, gb := make([]float64, 3), 0.0
		for i := range x {
			r := b - y[i]
			for j := range w {
				r += w[j] * x[i][j]
			}
			for j := range w {
				gw[j] += 2 * r * x[i][j] / float64(len(x))
			}
			gb += 2 * r / float64(len(x))
		}
		for j := range w {
			w[j] -= lr * gw[j]
		}
		b -= lr * gb
	}
	want := append(w, b)

	for n := 1; n <= 4; n++ {
		cfg := jobConfig(t, dir, fmt.Sprintf(`name: full%d
data: {train: %s, label: target}
model: {kind: linear}
optimizer: {kind: sgd, lr: %v}
training: {batch_size: 0, steps: %d, eval_every: 20}
`, n, data, lr, steps))
		m, _ := trainNP(t, n, cfg)
		if m.Steps != steps {
			t.Fatalf("n=%d: steps done %d, want %d", n, m.Steps, steps)
		}
		if d := relDiff(m.Theta, want); d > 1e-9 {
			t.Fatalf("n=%d: θ = %v, reference %v (relative difference %g)", n, m.Theta, want, d)
		}
	}
}

// jobConfig writes a train.yaml whose output directory readModel finds.
func jobConfig(t *testing.T, dir, body string) string {
	t.Helper()
	cfg := writeConfig(t, dir, body)
	out := filepath.Join(dir, "out-"+strings.TrimSuffix(filepath.Base(cfg), ".yaml"))
	if err := os.WriteFile(cfg, []byte(body+"output: {dir: "+out+"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestMiniBatchSameForAnyN: mini-batch SGD (with momentum, and an mlp with
// adam) gives the same θ on 1 and 3 nodes: the global batch does not depend
// on how rows are spread.
func TestMiniBatchSameForAnyN(t *testing.T) {
	dir := t.TempDir()
	for _, body := range []string{
		`name: mb-logistic
seed: 5
data: {format: synthetic, normalize: true, synthetic: {task: binary, samples: 301, test_samples: 50, features: 6, noise: 0.3}}
model: {kind: logistic, l2: 0.01}
optimizer: {kind: momentum, lr: 0.1}
training: {batch_size: 16, steps: 45, eval_every: 10}
`,
		`name: mb-mlp
seed: 6
data: {format: synthetic, synthetic: {task: multiclass, samples: 203, features: 5, classes: 3, noise: 0.1}}
model: {kind: mlp, hidden: [8], activation: tanh}
optimizer: {kind: adam, lr: 0.01}
training: {batch_size: 32, epochs: 3}
`,
		`name: mb-schedule
seed: 7
data: {format: synthetic, synthetic: {task: regression, samples: 257, features: 4, noise: 0.1}}
model: {kind: linear}
optimizer: {kind: momentum, lr: 0.05, schedule: invscaling, power_t: 0.5, warmup_steps: 5}
training: {batch_size: 16, steps: 40}
`,
	} {
		cfg := jobConfig(t, dir, body)
		one, _ := trainNP(t, 1, cfg)
		three, _ := trainNP(t, 3, cfg)
		if d := relDiff(three.Theta, one.Theta); d > 1e-9 {
			t.Fatalf("%s: θ on 3 nodes differs from 1 node by %g", strings.SplitN(body, "\n", 2)[0], d)
		}
	}
}

// TestFrameProtectionSameθ: with every frame MAC'd or encrypted (forced on
// loopback, where auto sends them bare), 3 nodes still train to 1 node's θ,
// and the log says what guards the frames.
func TestFrameProtectionSameθ(t *testing.T) {
	dir := t.TempDir()
	base := `name: frames
seed: 7
data: {format: synthetic, synthetic: {task: binary, samples: 301, features: 6, noise: 0.3}}
model: {kind: logistic}
optimizer: {kind: sgd, lr: 0.1}
training: {batch_size: 16, steps: 30}
`
	one, _ := trainNP(t, 1, jobConfig(t, dir, base))
	for _, tc := range []struct{ cluster, frames string }{
		{"", "frames=none"},
		{"cluster: {frame_mac: on}\n", "frames=mac"},
		{"cluster: {encrypt: true}\n", "frames=encrypt"},
	} {
		cfg := jobConfig(t, dir, base+tc.cluster)
		three, _ := trainNP(t, 3, cfg)
		if d := relDiff(three.Theta, one.Theta); d > 1e-9 {
			t.Errorf("%q: θ on 3 nodes differs from 1 node by %g", tc.cluster, d)
		}
		for r, log := range nodeLogs(t, cfg, 3) {
			if !strings.Contains(log, tc.frames) {
				t.Errorf("%q: rank %d's ring formed line does not say %s:\n%s", tc.cluster, r, tc.frames, log)
			}
		}
	}
}

// TestBadInput: every kind of bad input ends the run quickly with an error
// that says what was wrong and where.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	good, _, _ := writeCSV(t, dir, 20, 2, 2)
	broken := filepath.Join(dir, "broken.csv")
	os.WriteFile(broken, []byte("f0,f1,target\n1,2,3\n4,five,6\n7,8,9\n"), 0o644)
	for _, tc := range []struct {
		name, np, body string
		want           []string
	}{
		{"unknown key", "2", "name: x\nmodel: {kind: linear, depth: 3}\ndata: {train: " + good + "}\n", []string{"field depth not found"}},
		{"missing data file", "2", "model: {kind: linear}\ndata: {train: " + filepath.Join(dir, "nope.csv") + "}\n", []string{"nope.csv", "no such file"}},
		{"malformed row", "2", "model: {kind: linear}\ndata: {train: " + broken + ", label: target}\n", []string{"broken.csv:3", `"five"`}},
	} {
		cfg := jobConfig(t, dir, tc.body)
		start := time.Now()
		_, errOut, err := dmlrun(t, time.Minute, "-np", tc.np, cfg)
		if err == nil {
			t.Fatalf("%s: exit 0", tc.name)
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Fatalf("%s: stderr does not mention %q:\n%s", tc.name, w, errOut)
			}
		}
		if el := time.Since(start); el > 30*time.Second {
			t.Fatalf("%s: took %v", tc.name, el)
		}
	}
}

// TestNodesRefuseOtherConfig: two hand-started nodes with different
// train.yaml files both stop with a message that says so.
func TestNodesRefuseOtherConfig(t *testing.T) {
	t.Setenv("DMLRUN_SECRET", "0123456789abcdef0123456789abcdef")
	dir := t.TempDir()
	a := jobConfig(t, dir, "model: {kind: logistic}\ndata: {format: synthetic, synthetic: {task: binary, samples: 50, features: 3}}\ncluster: {nodes: 2, timeout: 20s}\n")
	b := jobConfig(t, dir, "model: {kind: logistic}\ndata: {format: synthetic, synthetic: {task: binary, samples: 60, features: 3}}\ncluster: {nodes: 2, timeout: 20s}\n")
	first := exec.Command(dmlrunBin, "node", "-local", "-bind", "127.0.0.1:0", a)
	var firstErr syncBuffer
	first.Stderr = &firstErr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer first.Process.Kill()
	// The first node logs its gossip address; wait for it.
	addr := waitForLog(t, &firstErr, "gossip=", 20*time.Second)
	_, errOut, err := dmlrun(t, time.Minute, "node", "-local", "-bind", "127.0.0.1:0", "-join", addr, b)
	if err == nil || !strings.Contains(errOut, "same train.yaml") {
		t.Fatalf("second node: %v\n%s", err, errOut)
	}
	done := make(chan error, 1)
	go func() { done <- first.Wait() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(firstErr.String(), "same train.yaml") {
			t.Fatalf("first node: %v\n%s", err, firstErr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("first node did not stop:\n%s", firstErr.String())
	}
}

// TestTooFewNodes: a node that waits for 3 nodes alone gives up at
// cluster.timeout, naming who is there and how many are missing.
func TestTooFewNodes(t *testing.T) {
	t.Setenv("DMLRUN_SECRET", "0123456789abcdef0123456789abcdef")
	dir := t.TempDir()
	cfg := jobConfig(t, dir, "model: {kind: logistic}\ndata: {format: synthetic, synthetic: {task: binary, samples: 50, features: 3}}\ncluster: {nodes: 3, timeout: 1s}\n")
	start := time.Now()
	_, errOut, err := dmlrun(t, time.Minute, "node", "-local", "-bind", "127.0.0.1:0", cfg)
	if err == nil {
		t.Fatal("exit 0")
	}
	for _, w := range []string{"only 1 joined", "2 missing"} {
		if !strings.Contains(errOut, w) {
			t.Fatalf("stderr does not say %q:\n%s", w, errOut)
		}
	}
	if el := time.Since(start); el > 15*time.Second {
		t.Fatalf("took %v", el)
	}
}

// waitForLog polls a growing log until it contains key=VALUE and returns
// VALUE.
func waitForLog(t *testing.T, log *syncBuffer, key string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		s := log.String()
		if i := strings.Index(s, key); i >= 0 {
			v := s[i+len(key):]
			if j := strings.IndexAny(v, " \n"); j >= 0 {
				return strings.Trim(v[:j], `"`)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %q in the log after %v:\n%s", key, timeout, log.String())
	return ""
}

// syncBuffer is a bytes.Buffer that a process writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestInterruptStopsEveryNode: SIGINT to `dmlrun -np 3` mid-run is forwarded;
// the launcher exits non-zero within seconds and no node is left running.
func TestInterruptStopsEveryNode(t *testing.T) {
	dir := t.TempDir()
	cfg := jobConfig(t, dir, "model: {kind: logistic}\ndata: {format: synthetic, synthetic: {task: binary, samples: 5000, features: 10}}\ntraining: {batch_size: 32, steps: 100000000}\n")
	cmd := exec.Command(dmlrunBin, "-np", "3", cfg)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitForLog(t, &stderr, "steps=", 30*time.Second) // the "training" line: the step loop runs
	nodes := children(cmd.Process.Pid)
	if len(nodes) != 3 {
		t.Fatalf("%d nodes, want 3", len(nodes))
	}
	start := time.Now()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("exit 0 after an interrupt")
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("launcher still running 15 s after SIGINT:\n%s", stderr.String())
	}
	t.Logf("stopped in %v", time.Since(start))
	for _, pid := range nodes {
		if syscall.Kill(pid, 0) == nil && !isZombie(pid) {
			t.Errorf("node %d still running", pid)
		}
	}
}
