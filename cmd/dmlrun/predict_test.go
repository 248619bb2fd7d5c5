package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dmlrun/dmlrun/train"
)

// writePredictModel writes a model.json of kind (linear, logistic, softmax
// or mlp) over the features x1..xK (names nil: f1..fK, as LIBSVM gives),
// with random θ and a standardization.
func writePredictModel(t *testing.T, dir, kind string, features int, names bool) string {
	t.Helper()
	spec := train.ModelSpec{Kind: kind}
	if kind == train.KindMLP {
		spec.Hidden, spec.Output = []int{5}, train.TaskMulticlass
	}
	classes := 3
	if kind == train.KindLogistic {
		classes = 2
	}
	m, err := train.NewModel(spec, features, classes)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(features), 3))
	f := train.ModelFile{Shape: m.Shape(), Theta: make([]float64, m.NumParams())}
	for i := range f.Theta {
		f.Theta[i] = rng.NormFloat64()
	}
	for j := range features {
		if names {
			f.FeatureNames = append(f.FeatureNames, fmt.Sprintf("x%d", j+1))
		}
		f.Mean, f.Std = append(f.Mean, rng.Float64()), append(f.Std, 0.5+rng.Float64())
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, kind+"-model.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// writePredictCSV writes rows rows of x1..xK and a label y (gzip when the
// name ends in .gz); rows 0 writes the header only.
func writePredictCSV(t *testing.T, path string, rows, features int, seed uint64) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	var b bytes.Buffer
	for j := range features {
		fmt.Fprintf(&b, "x%d,", j+1)
	}
	b.WriteString("y\n")
	for range rows {
		for range features {
			fmt.Fprintf(&b, "%.5f,", rng.NormFloat64())
		}
		fmt.Fprintf(&b, "%d\n", rng.IntN(2))
	}
	writeMaybeGzip(t, path, b.Bytes())
	return path
}

// writePredictLIBSVM writes rows sparse rows with indices 1..features.
func writePredictLIBSVM(t *testing.T, path string, rows, features int, seed uint64) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 2))
	var b bytes.Buffer
	for range rows {
		fmt.Fprintf(&b, "%d", rng.IntN(2))
		for j := range features {
			if j == features-1 || rng.IntN(3) > 0 {
				fmt.Fprintf(&b, " %d:%.4f", j+1, rng.NormFloat64())
			}
		}
		b.WriteString("\n")
	}
	writeMaybeGzip(t, path, b.Bytes())
	return path
}

func writeMaybeGzip(t *testing.T, path string, b []byte) {
	t.Helper()
	if strings.HasSuffix(path, ".gz") {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write(b)
		zw.Close()
		b = z.Bytes()
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// predictOne is what `dmlrun predict` in one process writes for the data.
func predictOne(t *testing.T, model string, data ...string) string {
	t.Helper()
	out, errOut, err := dmlrun(t, 2*time.Minute, append([]string{"predict", "-model", model}, data...)...)
	if err != nil {
		t.Fatalf("predict in one process: %v\n%s", err, errOut)
	}
	return out
}

// dirFiles lists the names in dir.
func dirFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestPredictNPMatchesOneProcess: `dmlrun predict -np N` (several files,
// gzip, globs, LIBSVM, an empty file, more nodes than rows) writes byte for
// byte what one process writes, to -o FILE, to standard output, and to -o
// DIR/ as one part file per node whose concatenation is that file.
func TestPredictNPMatchesOneProcess(t *testing.T) {
	dir := t.TempDir()
	csvModel := writePredictModel(t, dir, train.KindLogistic, 6, true)
	mlpModel := writePredictModel(t, dir, train.KindMLP, 6, true)
	svmModel := writePredictModel(t, dir, train.KindSoftmax, 5, false)
	a := writePredictCSV(t, filepath.Join(dir, "a.csv"), 1500, 6, 1)
	b := writePredictCSV(t, filepath.Join(dir, "b.csv.gz"), 700, 6, 2)
	c := writePredictCSV(t, filepath.Join(dir, "c.csv"), 401, 6, 3)
	empty := writePredictCSV(t, filepath.Join(dir, "empty.csv"), 0, 6, 4)
	tiny := writePredictCSV(t, filepath.Join(dir, "tiny.csv"), 5, 6, 5)
	parts := filepath.Join(dir, "parts")
	os.Mkdir(parts, 0o755)
	for i, rows := range []int{300, 0, 250, 1} {
		writePredictCSV(t, filepath.Join(parts, fmt.Sprintf("part-%05d.csv", i)), rows, 6, uint64(10+i))
	}
	os.WriteFile(filepath.Join(parts, "_SUCCESS"), nil, 0o644)
	s1 := writePredictLIBSVM(t, filepath.Join(dir, "s1.svm"), 800, 5, 6)
	s2 := writePredictLIBSVM(t, filepath.Join(dir, "s2.svm.gz"), 333, 5, 7)

	for _, tc := range []struct {
		name  string
		np    int
		model string
		data  []string
		out   string // "file", "dir" or "stdout"
	}{
		{"csv+gzip to a file", 3, csvModel, []string{a, b, c}, "file"},
		{"csv+gzip to a dir", 3, csvModel, []string{a, b, c}, "dir"},
		{"csv+gzip to stdout", 3, csvModel, []string{a, b, c}, "stdout"},
		{"an empty file in the list", 3, mlpModel, []string{a, empty, c}, "file"},
		{"more nodes than rows", 8, csvModel, []string{tiny}, "dir"},
		{"more nodes than rows to a file", 7, csvModel, []string{empty, tiny}, "file"},
		{"only a header", 2, csvModel, []string{empty}, "file"},
		{"a glob and a directory", 4, mlpModel, []string{filepath.Join(dir, "[ac].csv"), parts}, "dir"},
		{"libsvm", 3, svmModel, []string{s1, s2}, "file"},
		{"one node", 1, csvModel, []string{b, a}, "file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := predictOne(t, tc.model, tc.data...)
			rows := strings.Count(want, "\n")
			outDir := t.TempDir()
			args := []string{"predict", "-np", fmt.Sprint(tc.np), "-model", tc.model, "-log-dir", filepath.Join(outDir, "logs")}
			dest := filepath.Join(outDir, "out.csv")
			switch tc.out {
			case "file":
				args = append(args, "-o", dest)
			case "dir":
				dest = filepath.Join(outDir, "preds")
				args = append(args, "-o", dest+"/")
			}
			stdout, stderr, err := dmlrun(t, 2*time.Minute, append(args, tc.data...)...)
			if err != nil {
				t.Fatalf("%v: %v\n%s", args, err, stderr)
			}
			if !strings.Contains(stderr, fmt.Sprintf("done: %d rows in ", rows)) || !strings.Contains(stderr, " rows/s), ") {
				t.Fatalf("no done: line for %d rows:\n%s", rows, stderr)
			}
			var got string
			switch tc.out {
			case "stdout":
				got = stdout
			case "file":
				b, err := os.ReadFile(dest)
				if err != nil {
					t.Fatal(err)
				}
				got = string(b)
			case "dir":
				names := dirFiles(t, dest)
				var wantNames []string
				for i := range tc.np {
					wantNames = append(wantNames, fmt.Sprintf("part-%05d.csv", i))
				}
				if !slices.Equal(names, wantNames) {
					t.Fatalf("%s holds %v, want %v", dest, names, wantNames)
				}
				for _, n := range names {
					b, err := os.ReadFile(filepath.Join(dest, n))
					if err != nil {
						t.Fatal(err)
					}
					got += string(b)
				}
			}
			if got != want {
				t.Fatalf("-np %d wrote %d bytes (%d lines), one process %d bytes (%d lines)", tc.np, len(got), strings.Count(got, "\n"), len(want), rows)
			}
			if tc.out == "file" {
				if names := dirFiles(t, outDir); !slices.Equal(names, []string{"logs", "out.csv"}) {
					t.Fatalf("left in the output directory: %v", names)
				}
			}
		})
	}
}

// TestPredictDirReplacesParts: a second run into the same -o DIR/ with fewer
// nodes replaces the part files, and removes those it did not write.
func TestPredictDirReplacesParts(t *testing.T) {
	dir := t.TempDir()
	model := writePredictModel(t, dir, train.KindLinear, 3, true)
	data := writePredictCSV(t, filepath.Join(dir, "d.csv"), 500, 3, 1)
	out := filepath.Join(dir, "preds") + "/"
	for _, np := range []string{"5", "2"} {
		if _, stderr, err := dmlrun(t, time.Minute, "predict", "-np", np, "-model", model, "-o", out, data); err != nil {
			t.Fatalf("-np %s: %v\n%s", np, err, stderr)
		}
	}
	if names := dirFiles(t, out); !slices.Equal(names, []string{"part-00000.csv", "part-00001.csv"}) {
		t.Fatalf("after -np 5 then -np 2: %v", names)
	}
	var got []byte
	for _, n := range []string{"part-00000.csv", "part-00001.csv"} {
		b, _ := os.ReadFile(filepath.Join(out, n))
		got = append(got, b...)
	}
	if want := predictOne(t, model, data); string(got) != want {
		t.Fatalf("the parts differ from one process's output")
	}
}

// predictWorkers returns the pid of each predict worker of the launcher
// pid, by rank.
func predictWorkers(t *testing.T, pid, n int) map[int]int {
	t.Helper()
	ranks := map[int]int{}
	for _, c := range children(pid) {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", c))
		args := strings.Split(string(cmdline), "\x00")
		if i := slices.Index(args, "-rank"); i >= 0 && i+1 < len(args) && slices.Contains(args, "-launched") {
			var r int
			fmt.Sscan(args[i+1], &r)
			ranks[r] = c
		}
	}
	if len(ranks) != n {
		t.Fatalf("found workers %v, want %d", ranks, n)
	}
	return ranks
}

// TestPredictNPNodeKilled: a worker killed by signal 9 in the middle of the
// run (stopped after its first piece and killed from outside, or killed by
// itself in the middle of a line to the launcher, which leaves the line
// torn) fails the run: exit status 137, the failure summary names that
// node as the root cause, the torn line is not reported as a bad line, and
// no output file (nor a temporary one) is left.
func TestPredictNPNodeKilled(t *testing.T) {
	dir := t.TempDir()
	model := writePredictModel(t, dir, train.KindLogistic, 4, true)
	// Enough rows for several 256 KiB pieces per node.
	data := writePredictCSV(t, filepath.Join(dir, "d.csv"), 120000, 4, 1)
	for _, tc := range []struct {
		name  string
		fault string // DMLRUN_FAULT point
		rank  int
		np    int
		out   string
	}{
		{"last node killed from outside", "predict-hold", 2, 3, "out.csv"},
		{"first node killed from outside", "predict-hold", 0, 3, "out.csv"},
		{"last node killed mid-line", "predict-torn", 2, 3, "out.csv"},
		{"middle node killed mid-line", "predict-torn", 1, 3, "preds/"},
		{"last node killed from outside, dir", "predict-hold", 3, 4, "preds/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			outDir := t.TempDir()
			dest := filepath.Join(outDir, tc.out)
			if strings.HasSuffix(tc.out, "/") {
				dest += "/"
			}
			cmd := exec.Command(dmlrunBin, "predict", "-np", fmt.Sprint(tc.np), "-progress", "none", "-model", model, "-o", dest,
				"-log-dir", filepath.Join(dir, "logs-"+strings.ReplaceAll(tc.name, " ", "-")), data)
			cmd.Env = append(os.Environ(), fmt.Sprintf("DMLRUN_FAULT=%s/%d:%s", tc.fault, tc.rank, filepath.Join(outDir, "fault")))
			var stdout, stderr syncBuffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			var workers map[int]int
			if tc.fault == "predict-hold" {
				waitForLine(t, &stderr, fmt.Sprintf("[%d] holding after the first piece", tc.rank), time.Minute)
				workers = predictWorkers(t, cmd.Process.Pid, tc.np)
				if err := syscall.Kill(workers[tc.rank], syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			}
			err := waitExit(t, cmd, time.Minute, &stderr)
			var ee *exec.ExitError
			if err == nil || !errors.As(err, &ee) || ee.ExitCode() != 137 {
				t.Fatalf("exit %v, want status 137 (128+SIGKILL)\n%s", err, stderr.String())
			}
			msg := stderr.String()
			if !strings.Contains(msg, fmt.Sprintf("root cause: node %d (host 127.0.0.1) was killed by signal 9", tc.rank)) {
				t.Fatalf("the summary does not name node %d as killed:\n%s", tc.rank, msg)
			}
			for _, bad := range []string{"bad line", "unexpected end of JSON", `{"`} {
				if strings.Contains(msg, bad) {
					t.Fatalf("stderr shows %q:\n%s", bad, msg)
				}
			}
			if !strings.Contains(msg, "no output written") {
				t.Fatalf("no word on the output:\n%s", msg)
			}
			if names := dirFiles(t, outDir); !slices.Equal(names, []string{"fault"}) && !slices.Equal(names, []string{"fault", "preds"}) {
				t.Fatalf("left behind: %v", names)
			}
			if strings.HasSuffix(tc.out, "/") {
				if names := dirFiles(t, dest); len(names) != 0 {
					t.Fatalf("left in %s: %v", dest, names)
				}
			}
			for r, pid := range workers {
				if syscall.Kill(pid, 0) == nil && !isZombie(pid) {
					t.Errorf("worker %d (pid %d) still running", r, pid)
				}
			}
		})
	}
}

// TestPredictBadInput: a missing model, a missing data file, a data set
// without a column the model needs, a row that is not a number, and a
// header that differs between files each fail with an error naming the
// file (and line), with no output left.
func TestPredictBadInput(t *testing.T) {
	dir := t.TempDir()
	model := writePredictModel(t, dir, train.KindLogistic, 4, true)
	good := writePredictCSV(t, filepath.Join(dir, "good.csv"), 200, 4, 1)
	narrow := writePredictCSV(t, filepath.Join(dir, "narrow.csv"), 200, 3, 2)
	badRow := filepath.Join(dir, "badrow.csv")
	b, _ := os.ReadFile(good)
	lines := strings.SplitAfter(string(b), "\n")
	lines[150] = "0.1,0.2,abc,0.4,1\n" // line 151 of the file
	os.WriteFile(badRow, []byte(strings.Join(lines, "")), 0o644)
	for _, tc := range []struct {
		name  string
		model string
		data  []string
		want  []string
	}{
		{"missing model", filepath.Join(dir, "nope.json"), []string{good}, []string{"nope.json", "no such file"}},
		{"missing data file", model, []string{good, filepath.Join(dir, "gone.csv")}, []string{"gone.csv", "no such file"}},
		{"missing column", model, []string{narrow}, []string{"narrow.csv", `no column "x4"`, "root cause"}},
		{"malformed row", model, []string{good, badRow}, []string{"badrow.csv:151", `"abc" is not a number`, "root cause"}},
		{"headers differ", model, []string{good, narrow}, []string{"narrow.csv", "differs from the header of"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "out.csv")
			logs := filepath.Join(t.TempDir(), "logs") // a failed run keeps them
			_, stderr, err := dmlrun(t, time.Minute, append([]string{"predict", "-np", "3", "-model", tc.model, "-o", dest, "-log-dir", logs}, tc.data...)...)
			if err == nil {
				t.Fatalf("exit 0:\n%s", stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Fatalf("stderr does not say %q:\n%s", w, stderr)
				}
			}
			if names := dirFiles(t, filepath.Dir(dest)); len(names) != 0 {
				t.Fatalf("left behind: %v", names)
			}
		})
	}
}
