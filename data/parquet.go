package data

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"sync"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// parquetSource is a data set of Parquet files with the same flat numeric
// columns. Opening reads each file's footer only: its columns and the row
// count of every row group. ReadShards decodes just the row groups that
// overlap the shards asked for, one column chunk per goroutine.
//
// Row groups and rows within a row group count from 0 in messages:
// "data.parquet: row group 2: column "x3": null in row 17".
type parquetSource struct {
	name  string
	files []pqFile
	s     Sharding
	cols  []string // column names of every file, in schema order
	names []string // feature names: cols without the label
	label int      // index in cols of the label; -1: none
	feat  []int    // feat[c]: the feature index of column c; -1: the label
	f32   bool
}

// pqFile is what opening keeps of one file.
type pqFile struct {
	path   string
	first  int   // global index of the file's first row
	starts []int // starts[g]: first row (in the file) of row group g; the last entry: the file's rows
}

// pqHandle is an open Parquet file whose footer has been read.
type pqHandle struct {
	f      *parquet.File
	h      *os.File
	cols   []pqCol
	names  []string // the column names
	starts []int    // as in pqFile
}

// pqCol is a column as read: its name and physical type.
type pqCol struct {
	name     string
	kind     parquet.Kind
	unsigned bool // an INT32 or INT64 with an unsigned integer logical type
}

// openParquet reads the footers of files (GOMAXPROCS at a time).
func openParquet(ctx context.Context, files []string, spec Spec) (Source, error) {
	s := &parquetSource{name: sourceName(files), files: make([]pqFile, len(files)), f32: spec.Float32}
	names := make([][]string, len(files))
	err := runParallel(ctx, len(files), func(i int) error {
		p, err := openPQ(files[i])
		if err == nil {
			p.h.Close()
			names[i], s.files[i] = p.names, pqFile{path: files[i], starts: p.starts}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	s.cols = names[0]
	rows := 0
	for i := range s.files {
		if !equalStrings(names[i], s.cols) {
			return nil, fmt.Errorf("%s: the columns %s differ from the columns of %s, %s", files[i], quoteList(names[i]), files[0], quoteList(s.cols))
		}
		s.files[i].first = rows
		rows += s.files[i].starts[len(s.files[i].starts)-1]
	}
	switch s.label = slices.Index(s.cols, spec.Label); {
	case spec.Unlabeled:
		s.label = -1
	case len(s.cols) < 2:
		return nil, fmt.Errorf("%s: %d column; need a label and at least one feature", files[0], len(s.cols))
	case spec.Label == "":
		s.label = len(s.cols) - 1
	case s.label < 0:
		return nil, fmt.Errorf("%s: label column %q is not in the file; the columns are %s", files[0], spec.Label, quoteList(s.cols))
	}
	for i, c := range s.cols {
		if s.feat = append(s.feat, len(s.names)); i == s.label {
			s.feat[i] = -1
		} else {
			s.names = append(s.names, c)
		}
	}
	s.s = NewSharding(rows, spec.Shards)
	return s, nil
}

// openPQ opens a Parquet file, reads its footer (not its page index or
// bloom filters) and checks its columns. Close p.h.
func openPQ(path string) (p *pqHandle, err error) {
	h, err := os.Open(path)
	if err != nil {
		return nil, err // *PathError names the file
	}
	defer func() {
		if err != nil {
			h.Close()
		}
	}()
	defer guard(path, &err)
	fi, err := h.Stat()
	if err != nil {
		return nil, err
	}
	p = &pqHandle{h: h, starts: []int{0}}
	if p.f, err = parquet.OpenFile(h, fi.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true)); err != nil {
		return nil, fmt.Errorf("%s: not a readable Parquet file: %w", path, err)
	}
	if p.cols, err = pqColumns(path, p.f); err != nil {
		return nil, err
	}
	for _, c := range p.cols {
		p.names = append(p.names, c.name)
	}
	for g, rg := range p.f.Metadata().RowGroups {
		if rg.NumRows < 0 || len(rg.Columns) != len(p.cols) {
			return nil, fmt.Errorf("%s: row group %d: corrupt footer (%d rows, %d columns)", path, g, rg.NumRows, len(rg.Columns))
		}
		p.starts = append(p.starts, p.starts[g]+int(rg.NumRows))
	}
	return p, nil
}

// guard turns a panic of the Parquet library, which a corrupt file can
// cause, into an error naming the file. Defer it.
func guard(path string, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s: corrupt Parquet file: %v", path, r)
	}
}

// pqColumns returns the columns of f, or an error if one is not a flat
// numeric column.
func pqColumns(path string, f *parquet.File) ([]pqCol, error) {
	var cols []pqCol
	for _, c := range f.Root().Columns() {
		if !c.Leaf() || c.Repeated() {
			return nil, fmt.Errorf("%s: column %q is a group or repeated: only flat numeric columns can be read", path, c.Name())
		}
		col := pqCol{name: c.Name(), kind: c.Type().Kind()}
		switch col.kind {
		case parquet.Boolean, parquet.Int32, parquet.Int64, parquet.Float, parquet.Double:
		default:
			return nil, fmt.Errorf("%s: column %q is %s: only numeric columns (DOUBLE, FLOAT, INT32, INT64, BOOLEAN) can be read", path, c.Name(), col.kind)
		}
		if lt := c.Type().LogicalType(); lt != nil {
			switch t := lt.Value.(type) {
			case *format.DecimalType:
				return nil, fmt.Errorf("%s: column %q is %s (scaled integers): only plain numeric columns can be read", path, c.Name(), t)
			case *format.IntType:
				col.unsigned = !t.IsSigned
			}
		}
		cols = append(cols, col)
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("%s: the file has no columns", path)
	}
	return cols, nil
}

func (s *parquetSource) Name() string           { return s.name }
func (s *parquetSource) Rows() int              { return s.s.Rows() }
func (s *parquetSource) FeatureNames() []string { return s.names }
func (s *parquetSource) Sharding() Sharding     { return s.s }

// pqGroup is a row group to read and the pieces of shards it holds.
type pqGroup struct {
	file, group int
	pieces      []pqPiece // ascending, disjoint
}

// pqPiece is the part of a shard's table that lies in one row group.
type pqPiece struct {
	t      *Table
	at     int // local row of t where the piece begins
	lo, hi int // rows [lo, hi) of the row group
}

// pqOpened is a file opened once per ReadShards, on first use.
type pqOpened struct {
	once sync.Once
	p    *pqHandle
	err  error
}

// ReadShards reads the row groups that overlap the given shards, one column
// chunk per call, GOMAXPROCS at a time. It opens only the files they lie in.
func (s *parquetSource) ReadShards(ctx context.Context, shards []int) ([]*Table, error) {
	if err := checkShards(s.s, shards); err != nil {
		return nil, err
	}
	tables := make([]*Table, len(shards))
	var groups []*pqGroup
	for k, v := range shards {
		lo, hi := s.s.ShardRows(v)
		t := NewTable(s.name, s.names, lo, hi-lo, s.f32)
		t.locate = s.locate
		tables[k] = t
		if s.label < 0 {
			for i := range t.Y {
				t.Y[i] = math.NaN()
			}
		}
		for i := s.fileOf(lo); i < len(s.files) && s.files[i].first < hi; i++ {
			f := &s.files[i]
			for g := f.groupOf(lo - f.first); g+1 < len(f.starts) && f.first+f.starts[g] < hi; g++ {
				a, b := max(lo, f.first+f.starts[g]), min(hi, f.first+f.starts[g+1])
				if a >= b {
					continue
				}
				if n := len(groups); n == 0 || groups[n-1].file != i || groups[n-1].group != g {
					groups = append(groups, &pqGroup{file: i, group: g})
				}
				p := pqPiece{t: t, at: a - lo, lo: a - f.first - f.starts[g], hi: b - f.first - f.starts[g]}
				groups[len(groups)-1].pieces = append(groups[len(groups)-1].pieces, p)
			}
		}
	}
	opened := make([]pqOpened, len(s.files))
	defer func() {
		for i := range opened {
			if opened[i].p != nil {
				opened[i].p.h.Close()
			}
		}
	}()
	nc := len(s.cols)
	err := runParallel(ctx, len(groups)*nc, func(k int) error {
		g := groups[k/nc]
		o := &opened[g.file]
		o.once.Do(func() { o.p, o.err = s.reopen(g.file) })
		if o.err != nil {
			return o.err
		}
		return s.readChunk(ctx, o, g, k%nc)
	})
	if err != nil {
		return nil, err
	}
	for _, t := range tables {
		rowsParsed.Add(int64(t.Len()))
	}
	if err := finishTables(tables); err != nil {
		return nil, err
	}
	return tables, nil
}

// reopen opens file i to read it and checks that it is the file indexed.
func (s *parquetSource) reopen(i int) (*pqHandle, error) {
	p, err := openPQ(s.files[i].path)
	if err == nil && (!equalStrings(p.names, s.cols) || !slices.Equal(p.starts, s.files[i].starts)) {
		p.h.Close()
		return nil, fmt.Errorf("%s: the columns or row groups changed since the file was opened", s.files[i].path)
	}
	return p, err
}

// readChunk decodes column c of row group g into the tables of its pieces.
// It seeks to the first piece's first row (skipping whole pages when the
// file has an offset index) and stops after the last piece's last row.
func (s *parquetSource) readChunk(ctx context.Context, o *pqOpened, g *pqGroup, c int) (err error) {
	path, col := s.files[g.file].path, o.p.cols[c]
	defer guard(path, &err)
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%s: row group %d: column %q: %s", path, g.group, col.name, fmt.Sprintf(format, a...))
	}
	cc := o.p.f.RowGroups()[g.group].ColumnChunks()[c]
	if fc, ok := cc.(*parquet.FileColumnChunk); ok {
		fc.OffsetIndex() // loads the index SeekToRow uses; without one it reads from the start
	}
	pages := cc.Pages()
	defer pages.Close()
	row, end := g.pieces[0].lo, g.pieces[len(g.pieces)-1].hi
	if err := pages.SeekToRow(int64(row)); err != nil {
		return fail("seeking to row %d: %v", row, err)
	}
	j := s.feat[c]
	buf := make([]parquet.Value, min(end-row, 4096))
	p := 0
	for row < end {
		if err := ctx.Err(); err != nil {
			return err
		}
		page, err := pages.ReadPage()
		if err == io.EOF {
			return fail("the values end at row %d; the footer says %d rows", row, s.files[g.file].starts[g.group+1]-s.files[g.file].starts[g.group])
		} else if err != nil {
			return fail("%v", err)
		}
		vr := page.Values()
		for row < end {
			n, err := vr.ReadValues(buf[:min(len(buf), end-row)])
			for _, v := range buf[:n] {
				for row >= g.pieces[p].hi {
					p++
				}
				if pc := g.pieces[p]; row >= pc.lo {
					if v.IsNull() {
						return fail("null in row %d", row)
					}
					x := pqValue(col, v)
					switch {
					case math.IsNaN(x) || math.IsInf(x, 0):
						return fail("%v in row %d: values must be finite", x, row)
					case j < 0:
						pc.t.Y[pc.at+row-pc.lo] = x
					default:
						pc.t.set(pc.at+row-pc.lo, j, x)
					}
				}
				row++
			}
			if errors.Is(err, io.EOF) || (err == nil && n == 0) {
				break
			} else if err != nil {
				return fail("%v", err)
			}
		}
		parquet.Release(page)
	}
	return nil
}

// pqValue returns v, of column col, as a float64: booleans are 0 or 1.
func pqValue(col pqCol, v parquet.Value) float64 {
	switch col.kind {
	case parquet.Boolean:
		if v.Boolean() {
			return 1
		}
		return 0
	case parquet.Int32:
		if col.unsigned {
			return float64(v.Uint32())
		}
		return float64(v.Int32())
	case parquet.Int64:
		if col.unsigned {
			return float64(v.Uint64())
		}
		return float64(v.Int64())
	case parquet.Float:
		return float64(v.Float())
	}
	return v.Double()
}

// fileOf returns the file that holds global row (the last of the files that
// begin at it, so that empty files are passed over).
func (s *parquetSource) fileOf(row int) int {
	return max(sort.Search(len(s.files), func(i int) bool { return s.files[i].first > row })-1, 0)
}

// groupOf returns the row group that holds row of the file.
func (f *pqFile) groupOf(row int) int {
	return max(sort.Search(len(f.starts), func(g int) bool { return f.starts[g] > row })-1, 0)
}

// locate names global row for an error message: "data.parquet: row group 2 row 17".
func (s *parquetSource) locate(row int) string {
	f := &s.files[s.fileOf(row)]
	g := f.groupOf(row - f.first)
	return fmt.Sprintf("%s: row group %d row %d", f.path, g, row-f.first-f.starts[g])
}
