package data

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
)

// LIBSVM (svmlight) text: one row per line, "label index:value ...",
// indices 1-based, missing features 0; blank lines and text after '#' are
// ignored. The number of features is the largest index in the files, which
// the index pass finds (it reads the digits before each ':', and no value).

// openLIBSVM opens LIBSVM files and indexes their rows.
func openLIBSVM(ctx context.Context, files []string, spec Spec) (*textSource, error) {
	s, err := newTextSource(files, spec, libsvmRows, libsvmRecord)
	if err != nil {
		return nil, err
	}
	if err := s.indexFiles(ctx); err != nil {
		return nil, err
	}
	features := 0
	for _, f := range s.files {
		features = max(features, f.maxIndex)
	}
	if s.Rows() > 0 && features == 0 {
		return nil, fmt.Errorf("%s: no row has a feature", s.name)
	}
	if features > maxLIBSVMFeatures {
		return nil, fmt.Errorf("%s: a feature index of %d is above the limit of %d (rows are stored dense)", s.name, features, maxLIBSVMFeatures)
	}
	s.names = make([]string, features)
	for i := range s.names {
		s.names[i] = "f" + strconv.Itoa(i+1)
	}
	return s, nil
}

// maxLIBSVMFeatures bounds the feature index: rows are stored dense.
const maxLIBSVMFeatures = 1 << 24

// libsvmRecord parses one LIBSVM line of b into the table.
func libsvmRecord(pp *pieceParser, b []byte, atEOF bool) (int, error) {
	end := bytes.IndexByte(b, '\n')
	next := end + 1
	if end < 0 {
		if !atEOF {
			return 0, errNeedMore
		}
		end, next = len(b), len(b)
	}
	line := b[:end]
	if i := bytes.IndexByte(line, '#'); i >= 0 {
		line = line[:i]
	}
	if len(bytes.TrimLeft(line, " \t\r\v\f")) == 0 {
		return next, errNoRow // only spaces or a comment
	}
	if err := pp.full(); err != nil {
		return 0, err
	}
	t := pp.p.t
	first := true
	for pos := 0; pos < len(line); {
		for pos < len(line) && isSpace(line[pos]) {
			pos++
		}
		tokStart := pos
		for pos < len(line) && !isSpace(line[pos]) {
			pos++
		}
		tok := line[tokStart:pos]
		if len(tok) == 0 {
			break
		}
		if first {
			first = false
			y, err := parseFloat(tok)
			if err != nil {
				return 0, &recordError{tokStart, fmt.Errorf("label: %w", err)}
			}
			t.Y[pp.row] = y
			continue
		}
		colon := bytes.IndexByte(tok, ':')
		if colon < 0 {
			return 0, &recordError{tokStart, fmt.Errorf("%s is not an index:value pair", quoteField(tok))}
		}
		idx, ok := parseIndex(tok[:colon])
		if !ok {
			return 0, &recordError{tokStart, fmt.Errorf("%s: index %s is not an integer >= 1", quoteField(tok), quoteField(tok[:colon]))}
		}
		if idx > t.Features {
			return 0, &recordError{tokStart, fmt.Errorf("%s: index %d is above %d, the largest when indexed: the file changed", quoteField(tok), idx, t.Features)}
		}
		v, err := parseFloat(tok[colon+1:])
		if err != nil {
			return 0, &recordError{tokStart, fmt.Errorf("%s: %w", quoteField(tok), err)}
		}
		t.set(pp.row, idx-1, v)
	}
	return next, nil
}

// errNoRow says that a line holds no row (LIBSVM: a comment).
var errNoRow = errors.New("data: no row on the line")

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' }

// parseIndex parses a LIBSVM feature index, an integer >= 1.
func parseIndex(b []byte) (int, bool) {
	for len(b) > 1 && b[0] == '0' { // leading zeros do not count against the 10 digits
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c-'0' >= 10 {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n >= 1
}
