package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// predictOutput is where the predictions of a run go: one file, one part
// file per node in a directory, or standard output. Each node's lines are
// written to a temporary file of its own beside the destination; commit
// makes the result appear whole (a rename), abort removes every temporary
// file, so a failed run leaves nothing that looks complete.
type predictOutput struct {
	path    string // -o FILE ("" with a directory or standard output)
	dir     string // -o DIR/
	temps   []*os.File
	writers []*rowWriter
	parts   []io.Writer // writers, as io.Writers
	renamed []bool      // temps that commit renamed into place
}

// rowWriter buffers the lines written to one temporary file and counts them.
type rowWriter struct {
	bw   *bufio.Writer
	rows int64
}

func (w *rowWriter) Write(p []byte) (int, error) {
	w.rows += int64(bytes.Count(p, []byte{'\n'}))
	return w.bw.Write(p)
}

// WriteString spares a copy of each piece the launcher receives.
func (w *rowWriter) WriteString(s string) (int, error) {
	w.rows += int64(strings.Count(s, "\n"))
	return w.bw.WriteString(s)
}

// partName is the name of node i's file in an output directory.
func partName(i int) string { return fmt.Sprintf("part-%05d.csv", i) }

// partRE matches the names partName gives.
var partRE = regexp.MustCompile(`^part-([0-9]{5,})\.csv$`)

// openPredictOutput prepares the output of n nodes at out: a directory when
// it ends in a slash or is one (created if missing), else a file; "" is
// standard output.
func openPredictOutput(out string, n int) (*predictOutput, error) {
	o := &predictOutput{}
	tmpDir := ""
	switch fi, err := os.Stat(out); {
	case out == "":
	case strings.HasSuffix(out, "/") || strings.HasSuffix(out, string(filepath.Separator)) || err == nil && fi.IsDir():
		o.dir = filepath.Clean(out)
		if err := os.MkdirAll(o.dir, 0o755); err != nil {
			return nil, fmt.Errorf("-o %s: %w", out, err)
		}
		tmpDir = o.dir
	default:
		o.path = out
		tmpDir = filepath.Dir(out)
	}
	for i := range n {
		pattern := ".dmlrun-predict-" + partName(i) + ".*.tmp"
		if o.path != "" {
			pattern = "." + filepath.Base(o.path) + "." + strconv.Itoa(i) + ".*.tmp"
		}
		f, err := os.CreateTemp(tmpDir, pattern) // tmpDir "": $TMPDIR, for standard output
		if err != nil {
			o.abort()
			return nil, fmt.Errorf("-o %s: %w", out, err)
		}
		o.temps, o.renamed = append(o.temps, f), append(o.renamed, false)
		w := &rowWriter{bw: bufio.NewWriterSize(f, 1<<20)}
		o.writers = append(o.writers, w)
		o.parts = append(o.parts, w)
	}
	return o, nil
}

// commit makes the output appear: the parts, in order, as one file (or on
// stdout), or each as its part file; stale part files of an earlier run
// with more nodes are removed from the directory.
func (o *predictOutput) commit(stdout io.Writer) error {
	for _, w := range o.writers {
		if err := w.bw.Flush(); err != nil {
			return fmt.Errorf("writing the predictions: %w", err)
		}
	}
	switch {
	case o.dir != "":
		for i, f := range o.temps {
			if err := finishFile(f); err != nil {
				return err
			}
			if err := os.Rename(f.Name(), filepath.Join(o.dir, partName(i))); err != nil {
				return err
			}
			o.renamed[i] = true
		}
		if err := removeStaleParts(o.dir, len(o.temps)); err != nil {
			return err
		}
		return syncDir(o.dir)
	case o.path != "":
		first := o.temps[0]
		for _, f := range o.temps[1:] {
			if err := appendFile(first, f); err != nil {
				return fmt.Errorf("writing %s: %w", o.path, err)
			}
		}
		if err := finishFile(first); err != nil {
			return err
		}
		if err := os.Rename(first.Name(), o.path); err != nil {
			return err
		}
		o.renamed[0] = true
		o.abort() // the other temporary files
		return syncDir(filepath.Dir(o.path))
	}
	for _, f := range o.temps {
		if err := appendFile(stdout, f); err != nil {
			return fmt.Errorf("writing the predictions: %w", err)
		}
	}
	o.abort()
	return nil
}

// abort removes the temporary files that commit did not rename.
func (o *predictOutput) abort() {
	for i, f := range o.temps {
		f.Close()
		if !o.renamed[i] {
			os.Remove(f.Name())
		}
	}
}

// finishFile makes f durable and readable as a result, and closes it.
func finishFile(f *os.File) error {
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", f.Name(), err)
	}
	return f.Close()
}

// appendFile writes the whole of src (a temporary file just written) to dst.
func appendFile(dst io.Writer, src *os.File) error {
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return err
	}
	_, err := io.Copy(dst, src)
	return err
}

// removeStaleParts removes the part files of index n and above.
func removeStaleParts(dir string, n int) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		m := partRE.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		if i, err := strconv.Atoi(m[1]); err == nil && i >= n {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// syncDir makes the renames in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	_ = d.Sync() // not every file system syncs directories
	return nil
}
