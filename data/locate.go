package data

import (
	"bytes"
	"context"
	"fmt"
)

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
