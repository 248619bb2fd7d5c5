package data

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Shared helpers of the text reader tests (CSV, LIBSVM, files): the
// reference readers' result, writing files, and checking what a Source reads
// against a reference bit for bit.

// refData is what a reference reader makes of a data set.
type refData struct {
	names []string
	x     [][]float64 // features, per row
	y     []float64   // label per row; NaN when unlabeled
}

// refCSV reads CSV the dumb way: encoding/csv over the whole file (after a
// UTF-8 byte order mark), the first record the header (names trimmed), every
// field strconv.ParseFloat(strings.TrimSpace(f), 64), finite. The label
// column is label ("" the last column); unlabeled reads every column.
func refCSV(content []byte, label string, unlabeled bool) (*refData, error) {
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(content, []byte("\ufeff"))))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, errors.New("empty file")
	}
	header := recs[0]
	for i := range header {
		header[i] = strings.TrimSpace(header[i])
	}
	li := -1
	switch {
	case unlabeled:
	case label == "":
		li = len(header) - 1
	default:
		li = slices.Index(header, label)
		if li < 0 {
			return nil, fmt.Errorf("no label column %q", label)
		}
	}
	if !unlabeled && len(header) < 2 {
		return nil, errors.New("no feature column")
	}
	d := &refData{}
	for i, h := range header {
		if i != li {
			d.names = append(d.names, h)
		}
	}
	for n, rec := range recs[1:] {
		if len(rec) != len(header) {
			return nil, fmt.Errorf("record %d: %d fields, want %d", n+1, len(rec), len(header))
		}
		x, y := []float64{}, math.NaN()
		for i, f := range rec {
			v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
				return nil, fmt.Errorf("record %d field %d: %q is not a finite number", n+1, i+1, f)
			}
			if i == li {
				y = v
			} else {
				x = append(x, v)
			}
		}
		d.x, d.y = append(d.x, x), append(d.y, y)
	}
	return d, nil
}

// writeFile writes content to dir/name (through gzip if name ends in .gz)
// and returns its path.
func writeFile(t testing.TB, dir, name string, content []byte) string {
	t.Helper()
	if strings.HasSuffix(name, ".gz") {
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestSpeed)
		zw.Write(content)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		content = b.Bytes()
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// mustOpen opens spec, failing the test on an error.
func mustOpen(t testing.TB, spec Spec) Source {
	t.Helper()
	src, err := Open(context.Background(), spec)
	if err != nil {
		t.Fatalf("Open(%v): %v", spec.Paths, err)
	}
	return src
}

// openNodes opens spec on n simulated nodes that index it together (each
// its share of the bytes, summing what they found with an in-memory
// allreduce) and returns their sources, or the first error. A node that
// gives up makes the others' exchanges fail instead of wait.
func openNodes(spec Spec, n int) ([]Source, error) {
	if n <= 1 {
		src, err := Open(context.Background(), spec)
		return []Source{src}, err
	}
	g := NewLocalGroup(n)
	srcs, errs := make([]Source, n), make([]error, n)
	var wg sync.WaitGroup
	for r := range n {
		wg.Go(func() {
			s := spec
			s.Rank, s.Nodes, s.Exchange = r, n, g.Exchange(r)
			srcs[r], errs[r] = Open(context.Background(), s)
			g.Leave(r)
		})
	}
	wg.Wait()
	return srcs, errors.Join(errs...)
}

// allShards returns 0..V-1 of src.
func allShards(src Source) []int {
	s := make([]int, src.Sharding().Shards())
	for i := range s {
		s[i] = i
	}
	return s
}

// randomShards returns a random ascending subset of src's shards.
func randomShards(rng *rand.Rand, src Source) []int {
	var s []int
	for v := range src.Sharding().Shards() {
		if rng.IntN(2) == 0 {
			s = append(s, v)
		}
	}
	return s
}

// checkRead reads shards of src and checks every table against want, bit
// for bit: the rows of each shard, which global row each is, features (as
// float32(want) for a float32 table) and labels.
func checkRead(t testing.TB, src Source, want *refData, shards []int) {
	t.Helper()
	if src.Rows() != len(want.y) {
		t.Fatalf("%s: %d rows, reference %d", src.Name(), src.Rows(), len(want.y))
	}
	if !slices.Equal(src.FeatureNames(), want.names) {
		t.Fatalf("%s: feature names %q, reference %q", src.Name(), src.FeatureNames(), want.names)
	}
	tables, err := src.ReadShards(context.Background(), shards)
	if err != nil && strings.Contains(err.Error(), "does not fit data.dtype float32") && beyond32(src, want, shards) {
		return // a float32 table cannot hold it
	}
	if err != nil {
		t.Fatalf("%s: ReadShards(%v): %v", src.Name(), shards, err)
	}
	if len(tables) != len(shards) {
		t.Fatalf("%s: %d tables for %d shards", src.Name(), len(tables), len(shards))
	}
	buf := make([]float64, len(want.names))
	for k, tb := range tables {
		lo, hi := src.Sharding().ShardRows(shards[k])
		if tb.First != lo || tb.Len() != hi-lo || tb.Features != len(want.names) {
			t.Fatalf("%s: shard %d: table of rows %d+%d with %d features, want %d+%d with %d", src.Name(), shards[k], tb.First, tb.Len(), tb.Features, lo, hi-lo, len(want.names))
		}
		for i := range tb.Len() {
			g := tb.First + i
			if y, w := tb.Y[i], want.y[g]; math.Float64bits(y) != math.Float64bits(w) && !(math.IsNaN(y) && math.IsNaN(w)) {
				t.Fatalf("%s: row %d: label %v (%#x), reference %v (%#x)", src.Name(), g, y, math.Float64bits(y), w, math.Float64bits(w))
			}
			for j, x := range tb.RowTo(i, buf) {
				w := want.x[g][j]
				if tb.Float32() {
					if math.Abs(w) > math.MaxFloat32 {
						t.Fatalf("%s: row %d feature %d: %v in a float32 table, no error", src.Name(), g, j, w)
					}
					w = float64(float32(w))
				}
				if math.Float64bits(x) != math.Float64bits(w) {
					t.Fatalf("%s: row %d feature %d: %v (%#x), reference %v (%#x)", src.Name(), g, j, x, math.Float64bits(x), w, math.Float64bits(w))
				}
			}
		}
	}
}

// beyond32 reports whether a feature of the rows of shards is beyond the
// float32 range.
func beyond32(src Source, want *refData, shards []int) bool {
	for _, v := range shards {
		lo, hi := src.Sharding().ShardRows(v)
		for _, x := range want.x[lo:hi] {
			for _, f := range x {
				if math.Abs(f) > math.MaxFloat32 {
					return true
				}
			}
		}
	}
	return false
}

func TestExpandPaths(t *testing.T) {
	dir := t.TempDir()
	spark := filepath.Join(dir, "spark")
	os.Mkdir(spark, 0o755)
	os.Mkdir(filepath.Join(spark, "sub"), 0o755) // a directory is not a data file
	for _, n := range []string{"part-00001.csv", "part-00000.csv", "_SUCCESS", ".part-00000.csv.crc", "part-00000.csv.crc", ".hidden", "_temporary"} {
		writeFile(t, spark, n, []byte("a,b\n"))
	}
	one := writeFile(t, dir, "one.csv", []byte("a,b\n"))
	writeFile(t, dir, "two.csv.gz", []byte("a,b\n"))
	writeFile(t, dir, "_skip.csv", []byte("a,b\n"))
	os.Mkdir(filepath.Join(dir, "empty"), 0o755)
	writeFile(t, filepath.Join(dir, "empty"), "_SUCCESS", nil)
	p := func(names ...string) []string {
		for i, n := range names {
			names[i] = filepath.Join(dir, n)
		}
		return names
	}
	for _, tc := range []struct {
		name  string
		paths []string
		want  []string
		err   string // a substring of the error; "" for none
	}{
		{"file", p("one.csv"), p("one.csv"), ""},
		{"hidden file named", p("_skip.csv"), p("_skip.csv"), ""}, // a file named is taken as it is
		{"directory", p("spark"), p("spark/part-00000.csv", "spark/part-00001.csv"), ""},
		{"glob", p("spark/part-*"), p("spark/part-00000.csv", "spark/part-00001.csv"), ""},
		{"glob over dir", p("*"), p("one.csv", "two.csv.gz"), ""},
		{"list in order", p("two.csv.gz", "spark", "one.csv"), p("two.csv.gz", "spark/part-00000.csv", "spark/part-00001.csv", "one.csv"), ""},
		{"missing file", p("nope.csv"), nil, "nope.csv"},
		{"no match", p("nope-*.csv"), nil, "nope-*.csv: no data file matches"},
		{"bad pattern", p("[x"), nil, "[x"},
		{"empty directory", p("empty"), nil, "empty: the directory holds no data file"},
		{"nothing", nil, nil, "no data files"},
	} {
		got, err := ExpandPaths(tc.paths)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want one with %q", tc.name, err, tc.err)
		case !slices.Equal(got, tc.want):
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if f := GuessFormat([]string{one}); f != "csv" {
		t.Errorf("GuessFormat(one.csv) = %q", f)
	}
	for files, want := range map[string]string{"a.svm.gz": "libsvm", "a.libsvm": "libsvm", "a.parquet b.parquet": "parquet", "a.parquet b.csv": "csv", "a.csv.gz": "csv"} {
		if f := GuessFormat(strings.Fields(files)); f != want {
			t.Errorf("GuessFormat(%s) = %q, want %q", files, f, want)
		}
	}
}

// TestCSVGzip reads gzip files as their plain content.
func TestCSVGzip(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(7, 7))
	for o := range csvOpts(1 << numOpts) {
		content := genCSV(o, 40, rng)
		want, err := refCSV(content, "y", false)
		if err != nil {
			t.Fatalf("%s: reference: %v", o, err)
		}
		gz := writeFile(t, dir, fmt.Sprintf("f%d.csv.gz", o), content)
		for _, v := range []int{1, 6, 40} {
			src := mustOpen(t, Spec{Paths: []string{gz}, Label: "y", Shards: v})
			checkRead(t, src, want, allShards(src))
			checkRead(t, src, want, randomShards(rng, src))
		}
	}
}

// TestCSVParts cuts one data set into part files, some gzip and some with
// no rows, and reads the same rows as the one file for shards that span the
// file boundaries.
func TestCSVParts(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for o := range csvOpts(1 << numOpts) {
		const rows = 61
		content := genCSV(o|optNoFinalNL, rows, rng)
		want, err := refCSV(content, "y", false)
		if err != nil {
			t.Fatalf("%s: reference: %v", o, err)
		}
		// Cut after the header and after some rows, at record ends.
		ends := recordEnds(t, content)
		header := bytes.TrimPrefix(content[:ends[0]], []byte("\ufeff"))
		dir := t.TempDir()
		cuts := []int{0, 0, 1, 2, 17, 17, 30, 59, rows}
		for k := range len(cuts) - 1 {
			name := fmt.Sprintf("part-%05d.csv", k)
			if k%3 == 1 {
				name += ".gz"
			}
			part := slices.Concat(header, []byte("\n"), content[ends[cuts[k]]:ends[cuts[k+1]]])
			if k%2 == 0 {
				part = append([]byte("\ufeff"), part...)
			}
			if k == 3 { // no line end before the next file
				part = bytes.TrimSuffix(bytes.TrimSuffix(part, []byte("\n")), []byte("\r"))
			}
			writeFile(t, dir, name, part)
		}
		writeFile(t, dir, "_SUCCESS", nil)
		vs := []int{2, 9}
		if o%8 == 0 {
			vs = append(vs, 1, 5, rows, 1000)
		}
		for _, v := range vs {
			src := mustOpen(t, Spec{Paths: []string{dir}, Label: "y", Shards: v})
			checkRead(t, src, want, allShards(src))
			checkRead(t, src, want, randomShards(rng, src))
		}
		src := mustOpen(t, Spec{Paths: []string{filepath.Join(dir, "part-*")}, Label: "y", Shards: 4, Float32: true})
		checkRead(t, src, want, allShards(src))
		srcs, err := openNodes(Spec{Paths: []string{dir}, Label: "y", Shards: 7}, 3)
		if err != nil {
			t.Fatalf("%s on 3 nodes: %v", o, err)
		}
		for _, src := range srcs {
			checkRead(t, src, want, allShards(src))
		}
	}
}

// recordEnds returns the offset after the header (ends[0]) and after each
// data record (ends[k]: after k rows) of a CSV file that encoding/csv reads.
func recordEnds(t testing.TB, content []byte) []int {
	t.Helper()
	noBOM := bytes.TrimPrefix(content, []byte("\ufeff"))
	r := csv.NewReader(bytes.NewReader(noBOM))
	r.FieldsPerRecord = -1
	var ends []int
	for {
		if _, err := r.Read(); err != nil {
			break
		}
		ends = append(ends, len(content)-len(noBOM)+int(r.InputOffset()))
	}
	return ends
}
