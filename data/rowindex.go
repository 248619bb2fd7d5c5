package data

import (
	"bytes"
	"context"
	"io"
)

// The row index: one byte-level pass over a file finds where its rows
// start, without parsing a field. It keeps the offset of every markEvery-th
// row; once the number of rows of the whole data set is known, the offset of
// each virtual shard's first row is found from the nearest mark, and only
// those offsets are kept for the run.

// scanBlock is the size of the reads of the index pass.
const scanBlock = 1 << 20

// rowSyntax says what starts a row in a text format.
type rowSyntax int

const (
	csvRows    rowSyntax = iota // a non-empty line outside double quotes
	libsvmRows                  // a line with a token before any '#'
)

// rowScanner finds the offsets of row starts in a stream of text. Feed it
// the text block by block; it calls onRow with the offset of each row start.
type rowScanner struct {
	syntax rowSyntax
	state  scanState
	crAt   int64 // offset of a '\r' that may open an empty line
	// libsvm: the largest feature index seen, and the index being read.
	maxIndex     int
	pendingIndex int
	end          int64                // offset after the last byte fed
	onRow        func(off int64) bool // false stops the scan
	stopped      bool
}

type scanState uint8

const (
	atLineStart   scanState = iota // outside quotes, at a line start
	atLineStartCR                  // a line start whose first byte was '\r'
	inRow                          // inside a row, outside quotes
	inQuotes                       // inside a quoted field
	inComment                      // libsvm: after '#', up to the line end
)

// feed scans block, whose first byte is at offset base.
func (s *rowScanner) feed(block []byte, base int64) {
	if s.syntax == libsvmRows {
		s.feedLIBSVM(block, base)
		return
	}
	p, n := 0, len(block)
	quote := -1 // offset in block of the next '"' at or after p; -1: not looked for
	for p < n && !s.stopped {
		switch s.state {
		case atLineStart:
			switch block[p] {
			case '\n':
				p++
			case '\r':
				s.state, s.crAt = atLineStartCR, base+int64(p)
				p++
			default:
				s.row(base + int64(p))
				s.state = inRow
			}
		case atLineStartCR:
			if block[p] == '\n' { // "\r\n": an empty line
				s.state = atLineStart
				p++
			} else {
				s.row(s.crAt)
				s.state = inRow
			}
		case inRow:
			if quote < p {
				if quote = bytes.IndexByte(block[p:], '"'); quote < 0 {
					quote = n
				} else {
					quote += p
				}
			}
			nl := bytes.IndexByte(block[p:quote], '\n')
			if nl >= 0 {
				p += nl + 1
				s.state = atLineStart
				continue
			}
			if quote == n {
				p = n
				continue
			}
			p = quote + 1
			s.state = inQuotes
		case inQuotes:
			j := bytes.IndexByte(block[p:], '"')
			if j < 0 {
				p = n
				continue
			}
			p += j + 1
			s.state = inRow
		}
	}
}

// feedLIBSVM scans LIBSVM text: a row is a line with a token before any
// '#'; it also tracks the largest feature index (the digits before a ':').
func (s *rowScanner) feedLIBSVM(block []byte, base int64) {
	p, n := 0, len(block)
	for p < n && !s.stopped {
		switch s.state {
		case atLineStart:
			switch c := block[p]; c {
			case ' ', '\t', '\r', '\v', '\f':
				p++
			case '\n':
				p++
			case '#':
				s.state = inComment
			default:
				s.row(base + int64(p))
				s.state = inRow
			}
		case inComment:
			nl := bytes.IndexByte(block[p:], '\n')
			if nl < 0 {
				p = n
				continue
			}
			p += nl + 1
			s.state = atLineStart
		case inRow:
			for ; p < n; p++ {
				c := block[p]
				if c == '\n' {
					s.state = atLineStart
					p++
					break
				}
				if c == '#' {
					s.state = inComment
					break
				}
				if c == ':' {
					s.maxIndex = max(s.maxIndex, s.pendingIndex)
				}
				if d := c - '0'; d < 10 {
					if s.pendingIndex < 1<<40 {
						s.pendingIndex = s.pendingIndex*10 + int(d)
					}
				} else {
					s.pendingIndex = 0
				}
			}
		}
	}
}

func (s *rowScanner) row(off int64) {
	if !s.onRow(off) {
		s.stopped = true
	}
}

// scanRows feeds r (whose first byte is at offset base) to a scanner in
// state st until the end or until onRow returns false.
func scanRows(ctx context.Context, r io.Reader, base int64, syntax rowSyntax, st scanState, buf []byte, onRow func(off int64) bool) (*rowScanner, error) {
	return scanRowsWith(ctx, &rowScanner{syntax: syntax, state: st, onRow: onRow}, r, base, buf)
}

// scanRowsWith feeds r (whose first byte is at offset base) to s until the
// end or until s stops.
func scanRowsWith(ctx context.Context, s *rowScanner, r io.Reader, base int64, buf []byte) (*rowScanner, error) {
	s.end = base
	for !s.stopped {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			s.feed(buf[:n], base)
			base += int64(n)
			s.end = base
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

// marksEvery is how many rows apart the index pass marks an offset, for a
// plain file; a gzip file, which cannot seek, marks every row, until the
// shard offsets are known.
const marksEvery = 64
