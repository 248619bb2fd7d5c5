package data

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// pqRow has a column of every numeric type the reader takes.
type pqRow struct {
	A float64 `parquet:"a"`
	B float32 `parquet:"b"`
	C int32   `parquet:"c"`
	D int64   `parquet:"d"`
	E bool    `parquet:"e"`
	U uint32  `parquet:"u"` // INT32 with an unsigned logical type
	Y float64 `parquet:"y"`
}

var pqHeader = []string{"a", "b", "c", "d", "e", "u", "y"}

func (r pqRow) values() []float64 {
	e := 0.0
	if r.E {
		e = 1
	}
	return []float64{r.A, float64(r.B), float64(r.C), float64(r.D), e, float64(r.U), r.Y}
}

// pqRandomRows returns n rows drawn from seed.
func pqRandomRows(n int, seed uint64) []pqRow {
	r := rand.New(rand.NewPCG(seed, 1))
	rows := make([]pqRow, n)
	for i := range rows {
		rows[i] = pqRow{
			A: r.NormFloat64() * 1e3,
			B: float32(r.NormFloat64()),
			C: r.Int32() - math.MaxInt32/2,
			D: r.Int64() >> 10,
			E: r.IntN(2) == 1,
			U: r.Uint32(),
			Y: r.NormFloat64(),
		}
	}
	return rows
}

// writePQ writes rows as a Parquet file of row groups of perGroup rows and
// pages of a few values.
func writePQ[T any](t *testing.T, path string, rows []T, perGroup int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := parquet.NewGenericWriter[T](f, parquet.MaxRowsPerRowGroup(int64(perGroup)), parquet.PageBufferSize(64))
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// writePQCSV writes rows as CSV, floats in the shortest form that reads back
// exactly.
func writePQCSV(t *testing.T, path string, rows []pqRow) {
	t.Helper()
	var b strings.Builder
	b.WriteString(strings.Join(pqHeader, ",") + "\n")
	for _, r := range rows {
		for j, v := range r.values() {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
		}
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// pqSizes are the rows of the fixture's files: one is empty.
var pqSizes = []int{23, 0, 31, 17}

// pqFixture writes the same data set as Parquet files (row groups of 4 rows)
// into dir/pq and as CSV files into dir/csv.
func pqFixture(t *testing.T) (pqDir, csvDir string, pqFiles []string) {
	t.Helper()
	dir := t.TempDir()
	pqDir, csvDir = filepath.Join(dir, "pq"), filepath.Join(dir, "csv")
	for _, d := range []string{pqDir, csvDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i, n := range pqSizes {
		rows := pqRandomRows(n, uint64(i))
		name := "part-" + strconv.Itoa(i)
		path := filepath.Join(pqDir, name+".parquet")
		writePQ(t, path, rows, 4)
		writePQCSV(t, filepath.Join(csvDir, name+".csv"), rows)
		pqFiles = append(pqFiles, path)
	}
	return pqDir, csvDir, pqFiles
}

// pqReadAll opens spec and reads every shard.
func pqReadAll(t *testing.T, spec Spec) (Source, []*Table) {
	t.Helper()
	src, err := Open(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := src.ReadShards(context.Background(), src.Sharding().Part(0, 1).Shards())
	if err != nil {
		t.Fatal(err)
	}
	return src, tables
}

// pqSameTable reports how got differs from want, but for Source.
func pqSameTable(t *testing.T, got, want *Table) {
	t.Helper()
	same := func(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }
	switch {
	case got.First != want.First || got.Len() != want.Len():
		t.Fatalf("table of rows %d+%d, want %d+%d", got.First, got.Len(), want.First, want.Len())
	case !equalStrings(got.FeatureNames, want.FeatureNames) || got.Features != want.Features:
		t.Fatalf("feature names %q, want %q", got.FeatureNames, want.FeatureNames)
	case got.Float32() != want.Float32() || len(got.X) != len(want.X) || len(got.X32) != len(want.X32):
		t.Fatalf("float32 %v, want %v", got.Float32(), want.Float32())
	}
	for i := range got.X {
		if got.X[i] != want.X[i] {
			t.Fatalf("rows %d+: X[%d] = %v, want %v", got.First, i, got.X[i], want.X[i])
		}
	}
	for i := range got.X32 {
		if got.X32[i] != want.X32[i] {
			t.Fatalf("rows %d+: X32[%d] = %v, want %v", got.First, i, got.X32[i], want.X32[i])
		}
	}
	for i := range got.Y {
		if !same(got.Y[i], want.Y[i]) {
			t.Fatalf("rows %d+: Y[%d] = %v, want %v", got.First, i, got.Y[i], want.Y[i])
		}
	}
}

func TestParquetMatchesCSV(t *testing.T) {
	pqDir, csvDir, pqFiles := pqFixture(t)
	glob := filepath.Join(pqDir, "part-*.parquet")
	tests := []struct {
		name  string
		paths []string // default: the directory
		spec  Spec
	}{
		{name: "last column is the label"},
		{name: "glob", paths: []string{glob}},
		{name: "files", paths: pqFiles},
		{name: "label by name", spec: Spec{Label: "c"}},
		{name: "boolean label", spec: Spec{Label: "e"}},
		{name: "unlabeled", spec: Spec{Unlabeled: true}},
		{name: "float32", spec: Spec{Float32: true, Label: "a"}},
		{name: "one shard", spec: Spec{Shards: 1}},
		{name: "seven shards", spec: Spec{Shards: 7}},
		{name: "a shard per row", spec: Spec{Shards: 1000}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			spec.Paths = tc.paths
			if spec.Paths == nil {
				spec.Paths = []string{pqDir}
			}
			src, got := pqReadAll(t, spec)
			spec.Paths, spec.Format = []string{csvDir}, "csv"
			ref, want := pqReadAll(t, spec)
			if src.Rows() != ref.Rows() || src.Rows() != 71 {
				t.Fatalf("%d rows, CSV has %d, want 71", src.Rows(), ref.Rows())
			}
			if !equalStrings(src.FeatureNames(), ref.FeatureNames()) {
				t.Fatalf("feature names %q, CSV has %q", src.FeatureNames(), ref.FeatureNames())
			}
			if src.Sharding() != ref.Sharding() || len(got) != len(want) {
				t.Fatalf("sharding %+v, %d tables; CSV: %+v, %d tables", src.Sharding(), len(got), ref.Sharding(), len(want))
			}
			for k := range got {
				if got[k].Source != sourceName(pqFiles) {
					t.Fatalf("Source %q, want %q", got[k].Source, sourceName(pqFiles))
				}
				pqSameTable(t, got[k], want[k])
			}
		})
	}
}

func TestParquetReadsOnlyItsRowGroups(t *testing.T) {
	ctx := context.Background()
	pqDir, _, pqFiles := pqFixture(t)
	src, all := pqReadAll(t, Spec{Paths: []string{pqDir}, Shards: 7}) // shard v: rows [v*71/7, (v+1)*71/7)
	ps := src.(*parquetSource)
	// Shard 2 (rows 20..29) begins in the last row group of part-0 (rows
	// 20..22) and ends inside the second row group of part-2 (rows 27..30).
	if lo, hi := src.Sharding().ShardRows(2); lo != 20 || hi != 30 || ps.files[2].first != 23 {
		t.Fatalf("shard 2 is rows %d..%d, part-2 begins at %d: the fixture changed", lo, hi-1, ps.files[2].first)
	}
	tests := []struct {
		name   string
		shards []int
	}{
		{"across a file and row groups", []int{2}},
		{"inside one file", []int{1}},
		{"apart", []int{0, 2, 4}},
		{"neighbours", []int{2, 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := RowsParsed()
			got, err := src.ReadShards(ctx, tc.shards)
			if err != nil {
				t.Fatal(err)
			}
			rows := 0
			for k, v := range tc.shards {
				pqSameTable(t, got[k], all[v])
				rows += got[k].Len()
			}
			if n := RowsParsed() - before; n < int64(rows) {
				t.Errorf("RowsParsed grew by %d, want at least %d", n, rows)
			}
		})
	}

	// Corrupt the column chunks of part-0's first row group and replace
	// part-3 with garbage: shards that hold none of their rows still read.
	pqCorrupt(t, pqFiles[0], 0, -1)
	if err := os.WriteFile(pqFiles[3], []byte("not parquet at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := src.ReadShards(ctx, []int{1, 2, 3}); err != nil {
		t.Fatalf("shards 1..3 (rows 10..39): %v", err)
	}
	for _, v := range []int{0, 6} {
		_, err := src.ReadShards(ctx, []int{v})
		want := pqFiles[map[int]int{0: 0, 6: 3}[v]]
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("shard %d of a corrupt file: error %v, want one naming %s", v, err, want)
		}
	}
}

// pqCorrupt overwrites the bytes of every column chunk of row group g, or
// with page >= 0 that page of each column chunk that has more than one, and
// returns how many chunks it changed.
func pqCorrupt(t *testing.T, path string, g, page int) int {
	t.Helper()
	h, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	fi, _ := h.Stat()
	f, err := parquet.OpenFile(h, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for c, cc := range f.Metadata().RowGroups[g].Columns {
		start, size := cc.MetaData.DataPageOffset, cc.MetaData.TotalCompressedSize
		if d := cc.MetaData.DictionaryPageOffset; d > 0 && d < start {
			start = d
		}
		if page >= 0 {
			pages := f.OffsetIndexes()[g*len(f.Metadata().RowGroups[g].Columns)+c].PageLocations
			if len(pages) < 2 {
				continue
			}
			start, size = pages[page].Offset, int64(pages[page].CompressedPageSize)
		}
		junk := make([]byte, size)
		for i := range junk {
			junk[i] = byte(0xA5 ^ i)
		}
		if _, err := h.WriteAt(junk, start); err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

func TestParquetSkipsPages(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path, csv := filepath.Join(dir, "big.parquet"), filepath.Join(dir, "big.csv")
	rows := pqRandomRows(200, 9)
	writePQ(t, path, rows, 100) // each column chunk: pages of rows 0..63 and 64..99
	writePQCSV(t, csv, rows)
	src, all := pqReadAll(t, Spec{Paths: []string{path}, Shards: 25}) // 8 rows a shard
	_, want := pqReadAll(t, Spec{Paths: []string{csv}, Format: "csv", Shards: 25})
	for k := range all {
		pqSameTable(t, all[k], want[k])
	}
	// Shard 21 (rows 168..175) lies in the second pages of row group 1:
	// it reads although the first pages are garbage; shard 13 (rows
	// 104..111) needs them.
	if n := pqCorrupt(t, path, 1, 0); n < 5 {
		t.Fatalf("%d column chunks have two pages, want at least 5: the fixture changed", n)
	}
	if _, err := Open(ctx, Spec{Paths: []string{path}}); err != nil {
		t.Fatalf("Open reads the footer only, but: %v", err)
	}
	got, err := src.ReadShards(ctx, []int{0, 21})
	if err != nil {
		t.Fatal(err)
	}
	pqSameTable(t, got[0], all[0])
	pqSameTable(t, got[1], all[21])
	if _, err := src.ReadShards(ctx, []int{13}); err == nil || !strings.HasPrefix(err.Error(), path+": row group 1: column ") {
		t.Fatalf("shard 13 on a corrupt page: error %v, want one naming %s, row group 1 and a column", err, path)
	}
}

func TestParquetLocate(t *testing.T) {
	pqDir, _, pqFiles := pqFixture(t)
	_, tables := pqReadAll(t, Spec{Paths: []string{pqDir}, Shards: 7})
	// Shard 1 begins at row 10: part-0, row group 2 (rows 8..11), row 2.
	err := tables[1].PrepareLabels(TaskMulticlass, 2)
	want := pqFiles[0] + ": row group 2 row 2: label"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error %v, want one starting %q", err, want)
	}
	// Shard 3 begins at row 30: part-2 row 7, in row group 1 (rows 4..7).
	if got, want := tables[3].where(0), pqFiles[2]+": row group 1 row 3"; got != want {
		t.Fatalf("where = %q, want %q", got, want)
	}
}

type pqString struct {
	Name string  `parquet:"name"`
	Y    float64 `parquet:"y"`
}

type pqOptional struct {
	X *float64 `parquet:"x3,optional"`
	Y float64  `parquet:"y"`
}

type pqTwo struct {
	A float64 `parquet:"a"`
	Y float64 `parquet:"y"`
}

type pqThree struct {
	A float64 `parquet:"a"`
	B float64 `parquet:"b"`
	Y float64 `parquet:"y"`
}

type pqNested struct {
	P struct {
		A float64 `parquet:"a"`
	} `parquet:"p"`
	Y float64 `parquet:"y"`
}

type pqRepeated struct {
	A []float64 `parquet:"a"`
	Y float64   `parquet:"y"`
}

type pqDecimal struct {
	Cost int32   `parquet:"cost,decimal(2:9)"`
	Y    float64 `parquet:"y"`
}

func TestParquetErrors(t *testing.T) {
	two := func(n int, at int, a, y float64) []pqTwo {
		rows := make([]pqTwo, n)
		for i := range rows {
			rows[i] = pqTwo{A: float64(i), Y: float64(i % 2)}
		}
		rows[at] = pqTwo{A: a, Y: y}
		return rows
	}
	tests := []struct {
		name  string
		write func(t *testing.T, dir string) // writes the data set into dir
		spec  Spec
		open  string // the error of Open, with dir for "DIR"; "" if none
		read  string // else the error of reading all shards
	}{
		{
			name:  "string column",
			write: func(t *testing.T, dir string) { writePQ(t, dir+"/data.parquet", []pqString{{"x", 1}}, 4) },
			open:  `DIR/data.parquet: column "name" is BYTE_ARRAY: only numeric columns (DOUBLE, FLOAT, INT32, INT64, BOOLEAN) can be read`,
		},
		{
			name: "null",
			write: func(t *testing.T, dir string) {
				rows := make([]pqOptional, 12)
				for i := range rows {
					x := float64(i)
					rows[i] = pqOptional{X: &x}
				}
				rows[9].X = nil
				writePQ(t, dir+"/data.parquet", rows, 4)
			},
			read: `DIR/data.parquet: row group 2: column "x3": null in row 1`,
		},
		{
			name:  "NaN feature",
			write: func(t *testing.T, dir string) { writePQ(t, dir+"/data.parquet", two(12, 6, math.NaN(), 0), 4) },
			read:  `DIR/data.parquet: row group 1: column "a": NaN in row 2`,
		},
		{
			name:  "infinite label",
			write: func(t *testing.T, dir string) { writePQ(t, dir+"/data.parquet", two(12, 3, 1, math.Inf(-1)), 4) },
			read:  `DIR/data.parquet: row group 0: column "y": -Inf in row 3`,
		},
		{
			name: "different columns",
			write: func(t *testing.T, dir string) {
				writePQ(t, dir+"/a.parquet", two(3, 0, 0, 0), 4)
				writePQ(t, dir+"/b.parquet", []pqThree{{1, 2, 3}}, 4)
			},
			open: `DIR/b.parquet: the columns "a", "b", "y" differ from the columns of DIR/a.parquet, "a", "y"`,
		},
		{
			name:  "no such label",
			write: func(t *testing.T, dir string) { writePQ(t, dir+"/data.parquet", two(3, 0, 0, 0), 4) },
			spec:  Spec{Label: "z"},
			open:  `DIR/data.parquet: label column "z" is not in the file; the columns are "a", "y"`,
		},
		{
			name:  "nested column",
			write: func(t *testing.T, dir string) { writePQ(t, dir+"/data.parquet", []pqNested{{}}, 4) },
			open:  `DIR/data.parquet: column "p" is a group or repeated: only flat numeric columns can be read`,
		},
		{
			name:  "repeated column",
			write: func(t *testing.T, dir string) { writePQ(t, dir+"/data.parquet", []pqRepeated{{A: []float64{1}}}, 4) },
			open:  `DIR/data.parquet: column "a" is a group or repeated`,
		},
		{
			name:  "decimal column",
			write: func(t *testing.T, dir string) { writePQ(t, dir+"/data.parquet", []pqDecimal{{Cost: 1}}, 4) },
			open:  `DIR/data.parquet: column "cost" is DECIMAL`,
		},
		{
			name: "not parquet",
			write: func(t *testing.T, dir string) {
				os.WriteFile(dir+"/data.parquet", []byte("a,y\n1,2\n"), 0o644)
			},
			open: `DIR/data.parquet: not a readable Parquet file`,
		},
		{
			name:  "empty file",
			write: func(t *testing.T, dir string) { os.WriteFile(dir+"/data.parquet", nil, 0o644) },
			open:  `DIR/data.parquet: not a readable Parquet file`,
		},
		{
			name: "truncated file",
			write: func(t *testing.T, dir string) {
				writePQ(t, dir+"/data.parquet", two(40, 0, 0, 0), 4)
				b, _ := os.ReadFile(dir + "/data.parquet")
				os.WriteFile(dir+"/data.parquet", b[:len(b)/2], 0o644)
			},
			open: `DIR/data.parquet: `,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.write(t, dir)
			spec := tc.spec
			spec.Paths = []string{dir}
			src, err := Open(context.Background(), spec)
			if tc.open != "" {
				want := strings.ReplaceAll(tc.open, "DIR", dir)
				if err == nil || !strings.HasPrefix(err.Error(), want) {
					t.Fatalf("Open: error %v, want one starting %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, err = src.ReadShards(context.Background(), src.Sharding().Part(0, 1).Shards())
			want := strings.ReplaceAll(tc.read, "DIR", dir)
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("ReadShards: error %v, want one starting %q", err, want)
			}
		})
	}
}

// TestParquetCorruptBytes damages a file at random (bytes anywhere, bytes
// of the footer, a truncation): reading it is an error naming the file, or
// works, but never panics.
func TestParquetCorruptBytes(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.parquet")
	writePQ(t, good, pqRandomRows(50, 3), 16)
	b, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	path := filepath.Join(dir, "bad.parquet")
	for it := range 300 {
		c := append([]byte(nil), b...)
		switch it % 3 {
		case 0:
			for range 1 + r.IntN(4) {
				c[r.IntN(len(c))] = byte(r.Uint32())
			}
		case 1:
			for range 1 + r.IntN(4) {
				c[len(c)-1-r.IntN(300)] = byte(r.Uint32())
			}
		case 2:
			c = c[:r.IntN(len(c))]
		}
		if err := os.WriteFile(path, c, 0o644); err != nil {
			t.Fatal(err)
		}
		src, err := Open(context.Background(), Spec{Paths: []string{path}, Shards: 3})
		if err == nil {
			_, err = src.ReadShards(context.Background(), src.Sharding().Part(0, 1).Shards())
		}
		if err != nil && !strings.HasPrefix(err.Error(), path+": ") {
			t.Fatalf("case %d: error %v does not name the file", it, err)
		}
	}
}
