package data

import (
	"compress/gzip"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// openTogether opens spec on n simulated nodes at once, each indexing its
// share, and returns their sources.
func openTogether(t *testing.T, spec Spec, n int) []Source {
	t.Helper()
	srcs, err := openNodes(spec, n)
	if err != nil {
		t.Fatalf("%d nodes: %v", n, err)
	}
	return srcs
}

// readAllShards reads every shard of src and returns features and labels
// in row order.
func readAllShards(t *testing.T, src Source) (x, y []float64) {
	t.Helper()
	all := src.Sharding().Part(0, 1).Shards()
	tables, err := src.ReadShards(context.Background(), all)
	if err != nil {
		t.Fatal(err)
	}
	for _, tab := range tables {
		for i := range tab.Len() {
			x = append(x, tab.Row(i)...)
			y = append(y, tab.Y[i])
		}
	}
	return x, y
}

// awkwardCSV writes rows with quoted fields holding newlines and commas,
// CRLF and LF line ends and blank lines, so that segment cuts land inside
// quotes and between \r and \n.
func awkwardCSV(rows int, seed uint64) string {
	r := rand.New(rand.NewPCG(seed, 3))
	var b strings.Builder
	b.WriteString("\ufeffa,\"b\nc\",y\r\n")
	for i := range rows {
		nl := "\n"
		if r.IntN(2) == 0 {
			nl = "\r\n"
		}
		if r.IntN(7) == 0 {
			b.WriteString(nl) // a blank line
		}
		a := fmt.Sprintf("%d.%d", i, r.IntN(1000))
		switch r.IntN(4) {
		case 0:
			a = "\"" + a + "\""
		case 1:
			a = "\" " + a + "\n\""
		case 2:
			a = " " + a + " "
		}
		fmt.Fprintf(&b, "%s,%v,%d%s", a, r.NormFloat64(), i%2, nl)
	}
	return b.String()
}

func writeGz(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	zw.Write([]byte(text))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// TestIndexTogetherMatchesAlone: n nodes that index a data set together
// (each scanning its share of the bytes) agree with one node that scans it
// all, shard offsets and rows alike: one file, quoted newlines, CRLF, blank
// lines, several files some gzipped, and LIBSVM.
func TestIndexTogetherMatchesAlone(t *testing.T) {
	dir := t.TempDir()
	one := filepath.Join(dir, "one.csv")
	os.WriteFile(one, []byte(awkwardCSV(700, 1)), 0o644)
	parts := filepath.Join(dir, "parts")
	os.Mkdir(parts, 0o755)
	text := awkwardCSV(900, 2)
	lines := strings.SplitAfter(text, "\r\n")
	header := lines[0]
	body := strings.Join(lines[1:], "")
	// Part files: whole rows, split by row number.
	recs := splitRecords(t, body)
	n := len(recs)
	bounds := []int{0, n / 5, n / 2, 3 * n / 4, n}
	for i := range len(bounds) - 1 {
		name := filepath.Join(parts, fmt.Sprintf("part-%05d.csv", i))
		chunk := header + strings.Join(recs[bounds[i]:bounds[i+1]], "")
		if i%2 == 1 {
			writeGz(t, name+".gz", chunk)
		} else {
			os.WriteFile(name, []byte(chunk), 0o644)
		}
	}
	os.WriteFile(filepath.Join(parts, "_SUCCESS"), nil, 0o644)
	svm := filepath.Join(dir, "d.svm")
	var sb strings.Builder
	for i := range 500 {
		fmt.Fprintf(&sb, "%d 1:%d %d:0.5 # 99:1 comment\n", i%2, i, 2+i%7)
		if i%9 == 0 {
			sb.WriteString("  # only a comment\n\n")
		}
	}
	os.WriteFile(svm, []byte(sb.String()), 0o644)

	for _, c := range []struct {
		name string
		spec Spec
	}{
		{"one file", Spec{Paths: []string{one}}},
		{"parts", Spec{Paths: []string{parts}}},
		{"libsvm", Spec{Paths: []string{svm}}},
	} {
		for _, V := range []int{1, 5, 64} {
			c.spec.Shards = V
			alone := openTogether(t, c.spec, 1)[0]
			wantX, wantY := readAllShards(t, alone)
			for n := 2; n <= 5; n++ {
				for r, src := range openTogether(t, c.spec, n) {
					if src.Rows() != alone.Rows() || fmt.Sprint(src.FeatureNames()) != fmt.Sprint(alone.FeatureNames()) {
						t.Fatalf("%s V=%d n=%d rank %d: %d rows %v, alone %d %v", c.name, V, n, r, src.Rows(), src.FeatureNames(), alone.Rows(), alone.FeatureNames())
					}
					if fmt.Sprint(src.(*textSource).starts) != fmt.Sprint(alone.(*textSource).starts) {
						t.Fatalf("%s V=%d n=%d rank %d: shard starts %v, alone %v", c.name, V, n, r, src.(*textSource).starts, alone.(*textSource).starts)
					}
					x, y := readAllShards(t, src)
					if !sameFloats(x, wantX) || !sameFloats(y, wantY) {
						t.Fatalf("%s V=%d n=%d rank %d: rows differ from one node's", c.name, V, n, r)
					}
				}
			}
		}
	}
}

// splitRecords cuts CSV text into whole records (each with its line end),
// with blank lines kept with the record after them.
func splitRecords(t *testing.T, body string) []string {
	t.Helper()
	var recs []string
	start, quoted := 0, false
	for i := 0; i < len(body); i++ {
		switch body[i] {
		case '"':
			quoted = !quoted
		case '\n':
			if !quoted && strings.TrimSpace(body[start:i]) != "" {
				recs = append(recs, body[start:i+1])
				start = i + 1
			}
		}
	}
	if start < len(body) {
		recs[len(recs)-1] += body[start:]
	}
	return recs
}

func sameFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			return false
		}
	}
	return true
}
