package data

import (
	"context"
	"fmt"
	"io"
	"os"
)

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
	if err := finishTables(tables); err != nil {
		return nil, err
	}
	return tables, nil
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
