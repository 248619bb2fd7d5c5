package data

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// fuzzRefBound bounds what FuzzLIBSVM compares: rows are dense, so a
// 10-byte line can claim 2^24 features (128 MiB a row) by design.
const fuzzRefBound = 1 << 20 // rows * features

// refComparable reports whether refLIBSVM's result means something for
// content: every whitespace is ASCII (strings.Fields also splits at U+0085,
// U+00A0 and the other Unicode spaces, which LIBSVM does not know), and the
// rows times the largest index stays within fuzzRefBound. huge says that an
// index is above maxLIBSVMFeatures, which Open must refuse.
func refComparable(content []byte) (ok, huge bool) {
	for i := 0; i < len(content); {
		r, n := utf8.DecodeRune(content[i:])
		if r >= utf8.RuneSelf && unicode.IsSpace(r) {
			return false, false
		}
		i += n
	}
	sc := bufio.NewScanner(bytes.NewReader(content))
	sc.Buffer(nil, 1<<30)
	rows, features := 0, 0
	for sc.Scan() {
		text, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(text)
		if len(f) == 0 {
			continue
		}
		rows++
		for _, tok := range f[1:] {
			is, _, _ := strings.Cut(tok, ":")
			if i, err := strconv.Atoi(is); err == nil {
				features = max(features, i)
			} else if len(is) > 0 && strings.Trim(is, "+-0123456789") == "" {
				return false, true // out of int's range
			}
		}
	}
	return features <= fuzzRefBound && rows*features <= fuzzRefBound, features > maxLIBSVMFeatures
}

// FuzzLIBSVM reads the bytes as a LIBSVM file: no panic; what the reference
// reader (refLIBSVM) reads, the source reads the same, row for row and bit
// for bit; what it refuses, Open or ReadShards refuses. The seeds are in
// testdata/fuzz/FuzzLIBSVM/.
func FuzzLIBSVM(f *testing.F) {
	dir := f.TempDir()
	n := 0
	f.Fuzz(func(t *testing.T, content []byte) {
		ok, huge := refComparable(content)
		if !ok && !huge {
			return
		}
		n++ // a fuzz worker runs one input at a time
		path := filepath.Join(dir, fmt.Sprintf("in%d.svm", n))
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(path)
		if huge {
			// The index pass finds the largest index before any row is built.
			src, err := Open(context.Background(), Spec{Paths: []string{path}, Format: "libsvm"})
			if err == nil {
				_, err = src.ReadShards(context.Background(), allShards(src))
			}
			if err == nil {
				t.Fatalf("the source reads %q, an index above %d", content, maxLIBSVMFeatures)
			}
			return
		}
		want, refErr := refLIBSVM(content)
		spec := Spec{Paths: []string{path}, Format: "libsvm", Shards: 1 + len(content)%5}
		src, err := Open(context.Background(), spec)
		if err == nil {
			if refErr == nil {
				checkRead(t, src, want, allShards(src))
				return
			}
			_, err = src.ReadShards(context.Background(), allShards(src))
		}
		switch {
		case refErr != nil && err == nil:
			t.Fatalf("the reference refuses %q (%v), the source reads it", content, refErr)
		case refErr == nil && err != nil:
			t.Fatalf("the reference reads %q, the source refuses it: %v", content, err)
		}
	})
}
