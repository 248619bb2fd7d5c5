package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// checkPlotFlag validates -plot FILE before a benchmark runs, so that a
// long sweep does not end in an unwritable path: FILE must end in .png, not
// be a directory, and lie in an existing directory that takes new files.
// "" (no plot) passes.
func checkPlotFlag(path string) error {
	if path == "" {
		return nil
	}
	if !strings.EqualFold(filepath.Ext(path), ".png") {
		return fmt.Errorf("-plot %s: the file name must end in .png (the plot is a PNG image)", path)
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("-plot %s: is a directory", path)
	}
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("-plot %s: directory %s: %w", path, dir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("-plot %s: %s is not a directory", path, dir)
	}
	f, err := os.CreateTemp(dir, ".dmlrun-probe-*")
	if err != nil {
		return fmt.Errorf("-plot %s: directory %s is not writable: %w", path, dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// savePlot draws a plot with draw and writes it to path through a
// temporary file renamed into place, so that path never holds half an
// image.
func savePlot(path string, draw func() ([]byte, error)) error {
	b, err := draw()
	if err != nil {
		return fmt.Errorf("drawing %s: %w", path, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	_, werr := f.Write(b)
	if err := errors.Join(werr, f.Close()); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// benchPlot saves a benchmark's plot to path, if one was asked for, and
// says where on out. The benchmark's own error, runErr, comes first: a
// plot that cannot be drawn after a failed run adds nothing.
func benchPlot(out io.Writer, path string, draw func() ([]byte, error), runErr error) error {
	if path == "" {
		return runErr
	}
	if err := savePlot(path, draw); err != nil {
		if runErr != nil {
			return runErr
		}
		return err
	}
	fmt.Fprintf(out, "# plot written to %s\n", path)
	return runErr
}
