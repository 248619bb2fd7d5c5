package data

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"unsafe"
)

func uintptrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

// textSource is a data set of text files, CSV or LIBSVM, indexed by one
// byte-level pass per file. It keeps, for the run, only the position of each
// virtual shard's first row.
type textSource struct {
	name    string
	syntax  rowSyntax
	files   []*textFile
	fileRow []int // fileRow[i]: global index of file i's first row; fileRow[len(files)] = N
	s       Sharding
	starts  []position // starts[v]: where shard v's first row is; starts[V]: the end
	names   []string   // feature names
	f32     bool
	parse   func(p *pieceParser, b []byte, atEOF bool) (int, error) // parses one record of b
	spec    Spec
	// CSV
	cols  int // fields per record
	label int // index of the label column; -1: none
}

// newTextSource stats the files (a plain file's size plans the index).
func newTextSource(files []string, spec Spec, syntax rowSyntax, parse func(*pieceParser, []byte, bool) (int, error)) (*textSource, error) {
	s := &textSource{name: sourceName(files), syntax: syntax, f32: spec.Float32, parse: parse, spec: spec}
	for _, path := range files {
		f := &textFile{path: path}
		if !gzipped(path) {
			fi, err := os.Stat(path)
			if err != nil {
				return nil, err
			}
			f.size = fi.Size()
		}
		s.files = append(s.files, f)
	}
	return s, nil
}

// position is a byte offset in one of the files.
type position struct {
	file int
	off  int64
}

func (s *textSource) Name() string           { return s.name }
func (s *textSource) Rows() int              { return s.s.Rows() }
func (s *textSource) FeatureNames() []string { return s.names }
func (s *textSource) Sharding() Sharding     { return s.s }

// ShardBytes returns how many bytes of the files shard v spans (of the
// decompressed stream, for gzip).
func (s *textSource) ShardBytes(v int) int64 {
	a, b := s.starts[v], s.starts[v+1]
	if a.file == b.file {
		return b.off - a.off
	}
	n := s.files[a.file].size - a.off + b.off
	for i := a.file + 1; i < b.file; i++ {
		n += s.files[i].size
	}
	return n
}

// fileOf returns the file that holds global row.
func (s *textSource) fileOf(row int) int {
	i := 0
	for i+1 < len(s.files) && s.fileRow[i+1] <= row {
		i++
	}
	return i
}

// piece is the part of a shard that lies in one file.
type piece struct {
	file     int
	off, end int64
	t        *Table
	first    int // local row of t where the piece begins
	rows     int
}

// pieces returns the pieces of shard v, whose rows go into t.
func (s *textSource) pieces(v int, t *Table) ([]piece, error) {
	lo, hi := s.s.ShardRows(v)
	a, b := s.starts[v], s.starts[v+1]
	var ps []piece
	for i := a.file; i <= b.file; i++ {
		off, end := int64(0), s.files[i].size
		if i == a.file {
			off = a.off
		}
		if i == b.file {
			end = b.off
		}
		rlo, rhi := max(lo, s.fileRow[i]), min(hi, s.fileRow[i+1])
		if rhi > rlo {
			if err := s.header(i); err != nil {
				return nil, err
			}
			if i != a.file {
				off = s.files[i].dataStart
			}
			ps = append(ps, piece{file: i, off: off, end: end, t: t, first: rlo - lo, rows: rhi - rlo})
		}
	}
	return ps, nil
}

// ReadShards parses the byte ranges of the given shards. A plain file's
// pieces are parsed side by side; a gzip file's are read in one stream.
func (s *textSource) ReadShards(ctx context.Context, shards []int) ([]*Table, error) {
	if err := checkShards(s.s, shards); err != nil {
		return nil, err
	}
	tables := make([]*Table, len(shards))
	var plain []piece
	gz := map[int][]piece{}
	var gzFiles []int
	for k, v := range shards {
		lo, hi := s.s.ShardRows(v)
		tables[k] = NewTable(s.name, s.names, lo, hi-lo, s.f32)
		tables[k].locate = s.locate
		ps, err := s.pieces(v, tables[k])
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			if gzipped(s.files[p.file].path) {
				if gz[p.file] == nil {
					gzFiles = append(gzFiles, p.file)
				}
				gz[p.file] = append(gz[p.file], p)
			} else {
				plain = append(plain, p)
			}
		}
	}
	err := runParallel(ctx, len(plain)+len(gzFiles), func(i int) error {
		if i < len(plain) {
			return s.readPieces(ctx, plain[i:i+1])
		}
		return s.readPieces(ctx, gz[gzFiles[i-len(plain)]])
	})
	if err != nil {
		return nil, err
	}
	for _, t := range tables {
		rowsParsed.Add(int64(t.Len()))
	}
	return tables, finishTables(tables)
}

// readPieces parses pieces of one file, in order: a plain file's from
// mapped windows, a gzip file's from one stream.
func (s *textSource) readPieces(ctx context.Context, ps []piece) error {
	f := s.files[ps[0].file]
	if !gzipped(f.path) {
		pp := &pieceParser{src: s}
		for _, p := range ps {
			if err := pp.runMapped(ctx, f.path, p); err != nil {
				return err
			}
		}
		return nil
	}
	r, c, err := rangeReader(f.path, ps[0].off, ps[len(ps)-1].end)
	if err != nil {
		return err
	}
	defer c.Close()
	pp := &pieceParser{src: s, buf: make([]byte, 0, min(scanBlock, int(ps[len(ps)-1].end-ps[0].off)+1))}
	at := ps[0].off
	for _, p := range ps {
		if _, err := io.CopyN(io.Discard, r, p.off-at); err != nil {
			return fmt.Errorf("%s: %w", f.path, err)
		}
		if err := pp.run(ctx, io.LimitReader(r, p.end-p.off), p); err != nil {
			return err
		}
		at = p.end
	}
	return nil
}

// pieceParser parses the records of one piece into its table.
type pieceParser struct {
	src  *textSource
	buf  []byte
	p    piece
	row  int   // local row of p.t being parsed
	base int64 // file offset of buf[0]
	rec  csvRecords
	y    float64
	vals []float64 // the fields of one record (fast path)
}

// run parses the records of r, which holds the bytes of p.
func (pp *pieceParser) run(ctx context.Context, r io.Reader, p piece) error {
	pp.p, pp.row, pp.base = p, p.first, p.off
	pp.buf = pp.buf[:0]
	pp.rec.cols = pp.src.cols
	atEOF := false
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Fill the free end of the buffer.
		if !atEOF {
			if len(pp.buf) == cap(pp.buf) {
				pp.buf = append(pp.buf, 0)[:len(pp.buf)] // grow: a record longer than the buffer
			}
			n, err := io.ReadFull(r, pp.buf[len(pp.buf):cap(pp.buf)])
			pp.buf = pp.buf[:len(pp.buf)+n]
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				atEOF = true
			} else if err != nil {
				return fmt.Errorf("%s: %w", pp.src.files[p.file].path, err)
			}
		}
		used, err := pp.records(atEOF)
		if err != nil {
			return err
		}
		if atEOF {
			if pp.row != p.first+p.rows {
				return fmt.Errorf("%s: bytes %d..%d hold %d rows, %d when indexed: the file changed", pp.src.files[p.file].path, p.off, p.end, pp.row-p.first, p.rows)
			}
			return nil
		}
		pp.base += int64(used)
		pp.buf = pp.buf[:copy(pp.buf, pp.buf[used:])]
	}
}

// runMapped parses the records of p from windows of the mapped file.
func (pp *pieceParser) runMapped(ctx context.Context, path string, p piece) (err error) {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	debug.SetPanicOnFault(true)
	defer catchFault(path, &err)
	pp.p, pp.row = p, p.first
	pp.rec.cols = pp.src.cols
	win := int64(mapWindow)
	for off := p.off; ; {
		if err := ctx.Err(); err != nil {
			return err
		}
		end := min(p.end, off+win)
		b, unmap, err := mapRange(fh, off, end)
		if err != nil {
			return err
		}
		pp.buf, pp.base = b, off
		used, err := pp.records(end == p.end)
		unmap()
		pp.buf = nil
		switch {
		case err != nil:
			return err
		case end == p.end:
			if pp.row != p.first+p.rows {
				return fmt.Errorf("%s: bytes %d..%d hold %d rows, %d when indexed: the file changed", path, p.off, p.end, pp.row-p.first, p.rows)
			}
			return nil
		case used == 0:
			win *= 2 // a record longer than the window
		default:
			off += int64(used)
		}
	}
}

// records parses the whole records at the start of pp.buf and returns how
// many bytes they took.
func (pp *pieceParser) records(atEOF bool) (int, error) {
	b, p := pp.buf, 0
	for {
		q, err := skipBlank(b, p, atEOF)
		if err == errNeedMore || q == len(b) {
			return p, nil
		}
		next, err := pp.src.parse(pp, b[q:], atEOF)
		if err == errNeedMore {
			return p, nil
		}
		if err == errNoRow {
			p = q + next
			continue
		}
		if err != nil {
			return 0, pp.fail(b, q, err)
		}
		pp.row++
		p = q + next
	}
}

// full returns an error when the piece already holds all its rows: a parse
// function calls it before it writes a row.
func (pp *pieceParser) full() error {
	if pp.row < pp.p.first+pp.p.rows {
		return nil
	}
	return fmt.Errorf("%s: bytes %d..%d hold more than %d rows, the number when indexed: the file changed", pp.src.files[pp.p.file].path, pp.p.off, pp.p.end, pp.p.rows)
}

// fail turns an error in the record at b[q:] into one that names the file,
// line and column.
func (pp *pieceParser) fail(b []byte, q int, err error) error {
	path := pp.src.files[pp.p.file].path
	var re *recordError
	if errors.As(err, &re) {
		line := pp.src.lineAt(pp.p.file, pp.base+int64(q+re.pos))
		return fmt.Errorf("%s:%d: %w", path, line, re.err)
	}
	return err
}

// csvRecord parses one CSV record of b into the table.
func csvRecord(pp *pieceParser, b []byte, atEOF bool) (int, error) {
	s, t := pp.src, pp.p.t
	if err := pp.full(); err != nil {
		return 0, err
	}
	if len(pp.vals) != s.cols {
		pp.vals = make([]float64, s.cols)
	}
	if n, ok := fastRecord(b, pp.vals); ok {
		j := 0
		for col, v := range pp.vals {
			if col == s.label {
				t.Y[pp.row] = v
				continue
			}
			t.set(pp.row, j, v)
			j++
		}
		if s.label < 0 {
			t.Y[pp.row] = math.NaN()
		}
		return n, nil
	}
	pp.y = math.NaN()
	j := 0
	n, err := pp.rec.record(b, 0, atEOF, func(col int, f []byte) error {
		v, err := parseFloat(f)
		if err != nil {
			pos := int(fieldOffset(b, f))
			return &recordError{pos, fmt.Errorf("column %s (%d): %w", quoteField([]byte(s.columnName(col))), col+1, err)}
		}
		if col == s.label {
			pp.y = v
		} else {
			t.set(pp.row, j, v)
			j++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	t.Y[pp.row] = pp.y
	return n, nil
}

// fieldOffset returns where f lies in b (f is a subslice of b, or of the
// scratch of an unescaped field: then 0, the record's start).
func fieldOffset(b, f []byte) int64 {
	if len(f) == 0 || len(b) == 0 {
		return 0
	}
	d := int64(uintptrOf(f) - uintptrOf(b))
	if d < 0 || d > int64(len(b)) {
		return 0
	}
	return d
}

// lineAt returns the 1-based line of byte off of file i, counting again
// from the start (only for error messages).
func (s *textSource) lineAt(i int, off int64) int {
	r, c, err := rangeReader(s.files[i].path, 0, off)
	if err != nil {
		return 0
	}
	defer c.Close()
	buf := make([]byte, scanBlock)
	line := 1
	for {
		n, err := r.Read(buf)
		line += bytes.Count(buf[:n], []byte{'\n'})
		if err != nil {
			return line
		}
	}
}

// locate names global row for an error message, "data.csv:17", finding its
// line again from its shard's start.
func (s *textSource) locate(row int) string {
	v := s.s.ShardOf(row)
	lo, _ := s.s.ShardRows(v)
	i := s.fileOf(row)
	if s.header(i) != nil {
		return fmt.Sprintf("%s: row %d", s.files[i].path, row-s.fileRow[i])
	}
	off := s.starts[v].off
	skip := row - lo
	if s.starts[v].file != i { // the shard began in an earlier file
		off, skip = s.files[i].dataStart, row-s.fileRow[i]
		// dataStart may precede blank lines: the scan below starts at a line start
		found := int64(-1)
		r, c, err := rangeReader(s.files[i].path, off, -1)
		if err == nil {
			scanRows(context.Background(), r, off, s.syntax, atLineStart, make([]byte, 64<<10), func(o int64) bool {
				if skip == 0 {
					found = o
					return false
				}
				skip--
				return true
			})
			c.Close()
		}
		if found < 0 {
			return fmt.Sprintf("%s: row %d", s.files[i].path, row-s.fileRow[i])
		}
		return fmt.Sprintf("%s:%d", s.files[i].path, s.lineAt(i, found))
	}
	if skip > 0 {
		r, c, err := rangeReader(s.files[i].path, off, -1)
		if err != nil {
			return fmt.Sprintf("%s: row %d", s.files[i].path, row-s.fileRow[i])
		}
		scanRows(context.Background(), r, off, s.syntax, inRow, make([]byte, 64<<10), func(o int64) bool {
			skip--
			off = o
			return skip > 0
		})
		c.Close()
	}
	return fmt.Sprintf("%s:%d", s.files[i].path, s.lineAt(i, off))
}

// columnName returns the header name of CSV column col.
func (s *textSource) columnName(col int) string {
	return s.files[0].header[col]
}

// checkShards checks that shards are ascending shards of s.
func checkShards(s Sharding, shards []int) error {
	for i, v := range shards {
		if v < 0 || v >= s.Shards() || (i > 0 && v <= shards[i-1]) {
			return fmt.Errorf("data: shards %v: want ascending shards of 0..%d", shards, s.Shards()-1)
		}
	}
	return nil
}

// runParallel calls fn(0..n-1), GOMAXPROCS at a time. The first error wins
// and stops the calls not yet started.
func runParallel(ctx context.Context, n int, fn func(i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(i); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return context.Cause(ctx)
}
