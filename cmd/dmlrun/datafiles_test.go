package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// partFilesJob trains a logistic model on data.train (%s: a YAML value),
// with data.dtype %s, three nodes reading their shards of it.
const partFilesJob = `name: partfiles
seed: 9
data: {train: %s, label: y, normalize: true, dtype: %s}
model: {kind: logistic, l2: 0.001}
optimizer: {kind: momentum, lr: 0.05}
training: {batch_size: 64, steps: 300, eval_every: 100}
`

// partFilesRows returns the header and the rows (each ending in "\n") of a
// binary data set: features of different scales and means printed with 6
// significant digits ('g': some with exponents), a 0/1 label y drawn from a
// logistic model of them.
func partFilesRows(rows, features int) (header string, lines []string) {
	var h strings.Builder
	for j := range features {
		fmt.Fprintf(&h, "f%d,", j)
	}
	h.WriteString("y\n")
	rng := rand.New(rand.NewPCG(21, 4))
	var line []byte
	for range rows {
		line = line[:0]
		z := -0.2
		for j := range features {
			x := rng.NormFloat64()*math.Pow(10, float64(j%3-1)) + float64(j)
			z += (0.8 - 0.3*float64(j%4)) * (x - float64(j)) / math.Pow(10, float64(j%3-1))
			line = strconv.AppendFloat(line, x, 'g', 6, 64)
			line = append(line, ',')
		}
		y := 0
		if rng.Float64() < 1/(1+math.Exp(-z)) {
			y = 1
		}
		line = append(strconv.AppendInt(line, int64(y), 10), '\n')
		lines = append(lines, string(line))
	}
	return h.String(), lines
}

// writePartFile writes a header and rows into path, gzip-compressed if the
// name ends in .gz; noFinalNewline drops the last row's line end.
func writePartFile(t *testing.T, path, header string, rows []string, noFinalNewline bool) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	text := header + strings.Join(rows, "")
	if noFinalNewline {
		text = strings.TrimSuffix(text, "\n")
	}
	b := []byte(text)
	if strings.HasSuffix(path, ".gz") {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		if _, err := zw.Write(b); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		b = z.Bytes()
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// cutRows cuts rows into consecutive runs of the given lengths (which must
// add up to len(rows)).
func cutRows(t *testing.T, rows []string, counts ...int) [][]string {
	t.Helper()
	var parts [][]string
	at := 0
	for _, n := range counts {
		parts = append(parts, rows[at:at+n])
		at += n
	}
	if at != len(rows) {
		t.Fatalf("cuts %v add up to %d rows, not %d", counts, at, len(rows))
	}
	return parts
}

// writeParts writes the runs of rows as dir/part-00000<ext>, part-00001<ext>,
// ..., each with the header, and returns their paths.
func writeParts(t *testing.T, dir, ext, header string, parts [][]string) []string {
	t.Helper()
	var paths []string
	for i, rows := range parts {
		p := filepath.Join(dir, fmt.Sprintf("part-%05d%s", i, ext))
		writePartFile(t, p, header, rows, false)
		paths = append(paths, p)
	}
	return paths
}

// TestPartFilesTrainLikeOneFile: a data set cut (at whole rows, so that
// virtual shards span files) into part files ends in the same θ, bitwise, as
// the one file, whichever way the parts are given: a glob, a Spark-style
// directory (with _SUCCESS, .crc and hidden files beside the parts, and an
// empty partition), gzip parts, a list mixing plain and gzip files. A part
// whose header differs and a glob that matches nothing are errors that name
// the file and the pattern; dtype float32 trains close to float64.
func TestPartFilesTrainLikeOneFile(t *testing.T) {
	start := time.Now()
	dir := t.TempDir()
	const rows, features = 6000, 6
	header, lines := partFilesRows(rows, features)
	one := filepath.Join(dir, "one.csv")
	writePartFile(t, one, header, lines, false)

	// (a) A glob of part files; the last one ends without a newline; a file
	// in the directory that the pattern does not match is not read.
	a := filepath.Join(dir, "a")
	pa := writeParts(t, a, ".csv", header, cutRows(t, lines, 1, 1500, 2499, 2000))
	writePartFile(t, pa[3], header, lines[4000:], true)
	writePartFile(t, filepath.Join(a, "notes.csv"), "other,columns\n", []string{"1,2\n"}, false)

	// (b) What Spark writes: part files, an empty partition (the header
	// only), _SUCCESS, a .crc checksum of each file (hidden) and another
	// hidden file; a bad header in any of the others would fail the run.
	b := filepath.Join(dir, "b")
	pb := writeParts(t, b, ".csv", header, cutRows(t, lines, 2000, 0, 1, 2998, 1001))
	for _, p := range pb {
		crc := filepath.Join(b, "."+filepath.Base(p)+".crc")
		if err := os.WriteFile(crc, []byte("crc\x00\x00\x02\x00\xde\xad\xbe\xef"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, text := range map[string]string{"_SUCCESS": "", "._SUCCESS.crc": "crc\x00", ".hidden.csv": "a,b\nnot,numbers\n"} {
		if err := os.WriteFile(filepath.Join(b, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// (c) gzip parts, through a glob.
	c := filepath.Join(dir, "c")
	writeParts(t, c, ".csv.gz", header, cutRows(t, lines, 2500, 1, 1499, 2000))

	// (d) A list: plain, gzip, plain.
	d := filepath.Join(dir, "d")
	dp := cutRows(t, lines, 2222, 2500, 1278)
	list := []string{filepath.Join(d, "first.csv"), filepath.Join(d, "second.csv.gz"), filepath.Join(d, "third.csv")}
	for i, p := range list {
		writePartFile(t, p, header, dp[i], false)
	}

	yamlList := func(paths ...string) string {
		q := make([]string, len(paths))
		for i, p := range paths {
			q[i] = strconv.Quote(p)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	job := func(train, dtype string) string {
		return jobConfig(t, dir, fmt.Sprintf(partFilesJob, train, dtype))
	}
	runs := 0
	trainOn := func(what, train, dtype string) []float64 {
		t.Helper()
		runs++
		at := time.Now()
		m, _ := trainNP(t, 3, job(train, dtype))
		t.Logf("%-44s %d steps in %v", what+":", m.Steps, time.Since(at).Round(10*time.Millisecond))
		if m.Steps != 300 {
			t.Fatalf("%s: %d steps done, want 300", what, m.Steps)
		}
		if len(m.Theta) != features+1 {
			t.Fatalf("%s: θ has %d values, want %d", what, len(m.Theta), features+1)
		}
		return m.Theta
	}

	ref := trainOn("one file", strconv.Quote(one), "float64")
	if slicesAllZero(ref) {
		t.Fatalf("θ of the one file is all zeros: nothing was learned")
	}
	for _, tc := range []struct{ what, train string }{
		{"(a) glob a/part-*.csv", strconv.Quote(filepath.Join(a, "part-*.csv"))},
		{"(b) Spark directory b/", strconv.Quote(b)},
		{"(c) glob c/part-*.csv.gz", strconv.Quote(filepath.Join(c, "part-*.csv.gz"))},
		{"(d) list plain, gzip, plain", yamlList(list...)},
	} {
		got := trainOn(tc.what, tc.train, "float64")
		for i := range ref {
			if math.Float64bits(got[i]) != math.Float64bits(ref[i]) {
				t.Errorf("%s: θ[%d] = %v, the one file's %v: not bitwise equal (θ %v, one file %v)", tc.what, i, got[i], ref[i], got, ref)
				break
			}
		}
	}

	// dtype float32: the features are rounded to float32, θ is close.
	f32 := trainOn("(b) as float32", strconv.Quote(b), "float32")
	diff := relDiff(f32, ref)
	t.Logf("float32: θ differs from float64's by %.3g (relative)", diff)
	if diff >= 1e-3 {
		t.Errorf("float32: θ %v differs from float64's %v by %g, want < 1e-3", f32, ref, diff)
	}

	// Errors, each naming what is wrong.
	e := filepath.Join(dir, "e")
	pe := writeParts(t, e, ".csv", header, cutRows(t, lines, 1000, 2000, 3000))
	badHeader := strings.Replace(header, "f3,", "f3x,", 1)
	writePartFile(t, pe[2], badHeader, lines[3000:], false)
	noMatch := filepath.Join(dir, "none", "part-*.csv")
	for _, tc := range []struct {
		what, train string
		want        []string
	}{
		{"a part with another header", strconv.Quote(filepath.Join(e, "part-*.csv")), []string{pe[2], "differs from the header of", pe[0]}},
		{"a glob that matches nothing", strconv.Quote(noMatch), []string{noMatch, "no data file matches"}},
	} {
		runs++
		at := time.Now()
		out, errOut, err := dmlrun(t, time.Minute, "-np", "3", job(tc.train, "float64"))
		took := time.Since(at)
		t.Logf("%-44s failed in %v", tc.what+":", took.Round(10*time.Millisecond))
		if err == nil {
			t.Errorf("%s: exit 0\nstdout:\n%s\nstderr:\n%s", tc.what, out, errOut)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%s: stderr does not name %q:\n%s", tc.what, w, errOut)
			}
		}
		if took > 30*time.Second {
			t.Errorf("%s: took %v to fail", tc.what, took)
		}
	}
	t.Logf("%d runs of dmlrun -np 3 in %v", runs, time.Since(start).Round(10*time.Millisecond))
}

func slicesAllZero(v []float64) bool {
	for _, x := range v {
		if x != 0 {
			return false
		}
	}
	return true
}
