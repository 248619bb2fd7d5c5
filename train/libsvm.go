package train

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
)

// LIBSVMFile is a data set in LIBSVM (svmlight) format, opened by OpenLIBSVM:
// one row per line, "label index:value index:value ...", indices 1-based,
// missing features 0. Blank lines and text after '#' are ignored.
type LIBSVMFile struct {
	path     string
	rows     int
	features int // the largest feature index in the file
}

// maxLine bounds the length of one LIBSVM line.
const maxLine = 1 << 30

// OpenLIBSVM opens a LIBSVM file and makes a first pass that counts the rows
// and finds the largest feature index, which is the number of features.
//
//	f, err := train.OpenLIBSVM("a9a.txt")
//	t, err := f.Read(part.Owns)
//	err = t.PrepareLabels(train.TaskBinary, 2) // maps -1 to 0
func OpenLIBSVM(path string) (*LIBSVMFile, error) {
	f := &LIBSVMFile{path: path}
	err := f.scan(func(line int, fields [][]byte) error {
		for _, tok := range fields[1:] {
			idx, _, err := f.parsePair(line, tok)
			if err != nil {
				return err
			}
			f.features = max(f.features, idx)
		}
		f.rows++
		return nil
	})
	if err != nil {
		return nil, err
	}
	if f.rows > 0 && f.features == 0 {
		return nil, fmt.Errorf("%s: no row has a feature", path)
	}
	return f, nil
}

// NumRows returns the number of rows (non-blank, non-comment lines).
func (f *LIBSVMFile) NumRows() int { return f.rows }

// NumFeatures returns the largest feature index in the file.
func (f *LIBSVMFile) NumFeatures() int { return f.features }

// FeatureNames returns "f1" .. "fN", after the 1-based LIBSVM indices.
func (f *LIBSVMFile) FeatureNames() []string {
	names := make([]string, f.features)
	for i := range names {
		names[i] = "f" + strconv.Itoa(i+1)
	}
	return names
}

// Read parses the rows for which keep(row) is true (keep == nil: all rows).
// Labels are kept as written; call Table.PrepareLabels to map -1/+1 to 0/1.
// Errors name file, line and token: `a.svm:12: "3:x": "x" is not a number`.
func (f *LIBSVMFile) Read(keep func(row int) bool) (*Table, error) {
	t := &Table{Source: f.path, Features: f.features, FeatureNames: f.FeatureNames()}
	row := 0
	err := f.scan(func(line int, fields [][]byte) error {
		r := row
		row++
		if keep != nil && !keep(r) {
			return nil
		}
		y, err := parseValue(string(fields[0]))
		if err != nil {
			return fmt.Errorf("%s:%d: label: %w", f.path, line, err)
		}
		n := len(t.X)
		t.X = slices.Grow(t.X, f.features)[:n+f.features]
		x := t.X[n:]
		clear(x)
		for _, tok := range fields[1:] {
			idx, val, err := f.parsePair(line, tok)
			if err != nil {
				return err
			}
			if idx > f.features {
				return fmt.Errorf("%s:%d: %q: index %d is above %d, the largest when opened: the file changed", f.path, line, tok, idx, f.features)
			}
			v, err := parseValue(string(val))
			if err != nil {
				return fmt.Errorf("%s:%d: %q: %w", f.path, line, tok, err)
			}
			x[idx-1] = v
		}
		t.Rows = append(t.Rows, r)
		t.Y = append(t.Y, y)
		t.lines = append(t.lines, line)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if row != f.rows {
		return nil, fmt.Errorf("%s: has %d rows, %d when opened: the file changed", f.path, row, f.rows)
	}
	return t, nil
}

// scan calls fn for every row of the file with its 1-based line number and
// its whitespace-separated fields (fields[0] is the label).
func (f *LIBSVMFile) scan(fn func(line int, fields [][]byte) error) error {
	fh, err := os.Open(f.path)
	if err != nil {
		return err // *PathError names the file
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for line := 1; sc.Scan(); line++ {
		text := sc.Bytes()
		if i := bytes.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		fields := bytes.Fields(text)
		if len(fields) == 0 {
			continue
		}
		if err := fn(line, fields); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", f.path, err)
	}
	return nil
}

// parsePair splits an "index:value" token and parses the index, which must
// be an integer >= 1.
func (f *LIBSVMFile) parsePair(line int, tok []byte) (idx int, value []byte, err error) {
	i := bytes.IndexByte(tok, ':')
	if i < 0 {
		return 0, nil, fmt.Errorf("%s:%d: %q is not an index:value pair", f.path, line, tok)
	}
	idx, err = strconv.Atoi(string(tok[:i]))
	if err != nil || idx < 1 {
		return 0, nil, fmt.Errorf("%s:%d: %q: index %q is not an integer >= 1", f.path, line, tok, tok[:i])
	}
	return idx, tok[i+1:], nil
}
