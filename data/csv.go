package data

import (
	"context"
	"fmt"
	"io"
	"strings"
)

// openCSV opens CSV files that each start with the same header line, and
// indexes their rows.
func openCSV(ctx context.Context, files []string, spec Spec) (*textSource, error) {
	s, err := newTextSource(files, spec, csvRows, csvRecord)
	if err != nil {
		return nil, err
	}
	if err := s.header(0); err != nil {
		return nil, err
	}
	header := s.files[0].header
	s.cols = len(header)
	switch {
	case spec.Unlabeled:
		s.label = -1
	case spec.Label == "":
		s.label = len(header) - 1
	default:
		s.label = -1
		for i, c := range header {
			if c == spec.Label {
				s.label = i
				break
			}
		}
		if s.label < 0 {
			return nil, fmt.Errorf("%s: label column %q is not in the header; the columns are %s", files[0], spec.Label, quoteList(header))
		}
	}
	if !spec.Unlabeled && len(header) < 2 {
		return nil, fmt.Errorf("%s: the header has %d column; need a label and at least one feature", files[0], len(header))
	}
	for i, c := range header {
		if i != s.label {
			s.names = append(s.names, c)
		}
	}
	if err := s.indexFiles(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// readHeader reads the header line of a CSV file (after a UTF-8 byte order
// mark and empty lines) and returns its column names, trimmed of spaces, and
// the offset of the byte after it.
func readHeader(path string) ([]string, int64, error) {
	r, c, err := rangeReader(path, 0, -1)
	if err != nil {
		return nil, 0, err // *PathError names the file
	}
	defer c.Close()
	buf := make([]byte, 0, 64<<10)
	var rec csvRecords
	rec.cols = -1
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := io.ReadFull(r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		atEOF := err == io.EOF || err == io.ErrUnexpectedEOF
		if err != nil && !atEOF {
			return nil, 0, fmt.Errorf("%s: %w", path, err)
		}
		start := 0
		if strings.HasPrefix(string(buf[:min(3, len(buf))]), "\ufeff") {
			start = 3
		}
		q, err := skipBlank(buf, start, atEOF)
		if err == errNeedMore {
			continue
		}
		if q == len(buf) && atEOF {
			return nil, 0, fmt.Errorf("%s: empty file, expected a header line", path)
		}
		if q == len(buf) {
			continue
		}
		var names []string
		end, err := rec.record(buf[q:], 0, atEOF, func(_ int, f []byte) error {
			names = append(names, strings.TrimSpace(string(f)))
			return nil
		})
		if err == errNeedMore {
			continue
		}
		if re, ok := err.(*recordError); ok {
			return nil, 0, fmt.Errorf("%s:%d: %w", path, 1+strings.Count(string(buf[:q+re.pos]), "\n"), re.err)
		}
		return names, int64(q + end), err
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func quoteList(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = quoteField([]byte(v)) // at most maxQuoted bytes of a huge name
	}
	return strings.Join(q, ", ")
}
