package data

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ExpandPaths turns the paths of a data set into its files, in order: a
// file stands for itself; a directory for the data files in it, in lexical
// order (the layout Spark and Hadoop write: hidden files, _SUCCESS and other
// names starting with "_" or ".", and *.crc checksums are skipped); a pattern
// with * ? or [ for the files it matches, in lexical order (filepath.Glob).
// A path that names nothing is an error that names it.
func ExpandPaths(paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, errors.New("data: no data files given")
	}
	var files []string
	for _, p := range paths {
		if strings.ContainsAny(p, "*?[") {
			m, err := filepath.Glob(p)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			var kept []string
			for _, f := range m {
				if fi, err := os.Stat(f); err == nil && fi.Mode().IsRegular() && dataFileName(filepath.Base(f)) {
					kept = append(kept, f)
				}
			}
			if len(kept) == 0 {
				return nil, fmt.Errorf("%s: no data file matches the pattern", p)
			}
			slices.Sort(kept)
			files = append(files, kept...)
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err // *PathError names the path
		}
		if !fi.IsDir() {
			files = append(files, p)
			continue
		}
		ents, err := os.ReadDir(p) // sorted by name
		if err != nil {
			return nil, err
		}
		n := len(files)
		for _, e := range ents {
			if e.Type().IsRegular() && dataFileName(e.Name()) {
				files = append(files, filepath.Join(p, e.Name()))
			}
		}
		if len(files) == n {
			return nil, fmt.Errorf("%s: the directory holds no data file", p)
		}
	}
	return files, nil
}

// dataFileName reports whether a file in a data directory is data: not
// hidden, not _SUCCESS or another "_" file, not a .crc checksum.
func dataFileName(name string) bool {
	return !strings.HasPrefix(name, ".") && !strings.HasPrefix(name, "_") && !strings.HasSuffix(name, ".crc")
}

// gzipped reports whether a file is read through gzip (by its name).
func gzipped(path string) bool { return strings.HasSuffix(path, ".gz") }

// rangeReader returns a reader of bytes [off, end) of a file's content:
// the file's own bytes, or for a .gz file the decompressed stream, which is
// decompressed from its start (gzip cannot seek) and discarded up to off.
// end < 0 means to the end. Close the returned closer.
func rangeReader(path string, off, end int64) (io.Reader, io.Closer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	if !gzipped(path) {
		var r io.Reader = io.NewSectionReader(f, off, 1<<62)
		if end >= 0 {
			r = io.NewSectionReader(f, off, end-off)
		}
		return r, f, nil
	}
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if _, err := io.CopyN(io.Discard, zr, off); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: decompressing up to byte %d: %w", path, off, err)
	}
	var r io.Reader = zr
	if end >= 0 {
		r = io.LimitReader(zr, end-off)
	}
	return r, f, nil
}
