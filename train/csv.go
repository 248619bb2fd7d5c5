package train

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// CSVFile is a CSV data set with a header line, opened by OpenCSV. Opening
// reads the header and counts the rows; Read then parses only the rows a node
// wants. Blank lines are skipped and quoted fields are handled (encoding/csv).
type CSVFile struct {
	path    string
	columns []string // the header
	label   int      // index of the label column; -1 for OpenCSVUnlabeled
	rows    int
}

// OpenCSV opens a CSV file with a header line and counts its data rows
// (without parsing numbers). label names the label column; "" means the last
// column. Every other column is a feature.
//
//	f, err := train.OpenCSV("data.csv", "price")
//	part := train.NewSharding(f.NumRows(), 0).Part(rank, nodes)
//	t, err := f.Read(part.Owns)
func OpenCSV(path, label string) (*CSVFile, error) {
	f, err := openCSV(path)
	if err != nil {
		return nil, err
	}
	if label == "" {
		f.label = len(f.columns) - 1
	} else {
		f.label = -1
		for i, c := range f.columns {
			if c == label {
				f.label = i
				break
			}
		}
		if f.label < 0 {
			return nil, fmt.Errorf("%s: label column %q is not in the header; the columns are %s", path, label, quoteList(f.columns))
		}
	}
	if len(f.columns) < 2 {
		return nil, fmt.Errorf("%s: the header has %d column; need a label and at least one feature", path, len(f.columns))
	}
	return f, nil
}

// OpenCSVUnlabeled opens a CSV file whose columns are all features (for
// prediction). Tables it reads have Y set to NaN.
func OpenCSVUnlabeled(path string) (*CSVFile, error) {
	f, err := openCSV(path)
	if err != nil {
		return nil, err
	}
	f.label = -1
	return f, nil
}

func openCSV(path string) (*CSVFile, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err // *PathError names the file
	}
	defer fh.Close()
	r := newCSVReader(fh)
	header, err := r.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("%s: empty file, expected a header line", path)
	}
	if err != nil {
		return nil, csvError(path, err)
	}
	f := &CSVFile{path: path, columns: append([]string(nil), header...)}
	for i := range f.columns {
		f.columns[i] = strings.TrimSpace(f.columns[i])
	}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return f, nil
		}
		if err != nil {
			return nil, csvError(path, err)
		}
		if err := f.checkFields(r, rec); err != nil {
			return nil, err
		}
		f.rows++
	}
}

// newCSVReader returns a CSV reader of rd that skips a UTF-8 byte order mark.
func newCSVReader(rd io.Reader) *csv.Reader {
	br := bufio.NewReader(rd)
	if bom, err := br.Peek(3); err == nil && string(bom) == "\ufeff" {
		br.Discard(3)
	}
	r := csv.NewReader(br)
	r.FieldsPerRecord = -1 // checked by checkFields, with a better message
	r.ReuseRecord = true
	return r
}

// csvError rewrites an encoding/csv parse error as "file:line: problem".
func csvError(path string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s:%d: column %d: %w", path, pe.Line, pe.Column, pe.Err)
	}
	return fmt.Errorf("%s: %w", path, err)
}

func (f *CSVFile) checkFields(r *csv.Reader, rec []string) error {
	if len(rec) != len(f.columns) {
		line, _ := r.FieldPos(0)
		return fmt.Errorf("%s:%d: %d fields, the header has %d", f.path, line, len(rec), len(f.columns))
	}
	return nil
}

// NumRows returns the number of data rows (the header and blank lines are not
// rows). Row i is the i-th data row, counting from 0.
func (f *CSVFile) NumRows() int { return f.rows }

// FeatureNames returns the names of the feature columns, in file order.
func (f *CSVFile) FeatureNames() []string {
	names := make([]string, 0, len(f.columns))
	for i, c := range f.columns {
		if i != f.label {
			names = append(names, c)
		}
	}
	return names
}

// Read parses the rows for which keep(row) is true (keep == nil: all rows)
// and returns them as a Table. A value that is not a finite number is an
// error naming file, line and column, e.g.
// `data.csv:17: column "x3" (4): "abc" is not a number`.
func (f *CSVFile) Read(keep func(row int) bool) (*Table, error) {
	fh, err := os.Open(f.path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	r := newCSVReader(fh)
	if _, err := r.Read(); err != nil {
		return nil, csvError(f.path, err)
	}
	names := f.FeatureNames()
	t := &Table{Source: f.path, Features: len(names), FeatureNames: names}
	for row := 0; ; row++ {
		rec, err := r.Read()
		if err == io.EOF {
			if row != f.rows {
				return nil, fmt.Errorf("%s: has %d data rows, %d when opened: the file changed", f.path, row, f.rows)
			}
			return t, nil
		}
		if err != nil {
			return nil, csvError(f.path, err)
		}
		if err := f.checkFields(r, rec); err != nil {
			return nil, err
		}
		if keep != nil && !keep(row) {
			continue
		}
		y := math.NaN()
		for i, s := range rec {
			v, err := parseValue(s)
			if err != nil {
				line, _ := r.FieldPos(i)
				return nil, fmt.Errorf("%s:%d: column %q (%d): %w", f.path, line, f.columns[i], i+1, err)
			}
			if i == f.label {
				y = v
			} else {
				t.X = append(t.X, v)
			}
		}
		line, _ := r.FieldPos(0)
		t.Rows = append(t.Rows, row)
		t.Y = append(t.Y, y)
		t.lines = append(t.lines, line)
	}
}

// parseValue parses one field as a finite float64.
func parseValue(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("%q is out of the float64 range", s)
	}
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("%q is not a finite number", s)
	}
	return v, nil
}

func quoteList(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = strconv.Quote(v)
	}
	return strings.Join(q, ", ")
}
