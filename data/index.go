package data

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync"
)

// The index of a text data set is made by the nodes together: the bytes of
// all files are cut into one contiguous segment per node (a gzip file, which
// cannot be entered in the middle, is one segment), each node scans only its
// own segments, and three small exchanges (sums over the nodes, see
// Spec.Exchange) give every node the row counts and the offset of every
// virtual shard's first row. So the index pass costs each node its share
// of the bytes, not the whole data set. A segment owns the rows that start
// in it.
//
// Quotes make the start of a segment ambiguous: a newline inside a quoted
// field does not end a row. The first exchange therefore counts the quotes
// of each segment; a segment starts inside quotes when the quotes before it
// in its file are odd in number. (In a file without quotes this costs one
// vectorized count.)

// segment is the part of one file that one node scans.
type segment struct {
	file     int
	off, end int64 // bytes [off, end) of the file; a gzip file: 0 and -1 (all)
	owner    int
	quotes   int     // its double quotes (CSV)
	rows     int     // rows that start in it
	first    int     // global index of its first row
	every    int     // marks[k] is the offset of its row k*every
	marks    []int64 // kept by the owner until the shard offsets are known
	maxIndex int     // LIBSVM: the largest feature index of its rows
	size     int64   // gzip: the decompressed size of the file
}

// planSegments cuts the files among nodes nodes.
func planSegments(files []*textFile, nodes int) []segment {
	var plain int64
	for _, f := range files {
		if !gzipped(f.path) {
			plain += f.size
		}
	}
	var segs []segment
	var at int64 // offset of the current file in the plain bytes
	gz := 0
	for i, f := range files {
		if gzipped(f.path) {
			segs = append(segs, segment{file: i, off: 0, end: -1, owner: gz % nodes})
			gz++
			continue
		}
		if f.size == 0 {
			segs = append(segs, segment{file: i, owner: i % nodes})
		}
		for r := range nodes {
			lo, hi := int64(r)*plain/int64(nodes), int64(r+1)*plain/int64(nodes)
			lo, hi = max(lo, at), min(hi, at+f.size)
			if lo < hi {
				segs = append(segs, segment{file: i, off: lo - at, end: hi - at, owner: r})
			}
		}
		at += f.size
	}
	return segs
}

// exchange sums v over the nodes that index together (nothing to do alone).
func (s *textSource) exchange(ctx context.Context, v []float64, what string) error {
	if s.spec.Nodes <= 1 || s.spec.Exchange == nil {
		return nil
	}
	if err := s.spec.Exchange(ctx, v); err != nil {
		return fmt.Errorf("%s: indexing with the other nodes (%s): %w", s.name, what, err)
	}
	return nil
}

// indexFiles makes the index, with the other nodes when there are any.
func (s *textSource) indexFiles(ctx context.Context) error {
	n, rank := max(s.spec.Nodes, 1), s.spec.Rank
	segs := planSegments(s.files, n)
	mine := func(k int) bool { return segs[k].owner == rank }

	// 1. Quotes per segment (CSV, when a segment starts inside a file).
	split := false
	for _, g := range segs {
		split = split || (g.off > 0 && g.end > 0)
	}
	if s.syntax == csvRows && split {
		v := make([]float64, len(segs))
		err := runParallel(ctx, len(segs), func(k int) error {
			if !mine(k) || segs[k].end < 0 {
				return nil
			}
			q, err := s.countQuotes(segs[k])
			v[k] = float64(q)
			return err
		})
		if err != nil {
			return err
		}
		if err := s.exchange(ctx, v, "quotes"); err != nil {
			return err
		}
		for k := range segs {
			segs[k].quotes = int(v[k])
		}
	}

	// 2. Rows per segment, marking every few rows' offset.
	err := runParallel(ctx, len(segs), func(k int) error {
		if !mine(k) {
			return nil
		}
		quoted := false // an odd number of quotes before it in its file
		for j := k - 1; j >= 0 && segs[j].file == segs[k].file; j-- {
			quoted = quoted != (segs[j].quotes%2 == 1)
		}
		return s.scanSegment(ctx, &segs[k], quoted)
	})
	if err != nil {
		return err
	}
	L := len(segs)
	v := make([]float64, 3*L)
	for k, g := range segs {
		if mine(k) {
			v[k], v[L+k], v[2*L+k] = float64(g.rows), float64(g.maxIndex), float64(g.size)
		}
	}
	if err := s.exchange(ctx, v, "rows"); err != nil {
		return err
	}
	s.fileRow = make([]int, len(s.files)+1)
	rows := 0
	for k := range segs {
		g := &segs[k]
		g.rows, g.maxIndex, g.first = int(v[k]), int(v[L+k]), rows
		rows += g.rows
		s.fileRow[g.file+1] += g.rows
		f := s.files[g.file]
		f.maxIndex = max(f.maxIndex, g.maxIndex)
		if g.end < 0 {
			f.size = int64(v[2*L+k])
		}
	}
	for i := range s.files {
		s.fileRow[i+1] += s.fileRow[i]
	}

	// 3. The offset of every shard's first row, from its segment's owner.
	s.s = NewSharding(rows, s.spec.Shards)
	V := s.s.Shards()
	pos := make([]float64, V)
	err = runParallel(ctx, V, func(v int) error {
		lo, _ := s.s.ShardRows(v)
		k := 0
		for k+1 < len(segs) && segs[k+1].first <= lo {
			k++
		}
		for segs[k].rows == 0 || lo >= segs[k].first+segs[k].rows { // skip empty segments
			k++
		}
		if !mine(k) {
			return nil
		}
		off, err := s.rowAfterMark(ctx, &segs[k], lo-segs[k].first)
		pos[v] = float64(segs[k].file)*posFile + float64(off)
		return err
	})
	if err != nil {
		return err
	}
	if err := s.exchange(ctx, pos, "shard offsets"); err != nil {
		return err
	}
	s.starts = make([]position, V+1)
	for v, p := range pos {
		s.starts[v] = position{int(p / posFile), int64(p - float64(int(p/posFile))*posFile)}
	}
	last := len(s.files) - 1
	s.starts[V] = position{last, s.files[last].size}
	return nil
}

// posFile packs (file, offset) into one exactly summed float64: file*2^40 +
// offset (files up to 1 TiB, 8191 files).
const posFile = 1 << 40

// countQuotes counts the double quotes of segment g after the header.
func (s *textSource) countQuotes(g segment) (int, error) {
	f := s.files[g.file]
	if err := s.header(g.file); err != nil {
		return 0, err
	}
	q := 0
	err := forEachWindow(f.path, max(g.off, f.dataStart), g.end, func(b []byte, _ int64) error {
		q += bytes.Count(b, []byte{'"'})
		return nil
	})
	return q, err
}

// scanSegment finds the rows that start in segment g.
func (s *textSource) scanSegment(ctx context.Context, g *segment, quoted bool) error {
	f := s.files[g.file]
	if err := s.header(g.file); err != nil {
		return err
	}
	g.every = marksEvery
	sc := &rowScanner{syntax: s.syntax, onRow: func(off int64) bool {
		if g.rows%g.every == 0 {
			g.marks = append(g.marks, off)
		}
		g.rows++
		return true
	}}
	if g.end < 0 { // gzip: one stream, every row marked
		g.every = 1
		r, c, err := rangeReader(f.path, f.dataStart, -1)
		if err != nil {
			return err
		}
		defer c.Close()
		sc.state = atLineStart
		if _, err := scanRowsWith(ctx, sc, r, f.dataStart, make([]byte, scanBlock)); err != nil {
			return fmt.Errorf("%s: %w", f.path, err)
		}
		g.size, g.maxIndex = sc.end, sc.maxIndex
		return nil
	}
	off := max(g.off, f.dataStart)
	if off >= g.end {
		return nil // all header
	}
	fh, err := os.Open(f.path)
	if err != nil {
		return err
	}
	defer fh.Close()
	sc.state = atLineStart
	if off > f.dataStart {
		prev := make([]byte, 1)
		if _, err := fh.ReadAt(prev, off-1); err != nil {
			return fmt.Errorf("%s: %w", f.path, err)
		}
		switch {
		case quoted:
			sc.state = inQuotes
		case prev[0] != '\n':
			sc.state = inRow
			if s.syntax == libsvmRows {
				sc.state = inComment // the rest of the line is the row before
			}
		}
	}
	err = forEachWindow(f.path, off, g.end, func(b []byte, base int64) error {
		sc.feed(b, base)
		return ctx.Err()
	})
	if err != nil {
		return err
	}
	// A row whose first byte is a '\r' at the very end of the segment.
	if sc.state == atLineStartCR && g.end < f.size {
		next := make([]byte, 1)
		if _, err := fh.ReadAt(next, g.end); err == nil && next[0] != '\n' {
			sc.row(sc.crAt)
		}
	}
	// LIBSVM: the last row goes on past the segment; its indices count too.
	if s.syntax == libsvmRows && sc.state == inRow && g.end < f.size {
		sc.onRow = func(int64) bool { return false }
		err = forEachWindow(f.path, g.end, f.size, func(b []byte, base int64) error {
			if i := bytes.IndexByte(b, '\n'); i >= 0 {
				b = b[:i+1]
				sc.feed(b, base)
				return errStop
			}
			sc.feed(b, base)
			return nil
		})
		if err != errStop && err != nil {
			return err
		}
	}
	g.maxIndex = sc.maxIndex
	return nil
}

var errStop = fmt.Errorf("stop")

// rowAfterMark returns the offset of row k of segment g, from the nearest
// mark before it.
func (s *textSource) rowAfterMark(ctx context.Context, g *segment, k int) (int64, error) {
	m := k / g.every
	if k == m*g.every {
		return g.marks[m], nil
	}
	f := s.files[g.file]
	r, c, err := rangeReader(f.path, g.marks[m], -1)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	skip := k - m*g.every
	var off int64 = -1
	sc := &rowScanner{syntax: s.syntax, state: inRow, onRow: func(o int64) bool {
		skip--
		if skip == 0 {
			off = o
			return false
		}
		return true
	}}
	if _, err := scanRowsWith(ctx, sc, r, g.marks[m], make([]byte, 8<<10)); err != nil { // marks are a few KiB apart
		return 0, fmt.Errorf("%s: %w", f.path, err)
	}
	if off < 0 {
		return 0, fmt.Errorf("%s: row %d of bytes %d.. is gone: the file changed since it was indexed", f.path, k, g.off)
	}
	return off, nil
}

// header reads file i's header once (CSV: its column names, checked against
// the first file's; LIBSVM has none) and so learns where its data start.
func (s *textSource) header(i int) error {
	f := s.files[i]
	f.once.Do(func() {
		if s.syntax != csvRows {
			return
		}
		var h []string
		h, f.dataStart, f.headerErr = readHeader(f.path)
		if f.headerErr == nil && i > 0 && !equalStrings(h, s.files[0].header) {
			f.headerErr = fmt.Errorf("%s: the header %s differs from the header of %s, %s", f.path, quoteList(h), s.files[0].path, quoteList(s.files[0].header))
		}
		if i == 0 {
			f.header = h
		}
	})
	return f.headerErr
}

// textFile is one file of a text data set.
type textFile struct {
	path      string
	size      int64 // bytes (decompressed, for gzip, once indexed)
	once      sync.Once
	header    []string // CSV: the column names (file 0 only)
	headerErr error
	dataStart int64 // offset of the first byte after the header
	maxIndex  int   // LIBSVM: the largest feature index
}
