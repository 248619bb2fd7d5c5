package data

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"math"
	"unsafe"
)

// errNeedMore says that a record runs past the end of the buffer: read more
// and parse it again.
var errNeedMore = errors.New("data: record continues past the buffer")

// recordError is a malformed record: what, and the offset in the buffer where
// it was seen (turned into file:line later).
type recordError struct {
	pos int
	err error
}

func (e *recordError) Error() string { return e.err.Error() }

// fieldCountError is a record with another number of fields than the header.
type fieldCountError struct{ got, want int }

func (e *fieldCountError) Error() string {
	return fmt.Sprintf("%d fields, the header has %d", e.got, e.want)
}

// csvRecords parses the records of CSV text the way encoding/csv does with
// its defaults (comma-separated, double quotes with "" as an escaped quote,
// fields in quotes may hold commas and newlines, \r\n read as \n, empty lines
// skipped), for records of a known number of fields. It hands each field's
// bytes (unquoted and unescaped) to a callback instead of making strings.
type csvRecords struct {
	cols    int    // fields per record; -1: any number (a header)
	scratch []byte // an unescaped quoted field
}

// skipBlank returns the offset of the first byte at or after p that is not
// part of an empty line ("\n" or "\r\n"). p must be at a line start. It
// returns errNeedMore when b ends inside what may be an empty line.
func skipBlank(b []byte, p int, atEOF bool) (int, error) {
	for p < len(b) {
		switch {
		case b[p] == '\n':
			p++
		case b[p] == '\r' && p+1 < len(b) && b[p+1] == '\n':
			p += 2
		case b[p] == '\r' && p+1 == len(b):
			if !atEOF {
				return p, errNeedMore
			}
			return len(b), nil // a lone \r before the end is dropped
		default:
			return p, nil
		}
	}
	return p, nil
}

// record parses the record that starts at b[p] (not at an empty line) and
// returns the offset after its line end. field is called with each of the
// first cols fields, with its index. A record cut off by the end of b gives
// errNeedMore unless atEOF.
func (c *csvRecords) record(b []byte, p int, atEOF bool, field func(col int, f []byte) error) (int, error) {
	col := 0
	emit := func(f []byte) error {
		if c.cols < 0 || col < c.cols {
			if err := field(col, f); err != nil {
				return err
			}
		}
		col++
		return nil
	}
	for {
		if p < len(b) && b[p] == '"' {
			start := p + 1
			q := start
			c.scratch = c.scratch[:0]
			escaped := false
			for {
				j := bytes.IndexByte(b[q:], '"')
				if j < 0 {
					if !atEOF {
						return 0, errNeedMore
					}
					return 0, &recordError{p, csv.ErrQuote} // at the opening quote, not the end of the file
				}
				q += j
				if q+1 == len(b) && !atEOF {
					return 0, errNeedMore // "" or the end of the field: the next byte tells
				}
				if q+1 < len(b) && b[q+1] == '"' {
					c.scratch = append(c.scratch, b[start:q+1]...)
					start, q, escaped = q+2, q+2, true
					continue
				}
				break
			}
			f := b[start:q]
			if escaped {
				c.scratch = append(c.scratch, f...)
				f = c.scratch
			}
			if bytes.Contains(f, []byte("\r\n")) { // encoding/csv reads \r\n as \n, in quotes too
				f = bytes.ReplaceAll(f, []byte("\r\n"), []byte("\n"))
			}
			if err := emit(f); err != nil {
				return 0, err
			}
			p = q + 1
			switch {
			case p == len(b):
				return p, c.count(col, b, start)
			case b[p] == ',':
				p++
				continue
			case b[p] == '\n':
				return p + 1, c.count(col, b, start)
			case b[p] == '\r' && p+1 < len(b) && b[p+1] == '\n':
				return p + 2, c.count(col, b, start)
			case b[p] == '\r' && p+1 == len(b):
				if !atEOF {
					return 0, errNeedMore
				}
				return p + 1, c.count(col, b, start)
			}
			return 0, &recordError{p, csv.ErrQuote}
		}
		// An unquoted field runs to the next comma or line end.
		i := p
		for i < len(b) && b[i] != ',' && b[i] != '\n' && b[i] != '"' {
			i++
		}
		if i < len(b) && b[i] == '"' {
			return 0, &recordError{i, csv.ErrBareQuote}
		}
		if i == len(b) && !atEOF {
			return 0, errNeedMore
		}
		f := b[p:i]
		if (i == len(b) || b[i] == '\n') && len(f) > 0 && f[len(f)-1] == '\r' {
			f = f[:len(f)-1]
		}
		if err := emit(f); err != nil {
			return 0, err
		}
		if i == len(b) {
			return i, c.count(col, b, p)
		}
		if b[i] == '\n' {
			return i + 1, c.count(col, b, p)
		}
		p = i + 1
	}
}

// count checks the number of fields of a finished record.
func (c *csvRecords) count(got int, _ []byte, pos int) error {
	if c.cols >= 0 && got != c.cols {
		return &recordError{pos, &fieldCountError{got, c.cols}}
	}
	return nil
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

func uintptrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
