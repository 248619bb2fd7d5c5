package main

import (
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// searchJob is a search of 8 logistic regressions whose candidates stop on
// their own rule at different epochs.
const searchJob = `name: search
seed: 5
data: {format: synthetic, synthetic: {task: binary, samples: 30001, test_samples: 600, features: 10, noise: 0.6}}
model: {kind: logistic}
optimizer: {kind: sgd, lr: 0.1}
training: {batch_size: 100, eval_every: 20, tol: 0.001, n_iter_no_change: 3, max_epochs: 12, validation_fraction: 0.2}
checkpoint: {every: 50}
search: {optimizer.lr: [0.01, 0.3], model.l2: [0, 0.01], optimizer.kind: [sgd, momentum]}
`

// TestSearchThroughFailure: a search on 3 nodes with one killed mid-run
// finishes with the search.csv and model.json of the undisturbed run on one
// node (scores within 1e-9), and the launcher names the kept candidate.
func TestSearchThroughFailure(t *testing.T) {
	dir := t.TempDir()
	refCfg := jobConfig(t, dir, searchJob)
	out, errOut, err := dmlrun(t, 2*time.Minute, "-np", "1", refCfg)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	ref := readModel(t, refCfg)
	if ref.Search == nil || ref.Search.Candidates != 8 || !strings.Contains(out, "the search kept "+ref.Search.Settings+" (every candidate in ") {
		t.Fatalf("model.json search %+v; stdout:\n%s", ref.Search, out)
	}
	want := readCSV(t, filepath.Join(outDir(refCfg), "search.csv"))

	cfg := jobConfig(t, dir, searchJob)
	_, stderr := killSlotAt(t, 3, cfg, "step=40 ", 1)
	if !strings.Contains(stderr.String(), "recover") {
		t.Fatalf("no recovery:\n%s", stderr.String())
	}
	got := readCSV(t, filepath.Join(outDir(cfg), "search.csv"))
	sameTable(t, got, want)
	m := readModel(t, cfg)
	if m.Search == nil || m.Search.Candidate != ref.Search.Candidate || m.Steps != ref.Steps {
		t.Fatalf("kept %+v after %d steps, the reference %+v after %d", m.Search, m.Steps, ref.Search, ref.Steps)
	}
	if d := relDiff(m.Theta, ref.Theta); d > 1e-9 {
		t.Fatalf("θ differs from the reference's by %g", d)
	}
	stops := map[string]bool{}
	for _, r := range want[1:] {
		stops[r[len(r)-1]+"/"+r[4]] = true // best flag / steps
	}
	if len(stops) < 3 {
		t.Errorf("the candidates hardly differ (steps and best: %v): the test would not see a mix-up", stops)
	}
}

// TestSearchResume: a search whose whole cluster is killed after a
// checkpoint (some candidates stopped by then, others not) goes on with
// -resume to the search.csv and model.json of an uninterrupted run.
func TestSearchResume(t *testing.T) {
	dir := t.TempDir()
	refCfg := jobConfig(t, dir, searchJob)
	ref, _ := trainNP(t, 2, refCfg)
	want := readCSV(t, filepath.Join(outDir(refCfg), "search.csv"))
	firstStop := math.MaxInt
	for _, r := range want[1:] {
		if n, _ := strconv.Atoi(r[4]); r[5] == "tol" {
			firstStop = min(firstStop, n)
		}
	}
	if firstStop > ref.Steps-100 {
		t.Fatalf("no candidate stops well before the end (%d of %d steps): the test needs one\n%v", firstStop, ref.Steps, want)
	}

	cfg := jobConfig(t, dir, searchJob)
	cmd, _, stderr := startJob(t, 2, cfg)
	waitForLog(t, stderr, fmt.Sprintf("step=%d ", (firstStop/100+1)*100+20), time.Minute) // a checkpoint after the first stop
	for _, pid := range children(cmd.Process.Pid) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	cmd.Process.Kill()
	cmd.Wait()
	out, errOut, err := dmlrun(t, 2*time.Minute, "-np", "2", "-resume", cfg)
	if err != nil || !strings.Contains(errOut, "resumed from checkpoint") {
		t.Fatalf("-resume: %v\n%s\n%s", err, out, errOut)
	}
	sameTable(t, readCSV(t, filepath.Join(outDir(cfg), "search.csv")), want)
	if m := readModel(t, cfg); m.Search == nil || m.Search.Candidate != ref.Search.Candidate || relDiff(m.Theta, ref.Theta) > 1e-9 {
		t.Fatalf("kept %+v, the reference %+v", m.Search, ref.Search)
	}
}

// readCSV reads a whole CSV file.
func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return recs
}

// sameTable fails t unless got and want have the same cells: the same text,
// or numbers within 1e-9 (relative).
func sameTable(t *testing.T, got, want [][]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d:\n%v\n%v", len(got), len(want), got, want)
	}
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("line %d: %v, want %v", i+1, got[i], want[i])
		}
		for j, w := range want[i] {
			g := got[i][j]
			if g == w {
				continue
			}
			a, errA := strconv.ParseFloat(g, 64)
			b, errB := strconv.ParseFloat(w, 64)
			if errA != nil || errB != nil || math.Abs(a-b) > 1e-9*math.Max(1, math.Abs(b)) {
				t.Fatalf("line %d, column %s: %q, want %q", i+1, want[0][j], g, w)
			}
		}
	}
}
